package jsonata

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

type tokenType int

const (
	tokEnd tokenType = iota
	tokOperator
	tokString
	tokNumber
	tokName
	tokVariable
	tokValue // true, false, null
	tokRegex
)

type token struct {
	typ   tokenType
	value string  // operator symbol, name, variable name, string value, regex pattern
	num   float64 // tokNumber
	flags string  // tokRegex
	pos   int     // offset just past the token, as JSONata reports positions
	start int
}

// operators, longest first where one is the prefix of another.
var operators = []string{"..", ":=", "!=", "<=", ">=", "~>", "**", ".", "[", "]", "{", "}", "(", ")",
	",", "@", "#", ";", ":", "?", "+", "-", "*", "/", "%", "|", "=", "<", ">", "^", "&", "!", "~"}

type lexer struct {
	src []rune
	i   int
}

// next returns the next token; prefix says whether an operand may start here, which is where a
// '/' begins a regular expression rather than a division.
func (l *lexer) next(prefix bool) (token, error) {
	src := l.src
	for {
		for l.i < len(src) && strings.ContainsRune(" \t\n\r\v\f", src[l.i]) {
			l.i++
		}
		if l.i+1 < len(src) && src[l.i] == '/' && src[l.i+1] == '*' {
			start := l.i
			end := strings.Index(string(src[l.i+2:]), "*/")
			if end < 0 {
				return token{}, newErr("S0106", start, "comment has no closing tag")
			}
			l.i += 2 + utf8.RuneCountInString(string(src[l.i+2:])[:end]) + 2
			continue
		}
		break
	}
	start := l.i
	if l.i >= len(src) {
		return token{typ: tokEnd, pos: l.i, start: l.i}, nil
	}
	c := src[l.i]
	if prefix && c == '/' {
		return l.regex()
	}
	if c == '"' || c == '\'' {
		return l.str(c)
	}
	if c >= '0' && c <= '9' {
		j := l.i
		scanDigits := func() int {
			k := j
			for j < len(src) && src[j] >= '0' && src[j] <= '9' {
				j++
			}
			return j - k
		}
		if src[j] == '0' {
			j++
		} else {
			scanDigits()
		}
		if j+1 < len(src) && src[j] == '.' && src[j+1] >= '0' && src[j+1] <= '9' {
			j++
			scanDigits()
		}
		if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
			k := j
			j++
			if j < len(src) && (src[j] == '+' || src[j] == '-') {
				j++
			}
			if scanDigits() == 0 {
				j = k
			}
		}
		text := string(src[l.i:j])
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return token{}, newErr("S0102", l.i, "number out of range: %s", text)
		}
		l.i = j
		return token{typ: tokNumber, num: f, value: text, pos: j, start: start}, nil
	}
	if c == '`' {
		end := -1
		for j := l.i + 1; j < len(src); j++ {
			if src[j] == '`' {
				end = j
				break
			}
		}
		if end < 0 {
			return token{}, newErr("S0105", l.i, "quoted property name must be terminated with a backquote (`)")
		}
		name := string(src[l.i+1 : end])
		l.i = end + 1
		return token{typ: tokName, value: name, pos: l.i, start: start}, nil
	}
	if c == '!' && !l.hasPrefix("!=") {
		return token{}, newErr("S0204", l.i, "unknown operator: !")
	}
	for _, op := range operators {
		if l.hasPrefix(op) {
			l.i += len(op)
			return token{typ: tokOperator, value: op, pos: l.i, start: start}, nil
		}
	}
	// a name or variable runs to the next operator character or space
	j := l.i
	for j < len(src) && !strings.ContainsRune(" \t\n\r\v\f.[]{}()!,@#;:?+-*/%|=<>^&~\"'`", src[j]) {
		j++
	}
	if c == '$' {
		name := string(src[l.i+1 : j])
		l.i = j
		return token{typ: tokVariable, value: name, pos: j, start: start}, nil
	}
	word := string(src[l.i:j])
	l.i = j
	switch word {
	case "and", "or", "in":
		return token{typ: tokOperator, value: word, pos: j, start: start}, nil
	case "true", "false", "null":
		return token{typ: tokValue, value: word, pos: j, start: start}, nil
	}
	if word == "" {
		return token{}, newErr("S0204", l.i, "unknown operator: %q", string(c))
	}
	return token{typ: tokName, value: word, pos: j, start: start}, nil
}

func (l *lexer) hasPrefix(s string) bool {
	k := l.i
	for _, r := range s {
		if k >= len(l.src) || l.src[k] != r {
			return false
		}
		k++
	}
	return true
}

func (l *lexer) str(quote rune) (token, error) {
	start := l.i
	var b strings.Builder
	src := l.src
	for j := l.i + 1; j < len(src); j++ {
		c := src[j]
		if c == quote {
			l.i = j + 1
			return token{typ: tokString, value: b.String(), pos: l.i, start: start}, nil
		}
		if c != '\\' {
			b.WriteRune(c)
			continue
		}
		j++
		if j >= len(src) {
			break
		}
		switch src[j] {
		case '"', '\\', '/', '\'':
			b.WriteRune(src[j])
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'u':
			if j+4 >= len(src) {
				return token{}, newErr("S0104", j, "the escape sequence \\u must be followed by 4 hex digits")
			}
			code, err := strconv.ParseUint(string(src[j+1:j+5]), 16, 32)
			if err != nil {
				return token{}, newErr("S0104", j, "the escape sequence \\u must be followed by 4 hex digits")
			}
			r := rune(code)
			j += 4
			// a surrogate pair written as two escapes
			if r >= 0xD800 && r < 0xDC00 && j+6 < len(src) && src[j+1] == '\\' && src[j+2] == 'u' {
				if lo, err := strconv.ParseUint(string(src[j+3:j+7]), 16, 32); err == nil && lo >= 0xDC00 && lo < 0xE000 {
					r = (r-0xD800)<<10 + (rune(lo) - 0xDC00) + 0x10000
					j += 6
				}
			}
			b.WriteRune(r)
		default:
			return token{}, newErr("S0103", j, "unsupported escape sequence: \\%c", src[j])
		}
	}
	return token{}, newErr("S0101", start, "string literal must be terminated by a matching quote")
}

func (l *lexer) regex() (token, error) {
	start := l.i
	src := l.src
	depth := 0
	for j := l.i + 1; j < len(src); j++ {
		c := src[j]
		switch {
		case c == '\\':
			j++
		case c == '[':
			depth++
		case c == ']' && depth > 0:
			depth--
		case c == '/' && depth == 0:
			pattern := string(src[l.i+1 : j])
			if pattern == "" {
				return token{}, newErr("S0301", j, "empty regular expressions are not allowed")
			}
			k := j + 1
			for k < len(src) && (src[k] == 'i' || src[k] == 'm' || src[k] == 'g') {
				k++
			}
			flags := string(src[j+1 : k])
			l.i = k
			return token{typ: tokRegex, value: pattern, flags: flags, pos: k, start: start}, nil
		}
	}
	return token{}, newErr("S0302", start, "no terminating / in regular expression")
}

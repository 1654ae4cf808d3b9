package jsonata

import (
	"fmt"
	"strings"
)

// signature is a function signature in JSONata's notation, e.g. <s-nn?:s>: one letter per
// parameter type (b boolean, n number, s string, l null, a array, o object, f function,
// j any JSON value, u any atom, x anything), (..) for a choice, a<..> for an array's item type,
// and the modifiers ? (optional), + (one or more) and - (the context value when missing).
type signature struct {
	text   string
	params []sigParam
}

type sigParam struct {
	types    string // letters accepted
	itemType string // a<x>: letters accepted for each item
	optional bool
	variadic bool
	context  bool
}

func parseSignature(text string, pos int) (*signature, error) {
	s := &signature{text: text}
	r := []rune(text)
	for i := 0; i < len(r); i++ {
		c := r[i]
		switch {
		case c == ':':
			return s, nil // the result type is documentation only
		case strings.ContainsRune("bnslaofujx", c):
			s.params = append(s.params, sigParam{types: string(c)})
		case c == '(':
			end := strings.IndexRune(string(r[i:]), ')')
			if end < 0 {
				return nil, newErr("S0401", pos, "type signature %q: unterminated choice group", text)
			}
			group := string(r[i+1 : i+len([]rune(string(r[i:])[:end]))])
			for _, g := range group {
				if !strings.ContainsRune("bnslaofujx", g) {
					return nil, newErr("S0402", pos, "type signature %q: choice groups may only hold simple types", text)
				}
			}
			s.params = append(s.params, sigParam{types: group})
			i += len([]rune(string(r[i:])[:end]))
		case c == '<':
			if len(s.params) == 0 {
				return nil, newErr("S0401", pos, "type signature %q: a type parameter needs a type", text)
			}
			p := &s.params[len(s.params)-1]
			if p.types != "a" && p.types != "f" {
				return nil, newErr("S0401", pos, "type signature %q: only arrays and functions take type parameters", text)
			}
			depth, j := 0, i
			for ; j < len(r); j++ {
				if r[j] == '<' {
					depth++
				} else if r[j] == '>' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			if j >= len(r) {
				return nil, newErr("S0401", pos, "type signature %q: unterminated type parameter", text)
			}
			inner := string(r[i+1 : j])
			if p.types == "a" {
				p.itemType = strings.Trim(inner, "()")
			}
			i = j
		case c == '?' || c == '+' || c == '-':
			if len(s.params) == 0 {
				return nil, newErr("S0401", pos, "type signature %q: a modifier needs a type", text)
			}
			p := &s.params[len(s.params)-1]
			switch c {
			case '?':
				p.optional = true
			case '+':
				p.variadic = true
			case '-':
				p.context = true
			}
		default:
			return nil, newErr("S0401", pos, "type signature %q: unknown symbol %q", text, c)
		}
	}
	return s, nil
}

func symbolOf(v any) byte {
	switch v.(type) {
	case nil:
		return 'l'
	case bool:
		return 'b'
	case float64:
		return 'n'
	case string:
		return 's'
	case map[string]any:
		return 'o'
	case undefinedValue:
		return 'm'
	}
	if _, ok := asArray(v); ok {
		return 'a'
	}
	if isFunction(v) {
		return 'f'
	}
	return 'm'
}

func accepts(types string, sym byte) bool {
	if sym == 'm' {
		return true
	}
	for _, t := range types {
		switch t {
		case 'x', 'a':
			return true
		case 'j':
			if sym != 'f' {
				return true
			}
		case 'u':
			if strings.IndexByte("bnsl", sym) >= 0 {
				return true
			}
		default:
			if byte(t) == sym {
				return true
			}
		}
	}
	return false
}

// arity is how many arguments a function with this signature takes at most (variadic counts once).
func (s *signature) arity() int { return len(s.params) }

// validate matches arguments to parameters the way a regular expression over their type letters
// would (greedy, with backtracking), inserts the context value for a missing '-' parameter,
// wraps single values given for array parameters, and checks array item types.
func (s *signature) validate(args []any, input any, name string, pos int) ([]any, error) {
	syms := make([]byte, len(args))
	for i, a := range args {
		syms[i] = symbolOf(a)
	}
	counts := make([]int, len(s.params))
	var match func(pi, ai int) bool
	match = func(pi, ai int) bool {
		if pi == len(s.params) {
			return ai == len(args)
		}
		p := s.params[pi]
		max := 1
		if p.variadic {
			max = len(args) - ai
		}
		min := 1
		if p.optional || p.context {
			min = 0
		}
		n := 0
		for n < max && ai+n < len(args) && accepts(p.types, syms[ai+n]) {
			n++
		}
		for ; n >= min; n-- {
			counts[pi] = n
			if match(pi+1, ai+n) {
				return true
			}
		}
		return false
	}
	if !match(0, 0) {
		bad := firstMismatch(s, syms)
		return nil, &Error{Code: "T0410", Position: pos, Token: name,
			Message: fmt.Sprintf("argument %d of function %s does not match function signature", bad+1, name)}
	}
	out := make([]any, 0, len(args)+1)
	ai := 0
	for pi, p := range s.params {
		n := counts[pi]
		if n == 0 && p.context {
			if !accepts(p.types, symbolOf(input)) {
				return nil, &Error{Code: "T0411", Position: pos, Token: name,
					Message: fmt.Sprintf("context value is not a compatible type with argument %d of function %s", pi+1, name)}
			}
			out = append(out, input)
			continue
		}
		if n == 0 && p.optional {
			out = append(out, undef)
			continue
		}
		for k := 0; k < n; k++ {
			a := args[ai]
			ai++
			if p.types == "a" && !isUndef(a) {
				if _, ok := asArray(a); !ok {
					a = newSeq(a)
				}
			}
			if p.itemType != "" && !isUndef(a) {
				items, _ := asArray(a)
				for _, it := range items {
					if !accepts(p.itemType, symbolOf(it)) {
						return nil, &Error{Code: "T0412", Position: pos, Token: name,
							Message: fmt.Sprintf("argument %d of function %s must be an array of %s", ai, name, p.itemType)}
					}
				}
			}
			out = append(out, a)
		}
	}
	for len(out) > 0 && isUndef(out[len(out)-1]) && len(out) > len(args) {
		out = out[:len(out)-1]
	}
	return out, nil
}

// firstMismatch names the argument an error message points at: the first one whose type no
// parameter at its position accepts, or the first extra one.
func firstMismatch(s *signature, syms []byte) int {
	pi := 0
	for i, sym := range syms {
		for pi < len(s.params) && !accepts(s.params[pi].types, sym) && (s.params[pi].optional || s.params[pi].context) {
			pi++
		}
		if pi >= len(s.params) || !accepts(s.params[pi].types, sym) {
			return i
		}
		if !s.params[pi].variadic {
			pi++
		}
	}
	return len(syms)
}

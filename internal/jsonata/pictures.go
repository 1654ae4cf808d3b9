package jsonata

import (
	"math"
	"strconv"
	"strings"
	"unicode"
)

// Picture strings of $formatInteger and $parseInteger (and the date components), in the notation
// of XPath's format-integer: a decimal digit pattern (0-9 of one Unicode digit family, # and
// grouping separators), A/a (letters), I/i (Roman numerals) or w/W/Ww (words); after a ';',
// o asks for an ordinal.

type integerPicture struct {
	kind      byte // 'd' decimal, 'A', 'a', 'I', 'i', 'w', 'W', 'T' (Ww)
	zero      rune // decimal: the digit family's zero
	mandatory int
	// separators: position (digits from the right) and character; regular: every interval
	separators []separator
	interval   int
	sepChar    rune
	ordinal    bool
}

type separator struct {
	pos int
	ch  rune
}

func parseIntegerPicture(picture string, pos int) (*integerPicture, error) {
	primary, modifier := picture, ""
	if i := strings.LastIndex(picture, ";"); i >= 0 {
		primary, modifier = picture[:i], picture[i+1:]
	}
	p := &integerPicture{ordinal: strings.HasPrefix(modifier, "o")}
	switch primary {
	case "A", "a", "I", "i", "w", "W":
		p.kind = primary[0]
		return p, nil
	case "Ww":
		p.kind = 'T'
		return p, nil
	}
	p.kind = 'd'
	runes := []rune(primary)
	digits := 0
	family := rune(-1)
	for _, r := range runes {
		if unicode.IsDigit(r) {
			z := r - rune(digitValue(r))
			if family >= 0 && z != family {
				return nil, &Error{Code: "D3131", Position: pos, Message: "in a decimal digit pattern, all digits must be from the same decimal group"}
			}
			family = z
		}
	}
	if family < 0 {
		return nil, &Error{Code: "D3130", Position: pos, Message: "the picture string " + picture + " is not a supported format for an integer"}
	}
	p.zero = family
	for i := len(runes) - 1; i >= 0; i-- {
		r := runes[i]
		switch {
		case unicode.IsDigit(r):
			digits++
			p.mandatory++
		case r == '#':
			digits++
		case unicode.IsLetter(r):
			return nil, &Error{Code: "D3130", Position: pos, Message: "the picture string " + picture + " is not a supported format for an integer"}
		default:
			p.separators = append(p.separators, separator{pos: digits, ch: r})
		}
	}
	if len(p.separators) > 0 {
		first := p.separators[0]
		regular := first.pos > 0
		for i, s := range p.separators {
			if s.ch != first.ch || s.pos != first.pos*(i+1) {
				regular = false
			}
		}
		if regular {
			p.interval, p.sepChar = first.pos, first.ch
		}
	}
	return p, nil
}

func digitValue(r rune) int {
	for z := r; z >= r-10; z-- {
		if !unicode.IsDigit(z) {
			return int(r - z - 1)
		}
	}
	return 0
}

func (p *integerPicture) format(f float64) string {
	neg := f < 0
	f = math.Trunc(math.Abs(f))
	var s string
	switch p.kind {
	case 'A', 'a':
		s = letters(int64(f), p.kind == 'A')
	case 'I', 'i':
		if f > 4e6 {
			// Roman numerals write a thousand as M: past a few million that is a size attack
			s = strconv.FormatFloat(f, 'f', 0, 64)
			break
		}
		s = roman(int64(f))
		if p.kind == 'i' {
			s = strings.ToLower(s)
		}
	case 'w', 'W', 'T':
		s = words(f)
		if p.ordinal {
			s = ordinalWords(s)
		}
		switch p.kind {
		case 'W':
			s = strings.ToUpper(s)
		case 'T':
			s = titleCase(s)
		}
	default:
		s = p.decimal(f)
	}
	if neg {
		return "-" + s
	}
	return s
}

func (p *integerPicture) decimal(f float64) string {
	digits := strconv.FormatFloat(f, 'f', 0, 64)
	for len(digits) < p.mandatory {
		digits = "0" + digits
	}
	var out []rune
	n := 0
	for i := len(digits) - 1; i >= 0; i-- {
		if n > 0 {
			if p.interval > 0 && n%p.interval == 0 {
				out = append(out, p.sepChar)
			} else if p.interval == 0 {
				for _, s := range p.separators {
					if s.pos == n {
						out = append(out, s.ch)
					}
				}
			}
		}
		out = append(out, p.zero+rune(digits[i]-'0'))
		n++
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	s := string(out)
	if p.ordinal {
		s += ordinalSuffix(int64(math.Mod(f, 100)))
	}
	return s
}

func ordinalSuffix(n int64) string {
	if n%100 >= 11 && n%100 <= 13 {
		return "th"
	}
	switch n % 10 {
	case 1:
		return "st"
	case 2:
		return "nd"
	case 3:
		return "rd"
	}
	return "th"
}

func letters(n int64, upper bool) string {
	base := 'a'
	if upper {
		base = 'A'
	}
	var out []rune
	for n > 0 {
		n--
		out = append([]rune{base + rune(n%26)}, out...)
		n /= 26
	}
	return string(out)
}

var romanNumerals = []struct {
	v int64
	s string
}{{1000, "M"}, {900, "CM"}, {500, "D"}, {400, "CD"}, {100, "C"}, {90, "XC"}, {50, "L"}, {40, "XL"}, {10, "X"}, {9, "IX"}, {5, "V"}, {4, "IV"}, {1, "I"}}

func roman(n int64) string {
	var b strings.Builder
	for _, r := range romanNumerals {
		for n >= r.v {
			b.WriteString(r.s)
			n -= r.v
		}
	}
	return b.String()
}

var (
	smallWords = []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
		"eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"}
	tensWords = []string{"", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"}
	magWords  = []struct {
		v float64
		s string
	}{{1e12, "trillion"}, {1e9, "billion"}, {1e6, "million"}, {1e3, "thousand"}}
)

func words(n float64) string {
	switch {
	case n < 20:
		return smallWords[int(n)]
	case n < 100:
		s := tensWords[int(n)/10]
		if r := int(n) % 10; r > 0 {
			s += "-" + smallWords[r]
		}
		return s
	case n < 1000:
		s := smallWords[int(n)/100] + " hundred"
		if r := int(n) % 100; r > 0 {
			s += " and " + words(float64(r))
		}
		return s
	}
	for _, m := range magWords {
		if n >= m.v {
			high := math.Floor(n / m.v)
			rest := n - high*m.v
			s := words(high) + " " + m.s
			if rest > 0 {
				if rest < 100 {
					s += " and "
				} else {
					s += ", "
				}
				s += words(rest)
			}
			return s
		}
	}
	return ""
}

var ordinalWordMap = map[string]string{"one": "first", "two": "second", "three": "third", "five": "fifth",
	"eight": "eighth", "nine": "ninth", "twelve": "twelfth"}

func ordinalWords(s string) string {
	i := strings.LastIndexAny(s, " -")
	last := s[i+1:]
	switch {
	case ordinalWordMap[last] != "":
		last = ordinalWordMap[last]
	case strings.HasSuffix(last, "y"):
		last = last[:len(last)-1] + "ieth"
	default:
		last += "th"
	}
	return s[:i+1] + last
}

func titleCase(s string) string {
	out := []rune(s)
	start := true
	for i, r := range out {
		if start && unicode.IsLetter(r) {
			out[i] = unicode.ToUpper(r)
		}
		start = r == ' ' || r == '-'
	}
	return strings.ReplaceAll(string(out), " And ", " and ")
}

func (p *integerPicture) parse(s string) (float64, bool) {
	switch p.kind {
	case 'A', 'a':
		n := 0.0
		for _, r := range strings.ToLower(s) {
			n = n*26 + float64(r-'a'+1)
		}
		return n, true
	case 'I', 'i':
		return parseRoman(strings.ToUpper(s)), true
	case 'w', 'W', 'T':
		return parseWords(strings.ToLower(s))
	}
	var digits []rune
	for _, r := range s {
		if unicode.IsDigit(r) {
			digits = append(digits, '0'+rune(digitValue(r)))
		}
	}
	f, err := strconv.ParseFloat(string(digits), 64)
	return f, err == nil
}

func parseRoman(s string) float64 {
	n := 0.0
	for _, r := range romanNumerals {
		for strings.HasPrefix(s, r.s) {
			n += float64(r.v)
			s = s[len(r.s):]
		}
	}
	return n
}

func parseWords(s string) (float64, bool) {
	values := map[string]float64{}
	for i, w := range smallWords {
		values[w] = float64(i)
	}
	for i, w := range tensWords {
		if w != "" {
			values[w] = float64(i * 10)
		}
	}
	for w, o := range ordinalWordMap {
		values[o] = values[w]
	}
	for i, w := range tensWords {
		if w != "" {
			values[w[:len(w)-1]+"ieth"] = float64(i * 10)
		}
	}
	mags := map[string]float64{"hundred": 100, "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
	type segment struct{ v, mag float64 }
	var segs []segment
	cur := 0.0
	curSet := false
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '-' }) {
		if w == "and" {
			continue
		}
		base := w
		if v, ok := values[w]; ok {
			cur += v
			curSet = true
			continue
		}
		if strings.HasSuffix(w, "th") {
			base = strings.TrimSuffix(w, "th")
			if v, ok := values[base]; ok {
				cur += v
				curSet = true
				continue
			}
		}
		m, ok := mags[base]
		if !ok {
			return 0, false
		}
		if m == 100 {
			cur *= 100
			continue
		}
		sum := cur
		for len(segs) > 0 && (segs[len(segs)-1].mag < m || (!curSet && segs[len(segs)-1].mag <= m)) {
			sum += segs[len(segs)-1].v
			segs = segs[:len(segs)-1]
		}
		segs = append(segs, segment{sum * m, m})
		cur, curSet = 0, false
	}
	total := cur
	for _, sg := range segs {
		total += sg.v
	}
	return total, true
}

func definePictureFunctions() {
	def("formatInteger", "<n-s:s>", func(_ *evaluator, args []any, _ any, pos int) (any, error) {
		f, ok := num(args, 0)
		if !ok {
			return undef, nil
		}
		picture, _ := str(args, 1)
		p, err := parseIntegerPicture(picture, pos)
		if err != nil {
			return nil, err
		}
		return p.format(f), nil
	})
	def("parseInteger", "<s-s:n>", func(_ *evaluator, args []any, _ any, pos int) (any, error) {
		s, ok := str(args, 0)
		if !ok {
			return undef, nil
		}
		picture, _ := str(args, 1)
		p, err := parseIntegerPicture(picture, pos)
		if err != nil {
			return nil, err
		}
		if p.ordinal && p.kind == 'd' {
			s = strings.TrimRight(s, "stndrh")
		}
		f, ok := p.parse(s)
		if !ok {
			return undef, nil
		}
		return f, nil
	})
}

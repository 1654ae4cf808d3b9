package jsonata

import (
	"math"
	"strconv"
	"strings"
)

// $formatNumber: XPath's format-number, a picture string of a decimal format (digits of one
// family, # optional digits, grouping and decimal separators, an exponent, percent or per-mille,
// and a prefix and suffix), optionally a positive;negative pair.

type decimalFormat struct {
	decimal, grouping, exponent, minus, percent, perMille, zero, digit, separator rune
	infinity, nan                                                                 string
	percentText, perMilleText                                                     string
}

func defaultDecimalFormat() decimalFormat {
	return decimalFormat{decimal: '.', grouping: ',', exponent: 'e', minus: '-', percent: '%', perMille: '‰',
		zero: '0', digit: '#', separator: ';', infinity: "Infinity", nan: "NaN", percentText: "%", perMilleText: "‰"}
}

type subPicture struct {
	prefix, suffix            string
	intGroups, fracGroups     []int
	minInt, minFrac, maxFrac  int
	minExp                    int
	hasExp, percent, perMille bool
	intOptional, hasDecimal   bool
	regularInterval           int
}

func (f decimalFormat) isDigit(r rune) bool { return r >= f.zero && r <= f.zero+9 }

func (f decimalFormat) active(r rune) bool {
	return r == f.decimal || r == f.grouping || r == f.digit || r == f.separator || f.isDigit(r) || r == f.exponent
}

func numberPictureError(code string, pos int, msg string) error {
	return &Error{Code: code, Position: pos, Message: msg}
}

func (f decimalFormat) parseSubPicture(pic string, pos int) (*subPicture, error) {
	r := []rune(pic)
	// percent and per-mille may be strings (options); count them
	sp := &subPicture{}
	if c := strings.Count(pic, f.percentText); c > 1 {
		return nil, numberPictureError("D3082", pos, "a sub-picture must not contain more than one instance of the 'percent' character")
	} else if c == 1 {
		sp.percent = true
	}
	if c := strings.Count(pic, f.perMilleText); c > 1 {
		return nil, numberPictureError("D3083", pos, "a sub-picture must not contain more than one instance of the 'per-mille' character")
	} else if c == 1 {
		sp.perMille = true
	}
	if sp.percent && sp.perMille {
		return nil, numberPictureError("D3084", pos, "a sub-picture must not contain both a 'percent' and a 'per-mille' character")
	}
	first, last := -1, -1
	for i, c := range r {
		if f.active(c) && c != f.exponent {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	if first < 0 {
		return nil, numberPictureError("D3085", pos, "the mantissa part of a sub-picture must contain at least one digit")
	}
	// an exponent separator counts as active when digits follow it
	for last+1 < len(r) && r[last+1] == f.exponent && last+2 < len(r) && f.isDigit(r[last+2]) {
		last += 2
		for last+1 < len(r) && f.isDigit(r[last+1]) {
			last++
		}
	}
	sp.prefix, sp.suffix = string(r[:first]), string(r[last+1:])
	body := r[first : last+1]
	for _, c := range body {
		if !f.active(c) {
			return nil, numberPictureError("D3086", pos, "a sub-picture must not contain a passive character between active characters")
		}
	}
	mantissa, exp := body, []rune(nil)
	for i, c := range body {
		if c == f.exponent && i > 0 {
			mantissa, exp = body[:i], body[i+1:]
			break
		}
	}
	if exp != nil {
		if sp.percent || sp.perMille {
			return nil, numberPictureError("D3092", pos, "a sub-picture that specifies an exponent must not contain a 'percent' or 'per-mille' character")
		}
		for _, c := range exp {
			if !f.isDigit(c) {
				return nil, numberPictureError("D3093", pos, "the exponent part of a sub-picture must contain only digits")
			}
		}
		sp.hasExp, sp.minExp = true, len(exp)
	}
	intPart, fracPart := mantissa, []rune(nil)
	decimals := 0
	for i, c := range mantissa {
		if c == f.decimal {
			decimals++
			if decimals == 1 {
				intPart, fracPart = mantissa[:i], mantissa[i+1:]
			}
		}
	}
	if decimals > 1 {
		return nil, numberPictureError("D3081", pos, "a sub-picture must not contain more than one instance of the 'decimal-separator' character")
	}
	sp.hasDecimal = decimals == 1
	hasDigit := false
	for _, c := range mantissa {
		if f.isDigit(c) || c == f.digit {
			hasDigit = true
		}
	}
	if !hasDigit {
		return nil, numberPictureError("D3085", pos, "the mantissa part of a sub-picture must contain at least one digit")
	}
	for i, c := range mantissa {
		if c == f.grouping {
			if i+1 < len(mantissa) && mantissa[i+1] == f.decimal || i > 0 && mantissa[i-1] == f.decimal {
				return nil, numberPictureError("D3087", pos, "a sub-picture must not contain a grouping separator adjacent to a decimal separator")
			}
			if i+1 < len(mantissa) && mantissa[i+1] == f.grouping {
				return nil, numberPictureError("D3089", pos, "a sub-picture must not contain two adjacent grouping separators")
			}
		}
	}
	if len(intPart) > 0 && intPart[len(intPart)-1] == f.grouping {
		return nil, numberPictureError("D3088", pos, "the integer part of a sub-picture must not end with a grouping separator")
	}
	seenMandatory := false
	digits := 0
	for i := len(intPart) - 1; i >= 0; i-- {
		c := intPart[i]
		switch {
		case f.isDigit(c):
			digits++
			sp.minInt++
		case c == f.digit:
			digits++
			sp.intOptional = true
		case c == f.grouping:
			sp.intGroups = append(sp.intGroups, digits)
		}
	}
	for _, c := range intPart {
		if f.isDigit(c) {
			seenMandatory = true
		} else if c == f.digit && seenMandatory {
			return nil, numberPictureError("D3090", pos, "the integer part of a sub-picture must not contain an optional digit after a mandatory digit")
		}
	}
	seenOptional := false
	digits = 0
	for _, c := range fracPart {
		switch {
		case f.isDigit(c):
			if seenOptional {
				return nil, numberPictureError("D3091", pos, "the fractional part of a sub-picture must not contain a mandatory digit after an optional digit")
			}
			digits++
			sp.minFrac++
			sp.maxFrac++
		case c == f.digit:
			seenOptional = true
			digits++
			sp.maxFrac++
		case c == f.grouping:
			sp.fracGroups = append(sp.fracGroups, digits)
		}
	}
	if len(sp.intGroups) > 0 {
		g := sp.intGroups[0]
		for _, p := range sp.intGroups {
			g = min(g, p)
		}
		regular := g > 0
		for i := 1; regular && i <= len(sp.intGroups); i++ {
			found := false
			for _, p := range sp.intGroups {
				if p == g*i {
					found = true
				}
			}
			regular = found
		}
		if regular {
			sp.regularInterval = g
		}
	}
	if sp.minInt == 0 && sp.maxFrac == 0 {
		if sp.hasExp {
			sp.minFrac, sp.maxFrac = 1, 1
		} else {
			sp.minInt = 1
		}
	}
	return sp, nil
}

func (f decimalFormat) format(v float64, picture string, pos int) (string, error) {
	pics := strings.Split(picture, string(f.separator))
	if len(pics) > 2 {
		return "", numberPictureError("D3080", pos, "the picture string must not contain more than one instance of the 'pattern-separator' character")
	}
	subs := make([]*subPicture, len(pics))
	for i, p := range pics {
		sp, err := f.parseSubPicture(p, pos)
		if err != nil {
			return "", err
		}
		subs[i] = sp
	}
	sp := subs[0]
	prefix, suffix := sp.prefix, sp.suffix
	if v < 0 {
		if len(subs) == 2 {
			sp = subs[1]
			prefix, suffix = sp.prefix, sp.suffix
		} else {
			prefix = string(f.minus) + prefix
		}
		v = -v
	}
	if math.IsInf(v, 0) {
		return prefix + f.infinity + suffix, nil
	}
	if sp.percent {
		v *= 100
	} else if sp.perMille {
		v *= 1000
	}
	exp := 0
	if sp.hasExp && v != 0 {
		// the mantissa has minInt integer digits (or is below 1 when minInt is 0)
		exp = int(math.Floor(math.Log10(v))) + 1 - sp.minInt
		v = v / math.Pow(10, float64(exp))
		if r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', sp.maxFrac, 64), 64); r >= math.Pow(10, float64(sp.minInt)) && sp.minInt > 0 {
			exp++
			v /= 10
		}
	}
	s := strconv.FormatFloat(v, 'f', sp.maxFrac, 64)
	intDigits, fracDigits, _ := strings.Cut(s, ".")
	for len(fracDigits) > sp.minFrac && strings.HasSuffix(fracDigits, "0") {
		fracDigits = fracDigits[:len(fracDigits)-1]
	}
	intDigits = strings.TrimLeft(intDigits, "0")
	for len(intDigits) < sp.minInt {
		intDigits = "0" + intDigits
	}
	if intDigits == "" && sp.intOptional && (fracDigits == "" || sp.hasExp) {
		intDigits = "0"
	}
	var b strings.Builder
	b.WriteString(prefix)
	n := len(intDigits)
	for i, c := range intDigits {
		fromRight := n - i
		if i > 0 {
			if sp.regularInterval > 0 && fromRight%sp.regularInterval == 0 {
				b.WriteRune(f.grouping)
			} else if sp.regularInterval == 0 {
				for _, g := range sp.intGroups {
					if g == fromRight {
						b.WriteRune(f.grouping)
					}
				}
			}
		}
		b.WriteRune(f.zero + (c - '0'))
	}
	if fracDigits != "" {
		b.WriteRune(f.decimal)
		for i, c := range fracDigits {
			if i > 0 {
				for _, g := range sp.fracGroups {
					if g == i {
						b.WriteRune(f.grouping)
					}
				}
			}
			b.WriteRune(f.zero + (c - '0'))
		}
	}
	if sp.hasExp {
		b.WriteRune(f.exponent)
		if exp < 0 {
			b.WriteRune(f.minus)
			exp = -exp
		}
		e := strconv.Itoa(exp)
		for len(e) < sp.minExp {
			e = "0" + e
		}
		for _, c := range e {
			b.WriteRune(f.zero + (c - '0'))
		}
	}
	b.WriteString(suffix)
	return b.String(), nil
}

func init() {
	def("formatNumber", "<n-so?:s>", func(_ *evaluator, args []any, _ any, pos int) (any, error) {
		v, ok := num(args, 0)
		if !ok {
			return undef, nil
		}
		picture, _ := str(args, 1)
		f := defaultDecimalFormat()
		if opts, ok := argAt(args, 2).(map[string]any); ok {
			first := func(k string) (rune, bool) {
				s, ok := opts[k].(string)
				if !ok || s == "" {
					return 0, false
				}
				return []rune(s)[0], true
			}
			for k, p := range map[string]*rune{"decimal-separator": &f.decimal, "grouping-separator": &f.grouping,
				"exponent-separator": &f.exponent, "minus-sign": &f.minus, "zero-digit": &f.zero, "digit": &f.digit,
				"pattern-separator": &f.separator} {
				if r, ok := first(k); ok {
					*p = r
				}
			}
			if s, ok := opts["percent"].(string); ok {
				f.percentText = s
			}
			if s, ok := opts["per-mille"].(string); ok {
				f.perMilleText = s
			}
			if s, ok := opts["infinity"].(string); ok {
				f.infinity = s
			}
			if s, ok := opts["NaN"].(string); ok {
				f.nan = s
			}
		}
		return f.format(v, picture, pos)
	})
}

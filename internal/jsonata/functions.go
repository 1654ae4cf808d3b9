package jsonata

import (
	"encoding/base64"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// builtin is a function of the standard library, with the signature its arguments are checked
// against.
type builtin struct {
	name string
	sig  *signature
	fn   func(ev *evaluator, args []any, input any, pos int) (any, error)
}

// builtins is the standard library by name (without the $).
var builtins = map[string]*builtin{}

func def(name, sig string, fn func(ev *evaluator, args []any, input any, pos int) (any, error)) {
	s, err := parseSignature(sig[1:len(sig)-1], 0)
	if err != nil {
		panic(fmt.Sprintf("builtin %s: %v", name, err))
	}
	builtins[name] = &builtin{name: name, sig: s, fn: fn}
}

func str(args []any, i int) (string, bool) {
	s, ok := argAt(args, i).(string)
	return s, ok
}

func num(args []any, i int) (float64, bool) {
	f, ok := argAt(args, i).(float64)
	return f, ok
}

func init() {
	defineStringFunctions()
	defineNumericFunctions()
	defineArrayFunctions()
	defineObjectFunctions()
	defineHigherOrderFunctions()
	defineDateFunctions()
	definePictureFunctions()
}

func defineStringFunctions() {
	def("string", "<x-b?:s>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		v := argAt(args, 0)
		if isUndef(v) {
			return undef, nil
		}
		pretty, _ := argAt(args, 1).(bool)
		s, err := ev.stringify(v, pretty)
		if err != nil {
			return nil, err
		}
		return s, ev.checkSize(len(s), pos)
	})
	def("length", "<s-:n>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		s, ok := str(args, 0)
		if !ok {
			return undef, nil
		}
		return float64(utf8.RuneCountInString(s)), nil
	})
	def("substring", "<s-nn?:s>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		s, ok := str(args, 0)
		if !ok {
			return undef, nil
		}
		r := []rune(s)
		start, _ := num(args, 1)
		n := float64(len(r))
		if n+start < 0 {
			start = 0
		}
		end := n
		if l, ok := num(args, 2); ok {
			if l <= 0 {
				return "", nil
			}
			if start >= 0 {
				end = start + l
			} else {
				end = n + start + l
			}
		}
		return string(r[jsSliceIndex(start, n):max(jsSliceIndex(start, n), jsSliceIndex(end, n))]), nil
	})
	def("substringBefore", "<s-s:s>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		s, ok := str(args, 0)
		if !ok {
			return undef, nil
		}
		chars, _ := str(args, 1)
		if i := strings.Index(s, chars); i >= 0 {
			return s[:i], nil
		}
		return s, nil
	})
	def("substringAfter", "<s-s:s>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		s, ok := str(args, 0)
		if !ok {
			return undef, nil
		}
		chars, _ := str(args, 1)
		if i := strings.Index(s, chars); i >= 0 {
			return s[i+len(chars):], nil
		}
		return s, nil
	})
	def("uppercase", "<s-:s>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		if s, ok := str(args, 0); ok {
			return strings.ToUpper(s), nil
		}
		return undef, nil
	})
	def("lowercase", "<s-:s>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		if s, ok := str(args, 0); ok {
			return strings.ToLower(s), nil
		}
		return undef, nil
	})
	def("trim", "<s-:s>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		s, ok := str(args, 0)
		if !ok {
			return undef, nil
		}
		return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(" \t\n\r\f\v", r) }), " "), nil
	})
	def("pad", "<s-ns?:s>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		s, ok := str(args, 0)
		if !ok {
			return undef, nil
		}
		width, _ := num(args, 1)
		char, ok := str(args, 2)
		if !ok || char == "" {
			char = " "
		}
		w := int(math.Abs(math.Trunc(width)))
		if err := ev.checkSize(w*utf8.RuneLen('\U0010FFFF'), pos); err != nil && w > ev.opts.MaxSize {
			return nil, err
		}
		n := utf8.RuneCountInString(s)
		if w <= n {
			return s, nil
		}
		fill := []rune(strings.Repeat(char, (w-n)/utf8.RuneCountInString(char)+1))[:w-n]
		if width < 0 {
			return string(fill) + s, nil
		}
		return s + string(fill), nil
	})
	def("contains", "<s-(sf):b>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		s, ok := str(args, 0)
		if !ok {
			return undef, nil
		}
		if p, ok := argAt(args, 1).(string); ok {
			return strings.Contains(s, p), nil
		}
		found, err := ev.matches(argAt(args, 1), s, 1, pos)
		return len(found) > 0, err
	})
	def("split", "<s-(sf)n?:a<s>>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		s, ok := str(args, 0)
		if !ok {
			return undef, nil
		}
		limit := -1
		if l, ok := num(args, 2); ok {
			if l < 0 {
				return nil, &Error{Code: "D3020", Position: pos, Message: "third argument of split function must evaluate to a positive number"}
			}
			limit = int(math.Floor(l))
		}
		var parts []string
		switch sep := argAt(args, 1).(type) {
		case string:
			parts = strings.Split(s, sep)
			if sep == "" {
				parts = strings.Split(s, "")
			}
		default:
			found, err := ev.matches(sep, s, -1, pos)
			if err != nil {
				return nil, err
			}
			last := 0
			for _, m := range found {
				parts = append(parts, s[last:m.start])
				last = m.end
			}
			parts = append(parts, s[last:])
		}
		out := newSeq()
		for _, p := range parts {
			if limit >= 0 && len(out.items) >= limit {
				break
			}
			out.items = append(out.items, p)
		}
		out.isSeq = false
		return out, nil
	})
	def("join", "<a<s>s?:s>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		items, ok := asArray(argAt(args, 0))
		if !ok {
			return undef, nil
		}
		sep, _ := str(args, 1)
		parts := make([]string, len(items))
		size := 0
		for i, it := range items {
			parts[i] = it.(string)
			size += len(parts[i]) + len(sep)
		}
		if err := ev.checkSize(size, pos); err != nil {
			return nil, err
		}
		return strings.Join(parts, sep), nil
	})
	def("match", "<s-f<s:o>n?:a<o>>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		s, ok := str(args, 0)
		if !ok {
			return undef, nil
		}
		limit := -1
		if l, ok := num(args, 2); ok {
			if l < 0 {
				return nil, &Error{Code: "D3040", Position: pos, Message: "third argument of match function must evaluate to a positive number"}
			}
			limit = int(l)
		}
		found, err := ev.matches(argAt(args, 1), s, limit, pos)
		if err != nil {
			return nil, err
		}
		out := newSeq()
		for _, m := range found {
			out.items = append(out.items, m.object(s))
		}
		return out, nil
	})
	def("replace", "<s-(sf)(sf)n?:s>", replace)
	def("eval", "<sx?:x>", func(ev *evaluator, args []any, input any, pos int) (any, error) {
		src, ok := str(args, 0)
		if !ok {
			return undef, nil
		}
		raw, err := parse(src)
		var root *node
		if err == nil {
			root, err = process(raw)
		}
		if err != nil {
			return nil, &Error{Code: "D3120", Position: pos, Message: "syntax error in expression passed to function eval: " + err.Error()}
		}
		ctx := input
		if len(args) > 1 && !isUndef(args[1]) {
			ctx = args[1]
		}
		v, err := ev.eval(root, ctx, &env{vars: map[string]any{}})
		if err != nil {
			if IsLimit(err) {
				return nil, err
			}
			return nil, &Error{Code: "D3121", Position: pos, Message: "dynamic error evaluating the expression passed to function eval: " + err.Error()}
		}
		return v, nil
	})
	def("base64encode", "<s-:s>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		if s, ok := str(args, 0); ok {
			return base64.StdEncoding.EncodeToString([]byte(s)), nil
		}
		return undef, nil
	})
	def("base64decode", "<s-:s>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		if s, ok := str(args, 0); ok {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				b, _ = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
			}
			return string(b), nil
		}
		return undef, nil
	})
	def("encodeUrlComponent", "<s-:s>", func(_ *evaluator, args []any, _ any, pos int) (any, error) {
		if s, ok := str(args, 0); ok {
			return encodeURI(s, "-_.!~*'()", pos)
		}
		return undef, nil
	})
	def("encodeUrl", "<s-:s>", func(_ *evaluator, args []any, _ any, pos int) (any, error) {
		if s, ok := str(args, 0); ok {
			return encodeURI(s, "-_.!~*'();/?:@&=+$,#", pos)
		}
		return undef, nil
	})
	def("decodeUrlComponent", "<s-:s>", func(_ *evaluator, args []any, _ any, pos int) (any, error) {
		if s, ok := str(args, 0); ok {
			d, err := url.PathUnescape(s)
			if err != nil || !utf8.ValidString(d) {
				return nil, &Error{Code: "D3140", Position: pos, Message: "malformed URL passed to $decodeUrlComponent(): " + s}
			}
			return d, nil
		}
		return undef, nil
	})
	def("decodeUrl", "<s-:s>", func(_ *evaluator, args []any, _ any, pos int) (any, error) {
		if s, ok := str(args, 0); ok {
			d, err := decodeURI(s)
			if err != nil {
				return nil, &Error{Code: "D3140", Position: pos, Message: "malformed URL passed to $decodeUrl(): " + s}
			}
			return d, nil
		}
		return undef, nil
	})
}

func encodeURI(s, keep string, pos int) (any, error) {
	var b strings.Builder
	for _, r := range s {
		if r >= 0xD800 && r <= 0xDFFF || r == utf8.RuneError {
			return nil, &Error{Code: "D3140", Position: pos, Message: "malformed URL passed to $encodeUrl()"}
		}
		if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(keep, r)) {
			b.WriteRune(r)
			continue
		}
		var buf [4]byte
		n := utf8.EncodeRune(buf[:], r)
		for _, c := range buf[:n] {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String(), nil
}

// decodeURI decodes percent escapes except those of the characters encodeURI keeps reserved.
func decodeURI(s string) (string, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", fmt.Errorf("truncated escape")
		}
		v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", err
		}
		if v < 128 && strings.IndexByte(";/?:@&=+$,#", byte(v)) >= 0 {
			b = append(b, s[i:i+3]...)
		} else {
			b = append(b, byte(v))
		}
		i += 2
	}
	if !utf8.Valid(b) {
		return "", fmt.Errorf("invalid UTF-8")
	}
	return string(b), nil
}

// regexMatcher is a regular expression literal's value.
type regexMatcher struct{ re *regexp.Regexp }

// matchAt is the value of calling a regular expression as a function: the first match from
// offset, with a next() to continue.
func (m *regexMatcher) matchAt(s string, offset int) any {
	loc := m.re.FindStringSubmatchIndex(s[offset:])
	if loc == nil {
		return undef
	}
	for i := range loc {
		if loc[i] >= 0 {
			loc[i] += offset
		}
	}
	obj := matchObject(s, loc)
	end := loc[1]
	if end == loc[0] {
		end++
	}
	obj["next"] = &builtin{name: "next", fn: func(*evaluator, []any, any, int) (any, error) {
		if end > len(s) {
			return undef, nil
		}
		return m.matchAt(s, end), nil
	}}
	return obj
}

func matchObject(s string, loc []int) map[string]any {
	groups := []any{}
	for g := 2; g+1 < len(loc); g += 2 {
		if loc[g] < 0 {
			groups = append(groups, "")
		} else {
			groups = append(groups, s[loc[g]:loc[g+1]])
		}
	}
	return map[string]any{"match": s[loc[0]:loc[1]], "index": float64(utf8.RuneCountInString(s[:loc[0]])), "groups": groups}
}

func replace(ev *evaluator, args []any, _ any, pos int) (any, error) {
	s, ok := str(args, 0)
	if !ok {
		return undef, nil
	}
	limit := -1
	if l, ok := num(args, 3); ok {
		if l < 0 {
			return nil, &Error{Code: "D3011", Position: pos, Message: "fourth argument of replace function must evaluate to a positive number"}
		}
		limit = int(l)
	}
	var locs [][]int
	var groups [][]string
	switch p := argAt(args, 1).(type) {
	case string:
		if p == "" {
			return nil, &Error{Code: "D3010", Position: pos, Message: "second argument of replace function cannot be an empty string"}
		}
		for i := 0; limit < 0 || len(locs) < limit; {
			j := strings.Index(s[i:], p)
			if j < 0 {
				break
			}
			locs = append(locs, []int{i + j, i + j + len(p)})
			groups = append(groups, nil)
			i += j + len(p)
		}
	default:
		found, err := ev.matches(p, s, limit, pos)
		if err != nil {
			return nil, err
		}
		for _, m := range found {
			if m.start == m.end {
				return nil, &Error{Code: "D1004", Position: pos, Message: "regular expression matches zero length string"}
			}
			groups = append(groups, m.groups)
			locs = append(locs, []int{m.start, m.end})
		}
	}
	var b strings.Builder
	last := 0
	for k, loc := range locs {
		b.WriteString(s[last:loc[0]])
		m := matchResult{start: loc[0], end: loc[1], groups: groups[k]}
		switch r := argAt(args, 2).(type) {
		case string:
			b.WriteString(expandReplacement(r, s[loc[0]:loc[1]], m.groups))
		default:
			v, err := ev.apply(r, []any{m.object(s)}, undef, pos)
			if err != nil {
				return nil, err
			}
			rs, ok := v.(string)
			if !ok {
				return nil, &Error{Code: "D3012", Position: pos, Message: "attempted to replace a matched string with a non-string value"}
			}
			b.WriteString(rs)
		}
		last = loc[1]
		if err := ev.checkSize(b.Len(), pos); err != nil {
			return nil, err
		}
	}
	b.WriteString(s[last:])
	return b.String(), nil
}

// expandReplacement substitutes $0, $1... and $$ in a replacement string.
func expandReplacement(r, match string, matched []string) string {
	var b strings.Builder
	groups := len(matched)
	for i := 0; i < len(r); i++ {
		c := r[i]
		if c != '$' || i+1 >= len(r) {
			b.WriteByte(c)
			continue
		}
		if r[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		j := i + 1
		for j < len(r) && r[j] >= '0' && r[j] <= '9' {
			j++
		}
		if j == i+1 {
			b.WriteByte(c)
			continue
		}
		// the longest group number that exists; extra digits are literal
		digits := r[i+1 : j]
		k := len(digits)
		for ; k > 0; k-- {
			n, _ := strconv.Atoi(digits[:k])
			if n <= groups {
				break
			}
		}
		if k == 0 {
			// $n beyond the groups: nothing, keeping the following digits
			b.WriteString(digits[1:])
			i = j - 1
			continue
		}
		n, _ := strconv.Atoi(digits[:k])
		if n == 0 {
			b.WriteString(match)
		} else {
			b.WriteString(matched[n-1])
		}
		b.WriteString(digits[k:])
		i = j - 1
	}
	return b.String()
}

func defineNumericFunctions() {
	def("number", "<(nsb)-:n>", func(_ *evaluator, args []any, _ any, pos int) (any, error) {
		switch v := argAt(args, 0).(type) {
		case float64:
			return v, nil
		case bool:
			if v {
				return 1.0, nil
			}
			return 0.0, nil
		case string:
			if f, ok := parseNumber(v); ok {
				return f, nil
			}
			return nil, &Error{Code: "D3030", Position: pos, Message: "unable to cast value to a number: " + v}
		case undefinedValue:
			return undef, nil
		}
		return nil, &Error{Code: "D3030", Position: pos, Message: "unable to cast value to a number"}
	})
	unary := func(name string, f func(float64) float64) {
		def(name, "<n-:n>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
			if x, ok := num(args, 0); ok {
				return f(x), nil
			}
			return undef, nil
		})
	}
	unary("abs", math.Abs)
	unary("floor", math.Floor)
	unary("ceil", math.Ceil)
	def("sqrt", "<n-:n>", func(_ *evaluator, args []any, _ any, pos int) (any, error) {
		x, ok := num(args, 0)
		if !ok {
			return undef, nil
		}
		if x < 0 {
			return nil, &Error{Code: "D3060", Position: pos, Message: "the sqrt function cannot be applied to a negative number"}
		}
		return math.Sqrt(x), nil
	})
	def("power", "<n-n:n>", func(_ *evaluator, args []any, _ any, pos int) (any, error) {
		x, ok := num(args, 0)
		y, ok2 := num(args, 1)
		if !ok || !ok2 {
			return undef, nil
		}
		r := math.Pow(x, y)
		if math.IsInf(r, 0) || math.IsNaN(r) {
			return nil, &Error{Code: "D3061", Position: pos, Message: "the power function has resulted in a value that cannot be represented as a JSON number"}
		}
		return r, nil
	})
	def("round", "<n-n?:n>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		x, ok := num(args, 0)
		if !ok {
			return undef, nil
		}
		prec, _ := num(args, 1)
		return roundHalfEven(x, int(prec)), nil
	})
	def("random", "<:n>", func(*evaluator, []any, any, int) (any, error) { return rand.Float64(), nil })
	aggregate := func(name string, f func([]float64) any) {
		def(name, "<a<n>:n>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
			items, ok := asArray(argAt(args, 0))
			if !ok {
				return undef, nil
			}
			nums := make([]float64, len(items))
			for i, it := range items {
				nums[i] = it.(float64)
			}
			return f(nums), nil
		})
	}
	aggregate("sum", func(xs []float64) any {
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s
	})
	aggregate("max", func(xs []float64) any {
		if len(xs) == 0 {
			return undef
		}
		m := xs[0]
		for _, x := range xs {
			m = math.Max(m, x)
		}
		return m
	})
	aggregate("min", func(xs []float64) any {
		if len(xs) == 0 {
			return undef
		}
		m := xs[0]
		for _, x := range xs {
			m = math.Min(m, x)
		}
		return m
	})
	aggregate("average", func(xs []float64) any {
		if len(xs) == 0 {
			return undef
		}
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return s / float64(len(xs))
	})
	def("formatBase", "<n-n?:s>", func(_ *evaluator, args []any, _ any, pos int) (any, error) {
		x, ok := num(args, 0)
		if !ok {
			return undef, nil
		}
		radix := 10.0
		if r, ok := num(args, 1); ok {
			radix = r
		}
		if radix < 2 || radix > 36 {
			return nil, &Error{Code: "D3100", Position: pos, Message: "the radix of the formatBase function must be between 2 and 36"}
		}
		return strconv.FormatInt(int64(roundHalfEven(x, 0)), int(radix)), nil
	})
}

// parseNumber accepts JSON's number syntax and the 0x/0o/0b forms JavaScript's Number() does.
func parseNumber(s string) (float64, bool) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, false
	}
	if len(t) > 2 && t[0] == '0' && strings.ContainsRune("xXoObB", rune(t[1])) {
		base := map[byte]int{'x': 16, 'X': 16, 'o': 8, 'O': 8, 'b': 2, 'B': 2}[t[1]]
		n, err := strconv.ParseUint(t[2:], base, 64)
		return float64(n), err == nil
	}
	if !jsonNumber.MatchString(t) {
		return 0, false
	}
	f, err := strconv.ParseFloat(t, 64)
	return f, err == nil && !math.IsInf(f, 0)
}

var jsonNumber = regexp.MustCompile(`^-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([Ee][-+]?[0-9]+)?$`)

// roundHalfEven rounds to prec decimal places, halves to even (banker's rounding), as $round does.
func roundHalfEven(x float64, prec int) float64 {
	s := strconv.FormatFloat(x, 'e', -1, 64)
	mant, exp, _ := strings.Cut(s, "e")
	e, _ := strconv.Atoi(exp)
	shifted, _ := strconv.ParseFloat(mant+"e"+strconv.Itoa(e+prec), 64)
	r := math.RoundToEven(shifted)
	if math.Abs(shifted-math.Trunc(shifted)) != 0.5 {
		r = math.Round(shifted)
	}
	rs := strconv.FormatFloat(r, 'e', -1, 64)
	rm, rexp, _ := strings.Cut(rs, "e")
	re, _ := strconv.Atoi(rexp)
	out, _ := strconv.ParseFloat(rm+"e"+strconv.Itoa(re-prec), 64)
	if out == 0 {
		return 0
	}
	return out
}

func defineArrayFunctions() {
	def("count", "<a:n>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		return float64(len(arrayify(argAt(args, 0)))), nil
	})
	def("append", "<xx:a>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		a, b := argAt(args, 0), argAt(args, 1)
		if isUndef(b) {
			return a, nil
		}
		if isUndef(a) {
			return b, nil
		}
		out := &array{isSeq: true}
		out.items = append(append(out.items, arrayify(a)...), arrayify(b)...)
		return out, ev.checkSize(len(out.items), pos)
	})
	def("reverse", "<a:a>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		items, ok := asArray(argAt(args, 0))
		if !ok {
			return undef, nil
		}
		out := &array{items: make([]any, len(items))}
		for i, it := range items {
			out.items[len(items)-1-i] = it
		}
		return out, nil
	})
	def("shuffle", "<a:a>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		items, ok := asArray(argAt(args, 0))
		if !ok {
			return undef, nil
		}
		out := &array{items: append([]any(nil), items...)}
		rand.Shuffle(len(out.items), func(i, j int) { out.items[i], out.items[j] = out.items[j], out.items[i] })
		return out, nil
	})
	def("distinct", "<x:x>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		v := argAt(args, 0)
		items, ok := asArray(v)
		if !ok {
			return v, nil
		}
		out := &array{}
		seen := map[any]bool{} // atoms by value; arrays and objects by deep equality
		for _, it := range items {
			switch it.(type) {
			case string, float64, bool, nil:
				if !seen[it] {
					seen[it] = true
					out.items = append(out.items, it)
				}
				continue
			}
			if err := ev.charge(len(out.items), pos); err != nil {
				return nil, err
			}
			dup := false
			for _, o := range out.items {
				if deepEqual(it, o) {
					dup = true
					break
				}
			}
			if !dup {
				out.items = append(out.items, it)
			}
		}
		return out, nil
	})
	def("zip", "<a+>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		out := &array{}
		if len(args) == 0 {
			return out, nil
		}
		n := math.MaxInt
		for _, a := range args {
			n = min(n, len(arrayify(a)))
		}
		for i := 0; i < n; i++ {
			row := &array{cons: true}
			for _, a := range args {
				row.items = append(row.items, arrayify(a)[i])
			}
			out.items = append(out.items, row)
		}
		return out, nil
	})
	def("sort", "<af?:a>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		items, ok := asArray(argAt(args, 0))
		if !ok {
			return undef, nil
		}
		fn := argAt(args, 1)
		out := &array{items: append([]any(nil), items...)}
		if isUndef(fn) {
			allNum, allStr := true, true
			for _, it := range items {
				_, n := it.(float64)
				_, s := it.(string)
				allNum, allStr = allNum && n, allStr && s
			}
			if !allNum && !allStr {
				return nil, &Error{Code: "D3070", Position: pos, Message: "the single argument form of the sort function can only be applied to an array of strings or an array of numbers"}
			}
			sort.SliceStable(out.items, func(i, j int) bool {
				c, _ := compareSortKeys(out.items[i], out.items[j], pos)
				return c < 0
			})
			return out, nil
		}
		// a merge sort: the comparator says whether a should come after b
		sorted, err := mergeSort(out.items, func(a, b any) (bool, error) {
			v, err := ev.apply(fn, []any{a, b}, undef, pos)
			if err != nil {
				return false, err
			}
			return truthy(v), nil
		})
		if err != nil {
			return nil, err
		}
		out.items = sorted
		return out, nil
	})
}

func mergeSort(items []any, after func(a, b any) (bool, error)) ([]any, error) {
	if len(items) <= 1 {
		return items, nil
	}
	mid := len(items) / 2
	l, err := mergeSort(append([]any(nil), items[:mid]...), after)
	if err != nil {
		return nil, err
	}
	r, err := mergeSort(append([]any(nil), items[mid:]...), after)
	if err != nil {
		return nil, err
	}
	out := make([]any, 0, len(items))
	for len(l) > 0 && len(r) > 0 {
		swap, err := after(l[0], r[0])
		if err != nil {
			return nil, err
		}
		if swap {
			out, r = append(out, r[0]), r[1:]
		} else {
			out, l = append(out, l[0]), l[1:]
		}
	}
	return append(append(out, l...), r...), nil
}

func defineObjectFunctions() {
	def("boolean", "<x-:b>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		v := argAt(args, 0)
		if isUndef(v) {
			return undef, nil
		}
		return truthy(v), nil
	})
	def("not", "<x-:b>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		v := argAt(args, 0)
		if isUndef(v) {
			return undef, nil
		}
		return !truthy(v), nil
	})
	def("exists", "<x:b>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		return !isUndef(argAt(args, 0)), nil
	})
	def("type", "<x:s>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		v := argAt(args, 0)
		if isUndef(v) {
			return undef, nil
		}
		return typeOf(v), nil
	})
	def("keys", "<x-:a<s>>", func(ev *evaluator, args []any, _ any, _ int) (any, error) {
		out := newSeq()
		seen := map[string]bool{}
		for _, it := range arrayOrSelf(argAt(args, 0)) {
			if m, ok := it.(map[string]any); ok {
				for _, k := range ev.keysOf(m) {
					if !seen[k] {
						seen[k] = true
						out.items = append(out.items, k)
					}
				}
			}
		}
		return out, nil
	})
	def("lookup", "<x-s:x>", func(_ *evaluator, args []any, _ any, _ int) (any, error) {
		k, _ := str(args, 1)
		return lookupField(argAt(args, 0), k), nil
	})
	def("spread", "<x-:a<o>>", func(ev *evaluator, args []any, _ any, _ int) (any, error) {
		v := argAt(args, 0)
		out := newSeq()
		for _, it := range arrayOrSelf(v) {
			m, ok := it.(map[string]any)
			if !ok {
				if isUndef(it) {
					continue
				}
				out.items = append(out.items, it)
				continue
			}
			for _, k := range ev.keysOf(m) {
				out.items = append(out.items, map[string]any{k: m[k]})
			}
		}
		return out, nil
	})
	def("merge", "<a<o>:o>", func(ev *evaluator, args []any, _ any, _ int) (any, error) {
		items, ok := asArray(argAt(args, 0))
		if !ok {
			return undef, nil
		}
		out := map[string]any{}
		var order []string
		for _, it := range items {
			m := it.(map[string]any)
			for _, k := range ev.keysOf(m) {
				if _, seen := out[k]; !seen {
					order = append(order, k)
				}
				out[k] = m[k]
			}
		}
		ev.remember(out, order)
		return out, nil
	})
	def("sift", "<o-f?:o>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		m, ok := argAt(args, 0).(map[string]any)
		if !ok {
			return undef, nil
		}
		fn := argAt(args, 1)
		out := map[string]any{}
		for _, k := range ev.keysOf(m) {
			v, err := ev.apply(fn, hofArgs(fn, m[k], k, m), undef, pos)
			if err != nil {
				return nil, err
			}
			if truthy(v) {
				out[k] = m[k]
			}
		}
		if len(out) == 0 {
			return undef, nil
		}
		return out, nil
	})
	def("each", "<o-f:a>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		m, ok := argAt(args, 0).(map[string]any)
		if !ok {
			return undef, nil
		}
		fn := argAt(args, 1)
		out := newSeq()
		for _, k := range ev.keysOf(m) {
			v, err := ev.apply(fn, hofArgs(fn, m[k], k, m), undef, pos)
			if err != nil {
				return nil, err
			}
			if !isUndef(v) {
				out.items = append(out.items, v)
			}
		}
		return out, nil
	})
	def("error", "<s?:x>", func(_ *evaluator, args []any, _ any, pos int) (any, error) {
		msg, ok := str(args, 0)
		if !ok {
			msg = "$error() function evaluated"
		}
		return nil, &Error{Code: "D3137", Position: pos, Message: msg}
	})
	def("assert", "<bs?:x>", func(_ *evaluator, args []any, _ any, pos int) (any, error) {
		if b, _ := argAt(args, 0).(bool); b {
			return undef, nil
		}
		msg, ok := str(args, 1)
		if !ok {
			msg = "$assert() statement failed"
		}
		return nil, &Error{Code: "D3141", Position: pos, Message: msg}
	})
}

// hofArgs passes a callback (value, index or key, array or object) as far as it takes them.
func hofArgs(fn any, v, i, all any) []any {
	args := []any{v, i, all}
	if n := arity(fn); n < 3 {
		return args[:max(n, 1)]
	}
	return args
}

func defineHigherOrderFunctions() {
	def("map", "<af>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		items, ok := asArray(argAt(args, 0))
		if !ok {
			return undef, nil
		}
		fn := argAt(args, 1)
		out := newSeq()
		for i, it := range items {
			v, err := ev.apply(fn, hofArgs(fn, it, float64(i), argAt(args, 0)), undef, pos)
			if err != nil {
				return nil, err
			}
			if !isUndef(v) {
				out.items = append(out.items, v)
			}
		}
		return out, nil
	})
	def("filter", "<af>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		items, ok := asArray(argAt(args, 0))
		if !ok {
			return undef, nil
		}
		fn := argAt(args, 1)
		out := newSeq()
		for i, it := range items {
			v, err := ev.apply(fn, hofArgs(fn, it, float64(i), argAt(args, 0)), undef, pos)
			if err != nil {
				return nil, err
			}
			if truthy(v) {
				out.items = append(out.items, it)
			}
		}
		return out, nil
	})
	def("single", "<af?>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		items, ok := asArray(argAt(args, 0))
		if !ok {
			return undef, nil
		}
		fn := argAt(args, 1)
		var found any = undef
		n := 0
		for i, it := range items {
			match := true
			if !isUndef(fn) {
				v, err := ev.apply(fn, hofArgs(fn, it, float64(i), argAt(args, 0)), undef, pos)
				if err != nil {
					return nil, err
				}
				match = truthy(v)
			}
			if match {
				n++
				if n > 1 {
					return nil, &Error{Code: "D3138", Position: pos, Message: "the $single() function expected exactly 1 matching result; instead it matched more"}
				}
				found = it
			}
		}
		if n == 0 {
			return nil, &Error{Code: "D3139", Position: pos, Message: "the $single() function expected exactly 1 matching result; instead it matched 0"}
		}
		return found, nil
	})
	def("reduce", "<afj?:j>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		items, ok := asArray(argAt(args, 0))
		if !ok {
			return undef, nil
		}
		fn := argAt(args, 1)
		if arity(fn) < 2 {
			return nil, &Error{Code: "D3050", Position: pos, Message: "the second argument of reduce function must be a function with at least two arguments"}
		}
		acc := argAt(args, 2)
		start := 0
		if isUndef(acc) && len(items) > 0 {
			acc, start = items[0], 1
		}
		for i := start; i < len(items); i++ {
			full := []any{acc, items[i], float64(i), argAt(args, 0)}
			n := arity(fn)
			if n > 4 {
				n = 4
			}
			v, err := ev.apply(fn, full[:n], undef, pos)
			if err != nil {
				return nil, err
			}
			acc = v
		}
		return acc, nil
	})
}

// jsSliceIndex is how JavaScript's slice reads an index: truncated, counted from the end when
// negative, clamped to the length.
func jsSliceIndex(i, n float64) int {
	i = math.Trunc(i)
	if i < 0 {
		i = math.Max(0, n+i)
	}
	return int(math.Min(i, n))
}

// matchResult is one match of a regular expression or of a custom matcher function, with byte
// offsets into the subject string.
type matchResult struct {
	start, end int
	groups     []string
}

func (m matchResult) object(s string) map[string]any {
	groups := make([]any, len(m.groups))
	for i, g := range m.groups {
		groups[i] = g
	}
	return map[string]any{"match": s[m.start:m.end], "index": float64(utf8.RuneCountInString(s[:m.start])), "groups": groups}
}

// matches finds up to limit (all when negative) matches of a regular expression, or of a
// function that behaves like one (returns {match, start, end, groups, next}).
func (ev *evaluator) matches(pattern any, s string, limit, pos int) ([]matchResult, error) {
	var out []matchResult
	if m, ok := pattern.(*regexMatcher); ok {
		for _, loc := range m.re.FindAllStringSubmatchIndex(s, limit) {
			r := matchResult{start: loc[0], end: loc[1]}
			for g := 2; g+1 < len(loc); g += 2 {
				if loc[g] < 0 {
					r.groups = append(r.groups, "")
				} else {
					r.groups = append(r.groups, s[loc[g]:loc[g+1]])
				}
			}
			out = append(out, r)
		}
		return out, nil
	}
	byteAt := runeOffsets(s)
	v, err := ev.apply(pattern, []any{s}, undef, pos)
	for err == nil && !isUndef(v) && (limit < 0 || len(out) < limit) {
		obj, ok := v.(map[string]any)
		st, ok1 := obj["start"].(float64)
		en, ok2 := obj["end"].(float64)
		_, ok3 := obj["match"].(string)
		groups, ok4 := asArray(obj["groups"])
		if !ok || !ok1 || !ok2 || !ok3 || !ok4 || st < 0 || en < st || int(en) >= len(byteAt) {
			return nil, &Error{Code: "T1010", Position: pos, Message: "the matcher function argument passed to a function does not return the correct object structure"}
		}
		r := matchResult{start: byteAt[int(st)], end: byteAt[int(en)]}
		for _, g := range groups {
			gs, _ := g.(string)
			r.groups = append(r.groups, gs)
		}
		out = append(out, r)
		next := obj["next"]
		if !isFunction(next) {
			break
		}
		v, err = ev.apply(next, nil, undef, pos)
	}
	return out, err
}

// runeOffsets maps character positions (as a matcher function counts them) to byte offsets.
func runeOffsets(s string) []int {
	out := make([]int, 0, len(s)+1)
	for i := range s {
		out = append(out, i)
	}
	return append(out, len(s))
}

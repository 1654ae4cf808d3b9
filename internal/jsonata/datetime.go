package jsonata

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Dates and times: $now, $millis, $fromMillis and $toMillis, with XPath format-dateTime picture
// strings ([Y0001]-[M01]-[D01] ...).

const isoPicture = "[Y0001]-[M01]-[D01]T[H01]:[m01]:[s01].[f001][Z01:01t]"

func defineDateFunctions() {
	def("millis", "<:n>", func(ev *evaluator, _ []any, _ any, _ int) (any, error) {
		return float64(ev.opts.Now.UnixMilli()), nil
	})
	def("now", "<s?s?:s>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		picture, _ := str(args, 0)
		tz, _ := str(args, 1)
		return formatMillis(float64(ev.opts.Now.UnixMilli()), picture, tz, pos)
	})
	def("fromMillis", "<n-s?s?:s>", func(_ *evaluator, args []any, _ any, pos int) (any, error) {
		ms, ok := num(args, 0)
		if !ok {
			return undef, nil
		}
		picture, _ := str(args, 1)
		tz, _ := str(args, 2)
		return formatMillis(ms, picture, tz, pos)
	})
	def("toMillis", "<s-s?:n>", func(ev *evaluator, args []any, _ any, pos int) (any, error) {
		s, ok := str(args, 0)
		if !ok {
			return undef, nil
		}
		if picture, ok := str(args, 1); ok {
			return parseWithPicture(s, picture, ev.opts.Now, pos)
		}
		t, ok := parseISO(s)
		if !ok {
			return nil, &Error{Code: "D3110", Position: pos, Message: "the timestamp " + s + " cannot be parsed as ISO 8601"}
		}
		return float64(t.UnixMilli()), nil
	})
}

var isoDate = regexp.MustCompile(`^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:?\d{2})?)?)?)?$`)

func parseISO(s string) (time.Time, bool) {
	m := isoDate.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false
	}
	n := func(i, def int) int {
		if m[i] == "" {
			return def
		}
		v, _ := strconv.Atoi(m[i])
		return v
	}
	ns := 0
	if m[7] != "" {
		frac := (m[7] + "000000000")[:9]
		ns, _ = strconv.Atoi(frac)
	}
	loc := time.UTC
	if z := m[8]; z != "" && z != "Z" {
		off, _ := parseOffset(z)
		loc = time.FixedZone("", off*60)
	}
	return time.Date(n(1, 0), time.Month(n(2, 1)), n(3, 1), n(4, 0), n(5, 0), n(6, 0), ns, loc), true
}

// parseOffset reads ±HHMM, ±HH:MM or ±H into minutes.
func parseOffset(z string) (int, bool) {
	if z == "" {
		return 0, false
	}
	sign := 1
	if z[0] == '-' {
		sign = -1
	}
	digits := strings.ReplaceAll(strings.TrimLeft(z, "+-"), ":", "")
	var h, m int
	switch len(digits) {
	case 1, 2:
		h, _ = strconv.Atoi(digits)
	case 3:
		h, _ = strconv.Atoi(digits[:1])
		m, _ = strconv.Atoi(digits[1:])
	case 4:
		h, _ = strconv.Atoi(digits[:2])
		m, _ = strconv.Atoi(digits[2:])
	default:
		return 0, false
	}
	return sign * (h*60 + m), true
}

// dateMarker is one [...] of a picture; a literal has component 0.
type dateMarker struct {
	literal    string
	component  byte
	pres       string // the first presentation modifier, e.g. 0001, Nn, w
	ordinal    bool
	minW, maxW int // -1: not given
}

func parseDatePicture(picture string, pos int) ([]dateMarker, error) {
	var out []dateMarker
	var lit strings.Builder
	r := []rune(picture)
	if open := strings.LastIndex(strings.ReplaceAll(picture, "[[", "  "), "["); open >= 0 && !strings.Contains(picture[open:], "]") {
		return nil, &Error{Code: "D3135", Position: pos, Message: "no matching closing bracket ']' in date/time picture string"}
	}
	for i := 0; i < len(r); i++ {
		c := r[i]
		if c == ']' && i+1 < len(r) && r[i+1] == ']' {
			lit.WriteRune(']')
			i++
			continue
		}
		if c != '[' {
			lit.WriteRune(c)
			continue
		}
		if i+1 < len(r) && r[i+1] == '[' {
			lit.WriteRune('[')
			i++
			continue
		}
		end := -1
		for j := i + 1; j < len(r); j++ {
			if r[j] == ']' {
				end = j
				break
			}
		}
		if end < 0 {
			return nil, &Error{Code: "D3135", Position: pos, Message: "no matching closing bracket ']' in date/time picture string"}
		}
		if lit.Len() > 0 {
			out = append(out, dateMarker{literal: lit.String()})
			lit.Reset()
		}
		spec := strings.Map(func(r rune) rune {
			if unicode.IsSpace(r) {
				return -1
			}
			return r
		}, string(r[i+1:end]))
		m, err := parseMarker(spec, pos)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
		i = end
	}
	if lit.Len() > 0 {
		out = append(out, dateMarker{literal: lit.String()})
	}
	return out, nil
}

var defaultPresentation = map[byte]string{'Y': "1", 'M': "1", 'D': "1", 'd': "1", 'F': "n", 'W': "1", 'w': "1",
	'X': "1", 'x': "1", 'H': "1", 'h': "1", 'P': "n", 'm': "01", 's': "01", 'f': "1", 'Z': "01:01", 'z': "01:01", 'C': "n", 'E': "n"}

func parseMarker(spec string, pos int) (dateMarker, error) {
	m := dateMarker{minW: -1, maxW: -1}
	if spec == "" || defaultPresentation[spec[0]] == "" {
		return m, &Error{Code: "D3132", Position: pos, Message: "unknown component specifier in date/time picture string: " + spec}
	}
	m.component = spec[0]
	rest := spec[1:]
	if i := strings.LastIndex(rest, ","); i >= 0 {
		width := rest[i+1:]
		rest = rest[:i]
		lo, hi, hasHi := strings.Cut(width, "-")
		if lo != "*" {
			m.minW, _ = strconv.Atoi(lo)
		}
		if hasHi && hi != "*" {
			m.maxW, _ = strconv.Atoi(hi)
		}
	}
	if rest == "" {
		rest = defaultPresentation[m.component]
	}
	// a trailing o (ordinal), t (traditional) or c (cardinal) is the second modifier
	if n := len(rest); n > 1 && strings.ContainsRune("otc", rune(rest[n-1])) && !(m.component == 'Z' || m.component == 'z') {
		m.ordinal = rest[n-1] == 'o'
		rest = rest[:n-1]
	}
	m.pres = rest
	if (rest == "N" || rest == "n" || rest == "Nn") && !strings.ContainsRune("MxFPCE", rune(m.component)) {
		return m, &Error{Code: "D3133", Position: pos, Message: "the date/time picture string component [" + spec + "] cannot be represented as a name"}
	}
	return m, nil
}

var monthNames = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
var dayNames = []string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}

func formatMillis(ms float64, picture, tz string, pos int) (any, error) {
	offset := 0
	if tz != "" {
		offset, _ = parseOffset(tz)
	}
	if picture == "" {
		picture = isoPicture
	}
	markers, err := parseDatePicture(picture, pos)
	if err != nil {
		return nil, err
	}
	t := time.UnixMilli(int64(ms)).In(time.FixedZone("", offset*60))
	var b strings.Builder
	for _, m := range markers {
		if m.component == 0 {
			b.WriteString(m.literal)
			continue
		}
		s, err := formatComponent(t, m, offset, pos)
		if err != nil {
			return nil, err
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

func isoWeek(t time.Time) (year, week int) { return t.ISOWeek() }

// weekOfMonth numbers weeks from Monday; a week belongs to the month holding its Thursday.
func weekOfMonth(t time.Time) (month time.Month, week int) {
	wd := (int(t.Weekday()) + 6) % 7 // Monday 0
	thursday := t.AddDate(0, 0, 3-wd)
	month = thursday.Month()
	first := time.Date(thursday.Year(), month, 1, 0, 0, 0, 0, t.Location())
	fwd := (int(first.Weekday()) + 6) % 7
	firstThursday := first.AddDate(0, 0, (3-fwd+7)%7)
	week = int(thursday.Sub(firstThursday).Hours()/24)/7 + 1
	return month, week
}

func formatComponent(t time.Time, m dateMarker, offset, pos int) (string, error) {
	var value int
	var names []string
	switch m.component {
	case 'Y':
		value = t.Year()
	case 'M':
		value, names = int(t.Month()), monthNames
	case 'D':
		value = t.Day()
	case 'd':
		value = t.YearDay()
	case 'F':
		value, names = (int(t.Weekday())+6)%7+1, dayNames
	case 'W':
		_, value = isoWeek(t)
	case 'X':
		value, _ = isoWeek(t)
	case 'w':
		_, value = weekOfMonth(t)
	case 'x':
		mo, _ := weekOfMonth(t)
		value, names = int(mo), monthNames
	case 'H':
		value = t.Hour()
	case 'h':
		value = t.Hour() % 12
		if value == 0 {
			value = 12
		}
	case 'P':
		s := "am"
		if t.Hour() >= 12 {
			s = "pm"
		}
		if m.pres == "N" {
			s = strings.ToUpper(s)
		}
		return s, nil
	case 'm':
		value = t.Minute()
	case 's':
		value = t.Second()
	case 'f':
		return formatFraction(t.Nanosecond()/1e6, m), nil
	case 'Z', 'z':
		return formatZone(offset, m, pos)
	case 'C', 'E':
		return "ISO", nil
	}
	if names != nil && (m.pres == "N" || m.pres == "n" || m.pres == "Nn") {
		s := names[value-1]
		if m.maxW > 0 && len(s) > m.maxW {
			s = s[:m.maxW]
		}
		switch m.pres {
		case "N":
			return strings.ToUpper(s), nil
		case "n":
			return strings.ToLower(s), nil
		}
		return s, nil
	}
	pres := m.pres
	if m.ordinal {
		pres += ";o"
	}
	p, err := parseIntegerPicture(pres, pos)
	if err != nil {
		return "", err
	}
	if p.kind == 'd' && m.minW > p.mandatory {
		p.mandatory = m.minW
	}
	s := p.format(float64(value))
	if m.component == 'Y' && p.kind == 'd' {
		digits := []rune(s)
		if m.maxW > 0 && len(digits) > m.maxW {
			s = string(digits[len(digits)-m.maxW:])
		} else if m.maxW < 0 && m.minW > 0 && mandatoryDigits(m.pres) < 2 && len(digits) > m.minW {
			s = string(digits[len(digits)-m.minW:])
		}
	}
	return s, nil
}

func mandatoryDigits(pres string) int {
	n := 0
	for _, r := range pres {
		if unicode.IsDigit(r) {
			n++
		}
	}
	return n
}

func formatFraction(ms int, m dateMarker) string {
	s := strconv.Itoa(ms + 1000)[1:] // three digits
	n := mandatoryDigits(m.pres)
	if n <= 1 && m.minW < 0 {
		s = strings.TrimRight(s, "0")
		if s == "" {
			s = "0"
		}
		return s
	}
	if m.minW > n {
		n = m.minW
	}
	for len(s) < n {
		s += "0"
	}
	return s[:max(n, 1)]
}

func formatZone(offset int, m dateMarker, pos int) (string, error) {
	pres := m.pres
	traditional := strings.HasSuffix(pres, "t")
	pres = strings.TrimSuffix(pres, "t")
	if traditional && offset == 0 {
		return "Z", nil
	}
	sign := "+"
	if offset < 0 {
		sign, offset = "-", -offset
	}
	h, mi := offset/60, offset%60
	digits := mandatoryDigits(pres)
	var s string
	switch {
	case digits > 4:
		return "", &Error{Code: "D3134", Position: pos, Message: "the timezone picture " + m.pres + " has too many digits"}
	case digits <= 2 && !strings.ContainsRune(pres, ':'):
		s = sign + strconv.Itoa(h)
		if digits == 2 {
			s = sign + pad2(h)
		}
		if mi != 0 {
			s += ":" + pad2(mi)
		}
	case strings.ContainsRune(pres, ':'):
		s = sign + pad2(h) + ":" + pad2(mi)
	default:
		s = sign + pad2(h) + pad2(mi)
	}
	if m.component == 'z' {
		return "GMT" + s, nil
	}
	return s, nil
}

func pad2(n int) string {
	if n < 10 {
		return "0" + strconv.Itoa(n)
	}
	return strconv.Itoa(n)
}

// parseWithPicture reads a date with a picture string, building a regular expression from it.
func parseWithPicture(s, picture string, now time.Time, pos int) (any, error) {
	markers, err := parseDatePicture(picture, pos)
	if err != nil {
		return nil, err
	}
	var re strings.Builder
	re.WriteString("^")
	var parts []dateMarker
	for i, m := range markers {
		if m.component == 0 {
			re.WriteString(regexp.QuoteMeta(m.literal))
			continue
		}
		adjacent := i+1 < len(markers) && markers[i+1].component != 0
		re.WriteString("(" + componentPattern(m, adjacent) + ")")
		parts = append(parts, m)
	}
	re.WriteString("$")
	rx, err := regexp.Compile("(?i)" + re.String())
	if err != nil {
		return nil, &Error{Code: "D3136", Position: pos, Message: "the date/time picture cannot be used for parsing"}
	}
	found := rx.FindStringSubmatch(s)
	if found == nil || len(parts) == 0 {
		return undef, nil
	}
	values := map[byte]int{}
	offset := 0
	pm, hasPM := false, false
	for i, m := range parts {
		text := found[i+1]
		switch m.component {
		case 'P':
			pm, hasPM = strings.EqualFold(text, "pm"), true
			continue
		case 'Z', 'z':
			z := strings.TrimPrefix(strings.ToUpper(text), "GMT")
			if z != "Z" {
				offset, _ = parseOffset(z)
			}
			continue
		case 'F', 'C', 'E':
			continue
		}
		v, ok := parseComponent(text, m, pos)
		if !ok {
			return undef, nil
		}
		values[m.component] = v
	}
	if h, ok := values['h']; ok {
		if hasPM && pm && h != 12 {
			h += 12
		} else if hasPM && !pm && h == 12 {
			h = 0
		}
		values['H'] = h
	}
	for _, c := range []byte{'X', 'x', 'W', 'w'} {
		if _, ok := values[c]; ok {
			return nil, &Error{Code: "D3136", Position: pos, Message: "the date/time picture string is missing specifiers required to parse the timestamp"}
		}
	}
	order := []byte{'Y', 'M', 'D', 'H', 'm', 's', 'f'}
	present := make([]bool, len(order))
	for i, c := range order {
		_, present[i] = values[c]
	}
	if _, ok := values['d']; ok {
		present[1], present[2] = true, true
	}
	first, last := -1, -1
	for i, p := range present {
		if p {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	for i := first; i >= 0 && i <= last; i++ {
		if !present[i] {
			return nil, &Error{Code: "D3136", Position: pos, Message: "the date/time picture string is missing specifiers required to parse the timestamp"}
		}
	}
	utc := now.UTC()
	nowParts := []int{utc.Year(), int(utc.Month()), utc.Day(), utc.Hour(), utc.Minute(), utc.Second(), 0}
	lowest := []int{0, 1, 1, 0, 0, 0, 0}
	get := func(i int) int {
		if v, ok := values[order[i]]; ok {
			return v
		}
		if i < first {
			return nowParts[i]
		}
		return lowest[i]
	}
	var t time.Time
	if d, ok := values['d']; ok {
		t = time.Date(get(0), 1, 1, get(3), get(4), get(5), get(6)*1e6, time.UTC).AddDate(0, 0, d-1)
	} else {
		t = time.Date(get(0), time.Month(get(1)), get(2), get(3), get(4), get(5), get(6)*1e6, time.UTC)
	}
	return float64(t.UnixMilli() - int64(offset)*60000), nil
}

func componentPattern(m dateMarker, adjacent bool) string {
	switch m.component {
	case 'P':
		return "[ap]m"
	case 'Z':
		return `Z|[+-]\d{1,2}(?::?\d{2})?`
	case 'z':
		return `GMT[+-]\d{1,2}(?::?\d{2})?`
	}
	switch m.pres {
	case "N", "n", "Nn":
		if m.maxW > 0 {
			return "[a-z]{1," + strconv.Itoa(m.maxW) + "}"
		}
		return "[a-z]+"
	case "I", "i":
		return "[ivxlcdm]+"
	case "A", "a":
		return "[a-z]+"
	case "w", "W", "Ww":
		return `[a-z]+(?:[ ,\-]+[a-z]+)*?`
	}
	digits := `\d+`
	if n := mandatoryDigits(m.pres); adjacent && n > 1 {
		digits = `\d{` + strconv.Itoa(n) + `}`
	} else if m.maxW > 0 {
		digits = `\d{1,` + strconv.Itoa(m.maxW) + `}`
	}
	if m.ordinal {
		digits += "(?:st|nd|rd|th)"
	}
	return digits
}

func parseComponent(text string, m dateMarker, pos int) (int, bool) {
	switch m.pres {
	case "N", "n", "Nn":
		names := monthNames
		if m.component == 'F' {
			names = dayNames
		}
		for i, n := range names {
			if len(text) >= 3 && strings.HasPrefix(strings.ToLower(n), strings.ToLower(text)) {
				return i + 1, true
			}
		}
		return 0, false
	}
	pres := m.pres
	if m.ordinal {
		pres += ";o"
	}
	p, err := parseIntegerPicture(pres, pos)
	if err != nil {
		return 0, false
	}
	if p.kind == 'd' {
		text = strings.TrimRight(strings.ToLower(text), "stndrh")
	}
	if p.kind == 'w' || p.kind == 'W' || p.kind == 'T' {
		text = strings.ToLower(text)
	}
	f, ok := p.parse(text)
	if !ok || math.IsNaN(f) {
		return 0, false
	}
	return int(f), true
}

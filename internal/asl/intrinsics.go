package asl

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// call is a parsed intrinsic function call: States.Name(args...).
type call struct {
	name string
	args []arg
}

// arg is one argument: a literal, a path, or a nested call.
type arg struct {
	literal any
	path    *Path
	call    *call
}

// IsIntrinsic reports whether a string is an intrinsic function call rather than a path.
func IsIntrinsic(s string) bool { return strings.HasPrefix(strings.TrimSpace(s), "States.") }

// intrinsicArity is the number of arguments of each intrinsic (-1: at least the minimum given in min).
var intrinsicArity = map[string][2]int{ // {min, max}; max -1 = unbounded
	"States.Format": {1, -1}, "States.StringToJson": {1, 1}, "States.JsonToString": {1, 1},
	"States.Array": {0, -1}, "States.ArrayPartition": {2, 2}, "States.ArrayContains": {2, 2},
	"States.ArrayRange": {3, 3}, "States.ArrayGetItem": {2, 2}, "States.ArrayLength": {1, 1},
	"States.ArrayUnique": {1, 1}, "States.Base64Encode": {1, 1}, "States.Base64Decode": {1, 1},
	"States.Hash": {2, 2}, "States.JsonMerge": {3, 3}, "States.MathRandom": {2, 3},
	"States.MathAdd": {2, 2}, "States.StringSplit": {2, 2}, "States.UUID": {0, 0},
}

// ParseIntrinsic parses an intrinsic function call, checking names and argument counts.
func ParseIntrinsic(s string) (*call, error) {
	p := &intrinsicParser{src: strings.TrimSpace(s)}
	c, err := p.call()
	if err != nil {
		return nil, fmt.Errorf("intrinsic %q: %v", s, err)
	}
	p.space()
	if p.pos != len(p.src) {
		return nil, fmt.Errorf("intrinsic %q: unexpected %q after the call", s, p.src[p.pos:])
	}
	return c, nil
}

type intrinsicParser struct {
	src string
	pos int
}

func (p *intrinsicParser) space() {
	for p.pos < len(p.src) && (p.src[p.pos] == ' ' || p.src[p.pos] == '\t') {
		p.pos++
	}
}

func (p *intrinsicParser) call() (*call, error) {
	p.space()
	start := p.pos
	for p.pos < len(p.src) && p.src[p.pos] != '(' {
		p.pos++
	}
	if p.pos == len(p.src) {
		return nil, fmt.Errorf("missing (")
	}
	c := &call{name: strings.TrimSpace(p.src[start:p.pos])}
	arity, ok := intrinsicArity[c.name]
	if !ok {
		return nil, fmt.Errorf("unknown function %s", c.name)
	}
	p.pos++ // (
	p.space()
	if p.pos < len(p.src) && p.src[p.pos] == ')' {
		p.pos++
	} else {
		for {
			a, err := p.arg()
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, a)
			p.space()
			if p.pos >= len(p.src) {
				return nil, fmt.Errorf("missing )")
			}
			if p.src[p.pos] == ')' {
				p.pos++
				break
			}
			if p.src[p.pos] != ',' {
				return nil, fmt.Errorf("expected , or ) at %q", p.src[p.pos:])
			}
			p.pos++
		}
	}
	for i := range c.args {
		if str, ok := c.args[i].literal.(string); ok && (c.name != "States.Format" || i > 0) {
			c.args[i].literal = strings.NewReplacer(`\{`, "{", `\}`, "}").Replace(str)
		}
	}
	if len(c.args) < arity[0] || (arity[1] >= 0 && len(c.args) > arity[1]) {
		return nil, fmt.Errorf("%s takes %s arguments, got %d", c.name, arityText(arity), len(c.args))
	}
	if err := checkArgTypes(c); err != nil {
		return nil, err
	}
	return c, nil
}

func arityText(a [2]int) string {
	switch {
	case a[1] < 0:
		return fmt.Sprintf("at least %d", a[0])
	case a[0] == a[1]:
		return strconv.Itoa(a[0])
	}
	return fmt.Sprintf("%d to %d", a[0], a[1])
}

func (p *intrinsicParser) arg() (arg, error) {
	p.space()
	if p.pos >= len(p.src) {
		return arg{}, fmt.Errorf("missing argument")
	}
	switch ch := p.src[p.pos]; {
	case ch == '\'':
		var b strings.Builder
		p.pos++
		for p.pos < len(p.src) {
			c := p.src[p.pos]
			if c == '\\' && p.pos+1 < len(p.src) {
				next := p.src[p.pos+1]
				if next == '{' || next == '}' {
					b.WriteByte('\\') // kept: States.Format tells an escaped brace from a placeholder
				}
				b.WriteByte(next)
				p.pos += 2
				continue
			}
			if c == '\'' {
				p.pos++
				return arg{literal: b.String()}, nil
			}
			b.WriteByte(c)
			p.pos++
		}
		return arg{}, fmt.Errorf("unterminated string")
	case ch == '$':
		start, depth := p.pos, 0
		for p.pos < len(p.src) {
			c := p.src[p.pos]
			if c == '[' {
				depth++
			} else if c == ']' {
				depth--
			} else if (c == ',' || c == ')') && depth == 0 {
				break
			}
			p.pos++
		}
		path, err := ParsePath(strings.TrimSpace(p.src[start:p.pos]))
		if err != nil {
			return arg{}, err
		}
		return arg{path: &path}, nil
	case strings.HasPrefix(p.src[p.pos:], "States."):
		c, err := p.call()
		if err != nil {
			return arg{}, err
		}
		return arg{call: c}, nil
	default:
		start := p.pos
		for p.pos < len(p.src) && p.src[p.pos] != ',' && p.src[p.pos] != ')' {
			p.pos++
		}
		tok := strings.TrimSpace(p.src[start:p.pos])
		var v any
		if err := json.Unmarshal([]byte(tok), &v); err != nil {
			return arg{}, fmt.Errorf("bad literal %q", tok)
		}
		if _, isObj := v.(map[string]any); isObj {
			return arg{}, fmt.Errorf("bad literal %q", tok)
		}
		return arg{literal: v}, nil
	}
}

// IntrinsicError is States.IntrinsicFailure.
type IntrinsicError struct{ Msg string }

func (e *IntrinsicError) Error() string { return e.Msg }

func fail(format string, a ...any) error { return &IntrinsicError{Msg: fmt.Sprintf(format, a...)} }

func (c *call) eval(input, context any) (any, error) {
	args := make([]any, len(c.args))
	for i, a := range c.args {
		switch {
		case a.path != nil:
			v, err := a.path.Get(input, context)
			if err != nil {
				return nil, fail("%s: %v", c.name, err)
			}
			args[i] = v
		case a.call != nil:
			v, err := a.call.eval(input, context)
			if err != nil {
				return nil, err
			}
			args[i] = v
		default:
			args[i] = a.literal
		}
	}
	v, err := applyIntrinsic(c.name, args)
	if err != nil {
		return nil, err
	}
	if _, err := checkPayload("the result of "+c.name, v, DefaultMaxPayloadBytes); err != nil {
		return nil, err
	}
	return v, nil
}

func applyIntrinsic(name string, args []any) (any, error) {
	str := func(i int) (string, error) {
		s, ok := args[i].(string)
		if !ok {
			return "", fail("%s: argument %d must be a string", name, i+1)
		}
		return s, nil
	}
	num := func(i int) (float64, error) {
		n, ok := args[i].(float64)
		if !ok {
			return 0, fail("%s: argument %d must be a number", name, i+1)
		}
		return n, nil
	}
	integer := func(i int) (int, error) {
		n, err := num(i)
		if err != nil || n != math.Trunc(n) {
			return 0, fail("%s: argument %d must be an integer", name, i+1)
		}
		return int(n), nil
	}
	array := func(i int) ([]any, error) {
		a, ok := args[i].([]any)
		if !ok {
			return nil, fail("%s: argument %d must be an array", name, i+1)
		}
		return a, nil
	}
	switch name {
	case "States.Format":
		tmpl, err := str(0)
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		next := 1
		for i := 0; i < len(tmpl); i++ {
			if b.Len() > DefaultMaxPayloadBytes {
				return nil, limitErrorf("States.Format: the result exceeds the payload limit of %d bytes", DefaultMaxPayloadBytes)
			}
			if tmpl[i] == '\\' && i+1 < len(tmpl) && (tmpl[i+1] == '{' || tmpl[i+1] == '}') {
				b.WriteByte(tmpl[i+1])
				i++
				continue
			}
			if tmpl[i] == '{' && i+1 < len(tmpl) && tmpl[i+1] == '}' {
				if next >= len(args) {
					return nil, fail("States.Format: more {} than arguments")
				}
				switch v := args[next].(type) {
				case string:
					b.WriteString(v)
				case map[string]any, []any:
					return nil, fail("States.Format: argument %d is not a string, number, boolean or null", next+1)
				default:
					enc, _ := json.Marshal(v)
					b.Write(enc)
				}
				next++
				i++
				continue
			}
			b.WriteByte(tmpl[i])
		}
		if next != len(args) {
			return nil, fail("States.Format: %d arguments for %d {}", len(args)-1, next-1)
		}
		return b.String(), nil
	case "States.StringToJson":
		s, err := str(0)
		if err != nil {
			return nil, err
		}
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fail("States.StringToJson: %v", err)
		}
		return v, nil
	case "States.JsonToString":
		b, err := json.Marshal(args[0])
		if err != nil {
			return nil, fail("States.JsonToString: %v", err)
		}
		return string(b), nil
	case "States.Array":
		return append([]any{}, args...), nil
	case "States.ArrayPartition":
		a, err := array(0)
		if err != nil {
			return nil, err
		}
		size, err := integer(1)
		if err != nil || size <= 0 {
			return nil, fail("States.ArrayPartition: the chunk size must be a positive integer")
		}
		out := []any{}
		for i := 0; i < len(a); i += size {
			out = append(out, append([]any{}, a[i:min(i+size, len(a))]...))
		}
		return out, nil
	case "States.ArrayContains":
		a, err := array(0)
		if err != nil {
			return nil, err
		}
		for _, v := range a {
			if reflect.DeepEqual(v, args[1]) {
				return true, nil
			}
		}
		return false, nil
	case "States.ArrayRange":
		start, err1 := integer(0)
		end, err2 := integer(1)
		step, err3 := integer(2)
		if err1 != nil || err2 != nil || err3 != nil || step == 0 {
			return nil, fail("States.ArrayRange: start, end and a non-zero step must be integers")
		}
		out := []any{}
		for i := start; (step > 0 && i <= end) || (step < 0 && i >= end); i += step {
			out = append(out, float64(i))
			if len(out) > 1000 {
				return nil, fail("States.ArrayRange: more than 1000 items")
			}
		}
		return out, nil
	case "States.ArrayGetItem":
		a, err := array(0)
		if err != nil {
			return nil, err
		}
		i, err := integer(1)
		if err != nil || i < 0 || i >= len(a) {
			return nil, fail("States.ArrayGetItem: index out of range")
		}
		return a[i], nil
	case "States.ArrayLength":
		a, err := array(0)
		if err != nil {
			return nil, err
		}
		return float64(len(a)), nil
	case "States.ArrayUnique":
		a, err := array(0)
		if err != nil {
			return nil, err
		}
		return unique(a), nil
	case "States.Base64Encode":
		s, err := str(0)
		if err != nil {
			return nil, err
		}
		if err := intrinsicInputLimit(name, s); err != nil {
			return nil, err
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	case "States.Base64Decode":
		s, err := str(0)
		if err != nil {
			return nil, err
		}
		if err := intrinsicInputLimit(name, s); err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, fail("States.Base64Decode: %v", err)
		}
		return string(b), nil
	case "States.Hash":
		algo, err := str(1)
		if err != nil {
			return nil, err
		}
		h := newHash(algo)
		if h == nil {
			return nil, fail("States.Hash: unknown algorithm %q (%s)", algo, strings.Join(hashAlgorithms, ", "))
		}
		data, ok := args[0].(string)
		if !ok {
			b, _ := json.Marshal(args[0])
			data = string(b)
		}
		if err := intrinsicInputLimit(name, data); err != nil {
			return nil, err
		}
		h.Write([]byte(data))
		return hex.EncodeToString(h.Sum(nil)), nil
	case "States.JsonMerge":
		a, ok1 := args[0].(map[string]any)
		b, ok2 := args[1].(map[string]any)
		deep, ok3 := args[2].(bool)
		if !ok1 || !ok2 || !ok3 {
			return nil, fail("States.JsonMerge: takes two objects and a boolean")
		}
		if deep {
			return nil, fail("States.JsonMerge: only a shallow merge (false) is supported, as in Step Functions")
		}
		out := deepCopy(a).(map[string]any)
		for k, v := range b {
			out[k] = deepCopy(v)
		}
		return out, nil
	case "States.MathRandom":
		lo, err1 := integer(0)
		hi, err2 := integer(1)
		if err1 != nil || err2 != nil || hi <= lo {
			return nil, fail("States.MathRandom: start and end must be integers with start < end")
		}
		r := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
		if len(args) == 3 {
			seed, err := integer(2)
			if err != nil {
				return nil, err
			}
			r = rand.New(rand.NewPCG(uint64(seed), 0))
		}
		return float64(lo + r.IntN(hi-lo)), nil
	case "States.MathAdd":
		a, err1 := integer(0)
		b, err2 := integer(1)
		if err1 != nil || err2 != nil {
			return nil, fail("States.MathAdd: both arguments must be integers")
		}
		return float64(a + b), nil
	case "States.StringSplit":
		s, err1 := str(0)
		sep, err2 := str(1)
		if err1 != nil || err2 != nil {
			return nil, fail("States.StringSplit: takes two strings")
		}
		return splitAny(s, sep), nil
	case "States.UUID":
		return uuid.NewString(), nil
	}
	return nil, fail("unknown intrinsic %s", name)
}

// unique keeps the first of equal values, in order: one pass and a set, where comparing every pair
// of a large array took seconds. Scalars are their own keys; objects and arrays are keyed by
// their JSON, whose object keys encoding/json sorts.
func unique(a []any) []any {
	type key struct {
		kind byte
		s    string
		f    float64
	}
	seen := map[key]bool{}
	out := []any{}
	for _, v := range a {
		var k key
		switch t := v.(type) {
		case nil:
			k.kind = 'z'
		case bool:
			k.kind = 'f'
			if t {
				k.kind = 't'
			}
		case float64:
			k.kind, k.f = 'n', t
		case string:
			k.kind, k.s = 's', t
		default:
			js, err := json.Marshal(t)
			if err != nil {
				continue
			}
			k.kind, k.s = 'j', string(js)
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, v)
		}
	}
	return out
}

// splitAny splits s at every character of sep (Step Functions' StringSplit takes a set of
// delimiter characters), dropping empty parts. The characters go into a set first: searching sep
// for each character of s is quadratic when both are large.
func splitAny(s, sep string) []any {
	delim := make(map[rune]bool, len(sep))
	for _, r := range sep {
		delim[r] = true
	}
	out := []any{}
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return delim[r] }) {
		out = append(out, part)
	}
	return out
}

// newHash returns the hash of one of hashAlgorithms (nil for another name).
func newHash(algo string) hash.Hash {
	switch algo {
	case "MD5":
		return md5.New()
	case "SHA-1":
		return sha1.New()
	case "SHA-256":
		return sha256.New()
	case "SHA-384":
		return sha512.New384()
	case "SHA-512":
		return sha512.New()
	}
	return nil
}

package jsonata

import (
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"
)

// ErrUndefined is returned by Evaluate when the expression has no value (JSONata's undefined,
// e.g. a path that matches nothing). It is not null.
var ErrUndefined = errors.New("jsonata: the expression evaluated to undefined (no value)")

// undefinedValue is JSONata's undefined inside an evaluation; Go's nil is JSON null.
type undefinedValue struct{}

var undef any = undefinedValue{}

func isUndef(v any) bool { return v == undef }

// array is an array the evaluator built: a sequence (the values a path or a function produced,
// which collapses to its single item) or a constructed array ([...], whose items a path does
// not flatten). JSON arrays from the input stay []any.
type array struct {
	items         []any
	isSeq         bool
	cons          bool
	keepSingleton bool
	// outer wraps an input array as the single item of the evaluation's input sequence, so that
	// a path applies to the array as a whole; $ unwraps it.
	outer bool
}

func newSeq(items ...any) *array { return &array{items: items, isSeq: true} }

// asArray reports whether v is an array of either kind, and its items.
func asArray(v any) ([]any, bool) {
	switch a := v.(type) {
	case []any:
		return a, true
	case *array:
		return a.items, true
	}
	return nil, false
}

func isSequence(v any) bool {
	a, ok := v.(*array)
	return ok && a.isSeq
}

// arrayify makes a sequence of v: its items when it is an array, else v alone (nothing for
// undefined).
func arrayify(v any) []any {
	if isUndef(v) {
		return nil
	}
	if items, ok := asArray(v); ok {
		return items
	}
	return []any{v}
}

// collapse applies JSONata's singleton rule to a sequence: no item is undefined, one item is
// that item.
func collapse(v any) any {
	a, ok := v.(*array)
	if !ok || !a.isSeq {
		return v
	}
	switch len(a.items) {
	case 0:
		return undef
	case 1:
		if !a.keepSingleton {
			return a.items[0]
		}
	}
	return a
}

// toJSON turns the evaluator's arrays into JSON arrays, copying only what changes. Objects the
// evaluator builds are converted when they are built, so it does not walk into maps.
func toJSON(v any) any { return toJSONAt(v, 0) }

func toJSONAt(v any, depth int) any {
	checkNesting(depth)
	switch a := v.(type) {
	case *array:
		out := make([]any, 0, len(a.items))
		for _, it := range a.items {
			if !isUndef(it) {
				out = append(out, toJSONAt(it, depth+1))
			}
		}
		return out
	case []any:
		for i, it := range a {
			if c := toJSONAt(it, depth+1); !sameValue(c, it) {
				out := make([]any, len(a))
				copy(out, a[:i])
				out[i] = c
				for j := i + 1; j < len(a); j++ {
					out[j] = toJSONAt(a[j], depth+1)
				}
				return out
			}
		}
	}
	return v
}

// sameValue is identity for the values toJSON may replace (arrays), equality otherwise.
func sameValue(a, b any) bool {
	switch a.(type) {
	case []any, *array, map[string]any:
		_, bIsArr := b.(*array)
		_, aIsArr := a.(*array)
		return !aIsArr && !bIsArr
	}
	return true
}

func isFunction(v any) bool {
	switch v.(type) {
	case *lambda, *builtin, *partial, *regexMatcher, *composed, *transformer:
		return true
	}
	return false
}

func isNumber(v any) bool { _, ok := v.(float64); return ok }

func isString(v any) bool { _, ok := v.(string); return ok }

// truthy is JSONata's boolean cast ($boolean).
func truthy(v any) bool { return truthyAt(v, 0) }

func truthyAt(v any, depth int) bool {
	checkNesting(depth)
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case float64:
		return x != 0
	case string:
		return x != ""
	case map[string]any:
		return len(x) > 0
	case undefinedValue:
		return false
	}
	if items, ok := asArray(v); ok {
		for _, it := range items {
			if truthyAt(it, depth+1) {
				return true
			}
		}
		return false
	}
	return false
}

func typeOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64:
		return "number"
	case string:
		return "string"
	case map[string]any:
		return "object"
	case undefinedValue:
		return "undefined"
	}
	if _, ok := asArray(v); ok {
		return "array"
	}
	if isFunction(v) {
		return "function"
	}
	return "undefined"
}

// deepEqual is JSONata's = on any two values.
func deepEqual(a, b any) bool { return deepEqualAt(a, b, 0) }

func deepEqualAt(a, b any, depth int) bool {
	checkNesting(depth)
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !deepEqualAt(v, w, depth+1) {
				return false
			}
		}
		return true
	case float64, string, bool, nil:
		return a == b
	}
	if xa, ok := asArray(a); ok {
		ya, ok := asArray(b)
		if !ok || len(xa) != len(ya) {
			return false
		}
		for i := range xa {
			if !deepEqualAt(xa[i], ya[i], depth+1) {
				return false
			}
		}
		return true
	}
	return a == b
}

// formatNumber writes a number as JavaScript does, after rounding to 15 significant digits as
// JSONata's $string does.
func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 15, 64), 64)
	return jsNumber(r)
}

// jsNumber is JavaScript's Number.prototype.toString for finite numbers.
func jsNumber(f float64) string {
	if f == 0 {
		return "0"
	}
	abs := math.Abs(f)
	if abs >= 1e-6 && abs < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // 1.5e-07
	mant, exp, _ := strings.Cut(s, "e")
	sign := exp[0]
	exp = strings.TrimLeft(exp[1:], "0")
	return mant + "e" + string(sign) + exp
}

// stringify is $string: strings as they are, everything else as JSON.
func (ev *evaluator) stringify(v any, pretty bool) (string, error) {
	if s, ok := v.(string); ok {
		return s, nil
	}
	if f, ok := v.(float64); ok {
		if math.IsInf(f, 0) || math.IsNaN(f) {
			return "", newErr("D3001", 0, "attempting to invoke string function on Infinity or NaN")
		}
		return formatNumber(f), nil
	}
	if isFunction(v) {
		return "", nil
	}
	var b strings.Builder
	if err := ev.writeJSON(&b, v, pretty, ""); err != nil {
		return "", err
	}
	return b.String(), nil
}

func (ev *evaluator) writeJSON(b *strings.Builder, v any, pretty bool, indent string) error {
	checkNesting(len(indent) / 2)
	if b.Len() > ev.opts.MaxSize {
		return ev.checkSize(b.Len(), 0)
	}
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return newErr("D1001", 0, "number out of range")
		}
		b.WriteString(formatNumber(x))
	case string:
		enc, _ := json.Marshal(x)
		b.Write(jsonUnescapeHTML(enc))
	case map[string]any:
		var keys []string
		for _, k := range ev.keysOf(x) {
			if !isUndef(x[k]) {
				keys = append(keys, k)
			}
		}
		b.WriteByte('{')
		inner := indent + "  "
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			if pretty {
				b.WriteString("\n" + inner)
			}
			enc, _ := json.Marshal(k)
			b.Write(jsonUnescapeHTML(enc))
			b.WriteByte(':')
			if pretty {
				b.WriteByte(' ')
			}
			if err := ev.writeJSON(b, x[k], pretty, inner); err != nil {
				return err
			}
		}
		if pretty && len(keys) > 0 {
			b.WriteString("\n" + indent)
		}
		b.WriteByte('}')
	default:
		if items, ok := asArray(v); ok {
			b.WriteByte('[')
			inner := indent + "  "
			n := 0
			for _, it := range items {
				if isUndef(it) {
					continue
				}
				if n > 0 {
					b.WriteByte(',')
				}
				n++
				if pretty {
					b.WriteString("\n" + inner)
				}
				if isFunction(it) {
					b.WriteString(`""`)
					continue
				}
				if err := ev.writeJSON(b, it, pretty, inner); err != nil {
					return err
				}
			}
			if pretty && n > 0 {
				b.WriteString("\n" + indent)
			}
			b.WriteByte(']')
			return nil
		}
		if isFunction(v) {
			b.WriteString(`""`)
			return nil
		}
		b.WriteString("null")
	}
	return nil
}

// jsonUnescapeHTML undoes encoding/json's escaping of <, > and &, which JSON.stringify keeps.
func jsonUnescapeHTML(b []byte) []byte {
	s := string(b)
	s = strings.ReplaceAll(s, `\u003c`, "<")
	s = strings.ReplaceAll(s, `\u003e`, ">")
	s = strings.ReplaceAll(s, `\u0026`, "&")
	s = strings.ReplaceAll(s, `\u2028`, "\u2028")
	s = strings.ReplaceAll(s, `\u2029`, "\u2029")
	return []byte(s)
}

// maxNesting bounds how deeply the recursive walks over values (conversion, equality, copying,
// formatting) may go: the evaluator can build values nested deeper than any input, e.g. by
// wrapping an array in itself in a $reduce.
const maxNesting = 10_000

type nestingPanic struct{}

// checkNesting stops a walk that went too deep; Evaluate turns it into a U1001 error.
func checkNesting(depth int) {
	if depth > maxNesting {
		panic(nestingPanic{})
	}
}

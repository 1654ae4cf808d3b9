package asl

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/millrace-io/millrace/internal/jsonata"
)

// Query languages (the top-level and per-state QueryLanguage field).
const (
	QueryJSONPath = "JSONPath"
	QueryJSONata  = "JSONata"
)

// ErrQueryEvaluation is raised when a JSONata expression fails, exceeds its budget, returns
// nothing (undefined) or returns a value of the wrong type for its field.
const ErrQueryEvaluation = "States.QueryEvaluationError"

// Budgets of JSONata evaluations. A tenant writes the expressions and the shared manager
// evaluates them, so each is bounded in steps, nesting and the size of what it builds.
const (
	// MaxJSONataSteps bounds the evaluation steps of one phase of one state: all the expressions
	// it evaluates to start (Arguments, Items, ItemSelector, timeouts, Condition) or to finish
	// (Output and Assign). Beyond it the state fails with States.QueryEvaluationError. Steps are
	// charged to the step's Budget.Bytes at jsonataStepBytes each, so one phase may take a
	// whole step's budget, as one state's paths may.
	MaxJSONataSteps = DefaultStepBytes / jsonataStepBytes
	// MaxJSONataDepth bounds how deeply an evaluation nests (function calls included).
	MaxJSONataDepth = 1000
	// jsonataStepBytes is what one evaluation step costs in Budget.Bytes.
	jsonataStepBytes = 8
)

// QueryError is States.QueryEvaluationError.
type QueryError struct{ Msg string }

func (e *QueryError) Error() string { return e.Msg }

func queryErrorf(format string, a ...any) error {
	return &QueryError{Msg: fmt.Sprintf(format, a...)}
}

// Value is the value of a field that accepts JSONata: any JSON value, where every string wholly
// wrapped in {% %}, however deep inside objects and arrays, is a JSONata expression. Expressions
// are compiled once, when the definition is parsed.
type Value struct {
	raw any
	// static: no expression inside; raw is the value.
	static bool
	expr   *jexpr
	// fields (sorted by key) or items: an object or array with expressions inside.
	fields []jfield
	items  []*Value
	isObj  bool
}

type jfield struct {
	key string
	val *Value
}

// jexpr is one compiled JSONata expression.
type jexpr struct {
	src  string
	prog *jsonata.Expression
	// refs are the names ($name) it mentions: only those are bound when it is evaluated.
	refs []string
	// root and path are set when the expression is a plain path ($states.input.a.b, $name.a):
	// it is then read without the evaluator, which copies nothing but walks the whole result to
	// check it (a Map's Items are read again as items start).
	root string
	path []string
	// noContext: every $states it mentions reads .input, .result or .errorOutput, so the
	// context object need not be built for it.
	noContext bool
}

// Raw is the value as written in the definition.
func (v *Value) Raw() any {
	if v == nil {
		return nil
	}
	return v.raw
}

// Expression is the JSONata text when the whole value is one expression ("" otherwise).
func (v *Value) Expression() string {
	if v == nil || v.expr == nil {
		return ""
	}
	return v.expr.src
}

const wrapMessage = "a JSONata expression must be the whole string, wrapped in {% %} (no text before {% or after %})"

// isExpression reports whether s is a JSONata string: wholly wrapped in {% %}.
func isExpression(s string) bool {
	return len(s) >= 4 && strings.HasPrefix(s, "{%") && strings.HasSuffix(s, "%}")
}

// compileValue compiles a JSONata field value; errors carry paths under at.
func compileValue(v any, at string) (*Value, []FieldError) {
	var errs []FieldError
	out := compileAt(v, at, &errs)
	return out, errs
}

func compileAt(v any, at string, errs *[]FieldError) *Value {
	switch t := v.(type) {
	case string:
		if isExpression(t) {
			e, err := compileExpr(t[2 : len(t)-2])
			if err != nil {
				*errs = append(*errs, FieldError{Path: at, Message: err.Error()})
				return &Value{raw: v, static: true}
			}
			return &Value{raw: v, expr: e}
		}
		if strings.Contains(t, "{%") {
			*errs = append(*errs, FieldError{Path: at, Message: wrapMessage})
		}
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out := &Value{raw: v, isObj: true, static: true}
		for _, k := range keys {
			if strings.HasSuffix(k, ".$") {
				*errs = append(*errs, FieldError{Path: at + "." + k, Message: `keys ending in ".$" are JSONPath; in a JSONata state write the value as "{% expression %}"`})
			}
			c := compileAt(t[k], at+"."+k, errs)
			out.fields = append(out.fields, jfield{key: k, val: c})
			out.static = out.static && c.static
		}
		if out.static {
			out.fields = nil
		}
		return out
	case []any:
		out := &Value{raw: v, static: true}
		for i, c := range t {
			cv := compileAt(c, fmt.Sprintf("%s[%d]", at, i), errs)
			out.items = append(out.items, cv)
			out.static = out.static && cv.static
		}
		if out.static {
			out.items = nil
		}
		return out
	}
	return &Value{raw: v, static: true}
}

func compileExpr(src string) (*jexpr, error) {
	prog, err := jsonata.Compile(src)
	if err != nil {
		var je *jsonata.Error
		if errors.As(err, &je) {
			return nil, fmt.Errorf("JSONata syntax error %s at position %d: %s", je.Code, je.Position, je.Message)
		}
		return nil, fmt.Errorf("JSONata syntax error: %v", err)
	}
	x := &jexpr{src: src, prog: prog, refs: variableRefs(src), noContext: true}
	for rest := src; ; {
		i := strings.Index(rest, "$states")
		if i < 0 {
			break
		}
		rest = rest[i+len("$states"):]
		if !strings.HasPrefix(rest, ".input") && !strings.HasPrefix(rest, ".result") && !strings.HasPrefix(rest, ".errorOutput") {
			x.noContext = false
		}
	}
	if m := plainPath.FindStringSubmatch(src); m != nil {
		x.root = m[1]
		if m[2] != "" {
			x.path = strings.Split(m[2][1:], ".")
		}
		for _, seg := range x.path {
			if slices.Contains([]string{"true", "false", "null", "and", "or", "in", "function"}, seg) {
				x.root, x.path = "", nil
				break
			}
		}
		if x.root == "states" && (len(x.path) == 0 || !slices.Contains([]string{"input", "result", "errorOutput", "context"}, x.path[0])) {
			x.root, x.path = "", nil
		}
	}
	return x, nil
}

var plainPath = regexp.MustCompile(`^\s*\$([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*$`)

// plain reads a plain path expression: handled is false when it must be evaluated instead (a
// step into an array, which JSONata maps over; a name that is not a variable), defined false
// when it selects nothing.
func (e *jenv) plain(x *jexpr) (v any, handled, defined bool) {
	path := x.path
	if x.root == "states" {
		switch path[0] {
		case "input":
			v = e.input
		case "result":
			if !e.hasResult {
				return nil, true, false
			}
			v = e.result
		case "errorOutput":
			if !e.hasError {
				return nil, true, false
			}
			v = e.errorOutput
		case "context":
			v = e.statesVar(false)["context"]
		}
		path = path[1:]
	} else {
		var ok bool
		if v, ok = e.s.lookupVar(x.root); !ok {
			return nil, false, false
		}
	}
	for _, seg := range path {
		switch t := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = t[seg]; !ok {
				return nil, true, false
			}
		case []any:
			return nil, false, false
		default:
			return nil, true, false
		}
	}
	return v, true, true
}

// variableRefs lists the distinct names mentioned as $name in an expression (string literals
// included, which costs nothing but a binding). Step Functions offers no $eval, so an expression
// can read no variable it does not name.
func variableRefs(src string) []string {
	var out []string
	for i := 0; i < len(src); i++ {
		if src[i] != '$' {
			continue
		}
		j := i + 1
		for j < len(src) {
			r, size := utf8.DecodeRuneInString(src[j:])
			if r != '_' && !(r >= 'a' && r <= 'z') && !(r >= 'A' && r <= 'Z') && !(r >= '0' && r <= '9') && r < utf8.RuneSelf {
				break
			}
			j += size
		}
		if j > i+1 {
			if name := src[i+1 : j]; !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
		i = j - 1
	}
	return out
}

// jenv is what JSONata expressions of one phase of one state see: $states and the variables.
type jenv struct {
	s     *stepper
	input any
	// result ($states.result) and errorOutput ($states.errorOutput), where the field has them.
	result, errorOutput any
	hasResult, hasError bool
	// ctx is the context object with the phase's extras (Task token, Map item); nil: the
	// state's context object, built when an expression asks for $states.
	ctx    map[string]any
	states map[string]any
	// steps are the evaluation steps left to the phase.
	steps int
}

func (s *stepper) newEnv(ctx map[string]any) *jenv {
	return &jenv{s: s, input: s.run.Input, ctx: ctx, steps: MaxJSONataSteps}
}

// statesVar is $states, with its context object unless noContext.
func (e *jenv) statesVar(noContext bool) map[string]any {
	if e.states == nil {
		e.states = map[string]any{"input": e.input}
		if e.hasResult {
			e.states["result"] = e.result
		}
		if e.hasError {
			e.states["errorOutput"] = e.errorOutput
		}
	}
	if _, ok := e.states["context"]; !ok && !noContext {
		ctx := e.ctx
		if ctx == nil {
			ctx = e.s.contextMap().(map[string]any)
		}
		e.states["context"] = ctx
	}
	return e.states
}

// eval evaluates the value; field names it in errors ("Arguments/name").
func (v *Value) eval(e *jenv, field string) (any, error) {
	switch {
	case v.static:
		return v.raw, nil
	case v.expr != nil:
		return e.run(v.expr, field)
	case v.isObj:
		out := make(map[string]any, len(v.fields))
		for _, f := range v.fields {
			c, err := f.val.eval(e, field+"/"+f.key)
			if err != nil {
				return nil, err
			}
			out[f.key] = c
		}
		return out, nil
	}
	out := make([]any, len(v.items))
	for i, it := range v.items {
		c, err := it.eval(e, fmt.Sprintf("%s[%d]", field, i))
		if err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, nil
}

func (e *jenv) run(x *jexpr, field string) (any, error) {
	if e.steps <= 0 {
		return nil, queryErrorf("The JSONata expression '%s' specified for the field '%s' was not evaluated: the state's expressions took their %d evaluation steps", x.src, field, MaxJSONataSteps)
	}
	if x.root != "" {
		if v, handled, defined := e.plain(x); handled {
			e.steps--
			e.s.opt.Budget.Bytes -= jsonataStepBytes
			if !defined {
				return nil, queryErrorf("The JSONata expression '%s' specified for the field '%s' returned nothing (undefined).", x.src, field)
			}
			return v, nil
		}
	}
	vars := make(map[string]any, len(x.refs))
	for _, name := range x.refs {
		if name == "states" {
			vars[name] = e.statesVar(x.noContext)
		} else if v, ok := e.s.lookupVar(name); ok {
			vars[name] = v // a workflow variable hides a function of the same name
		} else if f, ok := hostFunctions[name]; ok {
			vars[name] = f
		}
	}
	used := 0
	out, err := x.prog.EvaluateUndefined(context.Background(), vars, jsonata.Options{
		MaxSteps: e.steps, MaxDepth: MaxJSONataDepth, MaxSize: DefaultMaxPayloadBytes, Now: e.s.now, Steps: &used})
	e.steps -= used
	e.s.opt.Budget.Bytes -= used * jsonataStepBytes
	switch {
	case errors.Is(err, jsonata.ErrUndefined):
		return nil, queryErrorf("The JSONata expression '%s' specified for the field '%s' returned nothing (undefined).", x.src, field)
	case jsonata.IsLimit(err):
		return nil, queryErrorf("The JSONata expression '%s' specified for the field '%s' exceeded its budget: %v", x.src, field, err)
	case err != nil:
		return nil, queryErrorf("An error occurred while evaluating the JSONata expression '%s' specified for the field '%s': %v", x.src, field, err)
	}
	return out, nil
}

// evalInt evaluates a field that must give an integer in [lo, hi].
func (v *Value) evalInt(e *jenv, field string, lo, hi int) (int, error) {
	out, err := v.eval(e, field)
	if err != nil {
		return 0, err
	}
	f, ok := out.(float64)
	if !ok || f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		return 0, queryErrorf("The JSONata expression '%s' specified for the field '%s' returned %s, not an integer from %d to %d.", v.Expression(), field, shortJSON(out), lo, hi)
	}
	return int(f), nil
}

// evalNumber evaluates a field that must give a number in [lo, hi].
func (v *Value) evalNumber(e *jenv, field string, lo, hi float64) (float64, error) {
	out, err := v.eval(e, field)
	if err != nil {
		return 0, err
	}
	f, ok := out.(float64)
	if !ok || f < lo || f > hi {
		return 0, queryErrorf("The JSONata expression '%s' specified for the field '%s' returned %s, not a number from %g to %g.", v.Expression(), field, shortJSON(out), lo, hi)
	}
	return f, nil
}

// evalString evaluates a field that must give a string.
func (v *Value) evalString(e *jenv, field string) (string, error) {
	out, err := v.eval(e, field)
	if err != nil {
		return "", err
	}
	str, ok := out.(string)
	if !ok {
		return "", queryErrorf("The JSONata expression '%s' specified for the field '%s' returned %s, not a string.", v.Expression(), field, shortJSON(out))
	}
	return str, nil
}

// shortJSON is a value's JSON for an error message, cut at 100 bytes.
func shortJSON(v any) string {
	if n, ok := jsonSize(v, 100); !ok || n > 100 {
		return "a value of more than 100 bytes"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// hostFunctions are the functions Step Functions adds to JSONata's library; $eval is not
// available (Step Functions offers $parse instead).
var hostFunctions = map[string]*jsonata.Function{}

func init() {
	def := func(name, sig string, fn func(args []any) (any, error)) {
		f, err := jsonata.NewFunction(name, sig, func(_ context.Context, args []any) (any, error) { return fn(args) })
		if err != nil {
			panic(fmt.Sprintf("host function %s: %v", name, err))
		}
		hostFunctions[name] = f
	}
	def("partition", "<an:a>", func(args []any) (any, error) {
		a, _ := args[0].([]any)
		size, ok := integerArg(args, 1)
		if !ok || size <= 0 {
			return nil, fmt.Errorf("$partition: the chunk size must be a positive integer")
		}
		out := make([]any, 0, (len(a)+size-1)/size)
		for i := 0; i < len(a); i += size {
			out = append(out, slices.Clone(a[i:min(i+size, len(a))]))
		}
		return out, nil
	})
	def("range", "<nnn:a>", func(args []any) (any, error) {
		start, ok1 := integerArg(args, 0)
		end, ok2 := integerArg(args, 1)
		step, ok3 := integerArg(args, 2)
		if !ok1 || !ok2 || !ok3 || step == 0 {
			return nil, fmt.Errorf("$range: start, end and a non-zero step must be integers")
		}
		out := []any{}
		for i := start; (step > 0 && i <= end) || (step < 0 && i >= end); i += step {
			if len(out) == 1000 {
				return nil, fmt.Errorf("$range: more than 1000 items")
			}
			out = append(out, float64(i))
		}
		return out, nil
	})
	def("hash", "<ss:s>", func(args []any) (any, error) {
		data, _ := args[0].(string)
		algo, _ := args[1].(string)
		h := newHash(algo)
		if h == nil {
			return nil, fmt.Errorf("$hash: unknown algorithm %q (%s)", algo, strings.Join(hashAlgorithms, ", "))
		}
		h.Write([]byte(data))
		return hex.EncodeToString(h.Sum(nil)), nil
	})
	def("random", "<n?:n>", func(args []any) (any, error) {
		if len(args) == 0 || args[0] == nil {
			return rand.Float64(), nil
		}
		seed, ok := integerArg(args, 0)
		if !ok {
			return nil, fmt.Errorf("$random: the seed must be an integer")
		}
		return rand.New(rand.NewPCG(uint64(seed), 0)).Float64(), nil
	})
	def("uuid", "<:s>", func([]any) (any, error) { return uuid.NewString(), nil })
	def("parse", "<s:j>", func(args []any) (any, error) {
		s, _ := args[0].(string)
		var v any
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return nil, fmt.Errorf("$parse: not JSON: %v", err)
		}
		return v, nil
	})
	def("eval", "", func([]any) (any, error) {
		return nil, fmt.Errorf("$eval is not available in Step Functions' JSONata: use $parse")
	})
}

func integerArg(args []any, i int) (int, bool) {
	if i >= len(args) {
		return 0, false
	}
	f, ok := args[i].(float64)
	if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return 0, false
	}
	return int(f), true
}

package jsonata

import (
	"context"
	"time"
)

// Options bound one evaluation. A zero field takes its default; there is no unlimited setting.
type Options struct {
	// MaxSteps is how many expression nodes an evaluation may evaluate (default 5,000,000).
	MaxSteps int
	// MaxDepth is how deeply evaluations may nest, function calls included (default 2,000);
	// calls in tail position do not nest.
	MaxDepth int
	// MaxSize is the largest string (bytes), array (items) or object (keys) an evaluation may
	// build (default 1,048,576).
	MaxSize int
	// Now fixes the time $now() and $millis() report (default: when the evaluation starts).
	Now time.Time
	// Steps, when set, receives the evaluation steps the evaluation took (also when it fails), so
	// that a caller can charge them to a budget of its own.
	Steps *int
}

const (
	defaultMaxSteps = 5_000_000
	defaultMaxDepth = 2_000
	defaultMaxSize  = 1 << 20
)

func (o Options) withDefaults() Options {
	if o.MaxSteps <= 0 {
		o.MaxSteps = defaultMaxSteps
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = defaultMaxDepth
	}
	if o.MaxSize <= 0 {
		o.MaxSize = defaultMaxSize
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	return o
}

// Expression is a compiled JSONata expression. It is immutable and safe for concurrent use.
type Expression struct {
	source string
	root   *node
}

// Compile parses an expression. Syntax errors are *Error values with JSONata's S0xxx codes.
func Compile(expr string) (compiled *Expression, err error) {
	defer func() {
		if p := recover(); p != nil {
			compiled, err = nil, newErr(CodeInternal, 0, "internal error compiling the expression: %v", p)
		}
	}()
	raw, err := parse(expr)
	if err != nil {
		return nil, err
	}
	root, err := process(raw)
	if err != nil {
		return nil, err
	}
	markParentPaths(root)
	return &Expression{source: expr, root: root}, nil
}

// String is the expression's source text.
func (e *Expression) String() string { return e.source }

// Evaluate evaluates the expression against input (a JSON value as encoding/json decodes it:
// map[string]any, []any, float64, string, bool or nil) with the variables vars bound (without
// their $). It returns ErrUndefined when the expression has no value, and an *Error for
// JSONata's errors and for exceeding opts or ctx.
func (e *Expression) Evaluate(ctx context.Context, input any, vars map[string]any, opts Options) (any, error) {
	return e.evaluate(ctx, input, false, vars, opts)
}

// EvaluateUndefined evaluates the expression with no input at all (JSONata's undefined input,
// which is not null).
func (e *Expression) EvaluateUndefined(ctx context.Context, vars map[string]any, opts Options) (any, error) {
	return e.evaluate(ctx, nil, true, vars, opts)
}

func (e *Expression) evaluate(ctx context.Context, input any, noInput bool, vars map[string]any, opts Options) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(nestingPanic); ok {
				result, err = nil, newErr(CodeDepth, 0, "a value is nested more than %d deep", maxNesting)
				return
			}
			// a bug of ours must fail this evaluation, not the manager that runs it
			result, err = nil, newErr(CodeInternal, 0, "internal error evaluating the expression: %v", p)
		}
	}()
	if noInput {
		input = undef
	}
	if a, ok := input.([]any); ok {
		input = &array{items: []any{a}, isSeq: true, outer: true}
	}
	ev := &evaluator{ctx: ctx, opts: opts.withDefaults(), root: input}
	if opts.Steps != nil {
		defer func() { *opts.Steps = ev.steps }()
	}
	global := &env{vars: make(map[string]any, len(vars))}
	for k, v := range vars {
		if f, ok := v.(*Function); ok {
			v = f.b
		}
		global.vars[k] = v
	}
	v, err := ev.eval(e.root, input, global)
	if err != nil {
		return nil, err
	}
	if tc, ok := v.(*tailCall); ok {
		if v, err = ev.apply(tc.fn, tc.args, input, tc.pos); err != nil {
			return nil, err
		}
	}
	if isUndef(v) {
		return nil, ErrUndefined
	}
	out := toJSON(v)
	if nestedDeeperThan(out, maxNesting) {
		return nil, newErr(CodeDepth, 0, "the result is nested more than %d deep", maxNesting)
	}
	return out, nil
}

// nestedDeeperThan measures a result without recursion, so that whoever encodes it next (with
// a recursive encoder) cannot be sent into a stack overflow.
func nestedDeeperThan(v any, limit int) bool {
	type frame struct {
		v     any
		depth int
	}
	stack := []frame{{v, 0}}
	for len(stack) > 0 {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if f.depth > limit {
			return true
		}
		switch x := f.v.(type) {
		case map[string]any:
			for _, c := range x {
				stack = append(stack, frame{c, f.depth + 1})
			}
		case []any:
			for _, c := range x {
				stack = append(stack, frame{c, f.depth + 1})
			}
		}
	}
	return false
}

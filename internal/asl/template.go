package asl

import (
	"fmt"
	"strings"
)

// Template is a payload template (Parameters, ResultSelector, ItemSelector): a JSON value whose
// object keys ending in ".$" take their value from a path or an intrinsic function call.
type Template struct {
	raw any
	// compiled holds every ".$" expression, parsed once.
	compiled map[string]expr
	// cost is that of the paths and intrinsic calls a resolution evaluates (see Budget).
	cost cost
}

// expr is a compiled path or intrinsic call.
type expr struct {
	path *Path
	call *call
}

// Expr is a path or an intrinsic function call, where a field accepts either (Fail's ErrorPath
// and CausePath).
type Expr struct{ expr }

// ParseExpr parses a path or an intrinsic function call.
func ParseExpr(s string) (Expr, error) {
	if IsIntrinsic(s) {
		c, err := ParseIntrinsic(s)
		if err != nil {
			return Expr{}, err
		}
		return Expr{expr{call: c}}, nil
	}
	p, err := ParsePath(s)
	if err != nil {
		return Expr{}, err
	}
	return Expr{expr{path: &p}}, nil
}

// Eval evaluates the expression against the input and the context object.
func (e Expr) Eval(input, context any) (any, error) { return e.eval(input, context) }

func (e expr) eval(input, context any) (any, error) {
	if e.call != nil {
		return e.call.eval(input, context)
	}
	return e.path.Get(input, context)
}

// ParseTemplate checks every ".$" field of a payload template, returning errors with the JSON path
// (relative to the template) of each bad one.
func ParseTemplate(raw any) (Template, []FieldError) {
	var errs []FieldError
	compiled := map[string]expr{}
	var total cost
	walkTemplate(raw, "", func(at, src string) {
		if IsIntrinsic(src) {
			c, err := ParseIntrinsic(src)
			if err != nil {
				errs = append(errs, FieldError{Path: at, Message: err.Error()})
				return
			}
			compiled[src] = expr{call: c}
			total = total.plus(c.cost())
			return
		}
		p, err := ParsePath(src)
		if err != nil {
			errs = append(errs, FieldError{Path: at, Message: err.Error()})
			return
		}
		compiled[src] = expr{path: &p}
		total = total.plus(pathCost(&p))
	})
	errs = append(errs, duplicateFields(raw, "")...)
	return Template{raw: raw, compiled: compiled, cost: total}, errs
}

func walkTemplate(v any, at string, visit func(at, expr string)) {
	switch t := v.(type) {
	case map[string]any:
		for k, c := range t {
			if strings.HasSuffix(k, ".$") {
				s, ok := c.(string)
				if !ok {
					visit(at+"."+k, fmt.Sprint(c)+" (not a string)")
					continue
				}
				visit(at+"."+k, s)
				continue
			}
			walkTemplate(c, at+"."+k, visit)
		}
	case []any:
		for i, c := range t {
			walkTemplate(c, fmt.Sprintf("%s[%d]", at, i), visit)
		}
	}
}

// Resolve builds the payload from the input and the context object. A path that selects nothing
// or a failing intrinsic is an error (States.Runtime / States.IntrinsicFailure).
func (t Template) Resolve(input, context any) (any, error) {
	return t.resolve(t.raw, input, context)
}

func (tm Template) resolve(v any, input, context any) (any, error) {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, c := range t {
			if name, ok := strings.CutSuffix(k, ".$"); ok {
				s, _ := c.(string)
				var val any
				var err error
				if e, ok := tm.compiled[s]; ok {
					val, err = e.eval(input, context)
				} else {
					val, err = evalExpr(s, input, context)
				}
				if err != nil {
					return nil, fmt.Errorf("field %s: %w", k, err)
				}
				out[name] = val
				continue
			}
			r, err := tm.resolve(c, input, context)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, c := range t {
			r, err := tm.resolve(c, input, context)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

func evalExpr(s string, input, context any) (any, error) {
	if IsIntrinsic(s) {
		c, err := ParseIntrinsic(s)
		if err != nil {
			return nil, &IntrinsicError{Msg: err.Error()}
		}
		return c.eval(input, context)
	}
	p, err := ParsePath(s)
	if err != nil {
		return nil, err
	}
	return p.Get(input, context)
}

package jsonatasuite

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/millrace-io/millrace/internal/jsonata"
)

// candidate is one JSONata implementation.
type candidate struct {
	name string
	eval Evaluator
	// bench compiles once and returns an evaluation of that expression with $states bound.
	bench func(expr string) (func(states map[string]any) (any, error), error)
}

// candidates starts with ours, internal/jsonata, which needs no build tag; the jsonatasuite tag
// adds the external ones.
var candidates = []candidate{{
	name: "internal/jsonata",
	eval: func(expr string, input any, undefined bool, bindings map[string]any) (any, error) {
		e, err := jsonata.Compile(expr)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var v any
		if undefined {
			v, err = e.EvaluateUndefined(ctx, bindings, jsonata.Options{})
		} else {
			v, err = e.Evaluate(ctx, input, bindings, jsonata.Options{})
		}
		if errors.Is(err, jsonata.ErrUndefined) {
			return nil, ErrUndefined
		}
		return v, err
	},
	bench: func(expr string) (func(map[string]any) (any, error), error) {
		e, err := jsonata.Compile(expr)
		if err != nil {
			return nil, err
		}
		return func(states map[string]any) (any, error) {
			return e.Evaluate(context.Background(), nil, map[string]any{"states": states}, jsonata.Options{})
		}, nil
	},
}}

func candidateNamed(name string) *candidate {
	for i := range candidates {
		if candidates[i].name == name {
			return &candidates[i]
		}
	}
	return nil
}

func TestOurImplementationIsACandidate(t *testing.T) {
	c := candidateNamed("internal/jsonata")
	if c == nil {
		t.Fatal("internal/jsonata is not among the candidates")
	}
	v, err := c.eval("$sum(a)", map[string]any{"a": []any{1.0, 2.0}}, false, nil)
	if err != nil || v != 3.0 {
		t.Fatalf("got %v, %v", v, err)
	}
}

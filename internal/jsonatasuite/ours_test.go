package jsonatasuite

import (
	"context"
	"testing"

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
	eval: Ours,
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

package jsonatasuite

import (
	"context"
	"errors"
	"time"

	"github.com/millrace-io/millrace/internal/jsonata"
)

// Ours evaluates a case with internal/jsonata, compiled anew, within 10 s (its context ends the
// evaluation, not only the wait for it); JSONata's undefined is ErrUndefined.
func Ours(expr string, input any, undefined bool, bindings map[string]any) (any, error) {
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
}

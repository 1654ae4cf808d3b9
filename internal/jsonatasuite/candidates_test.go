//go:build jsonatasuite

package jsonatasuite

import (
	"errors"

	blues "github.com/blues/jsonata-go"
	xiatechs "github.com/xiatechs/jsonata-go"
)

func init() { candidates = append(candidates, external...) }

// external: github.com/blues/jsonata-go v1.5.4 and its fork github.com/xiatechs/jsonata-go
// v1.8.8 (github.com/sandrolain/gosonata and github.com/siyul-park/jsonata-go are refused by the
// proxy). Both compile and evaluate in two calls and bind variables with RegisterVars on the
// compiled expression; neither takes a context.
var external = []candidate{
	{
		name: "blues-v1.5.4",
		eval: func(expr string, input any, undefined bool, bindings map[string]any) (any, error) {
			e, err := blues.Compile(expr)
			if err != nil {
				return nil, err
			}
			if len(bindings) > 0 {
				if err := e.RegisterVars(bindings); err != nil {
					return nil, err
				}
			}
			if undefined {
				input = nil
			}
			v, err := e.Eval(input)
			if errors.Is(err, blues.ErrUndefined) {
				return nil, ErrUndefined
			}
			return v, err
		},
		bench: func(expr string) (func(map[string]any) (any, error), error) {
			e, err := blues.Compile(expr)
			if err != nil {
				return nil, err
			}
			return func(states map[string]any) (any, error) {
				if err := e.RegisterVars(map[string]any{"states": states}); err != nil {
					return nil, err
				}
				return e.Eval(nil)
			}, nil
		},
	},
	{
		name: "xiatechs-v1.8.8",
		eval: func(expr string, input any, undefined bool, bindings map[string]any) (any, error) {
			e, err := xiatechs.Compile(expr)
			if err != nil {
				return nil, err
			}
			if len(bindings) > 0 {
				if err := e.RegisterVars(bindings); err != nil {
					return nil, err
				}
			}
			if undefined {
				input = nil
			}
			v, err := e.Eval(input)
			if errors.Is(err, xiatechs.ErrUndefined) {
				return nil, ErrUndefined
			}
			return v, err
		},
		bench: func(expr string) (func(map[string]any) (any, error), error) {
			e, err := xiatechs.Compile(expr)
			if err != nil {
				return nil, err
			}
			return func(states map[string]any) (any, error) {
				if err := e.RegisterVars(map[string]any{"states": states}); err != nil {
					return nil, err
				}
				return e.Eval(nil)
			}, nil
		},
	},
}

package jsonata

import (
	"context"
	"errors"
	"testing"
)

// FuzzCompileAndEvaluate: no expression text, however malformed, may panic or fail internally.
//
//	go test -run '^$' -fuzz FuzzCompileAndEvaluate -fuzztime 30s ./internal/jsonata
func FuzzCompileAndEvaluate(f *testing.F) {
	for _, seed := range []string{
		"Account.Order[0].Product{Name: Price}", "$map([1..3], function($v, $i){$v * $i})",
		"library.loans@$l.books@$b[$l.isbn=$b.isbn].{'t': $b.title}", "a.b#$i[$i>0].%.c",
		"$formatNumber(1234.5, '#,##0.00')", "$fromMillis(0, '[Y0001]-[M01]-[D01]')",
		"$ ~> |a|{'b': 1}, ['c']|", "/a+/i", "$sort(x, function($a, $b){$a > $b})", "**.x^(>y)",
	} {
		f.Add(seed)
	}
	input := map[string]any{"a": []any{map[string]any{"b": 1.0, "c": "x"}}, "x": []any{3.0, 1.0, 2.0}}
	f.Fuzz(func(t *testing.T, expr string) {
		e, err := Compile(expr)
		if err != nil {
			var je *Error
			if !errors.As(err, &je) {
				t.Fatalf("compile error without a code: %v", err)
			}
			return
		}
		_, err = e.Evaluate(context.Background(), input, nil, Options{MaxSteps: 100_000, MaxSize: 100_000})
		var je *Error
		if errors.As(err, &je) && je.Code == CodeInternal {
			t.Fatalf("%q: %v", expr, err)
		}
	})
}

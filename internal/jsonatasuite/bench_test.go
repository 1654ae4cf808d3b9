//go:build jsonatasuite

package jsonatasuite

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/millrace-io/millrace/internal/asl"
)

// benchInput is a typical state input: a few scalars and an order of ten items.
func benchInput() map[string]any {
	items := make([]any, 10)
	for i := range items {
		items[i] = map[string]any{"sku": fmt.Sprintf("sku-%d", i), "price": float64(i * 3), "qty": float64(i%3 + 1)}
	}
	return map[string]any{"a": 41.0, "first": "Ada", "last": "Lovelace", "items": items}
}

// benchExprs are Step Functions-style JSONata expressions, each with the closest JSONPath form
// the engine evaluates today (a path, an intrinsic, or a payload template), which is the
// baseline measured in the same run.
var benchExprs = []struct {
	name, jsonata string
	jsonpath      any // a path or intrinsic string, or a payload template object
}{
	{"add", "$states.input.a + 1", "States.MathAdd($.a, 1)"},
	{"concat", "$states.input.first & ' ' & $states.input.last", "States.Format('{} {}', $.first, $.last)"},
	{"map", "$map($states.input.items, function($i){ $i.price * $i.qty })", "$.items[*].price"},
	{"filter", "$states.input.items[price > 10]", "$.items[?(@.price > 10)]"},
	{"sum", "$sum($states.input.items.price)", "$.items[*].price"},
	{"object", "{'name': $states.input.first & ' ' & $states.input.last, 'n': $count($states.input.items), 'skus': $states.input.items.sku}",
		map[string]any{"name.$": "States.Format('{} {}', $.first, $.last)", "n.$": "States.ArrayLength($.items)", "skus.$": "$.items[*].sku"}},
}

// BenchmarkExpressions evaluates each expression, compiled once, per candidate (binding $states
// each time, as a state would) and the engine's JSONPath equivalent, plus an encoding/json round
// trip of the input as a floor every evaluation that copies its input pays.
func BenchmarkExpressions(b *testing.B) {
	input := benchInput()
	for _, e := range benchExprs {
		b.Run(e.name+"/jsonpath-baseline", func(b *testing.B) {
			eval := jsonPathEval(b, e.jsonpath)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := eval(input); err != nil {
					b.Fatal(err)
				}
			}
		})
		for _, cand := range candidates {
			b.Run(e.name+"/"+cand.name, func(b *testing.B) {
				eval, err := cand.bench(e.jsonata)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					if _, err := eval(map[string]any{"input": input}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
	b.Run("json-roundtrip-of-input", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			raw, _ := json.Marshal(input)
			var v any
			if err := json.Unmarshal(raw, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func jsonPathEval(b *testing.B, src any) func(any) (any, error) {
	if s, ok := src.(string); ok {
		e, err := asl.ParseExpr(s)
		if err != nil {
			b.Fatal(err)
		}
		return func(in any) (any, error) { return e.Eval(in, nil) }
	}
	t, errs := asl.ParseTemplate(src)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	return func(in any) (any, error) { return t.Resolve(in, nil) }
}

// TestBenchExpressionsAgree checks that each candidate answers the benchmark's expressions as
// JSONata does, so the benchmark times correct work.
func TestBenchExpressionsAgree(t *testing.T) {
	want := map[string]string{
		"add":    `42`,
		"concat": `"Ada Lovelace"`,
		"map":    `[0,6,18,9,24,45,18,42,72,27]`,
		"filter": `[{"price":12,"qty":2,"sku":"sku-4"},{"price":15,"qty":3,"sku":"sku-5"},{"price":18,"qty":1,"sku":"sku-6"},{"price":21,"qty":2,"sku":"sku-7"},{"price":24,"qty":3,"sku":"sku-8"},{"price":27,"qty":1,"sku":"sku-9"}]`,
		"sum":    `135`,
		"object": `{"n":10,"name":"Ada Lovelace","skus":["sku-0","sku-1","sku-2","sku-3","sku-4","sku-5","sku-6","sku-7","sku-8","sku-9"]}`,
	}
	for _, cand := range candidates {
		for _, e := range benchExprs {
			eval, err := cand.bench(e.jsonata)
			if err != nil {
				t.Errorf("%s %s: %v", cand.name, e.name, err)
				continue
			}
			v, err := eval(map[string]any{"input": benchInput()})
			got, _ := json.Marshal(v)
			if err != nil || string(got) != want[e.name] {
				t.Errorf("%s %s: got %s, %v; want %s", cand.name, e.name, got, err, want[e.name])
			}
		}
	}
}

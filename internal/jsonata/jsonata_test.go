package jsonata

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func decode(t *testing.T, s string) any {
	t.Helper()
	if s == "" {
		return nil
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestEvaluate(t *testing.T) {
	const order = `{"Account":{"Order":[{"ID":"a","Product":[{"Name":"Hat","Price":10,"Quantity":2},{"Name":"Scarf","Price":5,"Quantity":1}]},{"ID":"b","Product":[{"Name":"Cap","Price":8,"Quantity":3}]}]}}`
	tests := []struct {
		name, expr, input, want string
		vars                    map[string]any
	}{
		{"a path flattens the arrays it walks through", "Account.Order.Product.Name", order, `["Hat","Scarf","Cap"]`, nil},
		{"a predicate filters each step's items", "Account.Order.Product[Price > 6].Name", order, `["Hat","Cap"]`, nil},
		{"an index predicate selects per context item", "Account.Order.Product[0].Name", order, `["Hat","Cap"]`, nil},
		{"a block around a path indexes the whole result", "(Account.Order.Product)[-1].Name", order, `"Cap"`, nil},
		{"aggregates with arithmetic over a path", "$sum(Account.Order.Product.(Price * Quantity))", order, `49`, nil},
		{"an object constructor groups by key", "Account.Order.Product{Name: Price}", order, `{"Hat":10,"Scarf":5,"Cap":8}`, nil},
		{"a singleton result is not an array unless [] asks", "Account.Order[ID='b'].Product[].Name", order, `["Cap"]`, nil},
		{"order-by sorts descending", "Account.Order.Product^(>Price).Name", order, `["Hat","Cap","Scarf"]`, nil},
		{"focus binding joins two arrays", "library.loans@$l.books@$b[$l.isbn = $b.isbn].{'t': $b.title, 'c': $l.customer}",
			`{"library":{"books":[{"isbn":"1","title":"A"},{"isbn":"2","title":"B"}],"loans":[{"isbn":"2","customer":"x"},{"isbn":"1","customer":"y"}]}}`,
			`[{"t":"B","c":"x"},{"t":"A","c":"y"}]`, nil},
		{"index binding numbers the items", "Account.Order#$i.{'i': $i, 'id': ID}", order, `[{"i":0,"id":"a"},{"i":1,"id":"b"}]`, nil},
		{"variables are bound per evaluation", "$states.input.x + 1", "", `42`, map[string]any{"states": map[string]any{"input": map[string]any{"x": 41.0}}}},
		{"a lambda with a closure and partial application", "($add := function($a, $b){$a + $b}; $inc := $add(1, ?); $inc(2))", "", `3`, nil},
		{"function chaining feeds the left side as first argument", "'hello' ~> $uppercase() ~> $substring(1, 3)", "", `"ELL"`, nil},
		{"tail recursion runs in constant depth", "($loop := function($n, $acc){$n = 0 ? $acc : $loop($n - 1, $acc + 1)}; $loop(50000, 0))", "", `50000`, nil},
		{"a conditional without else is undefined when false, so $exists says false", "$exists(false ? 1)", "", `false`, nil},
		{"a transform copies and updates", `$ ~> |Account.Order.Product|{"Price": Price * 2}, ["Quantity"]|`, `{"Account":{"Order":[{"Product":[{"Price":1,"Quantity":1}]}]}}`, `{"Account":{"Order":[{"Product":[{"Price":2}]}]}}`, nil},
		{"regular expressions match, replace and split", "[$match('a1b22', /\\d+/).match, $replace('a-b-c', /-/, '+'), $split('a, b', /,\\s*/)]", "", `["1","22","a+b+c","a","b"]`, nil},
		{"string concatenation formats numbers as JavaScript does", "1e21 & ' ' & (0.1 + 0.2) & ' ' & 1e-7", "", `"1e+21 0.3 1e-7"`, nil},
		{"descendants and wildcards walk objects", "$sort(**.Price)", order, `[5,8,10]`, nil},
		{"higher-order functions pass value, index and array", "$map([10, 20], function($v, $i){$v + $i})", "", `[10,21]`, nil},
		{"$reduce folds from the first item", "$reduce([1, 2, 3, 4], function($a, $b){$a * $b})", "", `24`, nil},
		{"ranges build arrays", "[1..3, 5]", "", `[1,2,3,5]`, nil},
		{"$distinct keeps the first of equal values", `$distinct([1, "1", 1, [2], [2], {"a": 1}, {"a": 1}])`, "", `[1,"1",[2],{"a":1}]`, nil},
		{"Roman numerals of a huge number stay small", "$length($formatInteger(1e15, 'I'))", "", `16`, nil},
		{"in tests membership", `"b" in ["a", "b"]`, "", `true`, nil},
		{"objects the expression builds keep their key order", `[$string({"b": 1, "a": [2, {"d": 3, "c": 4}]}), $keys({"z": 0, "y": 1})]`, "", `["{\"b\":1,\"a\":[2,{\"d\":3,\"c\":4}]}","z","y"]`, nil},
		{"signatures take the context value", `$uppercase()`, `"abc"`, `"ABC"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Compile(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Evaluate(context.Background(), decode(t, tt.input), tt.vars, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if want := decode(t, tt.want); !reflect.DeepEqual(normalize(t, got), want) {
				t.Fatalf("got %v, want %v", got, want)
			}
		})
	}
}

func normalize(t *testing.T, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, string(b))
}

func TestErrors(t *testing.T) {
	tests := []struct{ name, expr, code string }{
		{"an unterminated string is a syntax error", `"abc`, "S0101"},
		{"a missing closing bracket is reported", `[1, 2`, "S0203"},
		{"assigning to a non-variable is refused", `a := 1`, "S0212"},
		{"arithmetic on a string is a type error", `"a" + 1`, "T2001"},
		{"a function argument of the wrong type breaks the signature", `$uppercase(1)`, "T0410"},
		{"calling a non-function is refused", `$nothing()`, "T1006"},
		{"a name without $ suggests the function", `uppercase("a")`, "T1005"},
		{"comparing a number and a string is refused", `1 < "a"`, "T2009"},
		{"$error raises D3137 with the message", `$error("boom")`, "D3137"},
		{"dividing into infinity cannot be formatted", `$string(1/0)`, "D3001"},
		{"a range over ten million items is refused", `[1..10000001]`, "D2014"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Compile(tt.expr)
			if err == nil {
				_, err = e.Evaluate(context.Background(), nil, nil, Options{})
			}
			var je *Error
			if !errors.As(err, &je) || je.Code != tt.code {
				t.Fatalf("got %v, want code %s", err, tt.code)
			}
		})
	}
}

func TestHostFunctionsAreCalledWithCheckedArguments(t *testing.T) {
	double, err := NewFunction("double", "<n-:n>", func(_ context.Context, args []any) (any, error) {
		return args[0].(float64) * 2, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := Compile("[$double(2), n.$double(), $map([1, 2], $double)]")
	v, err := e.Evaluate(context.Background(), map[string]any{"n": 5.0}, map[string]any{"double": double}, Options{})
	if err != nil || !reflect.DeepEqual(v, []any{4.0, 10.0, 2.0, 4.0}) {
		t.Fatalf("got %v, %v", v, err)
	}
	e, _ = Compile("$double('x')")
	var je *Error
	if _, err := e.Evaluate(context.Background(), nil, map[string]any{"double": double}, Options{}); !errors.As(err, &je) || je.Code != "T0410" {
		t.Fatalf("got %v, want T0410", err)
	}
}

func TestUndefinedIsNotNull(t *testing.T) {
	e, _ := Compile("missing")
	if _, err := e.Evaluate(context.Background(), map[string]any{}, nil, Options{}); !errors.Is(err, ErrUndefined) {
		t.Fatalf("got %v, want ErrUndefined", err)
	}
	e, _ = Compile("present")
	if v, err := e.Evaluate(context.Background(), map[string]any{"present": nil}, nil, Options{}); err != nil || v != nil {
		t.Fatalf("got %v, %v; want null", v, err)
	}
}

// Tenants write expressions the shared manager evaluates: each of these must fail with a limit
// error, quickly, without taking the process down.
func TestHostileExpressionsHitALimit(t *testing.T) {
	tests := []struct {
		name, expr string
		opts       Options
		code       string
	}{
		{"unbounded recursion stops at the depth limit", "($f := function($n){ 1 + $f($n + 1) }; $f(0))", Options{}, CodeDepth},
		{"mutual recursion stops at the depth limit", "($a := function(){ 1 + $b() }; $b := function(){ 1 + $a() }; $a())", Options{}, CodeDepth},
		{"an endless tail-recursive loop runs out of steps", "($f := function($n){ $f($n + 1) }; $f(0))", Options{MaxSteps: 100_000}, CodeSteps},
		{"a huge range is refused before it is built", "$count([1..5000000])", Options{}, CodeSize},
		{"a cross product of ranges is refused by size", "$count([1..2000].(1..1000))", Options{}, CodeSize},
		{"doubling a string hits the size limit", "($s := 'xxxxxxxxxx'; $d := function($s, $n){ $n = 0 ? $s : $d($s & $s, $n - 1) }; $d($s, 40))", Options{}, CodeSize},
		{"padding to a billion characters is refused", "$pad('x', 1e9)", Options{}, CodeSize},
		{"values nested by a loop hit the nesting limit", "$string($reduce([1..20000], function($a, $b){ [[$a]] }, []))", Options{}, CodeDepth},
		{"objects nested by a loop hit the nesting limit", "$string($reduce([1..20000], function($a, $b){ {'a': $a} }, {}))", Options{}, CodeDepth},
		{"a deeply nested result is refused before anyone encodes it", "$reduce([1..20000], function($a, $b){ {'a': $a} }, {})", Options{}, CodeDepth},
		{"distinct over many arrays runs out of steps", "$distinct([1..5000].[[$]])", Options{}, CodeSteps},
		{"a long loop runs out of steps", "$sum([1..1000].($reduce([1..100000], function($a, $b){ $a + $b })))", Options{}, CodeSteps},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := Compile(tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = e.Evaluate(context.Background(), nil, nil, tt.opts)
			var je *Error
			if !errors.As(err, &je) || je.Code != tt.code || !IsLimit(err) {
				t.Fatalf("got %v, want code %s", err, tt.code)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Fatalf("took %v", d)
			}
		})
	}
}

func TestDeeplyNestedExpressionsAreRefusedAtCompile(t *testing.T) {
	for name, expr := range map[string]string{
		"nested parentheses":  strings.Repeat("(", 100_000) + "1" + strings.Repeat(")", 100_000),
		"a long left chain":   "1" + strings.Repeat("+1", 1_000_000),
		"nested arrays":       strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000),
		"a long chained path": "a" + strings.Repeat(".a", 100_000),
	} {
		if _, err := Compile(expr); !IsLimit(err) {
			t.Errorf("%s: got %v, want a depth limit error", name, err)
		}
	}
	if _, err := Compile(strings.Repeat("(", 500) + "1" + strings.Repeat(")", 500)); err != nil {
		t.Errorf("500 nested parentheses: %v", err)
	}
}

func TestCancelledContextStopsEvaluation(t *testing.T) {
	e, _ := Compile("($f := function($n){ $f($n + 1) }; $f(0))")
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := e.Evaluate(ctx, nil, nil, Options{MaxSteps: 1 << 40})
	var je *Error
	if !errors.As(err, &je) || je.Code != CodeCancelled {
		t.Fatalf("got %v, want cancellation", err)
	}
}

func TestOneExpressionServesConcurrentEvaluations(t *testing.T) {
	e, err := Compile("($double := function($x){ $x * 2 }; $double($states.input.n))")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(n float64) {
			defer wg.Done()
			for k := 0; k < 200; k++ {
				v, err := e.Evaluate(context.Background(), nil, map[string]any{"states": map[string]any{"input": map[string]any{"n": n}}}, Options{})
				if err != nil || v != n*2 {
					t.Errorf("got %v, %v; want %v", v, err, n*2)
					return
				}
			}
		}(float64(i))
	}
	wg.Wait()
}

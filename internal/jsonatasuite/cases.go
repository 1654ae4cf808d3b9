package jsonatasuite

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
)

// Case is one test case of the suite, in the format its TESTSUITE.md describes.
type Case struct {
	// Name is "<group>/<file>" with "#<n>" for the n-th case of a file that holds an array.
	Name  string
	Group string
	Expr  string
	// Input is the data to evaluate against; Undefined when the case has "dataset": null.
	Input     any
	Undefined bool
	Bindings  map[string]any
	// Exactly one of Result (with HasResult), UndefinedResult and Code says what is expected.
	Result          any
	HasResult       bool
	UndefinedResult bool
	Code            string
	// Unordered: an array result may come in any order.
	Unordered bool
	// TimeLimitMS and Depth are set on the cases the jsonata-js runner evaluates inside its
	// time box (a step and depth counter hooked into the evaluator).
	TimeLimitMS int
	Depth       int
}

// Applicable says whether a case counts towards the pass rate for JSONata 2.0.6. Every case of
// the pinned suite was written for 2.0.6, so the only ones left out are those the suite itself
// time-boxes (timelimit/depth): their outcome, U1001 "stack overflow" or success within the box,
// is a property of the jsonata-js runner's hooks, not of the language.
func (c Case) Applicable() bool { return c.TimeLimitMS == 0 && c.Depth == 0 }

// ExpectsError says whether the case passes only when evaluation (or compilation) fails.
func (c Case) ExpectsError() bool { return c.Code != "" }

type rawCase struct {
	Expr            *string         `json:"expr"`
	ExprFile        string          `json:"expr-file"`
	Data            json.RawMessage `json:"data"`
	Dataset         *string         `json:"dataset"`
	Bindings        map[string]any  `json:"bindings"`
	Result          json.RawMessage `json:"result"`
	UndefinedResult bool            `json:"undefinedResult"`
	Code            string          `json:"code"`
	Error           *struct {
		Code string `json:"code"`
	} `json:"error"`
	Unordered bool `json:"unordered"`
	TimeLimit int  `json:"timelimit"`
	Depth     int  `json:"depth"`
}

// Load reads every case under dir/groups, resolving datasets from dir/datasets and expressions
// kept in .jsonata files. Cases come sorted by name, so an index names the same case every time.
func Load(dir string) ([]Case, error) {
	files, err := filepath.Glob(filepath.Join(dir, "groups", "*", "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	datasets := map[string]any{}
	var cases []Case
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var raws []rawCase
		if strings.HasPrefix(strings.TrimSpace(string(b)), "[") {
			err = json.Unmarshal(b, &raws)
		} else {
			raws = make([]rawCase, 1)
			err = json.Unmarshal(b, &raws[0])
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		group := filepath.Base(filepath.Dir(f))
		name := group + "/" + strings.TrimSuffix(filepath.Base(f), ".json")
		for i, r := range raws {
			c, err := r.resolve(dir, group, datasets)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			c.Name = name
			if len(raws) > 1 {
				c.Name = fmt.Sprintf("%s#%d", name, i)
			}
			cases = append(cases, c)
		}
	}
	return cases, nil
}

func (r rawCase) resolve(dir, group string, datasets map[string]any) (Case, error) {
	c := Case{Group: group, Bindings: r.Bindings, UndefinedResult: r.UndefinedResult, Code: r.Code,
		Unordered: r.Unordered, TimeLimitMS: r.TimeLimit, Depth: r.Depth}
	switch {
	case r.Expr != nil:
		c.Expr = *r.Expr
	case r.ExprFile != "":
		b, err := os.ReadFile(filepath.Join(dir, "groups", group, r.ExprFile))
		if err != nil {
			return c, err
		}
		c.Expr = string(b)
	default:
		return c, fmt.Errorf("case without expr")
	}
	if r.Error != nil && c.Code == "" {
		c.Code = r.Error.Code
	}
	if len(r.Result) > 0 {
		if err := json.Unmarshal(r.Result, &c.Result); err != nil {
			return c, err
		}
		c.HasResult = true
	}
	switch {
	case len(r.Data) > 0:
		if err := json.Unmarshal(r.Data, &c.Input); err != nil {
			return c, err
		}
	case r.Dataset == nil:
		c.Undefined = true
	default:
		d, ok := datasets[*r.Dataset]
		if !ok {
			b, err := os.ReadFile(filepath.Join(dir, "datasets", *r.Dataset+".json"))
			if err != nil {
				return c, err
			}
			if err := json.Unmarshal(b, &d); err != nil {
				return c, err
			}
			datasets[*r.Dataset] = d
		}
		c.Input = deepCopy(d)
	}
	if !c.HasResult && !c.UndefinedResult && c.Code == "" {
		return c, fmt.Errorf("case %q expects nothing", c.Expr)
	}
	return c, nil
}

// deepCopy gives each case its own copy of a shared dataset, so an implementation that mutates
// its input cannot change another case's data.
func deepCopy(v any) any {
	b, _ := json.Marshal(v)
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}

// Equal compares a result, as JSON, with the expected one (JavaScript's deep equality on JSON
// values); with unordered, two arrays are equal when they hold the same elements in any order.
func Equal(got, want any, unordered bool) bool {
	b, err := json.Marshal(got)
	if err != nil {
		return false
	}
	var norm any
	if err := json.Unmarshal(b, &norm); err != nil {
		return false
	}
	if unordered {
		ga, gok := norm.([]any)
		wa, wok := want.([]any)
		if gok && wok {
			return reflect.DeepEqual(sortedJSON(ga), sortedJSON(wa))
		}
	}
	return reflect.DeepEqual(norm, want)
}

func sortedJSON(vs []any) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		b, _ := json.Marshal(v)
		out[i] = string(b)
	}
	sort.Strings(out)
	return out
}

package asl

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// jsonataMap is a JSONata Map state M over $states.input.items (after a Pass that assigns n and
// p) whose iterations echo their input through a Task (failing items whose "fail" is true).
func jsonataMap(fields string) string {
	return `{"QueryLanguage":"JSONata","StartAt":"Set","States":{
		"Set":{"Type":"Pass","Assign":{"n":"{% $states.input.n %}","p":"{% $states.input.p %}"},"Next":"M"},
		"M":{"Type":"Map","Items":"{% $states.input.items %}","MaxConcurrency":1,` + fields + `
		"ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:t","End":true}}},"End":true}}}`
}

// In JSONata states the ItemBatcher and tolerated failure fields take JSONata expressions where
// JSONPath states take their Path forms; the Path forms are refused, and every error names its
// field.
func TestJSONataItemBatcherAndToleranceValidation(t *testing.T) {
	for _, tc := range []struct{ name, fields, path, msg string }{
		{"MaxItemsPerBatchPath", `"ItemBatcher":{"MaxItemsPerBatchPath":"$.n"},`, "$.States.M.ItemBatcher.MaxItemsPerBatchPath", "only allowed in JSONPath states"},
		{"MaxInputBytesPerBatchPath", `"ItemBatcher":{"MaxItemsPerBatch":2,"MaxInputBytesPerBatchPath":"$.n"},`, "$.States.M.ItemBatcher.MaxInputBytesPerBatchPath", "only allowed in JSONPath states"},
		{"ToleratedFailureCountPath", `"ToleratedFailureCountPath":"$.n",`, "$.States.M.ToleratedFailureCountPath", "only allowed in JSONPath states"},
		{"ToleratedFailurePercentagePath", `"ToleratedFailurePercentagePath":"$.p",`, "$.States.M.ToleratedFailurePercentagePath", "only allowed in JSONPath states"},
		{"MaxConcurrencyPath", `"MaxConcurrencyPath":"$.c",`, "$.States.M.MaxConcurrencyPath", "only allowed in JSONPath states"},
		{"a syntax error in MaxItemsPerBatch", `"ItemBatcher":{"MaxItemsPerBatch":"{% $n + %}"},`, "$.States.M.ItemBatcher.MaxItemsPerBatch", "JSONata syntax error"},
		{"a syntax error in MaxInputBytesPerBatch", `"ItemBatcher":{"MaxInputBytesPerBatch":"{% ( %}"},`, "$.States.M.ItemBatcher.MaxInputBytesPerBatch", "JSONata syntax error"},
		{"a half-wrapped MaxItemsPerBatch", `"ItemBatcher":{"MaxItemsPerBatch":"2 {% $n %}"},`, "$.States.M.ItemBatcher.MaxItemsPerBatch", "wrapped in {% %}"},
		{"a constant MaxItemsPerBatch out of range", `"ItemBatcher":{"MaxItemsPerBatch":0},`, "$.States.M.ItemBatcher.MaxItemsPerBatch", "integer from 1"},
		{"ItemBatcher without a maximum", `"ItemBatcher":{"BatchInput":{"a":1}},`, "$.States.M.ItemBatcher", "needs MaxItemsPerBatch"},
		{"a .$ key in BatchInput", `"ItemBatcher":{"MaxItemsPerBatch":2,"BatchInput":{"a.$":"$.x"}},`, "$.States.M.ItemBatcher.BatchInput.a.$", `keys ending in ".$" are JSONPath`},
		{"a syntax error in BatchInput", `"ItemBatcher":{"MaxItemsPerBatch":2,"BatchInput":{"a":"{% [ %}"}},`, "$.States.M.ItemBatcher.BatchInput.a", "JSONata syntax error"},
		{"a BatchInput that is no object", `"ItemBatcher":{"MaxItemsPerBatch":2,"BatchInput":[1]},`, "$.States.M.ItemBatcher.BatchInput", "JSON object or a JSONata expression"},
		{"a syntax error in ToleratedFailureCount", `"ToleratedFailureCount":"{% 1 + %}",`, "$.States.M.ToleratedFailureCount", "JSONata syntax error"},
		{"a half-wrapped ToleratedFailurePercentage", `"ToleratedFailurePercentage":"50{% %}",`, "$.States.M.ToleratedFailurePercentage", "wrapped in {% %}"},
		{"a constant ToleratedFailurePercentage out of range", `"ToleratedFailurePercentage":101,`, "$.States.M.ToleratedFailurePercentage", "from 0 to 100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Parse([]byte(jsonataMap(tc.fields)))
			for _, e := range errs {
				if e.Path == tc.path && strings.Contains(e.Message, tc.msg) {
					return
				}
			}
			t.Fatalf("no error at %s containing %q; got %v", tc.path, tc.msg, errs)
		})
	}
}

func TestJSONataItemBatcherAndTolerance(t *testing.T) {
	items := `{"n":2,"p":50,"tag":"t","items":[{"id":"a"},{"id":"b","fail":true},{"id":"c"},{"id":"d","fail":true},{"id":"e"}]}`
	for _, tc := range []struct {
		name, fields string
		inputs       string // the iterations' inputs, in order (with ItemBatcher: the batches)
		output       string
		err          string
	}{
		{"MaxItemsPerBatch from a variable, BatchInput with expressions and ItemSelector",
			`"ItemBatcher":{"MaxItemsPerBatch":"{% $n + 1 %}","BatchInput":{"tag":"{% $states.input.tag %}","run":"{% $states.context.Execution.Name %}","fixed":1}},
			 "ItemSelector":{"id":"{% $states.context.Map.Item.Value.id %}","i":"{% $states.context.Map.Item.Index %}"},"ToleratedFailureCount":2,`,
			`[{"Items":[{"id":"a","i":0},{"id":"b","i":1},{"id":"c","i":2}],"tag":"t","run":"t","fixed":1},{"Items":[{"id":"d","i":3},{"id":"e","i":4}],"tag":"t","run":"t","fixed":1}]`,
			`[{"Items":[{"id":"a","i":0},{"id":"b","i":1},{"id":"c","i":2}],"tag":"t","run":"t","fixed":1},{"Items":[{"id":"d","i":3},{"id":"e","i":4}],"tag":"t","run":"t","fixed":1}]`, ""},
		{"MaxInputBytesPerBatch as an expression, constant BatchInput",
			`"ItemBatcher":{"MaxInputBytesPerBatch":"{% 50 %}","BatchInput":{"k":"v"}},`,
			`[{"Items":[{"id":"a"}],"k":"v"},{"Items":[{"id":"b","fail":true}],"k":"v"},{"Items":[{"id":"c"}],"k":"v"},{"Items":[{"id":"d","fail":true}],"k":"v"},{"Items":[{"id":"e"}],"k":"v"}]`,
			`[{"Items":[{"id":"a"}],"k":"v"},{"Items":[{"id":"b","fail":true}],"k":"v"},{"Items":[{"id":"c"}],"k":"v"},{"Items":[{"id":"d","fail":true}],"k":"v"},{"Items":[{"id":"e"}],"k":"v"}]`, ""},
		{"a BatchInput expression giving an object",
			`"ItemBatcher":{"MaxItemsPerBatch":5,"BatchInput":"{% {'size': $count($states.input.items)} %}"},"ToleratedFailureCount":1,`,
			`[{"Items":[{"id":"a"},{"id":"b","fail":true},{"id":"c"},{"id":"d","fail":true},{"id":"e"}],"size":5}]`,
			`[{"Items":[{"id":"a"},{"id":"b","fail":true},{"id":"c"},{"id":"d","fail":true},{"id":"e"}],"size":5}]`, ""},
		{"ToleratedFailureCount from a variable tolerates 2",
			`"ToleratedFailureCount":"{% $n %}",`, `[{"id":"a"},{"id":"b","fail":true},{"id":"c"},{"id":"d","fail":true},{"id":"e"}]`,
			`[{"id":"a"},{"Error":"Item.Failed","Cause":"item b"},{"id":"c"},{"Error":"Item.Failed","Cause":"item d"},{"id":"e"}]`, ""},
		{"ToleratedFailureCount of 1 does not tolerate 2",
			`"ToleratedFailureCount":"{% $n - 1 %}",`, `[{"id":"a"},{"id":"b","fail":true},{"id":"c"},{"id":"d","fail":true}]`, `null`, ErrExceedToleratedFailureThreshold},
		{"ToleratedFailurePercentage of 40 tolerates 2 of 5",
			`"ToleratedFailurePercentage":"{% $p - 10 %}",`, `[{"id":"a"},{"id":"b","fail":true},{"id":"c"},{"id":"d","fail":true},{"id":"e"}]`,
			`[{"id":"a"},{"Error":"Item.Failed","Cause":"item b"},{"id":"c"},{"Error":"Item.Failed","Cause":"item d"},{"id":"e"}]`, ""},
		{"ToleratedFailurePercentage of 39.9 does not",
			`"ToleratedFailurePercentage":"{% 39.9 %}",`, `[{"id":"a"},{"id":"b","fail":true},{"id":"c"},{"id":"d","fail":true}]`, `null`, ErrExceedToleratedFailureThreshold},
		{"a constant ToleratedFailureCount",
			`"ToleratedFailureCount":2,`, `[{"id":"a"},{"id":"b","fail":true},{"id":"c"},{"id":"d","fail":true},{"id":"e"}]`,
			`[{"id":"a"},{"Error":"Item.Failed","Cause":"item b"},{"id":"c"},{"Error":"Item.Failed","Cause":"item d"},{"id":"e"}]`, ""},
		{"a MaxItemsPerBatch expression out of range fails the Map",
			`"ItemBatcher":{"MaxItemsPerBatch":"{% 0 %}"},`, `null`, `null`, ErrQueryEvaluation},
		{"a BatchInput expression that gives no object fails the Map",
			`"ItemBatcher":{"MaxItemsPerBatch":2,"BatchInput":"{% 5 %}"},`, `null`, `null`, ErrQueryEvaluation},
		{"a ToleratedFailureCount expression that gives no integer fails the Map",
			`"ToleratedFailureCount":"{% 'two' %}",`, `null`, `null`, ErrQueryEvaluation},
		{"a ToleratedFailurePercentage expression beyond 100 fails the Map",
			`"ToleratedFailurePercentage":"{% 101 %}",`, `null`, `null`, ErrQueryEvaluation},
	} {
		t.Run(tc.name, func(t *testing.T) {
			run, inputs := runMap(t, jsonataMap(tc.fields), items)
			got, _ := json.Marshal(inputs)
			if want := doc(t, tc.inputs); !reflect.DeepEqual(any(inputs), want) && !(want == nil && len(inputs) == 0) {
				t.Errorf("iteration inputs %s\nwant %s", got, tc.inputs)
			}
			if tc.err != "" {
				if run.Status != Failed || run.Error != tc.err {
					t.Fatalf("run %s %s (%s), want %s", run.Status, run.Error, run.Cause, tc.err)
				}
				return
			}
			if run.Status != Succeeded {
				t.Fatalf("run %s %s (%s)", run.Status, run.Error, run.Cause)
			}
			if want := doc(t, tc.output); !reflect.DeepEqual(run.Output, want) {
				out, _ := json.Marshal(run.Output)
				t.Errorf("output %s\nwant %s", out, tc.output)
			}
		})
	}
}

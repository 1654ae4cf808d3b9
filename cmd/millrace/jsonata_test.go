package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJSONataDefinitions: millrace validate, run and graph take JSONata definitions with
// variables (testdata/order-jsonata.json is order.json written in JSONata).
func TestJSONataDefinitions(t *testing.T) {
	if out, errOut, code := execute("validate", "-f", "testdata/order-jsonata.json"); code != 0 || strings.TrimSpace(out) != "valid" {
		t.Fatalf("validate: exit %d: %s %s", code, out, errOut)
	}
	cases := []struct {
		testCase string
		code     int
		want     string
	}{
		{"HappyPath", 0, `{"output":{"charge":"ch_1","fulfilment":[{"MessageId":"m-1"},"queued"],"shipped":true},"status":"SUCCEEDED"}`},
		{"BusyThenOK", 0, `{"output":{"charge":"ch_2","fulfilment":[{"MessageId":"m-1"},"queued"],"shipped":true},"status":"SUCCEEDED"}`},
		{"Declined", 1, `{"cause":"insufficient funds","error":"OrderDeclined","status":"FAILED"}`},
	}
	for _, tc := range cases {
		out, errOut, code := execute("run", "-f", "testdata/order-jsonata.json", "--input", "testdata/input.json",
			"--mock-config", "testdata/mocks.json", "--test-case", tc.testCase)
		if code != tc.code || strings.TrimSpace(out) != tc.want {
			t.Fatalf("run %s: exit %d, stdout %s, stderr %s", tc.testCase, code, out, errOut)
		}
	}
	out, errOut, code := execute("graph", "-f", "testdata/order-jsonata.json", "--format", "mermaid")
	if code != 0 || !strings.Contains(out, "$count($states.input) = 2; assign shipped") || !strings.Contains(out, "assign charge, order") {
		t.Fatalf("graph: exit %d: %s %s", code, out, errOut)
	}
}

func TestValidateReportsJSONataErrorsWithTheirField(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	def := `{"QueryLanguage":"JSONata","StartAt":"A","States":{
		"A":{"Type":"Pass","InputPath":"$.a","Output":{"x":"{% $states.input.( %}"},"Assign":{"1st":1},"Next":"B"},
		"B":{"Type":"Pass","QueryLanguage":"JSONPath","End":true}}}`
	if err := os.WriteFile(bad, []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := execute("validate", "-f", bad)
	for _, want := range []string{
		`$.States.A.InputPath: field "InputPath" is only allowed in JSONPath states`,
		`$.States.A.Output.x: JSONata syntax error`,
		`$.States.A.Assign.1st: "1st" is not a variable name`,
		`$.States.B.QueryLanguage: a state machine whose QueryLanguage is JSONata cannot have JSONPath states`,
	} {
		if code != 2 || !strings.Contains(errOut, want) {
			t.Errorf("exit %d, stderr lacks %q:\n%s", code, want, errOut)
		}
	}
}

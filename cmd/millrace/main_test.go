package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func execute(args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	root := newRoot(&out, &errOut)
	root.SetArgs(args)
	err := root.Execute()
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.code
	default:
		code = 2
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), code
}

func TestRunWithMockConfig(t *testing.T) {
	cases := []struct {
		testCase string
		code     int
		want     string
	}{
		{"HappyPath", 0, `{"output":[{"MessageId":"m-1"},"queued"],"status":"SUCCEEDED"}`},
		{"BusyThenOK", 0, `{"output":[{"MessageId":"m-1"},"queued"],"status":"SUCCEEDED"}`},
		{"Declined", 1, `{"cause":"insufficient funds","error":"OrderDeclined","status":"FAILED"}`},
	}
	for _, tc := range cases {
		t.Run(tc.testCase, func(t *testing.T) {
			out, errOut, code := execute("run", "-f", "testdata/order.json", "--input", "testdata/input.json",
				"--mock-config", "testdata/mocks.json", "--test-case", tc.testCase)
			if code != tc.code || strings.TrimSpace(out) != tc.want {
				t.Fatalf("exit %d, stdout %s, stderr %s", code, out, errOut)
			}
		})
	}
}

func TestRunWithoutMocksFailsTasks(t *testing.T) {
	out, _, code := execute("run", "-f", "testdata/order.json", "--input", "testdata/input.json")
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || code != 1 || got["status"] != "FAILED" || got["error"] != "States.TaskFailed" {
		t.Fatalf("exit %d, stdout %s", code, out)
	}
}

func TestValidate(t *testing.T) {
	if out, _, code := execute("validate", "-f", "testdata/order.json"); code != 0 || strings.TrimSpace(out) != "valid" {
		t.Fatalf("exit %d: %s", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("StartAt: A\nStates:\n  A:\n    Type: Pass\n    Nxt: B\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := execute("validate", "-f", bad)
	if code != 2 || !strings.Contains(errOut, "$.States.A.Nxt: field \"Nxt\" is not allowed") || !strings.Contains(errOut, "$.States.A: a Pass state needs Next or End") {
		t.Fatalf("exit %d, stderr %s", code, errOut)
	}
	if _, _, code := execute("run", "-f", bad); code != 2 {
		t.Fatalf("run of an invalid definition exited %d", code)
	}
	if _, _, code := execute("run", "-f", "testdata/order.json", "--mock-config", "testdata/mocks.json", "--test-case", "Nope"); code != 2 {
		t.Fatalf("unknown test case exited %d", code)
	}
}

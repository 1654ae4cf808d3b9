package asl

import (
	"context"
	"encoding/json"
	"os"
	"reflect"
	"testing"
	"time"
)

// specCase is one example from the Amazon States Language specification (or built the same way
// on one of its rules), run with the local runner: tasks answer from the case's list per state,
// time is simulated, and the run's end, output and task inputs are compared.
type specCase struct {
	Name       string                      `json:"name"`
	From       string                      `json:"from"`
	Definition json.RawMessage             `json:"definition"`
	Input      any                         `json:"input"`
	Tasks      map[string][]MockedResponse `json:"tasks"`
	TaskInputs map[string][]any            `json:"taskInputs"`
	Waited     *float64                    `json:"waited"`
	Want       struct {
		Status Status `json:"status"`
		Output any    `json:"output"`
		Error  string `json:"error"`
		Cause  string `json:"cause"`
	} `json:"want"`
}

func TestSpecificationExamples(t *testing.T) {
	raw, err := os.ReadFile("testdata/spec-examples.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []specCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			m, errs := Parse(tc.Definition)
			if len(errs) > 0 {
				t.Fatalf("definition rejected (%s): %v", tc.From, errs)
			}
			start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			clock := start
			calls := map[string]int{}
			inputs := map[string][]any{}
			task := func(_ context.Context, e Effect) (any, string, string) {
				inputs[e.State] = append(inputs[e.State], e.Input)
				answers := tc.Tasks[e.State]
				n := calls[e.State]
				calls[e.State]++
				if n >= len(answers) {
					t.Fatalf("task %s called %d times, the case has %d answers", e.State, n+1, len(answers))
				}
				if a := answers[n]; a.Throw != nil {
					return nil, a.Throw.Error, a.Throw.Cause
				}
				return answers[n].Return, "", ""
			}
			sleep := func(_ context.Context, d time.Duration) error {
				clock = clock.Add(max(d, 0))
				return nil
			}
			run := m.RunLocally(context.Background(), tc.Input, "spec", task, func() time.Time { return clock }, sleep)
			if run.Status != tc.Want.Status {
				t.Fatalf("status %s (%s: %s), want %s", run.Status, run.Error, run.Cause, tc.Want.Status)
			}
			if tc.Want.Status == Succeeded && !reflect.DeepEqual(run.Output, tc.Want.Output) {
				got, _ := json.Marshal(run.Output)
				want, _ := json.Marshal(tc.Want.Output)
				t.Errorf("output\n got %s\nwant %s", got, want)
			}
			if tc.Want.Error != "" && run.Error != tc.Want.Error {
				t.Errorf("error %q, want %q", run.Error, tc.Want.Error)
			}
			if tc.Want.Cause != "" && run.Cause != tc.Want.Cause {
				t.Errorf("cause %q, want %q", run.Cause, tc.Want.Cause)
			}
			for state, want := range tc.TaskInputs {
				if !reflect.DeepEqual(inputs[state], want) {
					got, _ := json.Marshal(inputs[state])
					w, _ := json.Marshal(want)
					t.Errorf("inputs of task %s\n got %s\nwant %s", state, got, w)
				}
			}
			if tc.Waited != nil {
				if got := clock.Sub(start).Seconds(); got != *tc.Waited {
					t.Errorf("waited %gs, want %gs", got, *tc.Waited)
				}
			}
		})
	}
}

func TestBracketNames(t *testing.T) {
	for in, want := range map[string]string{
		"$":                         "$",
		"$.a.b[0]":                  "$.a.b[0]",
		"$.delivery-partner":        "$['delivery-partner']",
		"$.detail.error-info.Cause": "$.detail['error-info'].Cause",
		"$..x-y":                    "$..['x-y']",
		"$.a[?(@.b-c > 1)].d-e":     "$.a[?(@.b-c > 1)]['d-e']",
		"$['already-quoted'].x":     "$['already-quoted'].x",
		"$.it's":                    `$['it\'s']`,
		"$.*":                       "$.*",
		"$.1st":                     "$['1st']",
		"$.naïve":                   "$.naïve",
	} {
		if got := bracketNames(in); got != want {
			t.Errorf("bracketNames(%q) = %q, want %q", in, got, want)
		}
	}
}

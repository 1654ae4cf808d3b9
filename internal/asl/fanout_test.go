package asl

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// runSize is the JSON size of a run: what the controller persists in the WorkflowRun's status.
func runSize(t *testing.T, run Run) int {
	t.Helper()
	b, err := json.Marshal(run)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

func items(n int) string {
	var b strings.Builder
	b.WriteString(`{"customer":"c-1","orders":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d}`, i)
	}
	b.WriteString(`]}`)
	return b.String()
}

// A 10,000-item Map of tasks keeps at most 40 iterations in the run's state at any time (Step
// Functions' inline Map limit), carries no per-item copy of the execution, and stays small while
// it runs: what grows is only the results array, which is the Map's output anyway. (The results
// replace the input: both together would exceed the 256 KiB payload limit, as in Step Functions.)
func TestATenThousandItemMapStaysSmall(t *testing.T) {
	const n = 10000
	m := mustParse(t, `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.orders","End":true,
		"ItemSelector":{"id.$":"$$.Map.Item.Value.id","customer.$":"$.customer"},
		"ItemProcessor":{"StartAt":"Ship","States":{
			"Ship":{"Type":"Task","Resource":"test:ship","Next":"Tag"},
			"Tag":{"Type":"Pass","Parameters":{"n.$":"$","run.$":"$$.Execution.Name"},"End":true}}}}}}`)
	input := doc(t, items(n))
	inputSize := len(items(n))
	run, eff, _ := m.Step(Run{}, Event{Kind: EventStart, Input: input, Execution: Execution{Name: "big"}}, Options{})
	pending := eff
	maxRunning, largest, steps := 0, 0, 0
	for len(pending) > 0 {
		e := pending[0]
		pending = pending[1:]
		if e.Kind != EffectRunTask {
			t.Fatalf("unexpected effect %+v", e)
		}
		id := e.Input.(map[string]any)["id"].(float64)
		run, eff, _ = m.Step(run, Event{Kind: EventTaskSucceeded, Path: e.Path, Attempt: e.Attempt, Output: id}, Options{})
		pending = append(pending, eff...)
		maxRunning = max(maxRunning, len(run.Children))
		if steps%500 == 0 {
			// Everything but the input (the state's input, and the execution's, which the
			// controller does not persist: it has spec.input) and the results so far.
			largest = max(largest, runSize(t, run)-2*inputSize-run.ResultBytes)
		}
		steps++
	}
	if run.Status != Succeeded {
		t.Fatalf("run %s: %s %s", run.Status, run.Error, run.Cause)
	}
	if steps != n || maxRunning != DefaultMaxMapConcurrency {
		t.Errorf("%d task steps, at most %d iterations at once; want %d and %d", steps, maxRunning, n, DefaultMaxMapConcurrency)
	}
	if largest > 16<<10 {
		t.Errorf("the run's state besides its input and results reached %d bytes; want under 16 KiB", largest)
	}
	done := run.Output.([]any)
	if len(done) != n || !reflect.DeepEqual(done[9999], doc(t, `{"n":9999,"run":"big"}`)) {
		t.Errorf("results: %d, last %v", len(done), done[len(done)-1])
	}
}

func TestMapConcurrencyIsCappedAndChildrenAreAddressedByItem(t *testing.T) {
	def := `{"StartAt":"M","States":{"M":{"Type":"Map","MaxConcurrency":%d,"End":true,
		"ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:t","End":true}}}}}}`
	for _, tc := range []struct{ maxConc, opt, want int }{{0, 0, 40}, {100, 0, 40}, {3, 0, 3}, {0, 5, 5}, {10, 5, 5}} {
		m := mustParse(t, fmt.Sprintf(def, tc.maxConc))
		_, eff, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, items(60)).(map[string]any)["orders"]}, Options{MaxMapConcurrency: tc.opt})
		if len(eff) != tc.want {
			t.Errorf("MaxConcurrency %d, option %d: %d started, want %d", tc.maxConc, tc.opt, len(eff), tc.want)
		}
	}
	// Finishing item 1 starts item 3; an event for a finished item is stale and changes nothing.
	m := mustParse(t, fmt.Sprintf(def, 3))
	run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, `[10,11,12,13]`)}, Options{})
	run, eff, _ := m.Step(run, Event{Kind: EventTaskSucceeded, Path: []int{1}, Attempt: 1, Output: "b"}, Options{})
	if len(eff) != 1 || !reflect.DeepEqual(eff[0].Path, []int{3}) || eff[0].Input != float64(13) {
		t.Fatalf("effects %+v", eff)
	}
	again, eff, hist := m.Step(run, Event{Kind: EventTaskSucceeded, Path: []int{1}, Attempt: 1, Output: "B!"}, Options{})
	if len(eff) != 0 || len(hist) != 0 || !reflect.DeepEqual(again, run) {
		t.Errorf("a duplicate result for a finished item changed the run: %+v", eff)
	}
	for _, i := range []int{3, 0, 2} {
		run, _, _ = m.Step(run, Event{Kind: EventTaskSucceeded, Path: []int{i}, Attempt: 1, Output: fmt.Sprint(i)}, Options{})
	}
	if run.Status != Succeeded || !reflect.DeepEqual(run.Output, doc(t, `["0","b","2","3"]`)) {
		t.Fatalf("run %+v", run)
	}
}

func TestAPassOnlyMapOfTenThousandItemsFinishesInStepsOfBoundedWork(t *testing.T) {
	m := mustParse(t, `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.orders","End":true,
		"ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Pass","InputPath":"$.id","End":true}}}}}}`)
	run, eff, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, items(10000))}, Options{})
	steps := 1
	for ; run.Status == Running && steps < 100; steps++ {
		if len(eff) == 0 || eff[0].Kind != EffectContinue || !m.NeedsContinue(run, Options{}) {
			t.Fatalf("a step stopped with effects %+v", eff)
		}
		run, eff, _ = m.Step(run, Event{Kind: EventContinue}, Options{})
	}
	// Each item costs two transitions (started, its Pass executed): 20,000 in steps of 2,000.
	if run.Status != Succeeded || len(eff) != 0 || steps != 11 {
		t.Fatalf("run %s %s %s after %d steps, effects %d", run.Status, run.Error, run.Cause, steps, len(eff))
	}
	out := run.Output.([]any)
	if len(out) != 10000 || out[0] != float64(0) || out[9999] != float64(9999) {
		t.Errorf("output of %d items: first %v last %v", len(out), out[0], out[len(out)-1])
	}
}

// Results beyond the payload limit fail the state with States.DataLimitExceeded, which States.ALL
// does not catch (as in Step Functions) but its own name does.
func TestResultsBeyondThePayloadLimitFailTheState(t *testing.T) {
	big := strings.Repeat("x", 1000)
	for _, tc := range []struct {
		catch, wantStatus, wantOutput string
	}{
		{`"States.ALL"`, "FAILED", ""},
		{`"States.DataLimitExceeded"`, "SUCCEEDED", "States.DataLimitExceeded"},
	} {
		in := make([]any, 300) // 300 × ~1 KB > 256 KiB
		for i := range in {
			in[i] = float64(i)
		}
		m := mustParse(t, strings.Replace(`{"StartAt":"M","States":{
			"M":{"Type":"Map","ItemsPath":"$.items","End":true,"Catch":[{"ErrorEquals":[CATCH],"Next":"Caught","ResultPath":"$.error"}],
				"ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Pass","Result":"`+big+`","End":true}}}},
			"Caught":{"Type":"Pass","InputPath":"$.error.Error","End":true}}}`, "CATCH", tc.catch, 1))
		run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: map[string]any{"items": in}}, Options{})
		if string(run.Status) != tc.wantStatus {
			t.Fatalf("catch %s: run %s %s %s", tc.catch, run.Status, run.Error, run.Cause)
		}
		if tc.wantStatus == "FAILED" && run.Error != ErrDataLimitExceeded {
			t.Errorf("error %q, want %s", run.Error, ErrDataLimitExceeded)
		}
		if tc.wantOutput != "" && run.Output != tc.wantOutput {
			t.Errorf("output %v, want %s", run.Output, tc.wantOutput)
		}
	}
}

func TestFanOutsSummarizeRunningMaps(t *testing.T) {
	m := mustParse(t, `{"StartAt":"M","States":{"M":{"Type":"Map","MaxConcurrency":2,"End":true,
		"ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[
			{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"test:a","End":true}}},
			{"StartAt":"B","States":{"B":{"Type":"Pass","End":true}}}]}}}}}}`)
	run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, `[1,2,3,4,5]`)}, Options{})
	run, _, _ = m.Step(run, Event{Kind: EventTaskSucceeded, Path: []int{0, 0}, Attempt: 1, Output: "a"}, Options{})
	got := m.FanOuts(run)
	want := []string{"M 5: 1 done, 2 running, 2 pending", "M[1].P 2: 1 done, 1 running, 0 pending", "M[2].P 2: 1 done, 1 running, 0 pending"}
	var lines []string
	for _, f := range got {
		lines = append(lines, fmt.Sprintf("%s %d: %d done, %d running, %d pending", f.Label, f.Total, f.Succeeded, f.Running, f.Pending))
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("fan-outs:\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

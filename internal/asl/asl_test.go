package asl

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func doc(t *testing.T, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return v
}

func mustParse(t *testing.T, def string) *Machine {
	t.Helper()
	m, errs := Parse([]byte(def))
	if len(errs) > 0 {
		t.Fatalf("definition rejected: %v", errs)
	}
	return m
}

func TestValidationReportsTheJSONPathOfEachProblem(t *testing.T) {
	cases := []struct {
		name, def, path, msg string
	}{
		{"an unknown field is rejected", `{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"Bogus":1}}}`, "$.States.A.Bogus", "not allowed in a Pass state"},
		{"a missing StartAt target is rejected", `{"StartAt":"X","States":{"A":{"Type":"Pass","End":true}}}`, "$.StartAt", "not a state"},
		{"a state without Next or End is rejected", `{"StartAt":"A","States":{"A":{"Type":"Pass"}}}`, "$.States.A", "needs Next or End"},
		{"Next to a missing state is rejected", `{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"}}}`, "$.States.A.Next", "not a state"},
		{"an unreachable state is rejected", `{"StartAt":"A","States":{"A":{"Type":"Succeed"},"B":{"Type":"Succeed"}}}`, "$.States.B", "unreachable"},
		{"a Choice without rules is rejected", `{"StartAt":"A","States":{"A":{"Type":"Choice","Choices":[],"Default":"B"},"B":{"Type":"Succeed"}}}`, "$.States.A.Choices", "non-empty"},
		{"a choice rule without Next is rejected", `{"StartAt":"A","States":{"A":{"Type":"Choice","Choices":[{"Variable":"$.x","IsPresent":true}],"Default":"B"},"B":{"Type":"Succeed"}}}`, "$.States.A.Choices[0].Next", "needs Next"},
		{"a comparison with the wrong operand type is rejected", `{"StartAt":"A","States":{"A":{"Type":"Choice","Choices":[{"Variable":"$.x","NumericEquals":"1","Next":"B"}]},"B":{"Type":"Succeed"}}}`, "$.States.A.Choices[0].NumericEquals", "needs a number"},
		{"States.ALL in a list is rejected", `{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"test:r","End":true,"Retry":[{"ErrorEquals":["States.ALL","X"]}]}}}`, "$.States.A.Retry[0].ErrorEquals", "alone"},
		{"a States.ALL retrier that is not last is rejected", `{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"test:r","End":true,"Retry":[{"ErrorEquals":["States.ALL"]},{"ErrorEquals":["X"]}]}}}`, "$.States.A.Retry[0].ErrorEquals", "must be the last"},
		{"a bad path is rejected", `{"StartAt":"A","States":{"A":{"Type":"Pass","InputPath":"foo","End":true}}}`, "$.States.A.InputPath", "must start with $"},
		{"a ResultPath that is not a reference path is rejected", `{"StartAt":"A","States":{"A":{"Type":"Pass","ResultPath":"$.a[*]","End":true}}}`, "$.States.A.ResultPath", "reference path"},
		{"an unknown intrinsic is rejected", `{"StartAt":"A","States":{"A":{"Type":"Pass","Parameters":{"x.$":"States.Nope(1)"},"End":true}}}`, "$.States.A.Parameters.x.$", "unknown function"},
		{"an intrinsic with the wrong arity is rejected", `{"StartAt":"A","States":{"A":{"Type":"Pass","Parameters":{"x.$":"States.ArrayLength(1, 2)"},"End":true}}}`, "$.States.A.Parameters.x.$", "takes 1 arguments"},
		{"a Wait with two durations is rejected", `{"StartAt":"A","States":{"A":{"Type":"Wait","Seconds":1,"SecondsPath":"$.s","End":true}}}`, "$.States.A", "exactly one of"},
		{"an unknown state type is rejected", `{"StartAt":"A","States":{"A":{"Type":"Sleep","End":true}}}`, "$.States.A.Type", "unknown state type"},
		{"a Task without Resource is rejected", `{"StartAt":"A","States":{"A":{"Type":"Task","End":true}}}`, "$.States.A.Resource", "needs a Resource"},
		{"a branch's problem is reported inside the branch", `{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[{"StartAt":"X","States":{"X":{"Type":"Pass"}}}]}}}`, "$.States.P.Branches[0].States.X", "needs Next or End"},
		{"a catcher without Next is rejected", `{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"test:r","End":true,"Catch":[{"ErrorEquals":["States.ALL"]}]}}}`, "$.States.A.Catch[0].Next", "needs Next"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Parse([]byte(tc.def))
			for _, e := range errs {
				if e.Path == tc.path && strings.Contains(e.Message, tc.msg) {
					return
				}
			}
			t.Fatalf("no error at %s containing %q; got %v", tc.path, tc.msg, errs)
		})
	}
}

func TestYAMLDefinitionsAreAccepted(t *testing.T) {
	mustParse(t, "StartAt: A\nStates:\n  A:\n    Type: Succeed\n")
}

func TestInputAndOutputProcessingFollowsTheSpec(t *testing.T) {
	// The specification's example: InputPath selects the numbers, the task adds them, ResultPath
	// places the sum next to the input.
	m := mustParse(t, `{"StartAt":"Add","States":{"Add":{"Type":"Task","Resource":"test:add","InputPath":"$.numbers","ResultPath":"$.sum","OutputPath":"$","End":true}}}`)
	run, eff, _ := m.Step(Run{}, Event{Kind: EventStart, At: time.Unix(0, 0), Input: doc(t, `{"title":"Numbers to add","numbers":{"val1":3,"val2":4}}`)}, Options{})
	if len(eff) != 1 || eff[0].Kind != EffectRunTask || !reflect.DeepEqual(eff[0].Input, doc(t, `{"val1":3,"val2":4}`)) {
		t.Fatalf("effects %+v", eff)
	}
	run, _, _ = m.Step(run, Event{Kind: EventTaskSucceeded, Output: 7.0, Attempt: 1}, Options{})
	if run.Status != Succeeded || !reflect.DeepEqual(run.Output, doc(t, `{"title":"Numbers to add","numbers":{"val1":3,"val2":4},"sum":7}`)) {
		t.Fatalf("run %+v", run)
	}
}

func TestParametersResultSelectorAndNullPaths(t *testing.T) {
	m := mustParse(t, `{"StartAt":"P","States":{
		"P":{"Type":"Pass","Parameters":{"flagged":true,"parts":{"first.$":"$.vals[0]","last3.$":"$.vals[-3:]"},"name.$":"$$.Execution.Name"},"ResultPath":"$.picked","Next":"T"},
		"T":{"Type":"Task","Resource":"test:r","ResultSelector":{"code.$":"$.StatusCode"},"ResultPath":"$.res","OutputPath":"$.res","Next":"D"},
		"D":{"Type":"Pass","ResultPath":null,"InputPath":null,"End":true}}}`)
	run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, `{"flagged":7,"vals":[0,10,20,30,40,50]}`), Execution: Execution{Name: "exec-1"}}, Options{})
	want := doc(t, `{"flagged":7,"vals":[0,10,20,30,40,50],"picked":{"flagged":true,"parts":{"first":0,"last3":[30,40,50]},"name":"exec-1"}}`)
	if !reflect.DeepEqual(run.Input, want) || run.State != "T" {
		t.Fatalf("T's input %v", run.Input)
	}
	run, _, _ = m.Step(run, Event{Kind: EventTaskSucceeded, Output: doc(t, `{"StatusCode":200,"Body":"x"}`), Attempt: 1}, Options{})
	if run.Status != Succeeded || !reflect.DeepEqual(run.Output, doc(t, `{"code":200}`)) {
		t.Fatalf("run %+v", run)
	}
}

func TestIntrinsicFunctions(t *testing.T) {
	input := doc(t, `{"name":"Ada","nums":[1,2,2,3],"obj":{"a":1},"other":{"b":2},"json":"{\"k\":[1]}","b64":"aGVsbG8="}`)
	cases := []struct{ expr, want string }{
		{`States.Format('Hello, {}! You have {} items.', $.name, States.ArrayLength($.nums))`, `"Hello, Ada! You have 4 items."`},
		{`States.Format('escaped \{\} and \'quotes\'')`, `"escaped {} and 'quotes'"`},
		{`States.StringToJson($.json)`, `{"k":[1]}`},
		{`States.JsonToString($.obj)`, `"{\"a\":1}"`},
		{`States.Array('a', 1, true, null, $.obj)`, `["a",1,true,null,{"a":1}]`},
		{`States.ArrayPartition($.nums, 3)`, `[[1,2,2],[3]]`},
		{`States.ArrayContains($.nums, 3)`, `true`},
		{`States.ArrayContains($.nums, 9)`, `false`},
		{`States.ArrayRange(1, 9, 2)`, `[1,3,5,7,9]`},
		{`States.ArrayGetItem($.nums, 3)`, `3`},
		{`States.ArrayLength($.nums)`, `4`},
		{`States.ArrayUnique($.nums)`, `[1,2,3]`},
		{`States.Base64Encode('hello')`, `"aGVsbG8="`},
		{`States.Base64Decode($.b64)`, `"hello"`},
		{`States.Hash('input data', 'SHA-1')`, `"aaff4a450a104cd177d28d18d74485e8cae074b7"`},
		{`States.JsonMerge($.obj, $.other, false)`, `{"a":1,"b":2}`},
		{`States.MathAdd(111, -1)`, `110`},
		{`States.StringSplit('1,2,3', ',')`, `["1","2","3"]`},
		{`States.MathRandom(5, 6)`, `5`},
	}
	for _, tc := range cases {
		t.Run(tc.expr, func(t *testing.T) {
			got, err := evalExpr(tc.expr, input, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, doc(t, tc.want)) {
				t.Fatalf("got %#v, want %s", got, tc.want)
			}
		})
	}
	if u, err := evalExpr(`States.UUID()`, input, nil); err != nil || len(u.(string)) != 36 {
		t.Fatalf("UUID %v %v", u, err)
	}
	for _, bad := range []string{`States.ArrayGetItem($.nums, 9)`, `States.Format('{}')`, `States.MathAdd('a', 1)`, `States.Hash('x', 'CRC32')`} {
		if _, err := evalExpr(bad, input, nil); err == nil {
			t.Errorf("%s succeeded", bad)
		} else if _, ok := err.(*IntrinsicError); !ok {
			t.Errorf("%s: %T is not States.IntrinsicFailure", bad, err)
		}
	}
}

func TestChoiceOperators(t *testing.T) {
	input := doc(t, `{"s":"abc","n":5,"b":true,"t":"2026-01-01T00:00:00Z","nul":null,"other":5,"file":"log-2026.txt"}`)
	cases := []struct {
		rule string
		want bool
	}{
		{`{"Variable":"$.s","StringEquals":"abc"}`, true},
		{`{"Variable":"$.s","StringLessThan":"abd"}`, true},
		{`{"Variable":"$.s","StringGreaterThanEquals":"abc"}`, true},
		{`{"Variable":"$.file","StringMatches":"log-*.txt"}`, true},
		{`{"Variable":"$.file","StringMatches":"log-\\*.txt"}`, false},
		{`{"Variable":"$.n","NumericEquals":5}`, true},
		{`{"Variable":"$.n","NumericGreaterThan":5}`, false},
		{`{"Variable":"$.n","NumericLessThanEquals":5}`, true},
		{`{"Variable":"$.n","NumericEqualsPath":"$.other"}`, true},
		{`{"Variable":"$.b","BooleanEquals":true}`, true},
		{`{"Variable":"$.t","TimestampLessThan":"2026-06-01T00:00:00Z"}`, true},
		{`{"Variable":"$.t","TimestampEquals":"2026-01-01T00:00:00+00:00"}`, true},
		{`{"Variable":"$.nul","IsNull":true}`, true},
		{`{"Variable":"$.missing","IsPresent":false}`, true},
		{`{"Variable":"$.n","IsNumeric":true}`, true},
		{`{"Variable":"$.s","IsString":true}`, true},
		{`{"Variable":"$.b","IsBoolean":true}`, true},
		{`{"Variable":"$.t","IsTimestamp":true}`, true},
		{`{"Variable":"$.s","IsTimestamp":true}`, false},
		{`{"Variable":"$.missing","StringEquals":"x"}`, false},
		{`{"Variable":"$.s","NumericEquals":1}`, false},
		{`{"And":[{"Variable":"$.n","NumericGreaterThan":1},{"Variable":"$.b","BooleanEquals":true}]}`, true},
		{`{"Or":[{"Variable":"$.n","NumericGreaterThan":10},{"Variable":"$.s","StringEquals":"abc"}]}`, true},
		{`{"Not":{"Variable":"$.s","StringEquals":"abc"}}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.rule, func(t *testing.T) {
			r, errs := parseChoiceRule(doc(t, tc.rule).(map[string]any), "$", false)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			got, err := r.Matches(input, nil)
			if err != nil || got != tc.want {
				t.Fatalf("got %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}

func TestChoiceWithoutAMatchFailsOrTakesTheDefault(t *testing.T) {
	def := `{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.n","NumericGreaterThan":10,"Next":"Big"}]%s},"Big":{"Type":"Pass","Result":"big","End":true},"Small":{"Type":"Pass","Result":"small","End":true}}}`
	run, _, _ := mustParse(t, strings.Replace(def, "%s", `,"Default":"Small"`, 1)).Step(Run{}, Event{Kind: EventStart, Input: doc(t, `{"n":1}`)}, Options{})
	if run.Status != Succeeded || run.Output != "small" {
		t.Fatalf("default: %+v", run)
	}
	noDefault := `{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.n","NumericGreaterThan":10,"Next":"Big"}]},"Big":{"Type":"Pass","Result":"big","End":true}}}`
	run, _, _ = mustParse(t, noDefault).Step(Run{}, Event{Kind: EventStart, Input: doc(t, `{"n":1}`)}, Options{})
	if run.Status != Failed || run.Error != ErrNoChoiceMatched {
		t.Fatalf("no default: %+v", run)
	}
}

func TestRetryBacksOffThenCatchTakesOver(t *testing.T) {
	m := mustParse(t, `{"StartAt":"T","States":{
		"T":{"Type":"Task","Resource":"test:r","Next":"Done",
			"Retry":[{"ErrorEquals":["Busy"],"IntervalSeconds":2,"MaxAttempts":2,"BackoffRate":3},{"ErrorEquals":["States.ALL"],"MaxAttempts":0}],
			"Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.error","Next":"Recover"}]},
		"Recover":{"Type":"Pass","End":true},
		"Done":{"Type":"Succeed"}}}`)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	run, eff, _ := m.Step(Run{}, Event{Kind: EventStart, At: t0, Input: doc(t, `{"x":1}`)}, Options{})
	if eff[0].Attempt != 1 {
		t.Fatalf("first attempt %+v", eff)
	}
	// Busy: retried after 2s, then after 6s (backoff 3).
	for i, wait := range []time.Duration{2 * time.Second, 6 * time.Second} {
		run, eff, _ = m.Step(run, Event{Kind: EventTaskFailed, Error: "Busy", Attempt: run.Attempt, At: t0}, Options{})
		if len(eff) != 1 || eff[0].Kind != EffectTimer || !eff[0].Until.Equal(t0.Add(wait)) {
			t.Fatalf("retry %d: effects %+v", i, eff)
		}
		// A timer that fires early is re-armed, not taken.
		if _, early, _ := m.Step(run, Event{Kind: EventTimer, At: t0}, Options{}); early[0].Kind != EffectTimer {
			t.Fatalf("early timer %+v", early)
		}
		run, eff, _ = m.Step(run, Event{Kind: EventTimer, At: t0.Add(wait)}, Options{})
		if len(eff) != 1 || eff[0].Kind != EffectRunTask || eff[0].Attempt != i+2 {
			t.Fatalf("retry %d: run again %+v", i, eff)
		}
	}
	// A stale result of an earlier attempt is ignored.
	if same, eff2, _ := m.Step(run, Event{Kind: EventTaskSucceeded, Attempt: 1, Output: 1.0}, Options{}); !reflect.DeepEqual(same, run) || eff2 != nil {
		t.Fatal("a stale attempt's result was taken")
	}
	// Busy again: retries exhausted; the catcher places the error and moves on.
	run, _, hist := m.Step(run, Event{Kind: EventTaskFailed, Error: "Busy", Cause: "still busy", Attempt: run.Attempt, At: t0}, Options{})
	if run.Status != Succeeded || !reflect.DeepEqual(run.Output, doc(t, `{"x":1,"error":{"Error":"Busy","Cause":"still busy"}}`)) {
		t.Fatalf("run %+v", run)
	}
	if len(hist) == 0 || hist[1].Kind != "Caught" {
		t.Fatalf("history %+v", hist)
	}
}

func TestStatesRuntimeIsNotCaughtByStatesALL(t *testing.T) {
	if matchesError([]string{ErrAll}, ErrRuntime) || !matchesError([]string{ErrAll}, "X") || matchesError([]string{ErrTaskFailed}, ErrTimeout) {
		t.Fatal("error matching")
	}
}

func TestWaitStatesBlockUntilTheirTime(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := mustParse(t, `{"StartAt":"W","States":{"W":{"Type":"Wait","SecondsPath":"$.s","Next":"Z"},"Z":{"Type":"Wait","Seconds":0,"End":true}}}`)
	run, eff, _ := m.Step(Run{}, Event{Kind: EventStart, At: t0, Input: doc(t, `{"s":30}`)}, Options{})
	if run.Status != Running || eff[0].Kind != EffectTimer || !eff[0].Until.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("run %+v effects %+v", run, eff)
	}
	run, eff, _ = m.Step(run, Event{Kind: EventTimer, At: t0.Add(30 * time.Second)}, Options{})
	if run.Status != Succeeded || len(eff) != 0 || !reflect.DeepEqual(run.Output, doc(t, `{"s":30}`)) {
		t.Fatalf("run %+v", run)
	}
}

func TestFailStatesAndTimeouts(t *testing.T) {
	m := mustParse(t, `{"StartAt":"F","States":{"F":{"Type":"Fail","ErrorPath":"$.e","CausePath":"$.c"}}}`)
	run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, `{"e":"Oops","c":"why"}`)}, Options{})
	if run.Status != Failed || run.Error != "Oops" || run.Cause != "why" {
		t.Fatalf("run %+v", run)
	}
	w := mustParse(t, `{"StartAt":"W","TimeoutSeconds":5,"States":{"W":{"Type":"Wait","Seconds":60,"End":true}}}`)
	run, _, _ = w.Step(Run{}, Event{Kind: EventStart, Input: doc(t, `{}`)}, Options{})
	run, _, _ = w.Step(run, Event{Kind: EventTimeout}, Options{})
	if run.Status != TimedOut || run.Error != ErrTimeout {
		t.Fatalf("run %+v", run)
	}
}

func TestALoopOfNonBlockingStatesYieldsAContinue(t *testing.T) {
	// A loop its input never leaves (a loop with no way out at all is refused at validation).
	m := mustParse(t, `{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},
		"B":{"Type":"Choice","Choices":[{"Variable":"$.stop","IsPresent":true,"Next":"Done"}],"Default":"A"},"Done":{"Type":"Succeed"}}}`)
	run, eff, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, `{}`)}, Options{MaxTransitionsPerStep: 10})
	if run.Status != Running || len(eff) != 1 || eff[0].Kind != EffectContinue || run.Transitions != 11 {
		t.Fatalf("run %+v effects %+v", run, eff)
	}
}

func TestAResultPathIntoAScalarFails(t *testing.T) {
	m := mustParse(t, `{"StartAt":"A","States":{"A":{"Type":"Pass","Result":1,"ResultPath":"$.x.y","End":true}}}`)
	run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, `{"x":"scalar"}`)}, Options{})
	if run.Status != Failed || run.Error != ErrResultPathMatchFailed {
		t.Fatalf("run %+v", run)
	}
}

func TestParallelBranchesRunAndTheirOutputsAreCollectedInOrder(t *testing.T) {
	m := mustParse(t, `{"StartAt":"P","States":{"P":{"Type":"Parallel","ResultPath":"$.results","End":true,"Branches":[
		{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"test:a","End":true}}},
		{"StartAt":"B","States":{"B":{"Type":"Pass","Parameters":{"sum.$":"States.MathAdd($.x, 1)"},"End":true}}}]}}}`)
	run, eff, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, `{"x":1}`)}, Options{})
	if run.Status != Running || len(eff) != 1 || eff[0].Kind != EffectRunTask || !reflect.DeepEqual(eff[0].Path, []int{0}) {
		t.Fatalf("run %+v effects %+v", run, eff)
	}
	run, _, _ = m.Step(run, Event{Kind: EventTaskSucceeded, Path: []int{0}, Attempt: 1, Output: "from-a"}, Options{})
	if run.Status != Succeeded || !reflect.DeepEqual(run.Output, doc(t, `{"x":1,"results":["from-a",{"sum":2}]}`)) {
		t.Fatalf("run %+v", run)
	}
}

func TestAFailingBranchFailsTheParallelStateAndCanBeRetried(t *testing.T) {
	m := mustParse(t, `{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,
		"Retry":[{"ErrorEquals":["Boom"],"MaxAttempts":1,"IntervalSeconds":1}],
		"Branches":[{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"test:a","End":true}}}]}}}`)
	t0 := time.Unix(100, 0)
	run, _, _ := m.Step(Run{}, Event{Kind: EventStart, At: t0, Input: doc(t, `{}`)}, Options{})
	run, eff, _ := m.Step(run, Event{Kind: EventTaskFailed, At: t0, Path: []int{0}, Attempt: 1, Error: "Boom"}, Options{})
	if run.Status != Running || eff[0].Kind != EffectTimer {
		t.Fatalf("retry: %+v %+v", run, eff)
	}
	run, eff, _ = m.Step(run, Event{Kind: EventTimer, At: t0.Add(time.Second)}, Options{})
	if len(eff) != 1 || eff[0].Kind != EffectRunTask || !reflect.DeepEqual(eff[0].Path, []int{0}) {
		t.Fatalf("branch not restarted: %+v", eff)
	}
	run, _, _ = m.Step(run, Event{Kind: EventTaskFailed, At: t0, Path: []int{0}, Attempt: 1, Error: "Boom", Cause: "again"}, Options{})
	if run.Status != Failed || run.Error != "Boom" || run.Cause != "again" {
		t.Fatalf("run %+v", run)
	}
}

func TestMapRunsItemsWithinMaxConcurrency(t *testing.T) {
	m := mustParse(t, `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.orders","MaxConcurrency":2,
		"ItemSelector":{"id.$":"$$.Map.Item.Value.id","index.$":"$$.Map.Item.Index","tag.$":"$.tag"},
		"ItemProcessor":{"StartAt":"Ship","States":{"Ship":{"Type":"Task","Resource":"test:ship","End":true}}},
		"ResultPath":"$.shipped","End":true}}}`)
	run, eff, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, `{"tag":"t","orders":[{"id":"a"},{"id":"b"},{"id":"c"}]}`)}, Options{})
	if len(eff) != 2 || !reflect.DeepEqual(eff[1].Input, doc(t, `{"id":"b","index":1,"tag":"t"}`)) {
		t.Fatalf("started %+v", eff)
	}
	run, eff, _ = m.Step(run, Event{Kind: EventTaskSucceeded, Path: []int{1}, Attempt: 1, Output: "B"}, Options{})
	if len(eff) != 1 || !reflect.DeepEqual(eff[0].Path, []int{2}) {
		t.Fatalf("third item not started when the second finished: %+v", eff)
	}
	run, _, _ = m.Step(run, Event{Kind: EventTaskSucceeded, Path: []int{2}, Attempt: 1, Output: "C"}, Options{})
	run, _, _ = m.Step(run, Event{Kind: EventTaskSucceeded, Path: []int{0}, Attempt: 1, Output: "A"}, Options{})
	if run.Status != Succeeded || !reflect.DeepEqual(run.Output.(map[string]any)["shipped"], doc(t, `["A","B","C"]`)) {
		t.Fatalf("run %+v", run)
	}
}

func TestAnEmptyMapSucceedsWithAnEmptyArray(t *testing.T) {
	m := mustParse(t, `{"StartAt":"M","States":{"M":{"Type":"Map","Iterator":{"StartAt":"X","States":{"X":{"Type":"Pass","End":true}}},"End":true}}}`)
	run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, `[]`)}, Options{})
	if run.Status != Succeeded || !reflect.DeepEqual(run.Output, []any{}) {
		t.Fatalf("run %+v", run)
	}
}

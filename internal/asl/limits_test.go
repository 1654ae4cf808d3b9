package asl

import (
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// nestedMaps is a Map of Maps of Pass states: outer × inner iterations that never block.
func nestedMaps(outer, inner int) (string, any) {
	def := `{"StartAt":"Outer","States":{"Outer":{"Type":"Map","ItemsPath":"$.rows","End":true,
		"ItemSelector":{"cols.$":"$.cols"},
		"ItemProcessor":{"StartAt":"Inner","States":{"Inner":{"Type":"Map","ItemsPath":"$.cols","End":true,
			"ResultSelector":{"n.$":"States.ArrayLength($)"},
			"ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}}}}}}}`
	rows, cols := make([]any, outer), make([]any, inner)
	for i := range rows {
		rows[i] = float64(i)
	}
	for i := range cols {
		cols[i] = float64(i)
	}
	return def, map[string]any{"rows": rows, "cols": cols}
}

// The attack: 1,000 × 1,000 Pass iterations ran inside one step (4.2 s, 3.7 GiB allocated, 298 MiB
// live). Now a step stops when its budget is spent, returns at most DefaultMaxHistory transitions,
// and the run fails once its Map states would start more than MaxMapItemsPerRun iterations.
func TestAMapOfMapsOfPassStatesYieldsEachStepAndHitsTheItemLimit(t *testing.T) {
	def, input := nestedMaps(1000, 1000)
	m := mustParse(t, def)
	run, eff, hist := m.Step(Run{}, Event{Kind: EventStart, Input: input}, Options{})
	steps := 1
	for ; run.Status == Running && steps < 1000; steps++ {
		if len(eff) == 0 || eff[len(eff)-1].Kind != EffectContinue {
			t.Fatalf("step %d stopped without a Continue: %+v", steps, eff)
		}
		if len(hist) > DefaultMaxHistory {
			t.Fatalf("step %d returned %d transitions", steps, len(hist))
		}
		run, eff, hist = m.Step(run, Event{Kind: EventContinue}, Options{})
	}
	if run.Status != Failed || run.Error != ErrDataLimitExceeded || !strings.Contains(run.Cause, fmt.Sprint(MaxMapItemsPerRun)) {
		t.Fatalf("after %d steps: run %s %s %q", steps, run.Status, run.Error, run.Cause)
	}
}

// The budget is shared by the whole tree of a step: a step of a Map of Maps never executes more
// than the budget's transitions, however the work is spread over its children.
func TestOneBudgetBoundsTheWholeTreeOfAStep(t *testing.T) {
	def, input := nestedMaps(40, 40)
	m := mustParse(t, def)
	budget := &Budget{Transitions: 100, Bytes: DefaultStepBytes}
	run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: input}, Options{Budget: budget})
	if run.Status != Running || budget.Transitions > 0 || budget.Transitions < -40 {
		t.Fatalf("run %s, budget left %+v", run.Status, budget)
	}
	for steps := 0; run.Status == Running; steps++ {
		if !m.NeedsContinue(run, Options{}) || steps > 100 {
			t.Fatalf("a run that needs no continue stopped (step %d)", steps)
		}
		run, _, _ = m.Step(run, Event{Kind: EventContinue}, Options{Budget: &Budget{Transitions: 100, Bytes: DefaultStepBytes}})
	}
	if run.Status != Succeeded || len(run.Output.([]any)) != 40 || run.MapItems != 40+40*40 {
		t.Fatalf("run %s %s %q, %d map items", run.Status, run.Error, run.Cause, run.MapItems)
	}
}

func TestValuesBeyondTheEnginesLimitsAreRefusedWithTheirPath(t *testing.T) {
	nest := `{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`
	for range MaxNesting + 1 {
		nest = `{"StartAt":"M","States":{"M":{"Type":"Map","End":true,"ItemProcessor":` + nest + `}}}`
	}
	cases := []struct{ name, def, path string }{
		{"a Wait of more than a year is refused", `{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":31536001,"End":true}}}`, "$.States.W.Seconds"},
		{"a Wait that would overflow a duration is refused", `{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":1e12,"End":true}}}`, "$.States.W.Seconds"},
		{"a Task TimeoutSeconds beyond 99999999 is refused", `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:r","TimeoutSeconds":100000000,"End":true}}}`, "$.States.T.TimeoutSeconds"},
		{"a HeartbeatSeconds beyond 99999999 is refused", `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:r","HeartbeatSeconds":1e15,"End":true}}}`, "$.States.T.HeartbeatSeconds"},
		{"a machine TimeoutSeconds beyond 99999999 is refused", `{"StartAt":"P","TimeoutSeconds":1e12,"States":{"P":{"Type":"Pass","End":true}}}`, "$.TimeoutSeconds"},
		{"a retry interval beyond 99999999 is refused", `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:r","End":true,"Retry":[{"ErrorEquals":["X"],"IntervalSeconds":1e12}]}}}`, "$.States.T.Retry[0].IntervalSeconds"},
		{"a retry MaxAttempts beyond 99999999 is refused", `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:r","End":true,"Retry":[{"ErrorEquals":["X"],"MaxAttempts":1e12}]}}}`, "$.States.T.Retry[0].MaxAttempts"},
		{"Map states nested deeper than the limit are refused", nest, "$.States.M" + strings.Repeat(".ItemProcessor.States.M", MaxNesting) + ".ItemProcessor"},
		{"a second descendant segment in a path is refused", `{"StartAt":"P","States":{"P":{"Type":"Pass","InputPath":"$..a..b","End":true}}}`, "$.States.P.InputPath"},
		{"a descendant segment inside a filter is refused", `{"StartAt":"P","States":{"P":{"Type":"Pass","InputPath":"$[?@..x]","End":true}}}`, "$.States.P.InputPath"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Parse([]byte(tc.def))
			for _, e := range errs {
				if e.Path == tc.path {
					return
				}
			}
			t.Fatalf("no error at %s; got %v", tc.path, errs)
		})
	}
}

// The attack: a SecondsPath or a retry backoff beyond time.Duration's range wrapped around and the
// wait ended at once. Now a wait beyond a year fails the state, and a retry delay is capped at a
// year.
func TestWaitsBeyondAYearFailInsteadOfEndingAtOnce(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct{ name, state, input string }{
		{"a SecondsPath of 1e12 seconds", `"Type":"Wait","SecondsPath":"$.s"`, `{"s":1e12}`},
		{"a SecondsPath of a year and a second", `"Type":"Wait","SecondsPath":"$.s"`, `{"s":31536001}`},
		{"a TimestampPath in the year 9999", `"Type":"Wait","TimestampPath":"$.t"`, `{"t":"9999-01-01T00:00:00Z"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, `{"StartAt":"W","States":{"W":{`+tc.state+`,"End":true}}}`)
			run, _, _ := m.Step(Run{}, Event{Kind: EventStart, At: t0, Input: doc(t, tc.input)}, Options{})
			if run.Status != Failed || run.Error != ErrRuntime || !strings.Contains(run.Cause, "year") {
				t.Fatalf("run %s %s %q", run.Status, run.Error, run.Cause)
			}
		})
	}
	t.Run("a retry backoff that grows past a year waits a year", func(t *testing.T) {
		m := mustParse(t, `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:r","End":true,
			"Retry":[{"ErrorEquals":["X"],"IntervalSeconds":99999999,"BackoffRate":1000,"MaxAttempts":5}]}}}`)
		run, _, _ := m.Step(Run{}, Event{Kind: EventStart, At: t0, Input: doc(t, `{}`)}, Options{})
		for range 3 {
			run, _, _ = m.Step(run, Event{Kind: EventTaskFailed, At: t0, Error: "X", Attempt: run.Attempt}, Options{})
			if run.Waiting == nil || run.Waiting.Sub(t0) < 24*time.Hour {
				t.Fatalf("retry at %v", run.Waiting)
			}
			run, _, _ = m.Step(run, Event{Kind: EventTimer, At: *run.Waiting}, Options{})
			t0 = run.Entered
		}
	})
}

// The attack: payloads grew without bound inside one evaluation (a Parameters template, an
// intrinsic, a query result). Now every evaluation is checked against Step Functions' 256 KiB and
// fails the state with States.DataLimitExceeded.
func TestPayloadsBeyond256KiBFailTheStateWithDataLimitExceeded(t *testing.T) {
	input := map[string]any{"s": strings.Repeat("x", 100<<10), "n": []any{1.0, 2.0}}
	for _, tc := range []struct{ name, state string }{
		{"Parameters copying the input three times", `"Type":"Pass","Parameters":{"a.$":"$","b.$":"$","c.$":"$"}`},
		{"an intrinsic array of the input three times", `"Type":"Pass","Parameters":{"a.$":"States.Array($, $, $)"}`},
		{"an intrinsic format of the input three times", `"Type":"Pass","Parameters":{"a.$":"States.Format('{}{}{}', $.s, $.s, $.s)"}`},
		{"an intrinsic of an intrinsic too large", `"Type":"Pass","Parameters":{"a.$":"States.ArrayLength(States.Array($, $, $))"}`},
		{"a ResultPath that makes the output too large", `"Type":"Pass","Parameters":{"a.$":"$.s","b.$":"$.s"},"ResultPath":"$.copy"`},
		{"a Result too large for a payload", `"Type":"Pass","Result":"` + strings.Repeat("y", 300<<10) + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, `{"StartAt":"S","States":{"S":{`+tc.state+`,"End":true}}}`)
			run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: input}, Options{})
			if run.Status != Failed || run.Error != ErrDataLimitExceeded || !strings.Contains(run.Cause, "262144") {
				t.Fatalf("run %s %s %q", run.Status, run.Error, run.Cause)
			}
		})
	}
	t.Run("a task result too large", func(t *testing.T) {
		m := mustParse(t, `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:r","End":true}}}`)
		run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: map[string]any{}}, Options{})
		run, _, _ = m.Step(run, Event{Kind: EventTaskSucceeded, Attempt: 1, Output: strings.Repeat("z", 300<<10)}, Options{})
		if run.Status != Failed || run.Error != ErrDataLimitExceeded {
			t.Fatalf("run %s %s %q", run.Status, run.Error, run.Cause)
		}
	})
	t.Run("an execution input too large", func(t *testing.T) {
		m := mustParse(t, `{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`)
		run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: strings.Repeat("z", 300<<10)}, Options{})
		if run.Status != Failed || run.Error != ErrDataLimitExceeded {
			t.Fatalf("run %s %s %q", run.Status, run.Error, run.Cause)
		}
	})
}

// finishes fails the test if f has not returned after d. It guards against a hang, it does not
// measure speed: the linear algorithms take milliseconds where the quadratic ones took seconds to
// minutes on these inputs (benchmarks measure speed).
func finishes(t *testing.T, d time.Duration, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("still running after %v: quadratic?", d)
	}
}

// The attacks: StringSplit on 234 KiB took 1.9 s (each character searched the separator),
// ArrayUnique on 106 KiB 2.9 s (every pair compared).
func TestStringSplitAndArrayUniqueOfLargeInputsAreLinear(t *testing.T) {
	var s, sep strings.Builder
	for i := range 1 << 20 {
		s.WriteByte(byte('a' + i%26))
		sep.WriteRune(rune(0x4e00 + i%20000)) // CJK characters, none of them in s
	}
	finishes(t, 5*time.Second, func() {
		out, err := applyIntrinsic("States.StringSplit", []any{s.String(), sep.String()})
		if err != nil || len(out.([]any)) != 1 {
			t.Errorf("split: %v", err)
		}
	})
	distinct := make([]any, 100000)
	for i := range distinct {
		distinct[i] = map[string]any{"i": float64(i)}
	}
	finishes(t, 5*time.Second, func() {
		out, err := applyIntrinsic("States.ArrayUnique", []any{append(distinct, distinct[:10]...)})
		if err != nil || len(out.([]any)) != len(distinct) {
			t.Errorf("unique: %v", err)
		}
	})
}

// The attack: a $..* query over 29 KiB of nested input took 4.5 s and 71 MiB (each level copied
// the results of the levels below it).
func TestADescendantQueryOverDeeplyNestedInputIsLinear(t *testing.T) {
	input := doc(t, strings.Repeat("[", 9000)+strings.Repeat("]", 9000))
	p, err := ParsePath("$..*")
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	finishes(t, 5*time.Second, func() {
		// Each of the 9,000 nodes is a subtree: the JSON of the result is quadratic, so it
		// fails the payload limit, once it has been found in linear time.
		if _, err := p.Get(input, nil); errorName(err, "") != ErrDataLimitExceeded {
			t.Errorf("query: %v", err)
		}
	})
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 8<<20 {
		t.Errorf("the query allocated %d MiB", alloc>>20)
	}
}

// The attack: a state whose Parameters run many intrinsics over a large input did seconds of work
// inside one state, which no budget checked between states can split. Such a state is refused
// before it evaluates anything.
func TestAStateThatWouldReadItsInputTooManyTimesFails(t *testing.T) {
	fields := map[string]any{}
	for i := range 200 {
		fields[fmt.Sprintf("u%d.$", i)] = "States.ArrayLength(States.ArrayUnique($.list))"
	}
	list := make([]any, 60000)
	for i := range list {
		list[i] = float64(i % 7)
	}
	params, _ := json.Marshal(fields)
	m := mustParse(t, `{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":`+string(params)+`,"End":true}}}`)
	run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: map[string]any{"list": list}}, Options{})
	if run.Status != Failed || run.Error != ErrDataLimitExceeded || !strings.Contains(run.Cause, "per state") {
		t.Fatalf("run %s %s %q", run.Status, run.Error, run.Cause)
	}
}

// An endless loop of Pass and Choice states ends: a run makes at most MaxTransitionsPerRun
// transitions, and then fails as a whole, whatever catches its states. (The loop has a way out
// its input never takes: one with none is refused at validation.)
func TestAnEndlessLoopFailsAtTheTransitionLimitOfARun(t *testing.T) {
	m := mustParse(t, `{"StartAt":"A","States":{
		"A":{"Type":"Pass","Next":"B"},
		"B":{"Type":"Choice","Choices":[{"Variable":"$.stop","IsPresent":true,"Next":"Done"}],"Default":"A"},
		"Done":{"Type":"Succeed"}}}`)
	run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: map[string]any{}}, Options{})
	steps := 1
	for ; run.Status == Running && steps <= MaxTransitionsPerRun/DefaultStepTransitions+1; steps++ {
		run, _, _ = m.Step(run, Event{Kind: EventContinue}, Options{})
	}
	if run.Status != Failed || run.Error != ErrRuntime || run.Executed != MaxTransitionsPerRun || !strings.Contains(run.Cause, "1000000") {
		t.Fatalf("after %d steps: run %s %s %q (%d transitions)", steps, run.Status, run.Error, run.Cause, run.Executed)
	}
}

// The local runner (millrace run) goes on after every step that spent its budget.
func TestRunningLocallyGoesOnAfterEachStepBudget(t *testing.T) {
	def, input := nestedMaps(100, 100)
	m := mustParse(t, def)
	now := func() time.Time { return time.Unix(0, 0) }
	run := m.RunLocally(t.Context(), input, "local", nil, now, nil)
	if run.Status != Succeeded || len(run.Output.([]any)) != 100 {
		t.Fatalf("run %s %s %q", run.Status, run.Error, run.Cause)
	}
}

package asl

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var redriveStart = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// roundTrip sends a run through JSON, as the controller persists it in status.engine and reads it
// back (after a manager restart too).
func roundTrip(t *testing.T, run Run) Run {
	t.Helper()
	raw, err := json.Marshal(run.Stored())
	if err != nil {
		t.Fatal(err)
	}
	var out Run
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// steer drives a run until it stops: tasks are answered by answer, timers fire, the run goes
// through JSON between every two steps. It returns the run, the tasks it ran ("label input", the
// label as in Active: "M[2].Work") and its history.
func steer(t *testing.T, m *Machine, run Run, effs []Effect, at time.Time, answer func(label string, e Effect) taskAnswer) (Run, []string, []Transition) {
	t.Helper()
	var tasks []string
	var hist []Transition
	for i := 0; run.Status == Running; i++ {
		if i > 10000 {
			t.Fatal("the run does not end")
		}
		run = roundTrip(t, run)
		if len(effs) == 0 {
			t.Fatalf("the run waits for nothing: %+v", run)
		}
		e := effs[0]
		effs = effs[1:]
		var ev Event
		switch e.Kind {
		case EffectRunTask:
			label := taskLabel(m, run, e)
			in, _ := json.Marshal(e.Input)
			tasks = append(tasks, label+" "+string(in))
			a := answer(label, e)
			ev = Event{Kind: EventTaskSucceeded, Output: a.out, Attempt: e.Attempt, Path: e.Path}
			if a.err != "" {
				ev = Event{Kind: EventTaskFailed, Error: a.err, Cause: a.cause, Attempt: e.Attempt, Path: e.Path}
			}
		case EffectTimer:
			if e.Until.After(at) {
				at = e.Until
			}
			ev = Event{Kind: EventTimer, Path: e.Path}
		case EffectContinue:
			ev = Event{Kind: EventContinue}
		}
		ev.At = at
		var more []Effect
		var h []Transition
		run, more, h = m.Step(run, ev, Options{MaxHistory: -1})
		hist = append(hist, h...)
		effs = append(effs, more...)
	}
	return run, tasks, hist
}

// taskLabel is the label of the running task an effect is for.
func taskLabel(m *Machine, run Run, e Effect) string {
	for _, a := range m.Active(run) {
		if slices.Equal(a.Path, e.Path) && a.State.Name == e.State {
			return a.Label
		}
	}
	return e.State
}

// start starts a run and drives it to its end.
func start(t *testing.T, m *Machine, input string, answer func(string, Effect) taskAnswer) (Run, []string, []Transition) {
	t.Helper()
	run, effs, hist := m.Step(Run{}, Event{Kind: EventStart, At: redriveStart, Input: doc(t, input),
		Execution: Execution{ID: "arn:exec:r", Name: "r"}}, Options{MaxHistory: -1})
	run, tasks, more := steer(t, m, run, effs, redriveStart, answer)
	return run, tasks, append(hist, more...)
}

// redriveAndSteer redrives a stopped run (after a JSON round trip) and drives it to its end.
func redriveAndSteer(t *testing.T, m *Machine, run Run, at time.Time, answer func(string, Effect) taskAnswer) (Run, []string, []Transition) {
	t.Helper()
	next, effs, hist, err := m.Redrive(roundTrip(t, run), at, Options{MaxHistory: -1})
	if err != nil {
		t.Fatalf("redrive: %v", err)
	}
	next, tasks, more := steer(t, m, next, effs, at, answer)
	return next, tasks, append(hist, more...)
}

// failing answers tasks with their input, but fails those whose label is in fail.
func failing(fail ...string) func(string, Effect) taskAnswer {
	return func(label string, e Effect) taskAnswer {
		if slices.Contains(fail, label) {
			return taskAnswer{err: "Work.Broken", cause: label + " is broken"}
		}
		return taskAnswer{out: e.Input}
	}
}

func entered(hist []Transition) []string {
	var out []string
	for _, h := range hist {
		if h.Kind == "Entered" {
			out = append(out, h.State)
		}
	}
	return out
}

func taskLabels(tasks []string) []string {
	out := make([]string, len(tasks))
	for i, t := range tasks {
		out[i], _, _ = strings.Cut(t, " ")
	}
	return out
}

func TestRedriveOfAMapRerunsOnlyTheIterationsThatDidNotSucceed(t *testing.T) {
	def := func(concurrency int) string {
		return fmt.Sprintf(`{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":%d,"End":true,
		"ItemSelector":{"id.$":"$$.Map.Item.Value","n.$":"$$.Map.Item.Index"},
		"ItemProcessor":{"StartAt":"Prep","States":{
			"Prep":{"Type":"Pass","Parameters":{"id.$":"$.id","prepared":true},"Next":"Work"},
			"Work":{"Type":"Task","Resource":"test:work","Parameters":{"id.$":"$.id","redrive.$":"$$.Execution.RedriveCount"},"End":true}}}}}}`, concurrency)
	}
	input := `{"items":["a","b","c","d","e"]}`
	for _, tc := range []struct {
		name        string
		concurrency int
		fail        []string
		// firstTasks ran in the first attempt; redriven the tasks the redrive ran; prepAgain the
		// iterations whose first state ran again (started anew, not continued).
		firstTasks, redriven []string
		prepAgain            []string
	}{
		{"one at a time: the failed iteration goes on from its failed state, the others start", 1, []string{"M[2].Work"},
			[]string{"M[0].Work", "M[1].Work", "M[2].Work"}, []string{"M[2].Work", "M[3].Work", "M[4].Work"},
			[]string{"M[3].Prep", "M[4].Prep"}},
		{"all at once: the failed and the abandoned iterations run again, not the finished one", 5, []string{"M[1].Work"},
			[]string{"M[0].Work", "M[1].Work"}, []string{"M[1].Work", "M[2].Work", "M[3].Work", "M[4].Work"},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, def(tc.concurrency))
			run, tasks, _ := start(t, m, input, failing(tc.fail...))
			if run.Status != Failed || run.Error != "Work.Broken" {
				t.Fatalf("first attempt: %s %s %s", run.Status, run.Error, run.Cause)
			}
			if got := taskLabels(tasks); !reflect.DeepEqual(got, tc.firstTasks) {
				t.Errorf("first attempt ran %v, want %v", got, tc.firstTasks)
			}
			run, tasks, hist := redriveAndSteer(t, m, run, redriveStart.Add(time.Hour), failing())
			if run.Status != Succeeded {
				t.Fatalf("redriven: %s %s %s", run.Status, run.Error, run.Cause)
			}
			if got := taskLabels(tasks); !reflect.DeepEqual(got, tc.redriven) {
				t.Errorf("the redrive ran %v, want %v", got, tc.redriven)
			}
			var prep []string
			for _, s := range entered(hist) {
				if strings.HasSuffix(s, ".Prep") {
					prep = append(prep, s)
				}
			}
			if !reflect.DeepEqual(prep, tc.prepAgain) {
				t.Errorf("Prep ran again in %v, want %v", prep, tc.prepAgain)
			}
			want := []any{}
			for i, id := range []string{"a", "b", "c", "d", "e"} {
				r := 0.0
				if slices.Contains(taskLabels(tasks), fmt.Sprintf("M[%d].Work", i)) {
					r = 1
				}
				want = append(want, map[string]any{"id": id, "redrive": r})
			}
			if !reflect.DeepEqual(run.Output, want) {
				t.Errorf("output %v, want %v (kept and new results in item order)", run.Output, want)
			}
			if run.Execution.RedriveCount != 1 || run.Execution.RedriveTime == nil || !run.Execution.RedriveTime.Equal(redriveStart.Add(time.Hour)) {
				t.Errorf("redrive count %d, time %v", run.Execution.RedriveCount, run.Execution.RedriveTime)
			}
			if hist[0].Kind != "Redriven" || hist[0].State != "M" || hist[0].Info != "redrive 1" {
				t.Errorf("the redrive's first transition is %+v", hist[0])
			}
		})
	}
}

func TestRedriveOfAParallelRerunsOnlyTheBranchesThatDidNotSucceed(t *testing.T) {
	m := mustParse(t, `{"StartAt":"P","States":{"P":{"Type":"Parallel","Next":"Done","Branches":[
		{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"test:a","End":true}}},
		{"StartAt":"B0","States":{"B0":{"Type":"Pass","Result":"b","ResultPath":"$.b","Next":"B"},"B":{"Type":"Task","Resource":"test:b","End":true}}},
		{"StartAt":"L","States":{"L":{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":1,"End":true,
			"ItemProcessor":{"StartAt":"I","States":{"I":{"Type":"Task","Resource":"test:i","End":true}}}}}}]},
		"Done":{"Type":"Pass","End":true}}}`)
	first, tasks, _ := start(t, m, `{"items":[1,2,3]}`, failing("P[1].B", "P[2].L[1].I"))
	if first.Status != Failed {
		t.Fatalf("first attempt: %s", first.Status)
	}
	// The first failure ends the run: the third branch's first iteration is abandoned.
	if got := taskLabels(tasks); !reflect.DeepEqual(got, []string{"P[0].A", "P[1].B"}) {
		t.Fatalf("first attempt ran %v", got)
	}
	run, tasks, hist := redriveAndSteer(t, m, first, redriveStart.Add(time.Minute), failing("P[2].L[1].I"))
	if run.Status != Failed || run.Error != "Work.Broken" {
		t.Fatalf("second attempt: %s %s", run.Status, run.Error)
	}
	if got := taskLabels(tasks); !reflect.DeepEqual(got, []string{"P[1].B", "P[2].L[0].I", "P[2].L[1].I"}) {
		t.Errorf("the first redrive ran %v", got)
	}
	if slices.Contains(entered(hist), "P[1].B0") {
		t.Error("the failed branch's first state ran again")
	}
	run, tasks, _ = redriveAndSteer(t, m, run, redriveStart.Add(2*time.Minute), failing())
	if run.Status != Succeeded {
		t.Fatalf("third attempt: %s %s %s", run.Status, run.Error, run.Cause)
	}
	if got := taskLabels(tasks); !reflect.DeepEqual(got, []string{"P[2].L[1].I", "P[2].L[2].I"}) {
		t.Errorf("the second redrive ran %v", got)
	}
	want := doc(t, `[{"items":[1,2,3]},{"items":[1,2,3],"b":"b"},[1,2,3]]`)
	if !reflect.DeepEqual(run.Output, want) {
		t.Errorf("output %v, want %v", run.Output, want)
	}
	if run.Execution.RedriveCount != 2 {
		t.Errorf("redrive count %d, want 2", run.Execution.RedriveCount)
	}
}

// A Task that failed after its retries is run again with fresh retriers, its input computed again
// (here with the redrive count), and the states before it are not run again.
func TestRedriveOfATaskThatExhaustedItsRetries(t *testing.T) {
	m := mustParse(t, `{"StartAt":"Prep","States":{
		"Prep":{"Type":"Pass","Parameters":{"order.$":"$.order"},"Assign":{"customer.$":"$.order"},"Next":"Charge"},
		"Charge":{"Type":"Task","Resource":"test:charge","End":true,
			"Parameters":{"order.$":"$.order","customer.$":"$customer","redrive.$":"$$.Execution.RedriveCount","retry.$":"$$.State.RetryCount"},
			"Retry":[{"ErrorEquals":["Card.Declined"],"MaxAttempts":2,"IntervalSeconds":1}]}}}`)
	calls := 0
	declineUntil := 3
	answer := func(_ string, e Effect) taskAnswer {
		calls++
		if calls <= declineUntil {
			return taskAnswer{err: "Card.Declined"}
		}
		return taskAnswer{out: e.Input}
	}
	first, tasks, _ := start(t, m, `{"order":"o-1"}`, answer)
	if first.Status != Failed || first.Error != "Card.Declined" || len(tasks) != 3 {
		t.Fatalf("first attempt: %s %s after %d tasks", first.Status, first.Error, len(tasks))
	}
	declineUntil = 5 // two more declines: the redrive succeeds only if its retriers start from zero
	run, tasks, hist := redriveAndSteer(t, m, first, redriveStart.Add(time.Hour), answer)
	if run.Status != Succeeded {
		t.Fatalf("redriven: %s %s", run.Status, run.Error)
	}
	if len(tasks) != 3 {
		t.Errorf("the redrive ran %d attempts, want 3: %v", len(tasks), tasks)
	}
	if slices.Contains(entered(hist), "Prep") {
		t.Error("Prep ran again")
	}
	want := doc(t, `{"order":"o-1","customer":"o-1","redrive":1,"retry":2}`)
	if !reflect.DeepEqual(run.Output, want) {
		t.Errorf("output %v, want %v", run.Output, want)
	}
}

// A Fail state that failed the run fails it again when redriven (it is the state the run stopped
// in, and it is run again).
func TestRedriveOfARunThatEndedInAFailStateFailsAgain(t *testing.T) {
	m := mustParse(t, `{"StartAt":"Check","States":{
		"Check":{"Type":"Pass","Next":"Stop"},
		"Stop":{"Type":"Fail","Error":"Order.Invalid","CausePath":"States.Format('redrive {}', $$.Execution.RedriveCount)"}}}`)
	first, _, _ := start(t, m, `{}`, failing())
	if first.Status != Failed || first.Cause != "redrive 0" {
		t.Fatalf("first attempt: %+v", first)
	}
	run, _, hist := redriveAndSteer(t, m, first, redriveStart.Add(time.Hour), failing())
	if run.Status != Failed || run.Error != "Order.Invalid" || run.Cause != "redrive 1" {
		t.Errorf("redriven: %s %s %s", run.Status, run.Error, run.Cause)
	}
	var kinds []string
	for _, h := range hist {
		kinds = append(kinds, h.State+":"+h.Kind)
	}
	if want := []string{"Stop:Redriven", "Stop:Entered", "Stop:FAILED"}; !reflect.DeepEqual(kinds, want) {
		t.Errorf("history %v, want %v", kinds, want)
	}
}

// A timed-out (or aborted) run goes on with the task it was running, as a new attempt; the
// machine's TimeoutSeconds counts again from the redrive.
func TestRedriveOfATimedOutRun(t *testing.T) {
	m := mustParse(t, `{"TimeoutSeconds":60,"StartAt":"Slow","States":{"Slow":{"Type":"Task","Resource":"test:slow","End":true}}}`)
	run, effs, _ := m.Step(Run{}, Event{Kind: EventStart, At: redriveStart, Input: doc(t, `{"x":1}`)}, Options{})
	if len(effs) != 1 || effs[0].Kind != EffectRunTask {
		t.Fatalf("effects %+v", effs)
	}
	late := redriveStart.Add(time.Minute)
	if d, ok := m.Deadline(run); !ok || !d.Equal(late) {
		t.Errorf("deadline %v %v, want %v", d, ok, late)
	}
	run, _, _ = m.Step(run, Event{Kind: EventTimeout, At: late}, Options{})
	if run.Status != TimedOut || !run.Stopped.Equal(late) {
		t.Fatalf("timed out: %s, stopped %v", run.Status, run.Stopped)
	}
	at := late.Add(time.Hour)
	next, effs, _, err := m.Redrive(roundTrip(t, run), at, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if next.Status != Running || len(effs) != 1 || effs[0].Kind != EffectRunTask || effs[0].Attempt != 1 || !reflect.DeepEqual(effs[0].Input, doc(t, `{"x":1}`)) {
		t.Fatalf("redriven: %s, effects %+v", next.Status, effs)
	}
	if d, _ := m.Deadline(next); !d.Equal(at.Add(time.Minute)) {
		t.Errorf("deadline %v, want a minute after the redrive", d)
	}
	if old, now := m.Active(run), m.Active(next); len(now) != 1 || len(old) != 0 {
		t.Fatalf("active %v %v", old, now)
	}
	// The task is a new task: its key differs from the first attempt's (a stale report of the
	// first one is refused by its token).
	first := Active{State: m.States["Slow"], Attempt: 1, Visit: "1"}
	if m.Active(next)[0].Key() == first.Key() {
		t.Errorf("the redriven task has the first attempt's key %s", first.Key())
	}
	if next.Stopped != (time.Time{}) {
		t.Errorf("a running run has Stopped %v", next.Stopped)
	}
}

// An aborted run (EventAbort: status ABORTED) is redriven like a timed-out one: the task it was
// running runs again as a new attempt.
func TestRedriveOfAnAbortedRun(t *testing.T) {
	m := mustParse(t, `{"StartAt":"Slow","States":{"Slow":{"Type":"Task","Resource":"test:slow","End":true}}}`)
	run, _, _ := m.Step(Run{}, Event{Kind: EventStart, At: redriveStart, Input: doc(t, `{"x":1}`)}, Options{})
	stop := redriveStart.Add(time.Minute)
	run, _, _ = m.Step(run, Event{Kind: EventAbort, At: stop, Cause: "spec.abort is set"}, Options{})
	if run.Status != Aborted || !run.Stopped.Equal(stop) {
		t.Fatalf("aborted: %s, stopped %v", run.Status, run.Stopped)
	}
	if err := Redrivable(run, stop.Add(time.Hour)); err != nil {
		t.Fatalf("an aborted run is not redrivable: %v", err)
	}
	next, effs, hist, err := m.Redrive(roundTrip(t, run), stop.Add(time.Hour), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if next.Status != Running || next.Error != "" || len(effs) != 1 || effs[0].Kind != EffectRunTask || len(hist) == 0 || hist[0].Kind != "Redriven" {
		t.Fatalf("redriven: %+v, effects %+v, history %+v", next, effs, hist)
	}
}

// A Map state that failed because its iterations failed beyond its tolerated threshold runs
// every failed iteration again: those it had tolerated from their beginning, the last one from
// where it failed.
func TestRedriveOfAMapBeyondItsToleratedFailures(t *testing.T) {
	m := mustParse(t, `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":1,"ToleratedFailureCount":1,"End":true,
		"ItemProcessor":{"StartAt":"Prep","States":{"Prep":{"Type":"Pass","Next":"W"},"W":{"Type":"Task","Resource":"test:w","End":true}}}}}}`)
	first, _, _ := start(t, m, `{"items":[1,2,3,4]}`, failing("M[0].W", "M[2].W"))
	if first.Status != Failed || first.Error != ErrExceedToleratedFailureThreshold {
		t.Fatalf("first attempt: %s %s", first.Status, first.Error)
	}
	run, tasks, hist := redriveAndSteer(t, m, first, redriveStart.Add(time.Hour), failing("M[3].W"))
	if run.Status != Succeeded {
		t.Fatalf("redriven: %s %s %s", run.Status, run.Error, run.Cause)
	}
	if got := taskLabels(tasks); !reflect.DeepEqual(got, []string{"M[2].W", "M[0].W", "M[3].W"}) {
		t.Errorf("the redrive ran %v", got)
	}
	var prep []string
	for _, s := range entered(hist) {
		if strings.HasSuffix(s, ".Prep") {
			prep = append(prep, s)
		}
	}
	if !reflect.DeepEqual(prep, []string{"M[0].Prep", "M[3].Prep"}) {
		t.Errorf("Prep ran again in %v", prep)
	}
	want := doc(t, `[1,2,3,{"Error":"Work.Broken","Cause":"M[3].W is broken"}]`)
	if !reflect.DeepEqual(run.Output, want) {
		t.Errorf("output %v, want %v", run.Output, want)
	}
}

// The variables a redriven state sees are those it saw when the run stopped; a JSONata state
// reads the redrive count in $states.context.
func TestRedriveKeepsTheVariablesAndTellsJSONataTheCount(t *testing.T) {
	m := mustParse(t, `{"QueryLanguage":"JSONata","StartAt":"Init","States":{
		"Init":{"Type":"Pass","Assign":{"total":5},"Next":"Add"},
		"Add":{"Type":"Task","Resource":"test:add","Arguments":{"total":"{% $total %}","redrive":"{% $states.context.Execution.RedriveCount %}",
			"since":"{% $exists($states.context.Execution.RedriveTime) %}"},
			"Assign":{"total":"{% $total + $states.result.add %}"},"Output":{"total":"{% $total %}"},"Next":"Done"},
		"Done":{"Type":"Pass","Output":{"total":"{% $total %}"},"End":true}}}`)
	var inputs []any
	answer := func(fail bool) func(string, Effect) taskAnswer {
		return func(_ string, e Effect) taskAnswer {
			inputs = append(inputs, e.Input)
			if fail {
				return taskAnswer{err: "Add.Failed"}
			}
			return taskAnswer{out: map[string]any{"add": 2.0}}
		}
	}
	first, _, _ := start(t, m, `{}`, answer(true))
	if first.Status != Failed || first.Variables["total"] != 5.0 {
		t.Fatalf("first attempt: %s, variables %v", first.Status, first.Variables)
	}
	run, _, _ := redriveAndSteer(t, m, first, redriveStart.Add(time.Hour), answer(false))
	if run.Status != Succeeded || !reflect.DeepEqual(run.Output, doc(t, `{"total":7}`)) {
		t.Errorf("redriven: %s %v %s", run.Status, run.Output, run.Cause)
	}
	want := doc(t, `[{"total":5,"redrive":0,"since":false},{"total":5,"redrive":1,"since":true}]`)
	if !reflect.DeepEqual(any(inputs), want) {
		t.Errorf("task inputs %v, want %v", inputs, want)
	}
}

func TestRedriveIsRefusedAsStepFunctionsRefusesIt(t *testing.T) {
	m := mustParse(t, `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:t","End":true}}}`)
	failed, _, _ := start(t, m, `{}`, failing("T"))
	succeeded, _, _ := start(t, m, `{}`, failing())
	running, _, _ := m.Step(Run{}, Event{Kind: EventStart, At: redriveStart, Input: map[string]any{}}, Options{})
	stopped := failed.Stopped
	if stopped.IsZero() {
		t.Fatal("a failed run has no Stopped time")
	}
	often := failed
	often.Execution.RedriveCount = MaxRedrives
	exhausted := failed
	exhausted.NotRedrivable = "the run reached the limit of 1000000 transitions"
	other := mustParse(t, `{"StartAt":"U","States":{"U":{"Type":"Pass","End":true}}}`)
	for _, tc := range []struct {
		name   string
		m      *Machine
		run    Run
		at     time.Time
		reason string
	}{
		{"a running run", m, running, redriveStart, RedriveRunning},
		{"a run that succeeded", m, succeeded, redriveStart, RedriveSucceeded},
		{"a run never started", m, Run{}, redriveStart, RedriveNotStarted},
		{"more than 14 days after it stopped", m, failed, stopped.Add(RedrivePeriod + time.Second), RedrivePeriodExceeded},
		{"more than a year after it started", m, func() Run { r := failed; r.Stopped = time.Time{}; return r }(), redriveStart.Add(MaxExecutionTime + time.Second), RedriveExecutionTime},
		{"after 1,000 redrives", m, often, redriveStart, RedriveLimit},
		{"a run that ended at the transition limit", m, exhausted, redriveStart, RedriveNotRedrivableReason},
		{"a definition without the state it stopped in", other, failed, redriveStart, RedriveDefinitionMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, effs, hist, err := tc.m.Redrive(tc.run, tc.at, Options{})
			var re *RedriveError
			if !errors.Is(err, ErrNotRedrivable) || !errors.As(err, &re) || re.Reason != tc.reason {
				t.Fatalf("error %v, want reason %s", err, tc.reason)
			}
			if !reflect.DeepEqual(next, tc.run) || effs != nil || hist != nil {
				t.Error("a refused redrive changed the run")
			}
		})
	}
	if _, _, _, err := m.Redrive(failed, stopped.Add(RedrivePeriod), Options{}); err != nil {
		t.Errorf("14 days after it stopped: %v", err)
	}
}

func TestTheTransitionLimitMakesARunNotRedrivable(t *testing.T) {
	m := mustParse(t, `{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},
		"B":{"Type":"Choice","Choices":[{"Variable":"$.stop","IsPresent":true,"Next":"D"}],"Default":"A"},"D":{"Type":"Succeed"}}}`)
	run, _, _ := m.Step(Run{}, Event{Kind: EventStart, At: redriveStart, Input: map[string]any{}}, Options{})
	run.Executed = MaxTransitionsPerRun - 10
	run, _, _ = m.Step(run, Event{Kind: EventContinue, At: redriveStart}, Options{})
	if run.Status != Failed || run.NotRedrivable == "" {
		t.Fatalf("%s, not redrivable %q", run.Status, run.NotRedrivable)
	}
	if err := Redrivable(run, redriveStart); !errors.Is(err, ErrNotRedrivable) {
		t.Errorf("redrivable: %v", err)
	}
}

func TestDefinitionHashIgnoresFormatting(t *testing.T) {
	a, err := DefinitionHash([]byte(`{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := DefinitionHash([]byte("States:\n  A: {End: true, Type: Pass}\nStartAt: A\n"))
	c, _ := DefinitionHash([]byte(`{"StartAt":"A","States":{"A":{"Type":"Pass","End":true,"Comment":"changed"}}}`))
	if a != b || a == c || !strings.HasPrefix(a, "sha256:") {
		t.Errorf("hashes %s %s %s", a, b, c)
	}
}

// A stored run that succeeded keeps nothing a redrive would need; any other keeps it all.
func TestStoredKeepsWhatARedriveNeeds(t *testing.T) {
	r := Run{Status: Failed, Input: "in", Execution: Execution{Input: "x"}, Variables: map[string]any{"v": 1.0}}
	if got := r.Stored(); !reflect.DeepEqual(got, r) {
		t.Errorf("a failed run stored as %+v", got)
	}
	r.Status, r.Output = Succeeded, "out"
	if got := r.Stored(); got.Input != nil || got.Output != nil || got.Execution.Input != nil || got.Variables != nil {
		t.Errorf("a succeeded run stored as %+v", got)
	}
}

// A JSONata Map with an expression threshold and batches redrives like a JSONPath one.
func TestRedriveOfAJSONataMapWithBatchesAndAThreshold(t *testing.T) {
	m := mustParse(t, `{"QueryLanguage":"JSONata","StartAt":"M","States":{"M":{"Type":"Map","Items":"{% $states.input.items %}","MaxConcurrency":1,
		"ToleratedFailureCount":"{% 0 %}","ItemBatcher":{"MaxItemsPerBatch":"{% 2 %}","BatchInput":{"r":"{% $states.context.Execution.RedriveCount %}"}},
		"ItemProcessor":{"StartAt":"W","States":{"W":{"Type":"Task","Resource":"test:w","End":true}}},"End":true}}}`)
	first, tasks, _ := start(t, m, `{"items":[1,2,3,4,5]}`, failing("M[1].W"))
	if first.Status != Failed || first.Error != ErrExceedToleratedFailureThreshold || len(tasks) != 2 {
		t.Fatalf("first attempt: %s %s, tasks %v", first.Status, first.Error, tasks)
	}
	run, tasks, _ := redriveAndSteer(t, m, first, redriveStart.Add(time.Hour), failing())
	if run.Status != Succeeded {
		t.Fatalf("redriven: %s %s %s", run.Status, run.Error, run.Cause)
	}
	// The failed batch goes on as it was (its input computed before the redrive); the batch never
	// started is computed now.
	want := []string{`M[1].W {"Items":[3,4],"r":0}`, `M[2].W {"Items":[5],"r":1}`}
	if !reflect.DeepEqual(tasks, want) {
		t.Errorf("the redrive ran %v, want %v", tasks, want)
	}
	if out := doc(t, `[{"Items":[1,2],"r":0},{"Items":[3,4],"r":0},{"Items":[5],"r":1}]`); !reflect.DeepEqual(run.Output, out) {
		t.Errorf("output %v", run.Output)
	}
}

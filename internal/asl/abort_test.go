package asl

import (
	"testing"
	"time"
)

// An abort ends a running run at once, wherever it is (here inside a Map iteration's Task), and
// a report of its task afterwards changes nothing.
func TestAnAbortEndsTheRunAndLaterReportsAreStale(t *testing.T) {
	m, errs := Parse([]byte(`{"StartAt":"Each","States":{"Each":{"Type":"Map","End":true,
		"ItemProcessor":{"StartAt":"Work","States":{"Work":{"Type":"Task","Resource":"millrace:http","End":true}}}}}}`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	run, _, _ := m.Step(Run{}, Event{Kind: EventStart, At: t0, Input: []any{1.0, 2.0}}, Options{})
	if run.Status != Running || len(m.Active(run)) != 2 {
		t.Fatalf("status %s, %d active", run.Status, len(m.Active(run)))
	}
	run, eff, hist := m.Step(run, Event{Kind: EventAbort, At: t0.Add(time.Second), Cause: "spec.abort is set"}, Options{})
	if run.Status != Aborted || run.Error != ErrAborted || run.Cause != "spec.abort is set" || len(eff) != 0 {
		t.Fatalf("after abort: %s %s %q, effects %v", run.Status, run.Error, run.Cause, eff)
	}
	if len(hist) != 1 || hist[0].Kind != string(Aborted) {
		t.Fatalf("history %+v", hist)
	}
	if len(m.Active(run)) != 0 {
		t.Fatal("an aborted run still has active states")
	}
	after, _, _ := m.Step(run, Event{Kind: EventTaskSucceeded, At: t0.Add(2 * time.Second), Path: []int{0}, Attempt: 1}, Options{})
	if after.Status != Aborted {
		t.Fatalf("a report after the abort made the run %s", after.Status)
	}
	again, _, h := m.Step(run, Event{Kind: EventAbort, At: t0.Add(3 * time.Second)}, Options{})
	if again.Status != Aborted || len(h) != 0 {
		t.Fatal("a second abort changed the run")
	}
}

package controller

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
)

// The inputs of the child runs a reconcile creates are charged to the reconcile's one budget (the
// budget of its steps), not to a fresh budget each: a spent budget creates none (the next
// reconcile goes on at once), and a budget that runs out part way stops there.
func TestChildRunsAreCreatedWithinTheReconcilesBudget(t *testing.T) {
	const def = `{"StartAt":"Each","States":{
	"Each":{"Type":"Map","ItemsPath":"$.lines","MaxConcurrency":10,"End":true,
		"ItemSelector":{"sku.$":"$$.Map.Item.Value","order.$":"$.order"},
		"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},
			"StartAt":"Done","States":{"Done":{"Type":"Pass","End":true}}}}}}`
	m, errs := parseWorkflow([]byte(def))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	scheme := runtime.NewScheme()
	if err := millracev1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	lines := make([]any, 10)
	for i := range lines {
		lines[i] = fmt.Sprintf("sku-%02d", i)
	}
	setup := func(t *testing.T) (*WorkflowRunReconciler, *millracev1.WorkflowRun, asl.Run, asl.Options) {
		t.Helper()
		run := &millracev1.WorkflowRun{}
		run.Namespace, run.Name, run.UID = "team", "ship", "uid-ship"
		r := &WorkflowRunReconciler{Client: fake.NewClientBuilder().WithScheme(scheme).Build(), Recorder: events.NewFakeRecorder(100)}
		steps := r.newSteps(run, m, asl.Run{})
		steps.step(asl.Event{Kind: asl.EventStart, At: now, Input: map[string]any{"lines": lines, "order": "o-1"},
			Execution: asl.Execution{ID: string(run.UID), Name: run.Name, StartTime: now}})
		steps.continueRun(now)
		if n := len(m.ChildRuns(steps.engine)); n != 10 {
			t.Fatalf("%d child runs to start, want 10", n)
		}
		return r, run, steps.engine, steps.opt
	}
	children := func(t *testing.T, r *WorkflowRunReconciler) int {
		t.Helper()
		var list millracev1.WorkflowRunList
		if err := r.List(context.Background(), &list, client.InNamespace("team")); err != nil {
			t.Fatal(err)
		}
		return len(list.Items)
	}

	// A whole budget: every child run, each input charged to it.
	r, run, engine, opt := setup(t)
	budget := asl.NewBudget()
	opt.Budget = budget
	var w wakeup
	if err := r.startChildRuns(context.Background(), run, m, engine, opt, now, &w); err != nil {
		t.Fatal(err)
	}
	if n := children(t, r); n != 10 {
		t.Fatalf("%d child runs created with a whole budget, want 10", n)
	}
	perChild := (asl.DefaultStepBytes - budget.Bytes) / 10
	if perChild <= 0 {
		t.Fatalf("the inputs of 10 child runs cost the reconcile's budget nothing (%d bytes left)", budget.Bytes)
	}

	// A spent budget: none, and the next reconcile at once.
	r, run, engine, opt = setup(t)
	opt.Budget = &asl.Budget{Transitions: 0, Bytes: asl.DefaultStepBytes}
	w = wakeup{}
	if err := r.startChildRuns(context.Background(), run, m, engine, opt, now, &w); err != nil {
		t.Fatal(err)
	}
	if n := children(t, r); n != 0 {
		t.Fatalf("%d child runs created with a spent budget, want 0", n)
	}
	if w.next != now.Add(continueAfter) {
		t.Fatalf("next look at %v, want at once (%v)", w.next, now.Add(continueAfter))
	}

	// A budget for about three: it stops when the budget is spent; the next reconcile, with a
	// budget of its own, creates the rest.
	opt.Budget = &asl.Budget{Transitions: asl.DefaultStepTransitions, Bytes: 3*perChild - 1}
	w = wakeup{}
	if err := r.startChildRuns(context.Background(), run, m, engine, opt, now, &w); err != nil {
		t.Fatal(err)
	}
	if n := children(t, r); n != 3 {
		t.Fatalf("%d child runs created with a budget for 3, want 3", n)
	}
	if w.next != now.Add(continueAfter) {
		t.Fatalf("next look at %v, want at once", w.next)
	}
	opt.Budget = asl.NewBudget()
	if err := r.startChildRuns(context.Background(), run, m, engine, opt, now, &w); err != nil {
		t.Fatal(err)
	}
	if n := children(t, r); n != 10 {
		t.Fatalf("%d child runs after the next reconcile, want 10", n)
	}
}

package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/controller"
)

// patchRun applies a JSON merge patch to a run's spec, as `kubectl patch --type merge` does.
func patchRun(ns, name, patch string) error {
	run := &millracev1.WorkflowRun{ObjectMeta: metaOnly(ns, name)}
	return k8s.Patch(context.Background(), run, client.RawPatch(k8stypes.MergePatchType, []byte(patch)))
}

func mustPatchRun(t *testing.T, ns, name, patch string) {
	t.Helper()
	if err := patchRun(ns, name, patch); err != nil {
		t.Fatalf("patch %s: %v", patch, err)
	}
}

// waitRunWith waits until the run satisfies ok (which says what it lacks).
func waitRunWith(t *testing.T, ns, name string, ok func(*millracev1.WorkflowRun) error) *millracev1.WorkflowRun {
	t.Helper()
	var run *millracev1.WorkflowRun
	eventually(t, 30*time.Second, func() error {
		run = &millracev1.WorkflowRun{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, run); err != nil {
			return err
		}
		return ok(run)
	})
	return run
}

// redriveHandled is a check for waitRunWith: the controller acted on spec.redrive n.
func redriveHandled(n int32) func(*millracev1.WorkflowRun) error {
	return func(run *millracev1.WorkflowRun) error {
		if run.Status.LastHandledRedrive != n {
			return fmt.Errorf("redrive %d not handled yet (phase %s, last handled %d)", n, run.Status.Phase, run.Status.LastHandledRedrive)
		}
		return nil
	}
}

const shipEachWorkflow = `{"StartAt":"Each","States":{
	"Each":{"Type":"Map","ItemsPath":"$.lines","MaxConcurrency":1,"End":true,
		"ItemSelector":{"sku.$":"$$.Map.Item.Value"},
		"ItemProcessor":{"StartAt":"Ship","States":{"Ship":{"Type":"Task","Resource":"millrace:http",
			"Parameters":{"Method":"POST","Url":"%s/ship","Body":{"sku.$":"$.sku"}},"ResultSelector":{"shipped.$":"$.Body.sku"},"End":true}}}}}}`

// A run that failed in one iteration of a Map goes on, once spec.redrive is raised, from that
// iteration: the iterations that succeeded are not run again (their tasks are not called again),
// the failed one and those not started run, and the output holds every item in order. The redrive
// is counted in status (and its print column), recorded in the history and announced by an Event.
func TestARunFailedInAMapIterationIsRedrivenFromThatIteration(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Sku string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		calls[body.Sku]++
		n := calls[body.Sku]
		mu.Unlock()
		if body.Sku == "c" && n == 1 {
			http.Error(w, "warehouse closed", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"sku":%q}`, body.Sku)
	}))
	defer api.Close()
	ns := newNamespace(t)
	grantHTTP(t, ns, millracev1.HTTPDestination{CIDR: "127.0.0.1", Ports: []int32{portOf(t, api.URL)}})
	create(t, newWorkflow(ns, "ship", fmt.Sprintf(shipEachWorkflow, api.URL)))
	create(t, newRun(ns, "ship-1", "ship", `{"lines":["a","b","c","d","e"]}`))
	failed := waitRun(t, ns, "ship-1", millracev1.RunFailed)
	if failed.Status.Error != "States.Http.StatusCode.503" || failed.Status.CurrentState != "Each" || failed.Status.DefinitionHash == "" {
		t.Fatalf("first run: %s %s in %s (definition %q)", failed.Status.Error, failed.Status.Cause, failed.Status.CurrentState, failed.Status.DefinitionHash)
	}

	mustPatchRun(t, ns, "ship-1", `{"spec":{"redrive":1}}`)
	run := waitRun(t, ns, "ship-1", millracev1.RunSucceeded)
	if want := `[{"shipped":"a"},{"shipped":"b"},{"shipped":"c"},{"shipped":"d"},{"shipped":"e"}]`; string(run.Status.Output.Raw) != want {
		t.Errorf("output %s, want %s", run.Status.Output.Raw, want)
	}
	mu.Lock()
	got := fmt.Sprint(calls)
	mu.Unlock()
	if want := "map[a:1 b:1 c:2 d:1 e:1]"; got != want {
		t.Errorf("task calls %s, want %s: only the failed iteration and those not started run again", got, want)
	}
	s := run.Status
	if s.RedriveCount != 1 || s.RedriveDate == nil || s.LastHandledRedrive != 1 || s.Error != "" || s.CompletionTime == nil ||
		s.CompletionTime.Before(s.RedriveDate) {
		t.Errorf("status after the redrive: count %d, date %v, handled %d, error %q, completed %v", s.RedriveCount, s.RedriveDate, s.LastHandledRedrive, s.Error, s.CompletionTime)
	}
	if c := meta.FindStatusCondition(s.Conditions, controller.ConditionRedrive); c == nil || c.Status != "True" || c.Message != "redrive 1 from state Each" {
		t.Errorf("Redrive condition %+v", c)
	}
	if h := historyText(run); !strings.Contains(h, "Each:Redriven") || !strings.Contains(h, "Each[2].Ship:Entered") {
		t.Errorf("history %s", h)
	}
	eventually(t, 10*time.Second, func() error { return hasEvent(t, ns, "ship-1", controller.ReasonRunRedriven) })

	// kubectl get shows the count.
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: "workflowruns.millrace.io"}, crd); err != nil {
		t.Fatal(err)
	}
	var columns []string
	for _, c := range crd.Spec.Versions[0].AdditionalPrinterColumns {
		columns = append(columns, c.Name+"="+c.JSONPath)
	}
	if !strings.Contains(strings.Join(columns, " "), "Redrives=.status.redriveCount") {
		t.Errorf("print columns %v", columns)
	}
}

// A redrive is refused, with a Warning Event and the Redrive condition, for a run that succeeded
// and for a run whose Workflow's definition changed since it started; a refused request is not
// tried again until spec.redrive is raised again, and then the run is redriven.
func TestARedriveIsRefusedForASucceededRunOrAChangedDefinition(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "quick", `{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`))
	create(t, newRun(ns, "ok", "quick", `{"x":1}`))
	waitRun(t, ns, "ok", millracev1.RunSucceeded)
	mustPatchRun(t, ns, "ok", `{"spec":{"redrive":1}}`)
	run := waitRunWith(t, ns, "ok", redriveHandled(1))
	if c := meta.FindStatusCondition(run.Status.Conditions, controller.ConditionRedrive); run.Status.Phase != millracev1.RunSucceeded ||
		c == nil || c.Status != "False" || c.Reason != "RunSucceeded" || run.Status.RedriveCount != 0 {
		t.Errorf("a succeeded run's redrive: phase %s, count %d, condition %+v", run.Status.Phase, run.Status.RedriveCount, c)
	}
	eventually(t, 10*time.Second, func() error { return hasEvent(t, ns, "ok", controller.ReasonRedriveRefused) })

	const failing = `{"StartAt":"F","States":{"F":{"Type":"Fail","Error":"Nope","Cause":"always"}}}`
	create(t, newWorkflow(ns, "fails", failing))
	create(t, newRun(ns, "bad", "fails", ""))
	waitRun(t, ns, "bad", millracev1.RunFailed)
	setDefinition(t, ns, "fails", `{"Comment":"changed","StartAt":"F","States":{"F":{"Type":"Fail","Error":"Nope","Cause":"always"}}}`)
	mustPatchRun(t, ns, "bad", `{"spec":{"redrive":1}}`)
	run = waitRunWith(t, ns, "bad", redriveHandled(1))
	c := meta.FindStatusCondition(run.Status.Conditions, controller.ConditionRedrive)
	if run.Status.Phase != millracev1.RunFailed || c == nil || c.Status != "False" || c.Reason != "DefinitionMismatch" || !strings.Contains(c.Message, "changed") {
		t.Errorf("a changed definition's redrive: phase %s, condition %+v", run.Status.Phase, c)
	}
	eventually(t, 10*time.Second, func() error { return hasEvent(t, ns, "bad", controller.ReasonRedriveRefused) })

	// Back to the pinned definition: the refused request stays refused until asked again.
	setDefinition(t, ns, "fails", failing)
	time.Sleep(2 * time.Second)
	if run = waitRun(t, ns, "bad", millracev1.RunFailed); run.Status.RedriveCount != 0 {
		t.Fatalf("a refused redrive was tried again: count %d", run.Status.RedriveCount)
	}
	mustPatchRun(t, ns, "bad", `{"spec":{"redrive":2}}`)
	run = waitRunWith(t, ns, "bad", func(r *millracev1.WorkflowRun) error {
		if r.Status.RedriveCount != 1 || r.Status.Phase != millracev1.RunFailed {
			return fmt.Errorf("phase %s, redrive count %d", r.Status.Phase, r.Status.RedriveCount)
		}
		return nil
	})
	if !strings.Contains(historyText(run), "F:Redriven") || run.Status.LastHandledRedrive != 2 {
		t.Errorf("history %s, last handled %d", historyText(run), run.Status.LastHandledRedrive)
	}
	// A request that lowers the count is refused by the API server.
	if err := patchRun(ns, "bad", `{"spec":{"redrive":1}}`); err == nil || !strings.Contains(err.Error(), "redrive cannot decrease") {
		t.Errorf("lowering spec.redrive: %v", err)
	}
}

func setDefinition(t *testing.T, ns, name, def string) {
	t.Helper()
	eventually(t, 10*time.Second, func() error {
		wf := &millracev1.Workflow{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, wf); err != nil {
			return err
		}
		wf.Spec.Definition = apiextensionsv1.JSON{Raw: []byte(def)}
		return k8s.Update(context.Background(), wf)
	})
}

// An aborted run that is redriven runs again although spec.abort stays set (it cannot be
// undone): an abort stops a run once. Clearing abort in the patch that raises redrive lets the
// redriven run be aborted again. A redrive asked of a running run is refused.
func TestAnAbortedRunRedrivenIsNotAbortedAgain(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "slow", `{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":3600,"End":true}}}`))
	create(t, newRun(ns, "long", "slow", `{"n":1}`))
	waitRun(t, ns, "long", millracev1.RunRunning)
	mustPatchRun(t, ns, "long", `{"spec":{"abort":true}}`)
	waitRun(t, ns, "long", millracev1.RunAborted)

	mustPatchRun(t, ns, "long", `{"spec":{"redrive":1}}`)
	waitRunWith(t, ns, "long", func(r *millracev1.WorkflowRun) error {
		if r.Status.Phase != millracev1.RunRunning || r.Status.RedriveCount != 1 {
			return fmt.Errorf("phase %s, redrive count %d", r.Status.Phase, r.Status.RedriveCount)
		}
		return nil
	})
	// Another reconcile of the run (a spec change makes one): still running.
	mustPatchRun(t, ns, "long", `{"spec":{"input":{"n":2}}}`)
	run := waitRunWith(t, ns, "long", func(r *millracev1.WorkflowRun) error {
		if r.Status.ObservedGeneration != r.Generation {
			return fmt.Errorf("generation %d not observed (%d)", r.Generation, r.Status.ObservedGeneration)
		}
		return nil
	})
	if run.Status.Phase != millracev1.RunRunning || run.Status.CompletionTime != nil || run.Status.Error != "" {
		t.Fatalf("the redriven run was stopped again: %s %s %s", run.Status.Phase, run.Status.Error, run.Status.Cause)
	}

	// A redrive of a running run is refused (and counted as handled).
	mustPatchRun(t, ns, "long", `{"spec":{"redrive":2}}`)
	run = waitRunWith(t, ns, "long", redriveHandled(2))
	if c := meta.FindStatusCondition(run.Status.Conditions, controller.ConditionRedrive); run.Status.Phase != millracev1.RunRunning || c == nil || c.Reason != "RunRunning" {
		t.Errorf("redrive of a running run: phase %s, condition %+v", run.Status.Phase, c)
	}

	// abort cannot be cleared on its own, only with a redrive.
	if err := patchRun(ns, "long", `{"spec":{"abort":false}}`); err == nil || !strings.Contains(err.Error(), "abort cannot be undone") {
		t.Errorf("clearing abort alone: %v", err)
	}
	create(t, newRun(ns, "again", "slow", ``))
	waitRun(t, ns, "again", millracev1.RunRunning)
	mustPatchRun(t, ns, "again", `{"spec":{"abort":true}}`)
	waitRun(t, ns, "again", millracev1.RunAborted)
	mustPatchRun(t, ns, "again", `{"spec":{"abort":false,"redrive":1}}`)
	waitRunWith(t, ns, "again", func(r *millracev1.WorkflowRun) error {
		if r.Status.Phase != millracev1.RunRunning || r.Status.RedriveCount != 1 {
			return fmt.Errorf("phase %s, redrive count %d", r.Status.Phase, r.Status.RedriveCount)
		}
		return nil
	})
	mustPatchRun(t, ns, "again", `{"spec":{"abort":true}}`)
	run = waitRun(t, ns, "again", millracev1.RunAborted)
	if run.Status.RedriveCount != 1 || !strings.Contains(historyText(run), "W:ABORTED") {
		t.Errorf("the redriven run aborted: count %d, history %s", run.Status.RedriveCount, historyText(run))
	}
}

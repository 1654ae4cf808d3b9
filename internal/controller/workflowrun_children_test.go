package controller_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/controller"
)

const distributedShipWorkflow = `{"StartAt":"Each","States":{
	"Each":{"Type":"Map","ItemsPath":"$.lines","MaxConcurrency":5,"ToleratedFailureCount":1,"End":true,
		"ItemSelector":{"sku.$":"$$.Map.Item.Value"},
		"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},
			"StartAt":"Ship","States":{"Ship":{"Type":"Task","Resource":"millrace:http",
			"Parameters":{"Method":"POST","Url":"%s/ship","Body":{"sku.$":"$.sku"}},"ResultSelector":{"shipped.$":"$.Body.sku"},"End":true}}}}}}`

// A DISTRIBUTED Map runs its 25 items as child WorkflowRuns of their own (owned by the run, in its
// namespace), never more than MaxConcurrency (5) at once; one failing item is tolerated
// (ToleratedFailureCount 1), the output holds every item's result in order (the failed one's
// error in its place), and the child runs are deleted once their ends are recorded.
func TestADistributedMapRunsItsItemsAsChildWorkflowRuns(t *testing.T) {
	var inFlight, most atomic.Int32
	var mu sync.Mutex
	calls := map[string]int{}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		var body struct{ Sku string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		calls[body.Sku]++
		mu.Unlock()
		time.Sleep(200 * time.Millisecond)
		if body.Sku == "s07" {
			http.Error(w, "no such sku", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"sku":%q}`, body.Sku)
	}))
	defer api.Close()
	ns := newNamespace(t)
	grantHTTP(t, ns, millracev1.HTTPDestination{CIDR: "127.0.0.1", Ports: []int32{portOf(t, api.URL)}})
	create(t, newWorkflow(ns, "ship", fmt.Sprintf(distributedShipWorkflow, api.URL)))
	var lines []string
	for i := range 25 {
		lines = append(lines, fmt.Sprintf("%q", fmt.Sprintf("s%02d", i)))
	}
	create(t, newRun(ns, "big", "ship", `{"lines":[`+strings.Join(lines, ",")+`]}`))

	// While it runs: child WorkflowRuns, owned by the run, at most 5 unfinished at once.
	mostChildren, sawChildren := 0, 0
	var parent *millracev1.WorkflowRun
	eventually(t, 60*time.Second, func() error {
		var list millracev1.WorkflowRunList
		if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		running := 0
		for _, r := range list.Items {
			if r.Spec.ParentRef == nil {
				parent = r.DeepCopy()
				continue
			}
			sawChildren++
			if len(r.OwnerReferences) != 1 || r.OwnerReferences[0].Name != "big" || r.Spec.ParentRef.Name != "big" || r.Spec.WorkflowRef.Name != "ship" {
				t.Errorf("child %s: owners %+v, parentRef %+v", r.Name, r.OwnerReferences, r.Spec.ParentRef)
			}
			if r.Status.Phase != millracev1.RunSucceeded && r.Status.Phase != millracev1.RunFailed {
				running++
			}
		}
		mostChildren = max(mostChildren, running)
		if parent == nil || parent.Status.Phase != millracev1.RunSucceeded {
			return fmt.Errorf("the run is not done yet")
		}
		return nil
	})
	if sawChildren == 0 {
		t.Error("no child WorkflowRun was seen")
	}
	if mostChildren > 5 {
		t.Errorf("%d child runs unfinished at once; MaxConcurrency is 5", mostChildren)
	}
	if m := most.Load(); m > 5 || m < 2 {
		t.Errorf("%d tasks ran at once; want 2 to 5", m)
	}
	var out []map[string]any
	if err := json.Unmarshal(parent.Status.Output.Raw, &out); err != nil || len(out) != 25 {
		t.Fatalf("output %s (%v)", parent.Status.Output.Raw, err)
	}
	for i, o := range out {
		if i == 7 {
			if o["Error"] != "States.Http.StatusCode.404" {
				t.Errorf("item 7: %v", o)
			}
			continue
		}
		if o["shipped"] != fmt.Sprintf("s%02d", i) {
			t.Errorf("item %d: %v", i, o)
		}
	}
	mu.Lock()
	for sku, n := range calls {
		if n != 1 {
			t.Errorf("%s called %d times", sku, n)
		}
	}
	if len(calls) != 25 {
		t.Errorf("%d items called, want 25", len(calls))
	}
	mu.Unlock()
	if !strings.Contains(historyText(parent), "Each[24]:ChildRunStarted") {
		t.Errorf("history %s", historyText(parent))
	}
	// The child runs are deleted once recorded.
	eventually(t, 20*time.Second, func() error {
		var list millracev1.WorkflowRunList
		if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		left := 0
		for _, r := range list.Items {
			if r.Spec.ParentRef != nil && r.DeletionTimestamp.IsZero() {
				left++
			}
		}
		if left > 0 {
			return fmt.Errorf("%d child runs left", left)
		}
		return nil
	})
}

// Aborting a run aborts the child runs its DISTRIBUTED Map still waits for, and deletes them once
// they have ended.
func TestAbortingARunAbortsItsChildRuns(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "slow", `{"StartAt":"Each","States":{"Each":{"Type":"Map","MaxConcurrency":2,"End":true,
		"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"EXPRESS"},
			"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":3600,"End":true}}}}}}`))
	create(t, newRun(ns, "slow-1", "slow", `[1,2,3,4]`))
	children := func() (running, all int, err error) {
		var list millracev1.WorkflowRunList
		if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return 0, 0, err
		}
		for _, r := range list.Items {
			if r.Spec.ParentRef != nil && r.DeletionTimestamp.IsZero() {
				all++
				if r.Status.Phase == millracev1.RunRunning {
					running++
				}
			}
		}
		return running, all, nil
	}
	eventually(t, 20*time.Second, func() error {
		running, all, err := children()
		if err == nil && (running != 2 || all != 2) {
			err = fmt.Errorf("%d child runs running of %d, want 2 (MaxConcurrency)", running, all)
		}
		return err
	})
	mustPatchRun(t, ns, "slow-1", `{"spec":{"abort":true}}`)
	waitRun(t, ns, "slow-1", millracev1.RunAborted)
	eventually(t, 20*time.Second, func() error {
		_, all, err := children()
		if err == nil && all != 0 {
			err = fmt.Errorf("%d child runs left", all)
		}
		return err
	})
}

const slowDistributedWorkflow = `{"StartAt":"Each","States":{
	"Each":{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":1,"End":true,
		"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},
			"StartAt":"Slow","States":{"Slow":{"Type":"Wait","Seconds":3,"End":true}}}}}}`

// A tenant pre-creates, under the predictable name of a run's next child run, a run of its own with
// a parentRef (and an owner reference and the parent's label) naming that run. It is not the
// parent's child run: the iteration fails with Millrace.ChildRunConflict, the parent does not take
// its output, the look-alike is left alone, and it is not run as a child (Stalled).
func TestALookAlikeChildRunIsNotTakenForTheParentsOwn(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "slow", slowDistributedWorkflow))
	create(t, newRun(ns, "victim", "slow", `{"items":[{"n":0},{"n":1}]}`))

	// The first iteration's child run shows the key of the second's.
	var first *millracev1.WorkflowRun
	eventually(t, 20*time.Second, func() error {
		var list millracev1.WorkflowRunList
		if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		for i := range list.Items {
			if ref := list.Items[i].Spec.ParentRef; ref != nil && ref.Item == 0 {
				first = list.Items[i].DeepCopy()
				return nil
			}
		}
		return fmt.Errorf("no child run yet")
	})
	ref := *first.Spec.ParentRef
	ref.Item, ref.Signature = 1, ""
	ref.Key = strings.Replace(ref.Key, "Each/0/", "Each/1/", 1)
	sum := sha256.Sum256([]byte(ref.UID + "/" + ref.Key))
	forged := newRun(ns, fmt.Sprintf("victim-%s-1", hex.EncodeToString(sum[:4])), "slow", `{"stolen":true}`)
	forged.Labels = first.Labels
	forged.OwnerReferences = []metav1.OwnerReference{{APIVersion: millracev1.GroupVersion.String(), Kind: "WorkflowRun", Name: "victim", UID: k8stypes.UID(ref.UID), Controller: ptr.To(true)}}
	forged.Spec.ParentRef = &ref
	create(t, forged)

	parent := waitRun(t, ns, "victim", millracev1.RunFailed)
	if parent.Status.Output != nil && strings.Contains(string(parent.Status.Output.Raw), "stolen") {
		t.Fatalf("the parent took the look-alike's output: %s", parent.Status.Output.Raw)
	}
	if !strings.Contains(parent.Status.Error+" "+parent.Status.Cause, controller.ErrChildRunConflict) || !strings.Contains(parent.Status.Cause, forged.Name) {
		t.Fatalf("the parent failed with %q: %q, want %s naming %s", parent.Status.Error, parent.Status.Cause, controller.ErrChildRunConflict, forged.Name)
	}
	got := &millracev1.WorkflowRun{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(forged), got); err != nil || !got.DeletionTimestamp.IsZero() || got.Spec.Abort {
		t.Fatalf("the look-alike was not left alone: %v %+v", err, got.ObjectMeta)
	}
	waitStalled(t, ns, forged.Name, controller.ReasonParentRefForged)
}

// A run created with a hand-written spec.parentRef is not run as a child run: it stalls.
func TestAHandWrittenParentRefStalls(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "slow", slowDistributedWorkflow))
	create(t, newRun(ns, "parent", "slow", `{"items":[]}`))
	p := waitRun(t, ns, "parent", millracev1.RunSucceeded)
	run := newRun(ns, "hand-written", "slow", `{}`)
	run.Spec.ParentRef = &millracev1.ParentRunReference{Name: "parent", UID: string(p.UID), MapState: "Each", Item: 0, Key: "Each/0/0/1.0/", Signature: "bm90LWEtc2lnbmF0dXJl"}
	create(t, run)
	waitStalled(t, ns, "hand-written", controller.ReasonParentRefForged)
}

func waitStalled(t *testing.T, ns, name, reason string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		run := &millracev1.WorkflowRun{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, run); err != nil {
			return err
		}
		c := meta.FindStatusCondition(run.Status.Conditions, millracev1.ConditionStalled)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason || run.Status.Phase != millracev1.RunPending {
			return fmt.Errorf("phase %q, Stalled %+v, want %s", run.Status.Phase, c, reason)
		}
		return nil
	})
}

package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
)

// A DISTRIBUTED Map state's iterations run as child WorkflowRuns (asl.Machine.ChildRuns): the
// parent's engine keeps only their status, so a Map of many items does not live in one object.
// The parent's reconcile creates the child runs its persisted state lists (named from the parent,
// the iteration's key and its index, so a create after a restart finds the one already there),
// reads the ends of those that finished (their output, or their error) as task events, and then
// deletes them, or aborts those the Map abandoned. A child run pins its parent's ItemProcessor and
// never starts child runs of its own: a DISTRIBUTED Map inside a child run runs inline. Children
// are in the parent's namespace, owned by it.

const (
	// labelParentRun is the parent's UID on its child runs.
	labelParentRun = "millrace.io/parent-run-uid"
	labelMapItem   = "millrace.io/map-item"
	// maxChildRunWrites bounds the child runs a reconcile creates, deletes or aborts; the rest
	// go on in the next one.
	maxChildRunWrites = 50
	// childRunRecheck is how often a parent with running child runs is looked at when none of
	// them ends (their ends wake it up).
	childRunRecheck = time.Minute
	// ErrChildRunConflict fails an iteration whose child run's name is taken by another run.
	ErrChildRunConflict = "Millrace.ChildRunConflict"
	// ErrChildRunRejected fails an iteration whose child run the API server refused to create
	// (Invalid or Forbidden: a quota, an admission webhook): creating it again would be refused
	// again.
	ErrChildRunRejected = "Millrace.ChildRunRejected"
	// ErrParentRunGone fails a child run whose parent no longer exists.
	ErrParentRunGone     = "Millrace.ParentRunGone"
	ReasonChildRunFailed = "ChildRunNotStarted"
	// ReasonChildRunConflict is the Event of an iteration whose child run's name is taken.
	ReasonChildRunConflict = "ChildRunConflict"
	// ReasonParentRefForged stalls a run whose spec.parentRef the manager did not write.
	ReasonParentRefForged = "ParentRefNotCreatedByMillrace"
	// childRunProof is the purpose of a child run's spec.parentRef.signature.
	childRunProof = "child-run"
)

// childRunSignature is the manager's proof, in spec.parentRef.signature, that it created the child
// run name with ref: a tenant can write a parentRef (and an owner reference) on a run it creates,
// but not sign it.
func (r *WorkflowRunReconciler) childRunSignature(name string, ref *millracev1.ParentRunReference) string {
	if r.Signer == nil {
		return ""
	}
	return r.Signer.Sum(childRunProof, ref.UID, ref.Name, ref.MapState, strconv.Itoa(int(ref.Item)), ref.Key, name)
}

// createdByMillrace reports whether the run's spec.parentRef was written by the manager: signed
// with its key, and with the parent as the run's controller.
func (r *WorkflowRunReconciler) createdByMillrace(run *millracev1.WorkflowRun) bool {
	ref := run.Spec.ParentRef
	if ref == nil || r.Signer == nil || !r.Signer.Check(ref.Signature, childRunProof, ref.UID, ref.Name, ref.MapState, strconv.Itoa(int(ref.Item)), ref.Key, run.Name) {
		return false
	}
	owner := metav1.GetControllerOf(run)
	return owner != nil && string(owner.UID) == ref.UID && owner.Kind == "WorkflowRun"
}

// childRunOf reports whether child is the child run of the parent's iteration c.
func (r *WorkflowRunReconciler) childRunOf(parent, child *millracev1.WorkflowRun, c asl.ChildRun) bool {
	ref := child.Spec.ParentRef
	return ref != nil && ref.UID == string(parent.UID) && ref.Key == c.Key() && r.createdByMillrace(child)
}

// rejectedChild is an iteration whose child run the API server refused to create.
type rejectedChild struct{ cause string }

func rejectedChildKey(parent *millracev1.WorkflowRun, c asl.ChildRun) string {
	return string(parent.UID) + "/" + c.Key()
}

// childRunName is the name of the child run of iteration c of the parent: the parent's name (cut
// to fit), a hash of the parent's UID and the iteration's key, and the item.
func childRunName(parent *millracev1.WorkflowRun, c asl.ChildRun) string {
	sum := sha256.Sum256([]byte(string(parent.UID) + "/" + c.Key()))
	prefix := parent.Name
	if len(prefix) > 200 {
		prefix = strings.TrimRight(prefix[:200], ".-")
	}
	return fmt.Sprintf("%s-%s-%d", prefix, hex.EncodeToString(sum[:4]), c.Item)
}

// childRunEnds steps the parent with the ends of its child runs that finished (read from the
// cache, which the end of a child run wakes the parent from). left is set when the budget ran out
// before every end was read.
func (r *WorkflowRunReconciler) childRunEnds(ctx context.Context, run *millracev1.WorkflowRun, steps *runSteps, now time.Time) (left bool, err error) {
	for _, c := range steps.m.ChildRuns(steps.engine) {
		if steps.opt.Budget.Spent() {
			return true, nil // the rest in the next reconcile (NeedsContinue has no say on child runs)
		}
		ev := asl.Event{At: now, Path: c.Path}
		if v, ok := r.rejectedChildren.LoadAndDelete(rejectedChildKey(run, c)); ok {
			ev.Kind, ev.Error, ev.Cause = asl.EventTaskFailed, ErrChildRunRejected, v.(rejectedChild).cause
			steps.step(ev)
			continue
		}
		child := &millracev1.WorkflowRun{}
		err := r.Get(ctx, k8stypes.NamespacedName{Namespace: run.Namespace, Name: childRunName(run, c)}, child)
		if apierrors.IsNotFound(err) {
			continue
		} else if err != nil {
			return false, err
		}
		switch {
		case !r.childRunOf(run, child, c):
			// Another run has the name (a tenant can create a run with a parentRef of its own):
			// its end is not this iteration's, and it is left alone.
			cause := fmt.Sprintf("the WorkflowRun %s/%s is not this iteration's child run: it was not created by Millrace for this run", child.Namespace, child.Name)
			r.Recorder.Eventf(run, child, corev1.EventTypeWarning, ReasonChildRunConflict, "Dispatch", "%s: %s", c.Label, cause)
			ev.Kind, ev.Error, ev.Cause = asl.EventTaskFailed, ErrChildRunConflict, cause
		case child.Status.Phase == millracev1.RunSucceeded:
			ev.Kind = asl.EventTaskSucceeded
			if child.Status.Output != nil {
				if err := json.Unmarshal(child.Status.Output.Raw, &ev.Output); err != nil {
					ev.Kind, ev.Error, ev.Cause = asl.EventTaskFailed, asl.ErrRuntime, "the child run's output: "+err.Error()
				}
			}
		case finished(child.Status.Phase):
			ev.Kind, ev.Error, ev.Cause = asl.EventTaskFailed, child.Status.Error, child.Status.Cause
		default:
			continue
		}
		steps.step(ev)
	}
	return false, nil
}

// startChildRuns creates the child runs the recorded engine state lists and the cache does not
// have yet (at most maxChildRunWrites, and while the reconcile's budget lasts: computing a child's
// input evaluates the Map state's paths and expressions, charged to the budget opt carries, the
// one of the steps of this reconcile), and says when to look at the parent again.
func (r *WorkflowRunReconciler) startChildRuns(ctx context.Context, run *millracev1.WorkflowRun, m *workflowMachine, engine asl.Run, opt asl.Options, now time.Time, w *wakeup) error {
	children := m.ChildRuns(engine)
	if len(children) > 0 {
		w.at(now.Add(childRunRecheck))
	}
	created := 0
	for _, c := range children {
		name := childRunName(run, c)
		err := r.Get(ctx, k8stypes.NamespacedName{Namespace: run.Namespace, Name: name}, &millracev1.WorkflowRun{})
		if err == nil {
			continue
		} else if !apierrors.IsNotFound(err) {
			return err
		}
		if created == maxChildRunWrites || opt.Budget.Spent() {
			w.at(now.Add(continueAfter)) // the rest in the next reconcile, with a budget of its own
			return nil
		}
		child, err := r.childRun(run, m, engine, c, name, opt)
		if err != nil {
			r.Recorder.Eventf(run, nil, corev1.EventTypeWarning, ReasonChildRunFailed, "Dispatch", "%s: %v", c.Label, err)
			continue
		}
		if err := r.Create(ctx, child); apierrors.IsInvalid(err) || apierrors.IsForbidden(err) {
			// Refused (a quota, an admission webhook): it would be refused again. The iteration
			// fails with the refusal in the next reconcile.
			cause := fmt.Sprintf("creating the child run %s/%s was refused: %v", child.Namespace, child.Name, err)
			r.Recorder.Eventf(run, nil, corev1.EventTypeWarning, ReasonChildRunFailed, "Dispatch", "%s: %s: %s", c.Label, ErrChildRunRejected, cause)
			r.rejectedChildren.Store(rejectedChildKey(run, c), rejectedChild{cause: cause})
			w.at(now)
			continue
		} else if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		created++
	}
	return nil
}

// childRun is the child run of iteration c, with its input computed from the parent's state (the
// evaluation charged to opt.Budget, which must be set: the reconcile's).
func (r *WorkflowRunReconciler) childRun(run *millracev1.WorkflowRun, m *workflowMachine, engine asl.Run, c asl.ChildRun, name string, opt asl.Options) (*millracev1.WorkflowRun, error) {
	if opt.Budget == nil {
		return nil, fmt.Errorf("no budget for the input of child run %s", name)
	}
	input, err := m.ChildRunInput(engine, c.Path, opt)
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(input)
	if err != nil {
		return nil, err
	}
	child := &millracev1.WorkflowRun{}
	child.Namespace, child.Name = run.Namespace, name
	child.Labels = map[string]string{labelParentRun: string(run.UID), labelMapItem: strconv.Itoa(c.Item)}
	child.Spec = millracev1.WorkflowRunSpec{WorkflowRef: run.Spec.WorkflowRef, Input: &apiextensionsv1.JSON{Raw: raw},
		ParentRef: &millracev1.ParentRunReference{Name: run.Name, UID: string(run.UID), MapState: c.MapState.Name, Item: int32(c.Item), Key: c.Key()}}
	child.Spec.ParentRef.Signature = r.childRunSignature(name, child.Spec.ParentRef)
	if err := controllerutil.SetControllerReference(run, child, r.Scheme()); err != nil {
		return nil, err
	}
	return child, nil
}

// cleanUpChildRuns deletes the child runs whose ends the parent recorded and aborts those it no
// longer waits for (its Map state failed, was caught or retried, or the run ended), at most
// maxChildRunWrites; more reports whether some are left.
func (r *WorkflowRunReconciler) cleanUpChildRuns(ctx context.Context, run *millracev1.WorkflowRun, m *workflowMachine, engine asl.Run) (more bool, err error) {
	var list millracev1.WorkflowRunList
	if err := r.List(ctx, &list, client.InNamespace(run.Namespace), client.MatchingLabels{labelParentRun: string(run.UID)}); err != nil {
		return false, err
	}
	if len(list.Items) == 0 {
		return false, nil
	}
	waiting := map[string]bool{}
	for _, c := range m.ChildRuns(engine) {
		waiting[c.Key()] = true
	}
	writes := 0
	for i := range list.Items {
		child := &list.Items[i]
		// A run that carries the label but that the manager did not create is not the parent's
		// to delete or abort.
		if child.Spec.ParentRef == nil || child.Spec.ParentRef.UID != string(run.UID) || !r.createdByMillrace(child) ||
			waiting[child.Spec.ParentRef.Key] || !child.DeletionTimestamp.IsZero() ||
			(child.Spec.Abort && !finished(child.Status.Phase)) {
			continue
		}
		if writes == maxChildRunWrites {
			return true, nil
		}
		writes++
		if finished(child.Status.Phase) {
			err = r.Delete(ctx, child)
		} else {
			patch := client.MergeFrom(child.DeepCopy())
			child.Spec.Abort = true
			err = r.Patch(ctx, child, patch)
		}
		if client.IgnoreNotFound(err) != nil {
			return false, err
		}
	}
	return false, nil
}

// parentOf maps a child run to its parent.
func (r *WorkflowRunReconciler) parentOf(_ context.Context, o client.Object) []reconcile.Request {
	run, ok := o.(*millracev1.WorkflowRun)
	if !ok || run.Spec.ParentRef == nil {
		return nil
	}
	return []reconcile.Request{{NamespacedName: k8stypes.NamespacedName{Namespace: run.Namespace, Name: run.Spec.ParentRef.Name}}}
}

// childRunEnded passes the events of child runs their parent must see: one ended, or was deleted
// (the parent creates it again if it still waits for it). Their other status changes are not
// the parent's business.
var childRunEnded = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
	DeleteFunc: func(e event.DeleteEvent) bool {
		run, ok := e.Object.(*millracev1.WorkflowRun)
		return ok && run.Spec.ParentRef != nil
	},
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*millracev1.WorkflowRun)
		run, ok := e.ObjectNew.(*millracev1.WorkflowRun)
		return ok && okOld && run.Spec.ParentRef != nil && finished(run.Status.Phase) && !finished(old.Status.Phase)
	},
}

// parentDefinition is the definition a child run pins: its parent's DISTRIBUTED Map state's
// ItemProcessor, as the parent pinned it. A parent that is gone (or another run of the same
// name) ends the child before it starts (failed).
func (r *WorkflowRunReconciler) parentDefinition(ctx context.Context, run *millracev1.WorkflowRun, now time.Time) ([]byte, error) {
	ref := run.Spec.ParentRef
	parent := &millracev1.WorkflowRun{}
	err := r.Get(ctx, k8stypes.NamespacedName{Namespace: run.Namespace, Name: ref.Name}, parent)
	if apierrors.IsNotFound(err) || (err == nil && (string(parent.UID) != ref.UID || parent.Status.Definition == nil)) {
		failBeforeStart(run, ErrParentRunGone, fmt.Sprintf("spec.parentRef: the run %s (uid %s) no longer exists", ref.Name, ref.UID), now)
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	def, err := asl.ItemProcessorDefinition(parent.Status.Definition.Raw, ref.MapState)
	if err != nil {
		failBeforeStart(run, asl.ErrRuntime, "spec.parentRef: "+err.Error(), now)
		return nil, nil
	}
	return def, nil
}

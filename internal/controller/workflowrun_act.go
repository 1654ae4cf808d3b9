package controller

import (
	"context"
	"errors"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
)

// continueAfter is when a run whose reconcile spent its budget goes on: at once, but after the
// runs already queued.
const continueAfter = time.Millisecond

// localTaskRecheck is how often a run with tasks the manager performs itself is looked at while
// they run: a result whose report gave up is reported again then.
const localTaskRecheck = time.Minute

// localTaskBusyRetry is when a task the executor could not take yet is offered again.
const localTaskBusyRetry = time.Second

// act performs what the persisted state asks for: it starts every running task not yet started
// by this process (or recorded as sent by an earlier one), and requeues the run at its next
// deadline. engine is the state as recorded.
func (r *WorkflowRunReconciler) act(ctx context.Context, run *millracev1.WorkflowRun, steps *runSteps, engine asl.Run, now time.Time) (ctrl.Result, error) {
	if engine.Status != asl.Running {
		return r.finishedRun(ctx, run)
	}
	var w wakeup
	for _, d := range r.deadlines(run, steps.m, engine) {
		w.at(d.at)
	}
	original := run.DeepCopy()
	recorded, err := r.startTasks(ctx, run, steps.m, engine, now, &w)
	if perr := r.persist(ctx, original, run); perr != nil {
		return ctrl.Result{}, perr
	}
	r.sent.forget(run.UID, recorded)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.startChildRuns(ctx, run, steps.m, engine, steps.opt, now, &w); err != nil {
		return ctrl.Result{}, err
	}
	if more, err := r.cleanUpChildRuns(ctx, run, steps.m, engine); err != nil {
		return ctrl.Result{}, err
	} else if more {
		w.at(now.Add(continueAfter))
	}
	res := w.result(now)
	if steps.more && (res.RequeueAfter == 0 || res.RequeueAfter > continueAfter) {
		res.RequeueAfter = continueAfter
		r.continuing.Store(k8stypes.NamespacedName{Namespace: run.Namespace, Name: run.Name}, true)
	}
	return res, nil
}

// startTasks starts the run's running tasks: the ones the manager performs itself go to the task
// executor (which holds each until its result is recorded; nothing is written about them), the
// others are sent to their queue and recorded in status.dispatched a little later (see
// DispatchRecordDelay). It returns the tasks it recorded, and the last sending error.
func (r *WorkflowRunReconciler) startTasks(ctx context.Context, run *millracev1.WorkflowRun, m *workflowMachine, engine asl.Run, now time.Time, w *wakeup) ([]string, error) {
	var recorded []string
	var sendErr error
	for _, a := range m.Active(engine) {
		if !a.Running() {
			continue
		}
		res := m.resource(a.State)
		key := a.Key()
		if res.local() {
			w.at(now.Add(localTaskRecheck))
		}
		if r.tasks.holds(localJobKey(run, key)) {
			continue
		}
		if !res.local() {
			if slices.Contains(run.Status.Dispatched, key) {
				continue
			}
			if at, ok := r.sent.when(run.UID, key); ok {
				// Sent by this process: record it once the record is due, unless the task has
				// reported (and left the active states) first, which makes the record unneeded.
				if due := at.Add(DispatchRecordDelay); now.Before(due) {
					w.at(due)
				} else {
					run.Status.Dispatched = append(run.Status.Dispatched, key)
					recorded = append(recorded, key)
				}
				continue
			}
		}
		input, err := m.TaskInput(engine, a.Path, r.options(run))
		var credentials any
		if err == nil {
			credentials, err = m.TaskCredentials(engine, a.Path, r.options(run))
		}
		sent := false
		if err == nil {
			sent, err = r.dispatch(ctx, run, a, res, input, credentials)
		}
		if errors.Is(err, errNamespaceBusy) || errors.Is(err, errExecutorFull) {
			// The executor takes it when the namespace's (or everyone's) earlier tasks are done:
			// not an error, and not an Event per try.
			w.at(now.Add(localTaskBusyRetry))
			continue
		}
		result := "ok"
		if err != nil {
			result = "error"
		}
		r.Metrics.Tasks.WithLabelValues(run.Namespace, run.Spec.WorkflowRef.Name, res.kind(), result).Inc()
		if err != nil {
			sendErr = err
			r.Recorder.Eventf(run, nil, corev1.EventTypeWarning, ReasonTaskSendFail, "Dispatch", "%s: %v", a.Label, err)
			continue
		}
		if sent {
			r.sent.add(run.UID, key, now)
			w.at(now.Add(DispatchRecordDelay))
		}
	}
	return recorded, sendErr
}

// finishedRun tidies up after a finished run: its child runs (deleted, or aborted if they still
// run), then the Workflow's finished runs beyond its historyLimit.
func (r *WorkflowRunReconciler) finishedRun(ctx context.Context, run *millracev1.WorkflowRun) (ctrl.Result, error) {
	if run.Status.Definition != nil && run.Spec.ParentRef == nil {
		if m, err := r.machines.parse(run.Status.Definition.Raw); err == nil {
			more, err := r.cleanUpChildRuns(ctx, run, m, asl.Run{})
			if err != nil {
				return ctrl.Result{}, err
			}
			if more {
				return ctrl.Result{RequeueAfter: continueAfter}, nil
			}
		}
	}
	return ctrl.Result{}, r.collectGarbage(ctx, run)
}

// wakeup is the earliest time a run must be looked at again.
type wakeup struct{ next time.Time }

func (w *wakeup) at(t time.Time) {
	if w.next.IsZero() || t.Before(w.next) {
		w.next = t
	}
}

func (w *wakeup) result(now time.Time) ctrl.Result {
	if w.next.IsZero() {
		return ctrl.Result{}
	}
	return ctrl.Result{RequeueAfter: max(w.next.Sub(now), 10*time.Millisecond)}
}

package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
	"github.com/millrace-io/millrace/internal/conditions"
)

const (
	maxHistory = 100
	// maxActiveListed bounds status.activeStates (nested Maps can run 40 × 40 states at once).
	maxActiveListed = 100
	// maxStateBytes bounds the engine state plus the run's input and pinned definition, so that
	// with the history (at most 100 short events) the object stays under etcd's 1.5 MiB limit.
	maxStateBytes = 1280 << 10
)

// record renders the steps' engine state into the run's status (persisted by the caller) and
// returns the state it recorded: the caller acts on that one (a run too large to record has
// failed).
func (r *WorkflowRunReconciler) record(run *millracev1.WorkflowRun, steps *runSteps, now time.Time) (asl.Run, error) {
	engine, err := renderStatus(run, steps.m, steps.engine, steps.history, steps.dropped(), now)
	if err != nil {
		return engine, err
	}
	live := map[string]bool{}
	for _, a := range steps.m.Active(engine) {
		live[a.Key()] = true
	}
	r.beats.keep(run.UID, live)
	return engine, nil
}

// renderStatus writes the engine's state into the run's status, from nothing but its arguments,
// and returns the state it wrote. dropped counts the transitions the steps made but did not keep
// (see asl.Budget).
func renderStatus(run *millracev1.WorkflowRun, m *workflowMachine, engine asl.Run, history []asl.Transition, dropped int, now time.Time) (asl.Run, error) {
	// A run that succeeded is never stepped again (its output is status.output); any other keeps
	// what a redrive needs.
	kept := engine.Stored()
	var output []byte
	if engine.Status == asl.Succeeded {
		output, _ = json.Marshal(engine.Output)
	}
	raw, err := json.Marshal(kept)
	if err != nil {
		return engine, err
	}
	// The output counts: a run whose output does not fit in its object would fail to be
	// written forever.
	if size := len(raw) + len(output) + jsonLen(run.Spec.Input) + jsonLen(run.Status.Definition); size > maxStateBytes {
		// The run's state would not fit in its object (etcd refuses objects over 1.5 MiB): end
		// the run with an error that says so, rather than fail to record it forever.
		exec := engine.Execution
		exec.Input = nil
		engine = asl.Run{Status: asl.Failed, State: engine.State, Execution: exec, Transitions: engine.Transitions,
			Error: asl.ErrDataLimitExceeded, Cause: fmt.Sprintf("the run's state in %s reached %d bytes with its input and definition (limit %d)", engine.State, size, maxStateBytes),
			Stopped: now, NotRedrivable: "the run's state did not fit in its object"}
		history = append(history, asl.Transition{At: now, State: engine.State, Kind: string(asl.Failed), Info: asl.ErrDataLimitExceeded})
		if raw, err = json.Marshal(engine); err != nil {
			return engine, err
		}
	}
	run.Status.Engine = &apiextensionsv1.JSON{Raw: raw}
	for _, h := range history {
		run.Status.History = append(run.Status.History, millracev1.HistoryEvent{Time: metav1.NewTime(h.At), State: h.State, Type: h.Kind, Info: h.Info})
	}
	run.Status.HistoryTotal += int64(len(history) + dropped)
	if n := len(run.Status.History); n > maxHistory {
		run.Status.History = slices.Clone(run.Status.History[n-maxHistory:])
	}
	run.Status.CurrentState = engine.State
	run.Status.RedriveCount, run.Status.RedriveDate = int32(engine.Execution.RedriveCount), nil
	if t := engine.Execution.RedriveTime; t != nil {
		run.Status.RedriveDate = &metav1.Time{Time: *t}
	}
	switch engine.Status {
	case asl.Running:
		// A redriven run runs again: what its end recorded is gone.
		run.Status.Phase = millracev1.RunRunning
		run.Status.Error, run.Status.Cause, run.Status.CompletionTime, run.Status.Output = "", "", nil, nil
		renderActive(run, m, engine)
	case asl.Succeeded:
		run.Status.Output = &apiextensionsv1.JSON{Raw: output}
		complete(run, millracev1.RunSucceeded, now)
	default:
		run.Status.Error, run.Status.Cause = engine.Error, engine.Cause
		complete(run, endPhase(engine.Status), now)
	}
	run.Status.ObservedGeneration = run.Generation
	setRunConditions(run, pending{})
	return engine, nil
}

// renderActive lists the run's active states (at most maxActiveListed), its fan-out progress,
// and keeps only the dispatch records and heartbeats of tasks still running.
func renderActive(run *millracev1.WorkflowRun, m *workflowMachine, engine asl.Run) {
	run.Status.ActiveStates, run.Status.ActiveStatesTotal, run.Status.FanOuts = nil, 0, nil
	active := m.Active(engine)
	if len(active) > maxActiveListed {
		run.Status.ActiveStatesTotal = int32(len(active))
	}
	for _, f := range m.FanOuts(engine) {
		run.Status.FanOuts = append(run.Status.FanOuts, millracev1.FanOutProgress{Name: f.State.Name, Path: f.Label,
			Total: int32(f.Total), Succeeded: int32(f.Succeeded), Running: int32(f.Running), Pending: int32(f.Pending)})
	}
	live := map[string]bool{}
	for _, a := range active {
		live[a.Key()] = true
		if len(run.Status.ActiveStates) == maxActiveListed {
			continue
		}
		as := millracev1.ActiveState{Name: a.State.Name, Path: a.Label, Attempt: int32(a.Attempt)}
		since := metav1.NewTime(a.Entered)
		as.Since = &since
		if a.Waiting != nil {
			until := metav1.NewTime(*a.Waiting)
			as.Until = &until
		} else if at, ok := taskTimeoutAt(a); ok && a.Running() {
			until := metav1.NewTime(at)
			as.Until = &until
		}
		run.Status.ActiveStates = append(run.Status.ActiveStates, as)
	}
	run.Status.Dispatched = slices.DeleteFunc(run.Status.Dispatched, func(k string) bool { return !live[k] })
	run.Status.Heartbeats = slices.DeleteFunc(run.Status.Heartbeats, func(h millracev1.TaskHeartbeat) bool { return !live[h.Task] })
}

// endPhase is the phase of a run the engine ended.
func endPhase(s asl.Status) millracev1.RunPhase {
	switch s {
	case asl.Succeeded:
		return millracev1.RunSucceeded
	case asl.TimedOut:
		return millracev1.RunTimedOut
	case asl.Aborted:
		return millracev1.RunAborted
	}
	return millracev1.RunFailed
}

func jsonLen(j *apiextensionsv1.JSON) int {
	if j == nil {
		return 0
	}
	return len(j.Raw)
}

// complete ends the run in phase: nothing is active any more.
func complete(run *millracev1.WorkflowRun, phase millracev1.RunPhase, now time.Time) {
	run.Status.Phase = phase
	t := metav1.NewTime(now)
	run.Status.CompletionTime = &t
	run.Status.ActiveStates, run.Status.Dispatched, run.Status.Heartbeats = nil, nil, nil
	run.Status.ActiveStatesTotal, run.Status.FanOuts = 0, nil
}

// failBeforeStart ends a run that cannot start (or go on): an input it cannot read, a lost
// definition.
func failBeforeStart(run *millracev1.WorkflowRun, errName, cause string, now time.Time) {
	run.Status.Error, run.Status.Cause = errName, cause
	complete(run, millracev1.RunFailed, now)
	run.Status.ObservedGeneration = run.Generation
	setRunConditions(run, pending{})
}

// setPending keeps a run that cannot start yet Pending: stalled (its Workflow is invalid: only a
// change starts it) or waiting (its Workflow does not exist yet).
func setPending(run *millracev1.WorkflowRun, stalled bool, reason, message string) {
	run.Status.Phase = millracev1.RunPending
	if stalled {
		run.Status.ObservedGeneration = run.Generation
	}
	setRunConditions(run, pending{stalled: stalled, reason: reason, message: message})
}

// pending is why a run has not started.
type pending struct {
	stalled         bool
	reason, message string
}

// setRunConditions derives the run's conditions from its status: Stalled when it ended other than
// by success or cannot start, Reconciling while it runs or waits (why, for a run not started: p);
// Ready follows from them (internal/conditions), True once it succeeded.
func setRunConditions(run *millracev1.WorkflowRun, p pending) {
	s := &run.Status
	var verdict conditions.Verdict
	switch s.Phase {
	case millracev1.RunSucceeded:
		conditions.MarkReconciled(&s.Conditions)
		verdict = conditions.Verdict{Reason: "Succeeded", Message: "the run succeeded"}
	case millracev1.RunFailed, millracev1.RunTimedOut, millracev1.RunAborted:
		conditions.MarkStalled(&s.Conditions, run.Generation, string(s.Phase), fmt.Sprintf("%s: %s", s.Error, s.Cause))
	case millracev1.RunRunning:
		conditions.MarkReconciling(&s.Conditions, run.Generation, "Running", "in "+s.CurrentState)
	default:
		if p.stalled {
			conditions.MarkStalled(&s.Conditions, run.Generation, p.reason, p.message)
		} else {
			conditions.MarkReconciling(&s.Conditions, run.Generation, p.reason, p.message)
		}
	}
	conditions.Summarize(&s.Conditions, run.Generation, verdict)
}

// persist is the one way a run's status is written (by reconciles, task reports and heartbeats):
// only when it changed, under the manager's field manager, with optimistic locking — a concurrent
// writer (the callback API) makes this writer retry from the latest version rather than
// overwrite it. A write that moves the run's phase emits the Event a user wants to see.
func (r *WorkflowRunReconciler) persist(ctx context.Context, original, run *millracev1.WorkflowRun) error {
	if equality.Semantic.DeepEqual(original.Status, run.Status) {
		return nil
	}
	r.writes.Add(1)
	err := r.Status().Patch(ctx, run, client.MergeFromWithOptions(original, client.MergeFromWithOptimisticLock{}), client.FieldOwner(fieldOwner))
	result := "ok"
	switch {
	case apierrors.IsConflict(err):
		result = "conflict"
	case err != nil:
		result = "error"
	}
	r.Metrics.observeWrite(original, run, result)
	if err == nil {
		r.announce(original, run)
	}
	return err
}

// announce emits the Events of what a successful write recorded: the run started, was redriven
// (or its redrive refused), succeeded, failed, timed out or was aborted.
func (r *WorkflowRunReconciler) announce(original, run *millracev1.WorkflowRun) {
	if original.Status.StartTime == nil && run.Status.StartTime != nil {
		r.Recorder.Eventf(run, nil, corev1.EventTypeNormal, ReasonRunStarted, "Start", "run of Workflow %s started", run.Spec.WorkflowRef.Name)
	}
	if run.Status.LastHandledRedrive > original.Status.LastHandledRedrive {
		msg := ""
		if c := meta.FindStatusCondition(run.Status.Conditions, ConditionRedrive); c != nil {
			msg = c.Message
		}
		if run.Status.RedriveCount > original.Status.RedriveCount {
			r.Recorder.Eventf(run, nil, corev1.EventTypeNormal, ReasonRunRedriven, "Redrive", "%s", msg)
		} else {
			r.Recorder.Eventf(run, nil, corev1.EventTypeWarning, ReasonRedriveRefused, "Redrive", "%s", msg)
		}
	}
	if !finished(run.Status.Phase) || finished(original.Status.Phase) {
		return
	}
	switch run.Status.Phase {
	case millracev1.RunSucceeded:
		r.Recorder.Eventf(run, nil, corev1.EventTypeNormal, ReasonRunSucceeded, "Complete", "run succeeded")
	case millracev1.RunAborted:
		r.Recorder.Eventf(run, nil, corev1.EventTypeWarning, ReasonRunAborted, "Complete", "run aborted: %s: %s", run.Status.Error, run.Status.Cause)
	default:
		r.Recorder.Eventf(run, nil, corev1.EventTypeWarning, ReasonRunFailed, "Complete", "run %s: %s: %s", strings.ToLower(string(run.Status.Phase)), run.Status.Error, run.Status.Cause)
	}
}

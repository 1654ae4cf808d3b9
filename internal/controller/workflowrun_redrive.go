package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
	"github.com/millrace-io/millrace/internal/conditions"
)

// Redrive, as the user asks for it: each raise of spec.redrive above status.lastHandledRedrive is
// one request, handled once (the run is redriven, or the request is refused with a Warning Event
// and the Redrive condition) and never retried until spec.redrive is raised again. The engine
// does the redrive itself (asl.Machine.Redrive); the controller checks what only it can see: that
// the Workflow's definition is the one the run pinned.

const (
	// ConditionRedrive reports the latest redrive request: True (reason Redriven) when the run
	// was redriven, False with the refusal's reason (asl.Redrive*) when it was not.
	ConditionRedrive     = "Redrive"
	ReasonRunRedriven    = "RunRedriven"
	ReasonRedriveRefused = "RedriveRefused"
	reasonRedriven       = "Redriven"
)

// redriveRequested reports whether spec.redrive asks for a redrive not handled yet.
func redriveRequested(run *millracev1.WorkflowRun) bool {
	return run.Spec.Redrive > run.Status.LastHandledRedrive
}

// redrive handles the run's redrive request: it returns the steps of the redriven run, or nil
// steps when the request was refused (the run's status says why). A transient error (reading the
// Workflow) leaves the request unhandled, to be tried again.
func (r *WorkflowRunReconciler) redrive(ctx context.Context, run *millracev1.WorkflowRun, now time.Time) (*runSteps, error) {
	m, engine, err := r.redrivable(ctx, run, now)
	var steps *runSteps
	if err == nil {
		steps = r.newSteps(run, m, asl.Run{})
		steps.engine, _, steps.history, err = m.Redrive(engine, now, steps.opt)
	}
	var refusal *asl.RedriveError
	if err != nil && !errors.As(err, &refusal) {
		return nil, err // transient: the request is handled on a later try
	}
	run.Status.LastHandledRedrive = run.Spec.Redrive
	run.Status.ObservedGeneration = run.Generation
	if refusal != nil {
		setRedriveCondition(run, metav1.ConditionFalse, refusal.Reason, refusal.Error())
		return nil, nil
	}
	if run.Spec.Abort {
		// The abort, applied or not, was before this redrive: it does not stop the redriven run.
		at := int32(engine.Execution.RedriveCount)
		run.Status.AbortedAtRedrive = &at
	}
	setRedriveCondition(run, metav1.ConditionTrue, reasonRedriven,
		fmt.Sprintf("redrive %d from state %s", steps.engine.Execution.RedriveCount, engine.State))
	steps.continueRun(now)
	return steps, nil
}

// redrivable loads what a redrive of the run needs, or says why it cannot be redriven (an
// *asl.RedriveError): a run that has not finished, ended before it started, or whose Workflow's
// definition is no longer the one it pinned. The engine's own checks (asl.Redrivable) follow in
// Machine.Redrive.
func (r *WorkflowRunReconciler) redrivable(ctx context.Context, run *millracev1.WorkflowRun, now time.Time) (*workflowMachine, asl.Run, error) {
	refuse := func(reason, format string, a ...any) error {
		return &asl.RedriveError{Reason: reason, Message: fmt.Sprintf(format, a...)}
	}
	switch {
	case run.Status.Phase == millracev1.RunRunning:
		return nil, asl.Run{}, refuse(asl.RedriveRunning, "it is still running")
	case run.Status.Phase == millracev1.RunSucceeded:
		return nil, asl.Run{}, refuse(asl.RedriveSucceeded, "it succeeded")
	case !finished(run.Status.Phase) || run.Status.Engine == nil:
		return nil, asl.Run{}, refuse(asl.RedriveNotStarted, "it has not started")
	case run.Spec.ParentRef != nil:
		return nil, asl.Run{}, refuse(asl.RedriveNotRedrivableReason, "it is a child run of %s: redrive that run", run.Spec.ParentRef.Name)
	}
	m, engine, err := r.loadEngine(run)
	if err != nil {
		return nil, asl.Run{}, refuse(asl.RedriveNotRedrivableReason, "%v", err)
	}
	if engine.Status == asl.Running {
		// The run ended without its engine (its definition was lost): nothing to go on from.
		return nil, asl.Run{}, refuse(asl.RedriveNotRedrivableReason, "it ended before its engine did (%s)", run.Status.Cause)
	}
	if err := asl.Redrivable(engine, now); err != nil {
		return nil, asl.Run{}, err
	}
	if err := r.sameDefinition(ctx, run); err != nil {
		return nil, asl.Run{}, err
	}
	if engine.Execution.Input == nil {
		// A run stored before finished runs kept their input: spec.input is that input.
		var input any = map[string]any{}
		if run.Spec.Input != nil && len(run.Spec.Input.Raw) > 0 {
			if err := json.Unmarshal(run.Spec.Input.Raw, &input); err != nil {
				return nil, asl.Run{}, refuse(asl.RedriveNotRedrivableReason, "spec.input: %v", err)
			}
		}
		engine.Execution.Input = input
	}
	return m, engine, nil
}

// sameDefinition checks that the run's Workflow still has the definition the run pinned when it
// started (a new definition needs a new run, as in Step Functions).
func (r *WorkflowRunReconciler) sameDefinition(ctx context.Context, run *millracev1.WorkflowRun) error {
	mismatch := func(format string, a ...any) error {
		return &asl.RedriveError{Reason: asl.RedriveDefinitionMismatch, Message: fmt.Sprintf(format, a...)}
	}
	wf := &millracev1.Workflow{}
	err := r.Get(ctx, k8stypes.NamespacedName{Namespace: run.Namespace, Name: run.Spec.WorkflowRef.Name}, wf)
	if apierrors.IsNotFound(err) {
		return mismatch("its Workflow %q no longer exists", run.Spec.WorkflowRef.Name)
	} else if err != nil {
		return err
	}
	pinned := run.Status.DefinitionHash
	if pinned == "" && run.Status.Definition != nil { // a run started before hashes were pinned
		pinned, _ = asl.DefinitionHash(run.Status.Definition.Raw)
	}
	current, err := asl.DefinitionHash(wf.Spec.Definition.Raw)
	if err != nil || pinned == "" || current != pinned {
		return mismatch("Workflow %q's definition changed since the run started (%s, the run's %s): start a new run", wf.Name, shortHash(current), shortHash(pinned))
	}
	return nil
}

func shortHash(h string) string {
	if len(h) > len("sha256:")+12 {
		return h[:len("sha256:")+12]
	}
	if h == "" {
		return "none"
	}
	return h
}

func setRedriveCondition(run *millracev1.WorkflowRun, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&run.Status.Conditions, metav1.Condition{Type: ConditionRedrive, Status: status,
		ObservedGeneration: run.Generation, Reason: reason, Message: conditions.Clip(message)})
}

// abortAsked reports whether spec.abort stops the run now: it stops it once, not again after a
// redrive (spec.abort cannot be undone, so a redriven aborted run still has it).
func abortAsked(run *millracev1.WorkflowRun, engine asl.Run) bool {
	if !run.Spec.Abort {
		return false
	}
	at := run.Status.AbortedAtRedrive
	return at == nil || int(*at) >= engine.Execution.RedriveCount
}

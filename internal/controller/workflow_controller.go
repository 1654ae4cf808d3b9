package controller

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/conditions"
)

// Reasons of Workflow conditions.
const (
	ReasonValid             = "Valid"
	ReasonInvalidDefinition = "InvalidDefinition"
	maxReportedErrors       = 50
)

// WorkflowReconciler validates Workflow definitions.
type WorkflowReconciler struct {
	client.Client
	Recorder events.EventRecorder
}

// +kubebuilder:rbac:groups=millrace.io,resources=workflows,verbs=get;list;watch
// +kubebuilder:rbac:groups=millrace.io,resources=workflows/status,verbs=get;update;patch

// Reconcile parses the definition, and reads each Task's Resource, and reports Ready, or Stalled
// with every error and its JSON path (a Resource this manager cannot perform is one: runs of the
// Workflow would otherwise fail later, one task at a time).
func (r *WorkflowReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	wf := &millracev1.Workflow{}
	if err := r.Get(ctx, req.NamespacedName, wf); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	original := wf.DeepCopy()
	m, errs := parseWorkflow(wf.Spec.Definition.Raw)
	var verdict conditions.Verdict
	wf.Status.Errors = nil
	if len(errs) > 0 {
		for i, e := range errs {
			if i == maxReportedErrors {
				break
			}
			wf.Status.Errors = append(wf.Status.Errors, e.Path+": "+e.Message)
		}
		msg := fmt.Sprintf("%d error(s) in spec.definition: %s", len(errs), strings.Join(wf.Status.Errors[:min(3, len(wf.Status.Errors))], "; "))
		if !conditions.IsStalled(wf.Status.Conditions) || wf.Status.ObservedGeneration != wf.Generation {
			r.Recorder.Eventf(wf, nil, corev1.EventTypeWarning, ReasonInvalidDefinition, "Validate", "%s", msg)
		}
		conditions.MarkStalled(&wf.Status.Conditions, wf.Generation, ReasonInvalidDefinition, msg)
		wf.Status.States, wf.Status.StartAt = 0, ""
	} else {
		conditions.MarkReconciled(&wf.Status.Conditions)
		verdict = conditions.Verdict{Reason: ReasonValid, Message: fmt.Sprintf("%d states, starting at %s", len(m.States), m.StartAt)}
		wf.Status.States, wf.Status.StartAt = int32(len(m.States)), m.StartAt
	}
	conditions.Summarize(&wf.Status.Conditions, wf.Generation, verdict)
	wf.Status.ObservedGeneration = wf.Generation
	if equality.Semantic.DeepEqual(original.Status, wf.Status) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, client.IgnoreNotFound(r.Status().Patch(ctx, wf, client.MergeFrom(original), client.FieldOwner(fieldOwner)))
}

// SetupWithManager registers the controller.
func (r *WorkflowReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&millracev1.Workflow{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Named("workflow").
		Complete(r)
}

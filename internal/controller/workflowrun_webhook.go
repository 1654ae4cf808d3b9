package controller

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
)

// +kubebuilder:webhook:path=/validate-millrace-io-v1alpha1-workflowrun,mutating=false,failurePolicy=fail,sideEffects=None,groups=millrace.io,resources=workflowruns,verbs=create;update,versions=v1alpha1,name=vworkflowrun.millrace.io,admissionReviewVersions=v1,timeoutSeconds=5

// WorkflowRunValidator refuses at admission what the CRD's schema cannot express: a run input
// larger than Step Functions' payload limit (the schema cannot measure a free-form document). The
// controller checks again when the run starts, for runs admitted while the webhook was off.
type WorkflowRunValidator struct{}

// SetupWebhookWithManager registers the validator on the manager's webhook server.
func (v WorkflowRunValidator) SetupWebhookWithManager(mgr ctrl.Manager) error {
	return ctrl.NewWebhookManagedBy(mgr, &millracev1.WorkflowRun{}).WithValidator(v).Complete()
}

// ValidateCreate checks a new run.
func (WorkflowRunValidator) ValidateCreate(_ context.Context, run *millracev1.WorkflowRun) (admission.Warnings, error) {
	return nil, validateRun(run)
}

// ValidateUpdate checks a changed run (its input is read once, but a stored run stays bounded).
func (WorkflowRunValidator) ValidateUpdate(_ context.Context, _, run *millracev1.WorkflowRun) (admission.Warnings, error) {
	return nil, validateRun(run)
}

// ValidateDelete allows every deletion.
func (WorkflowRunValidator) ValidateDelete(context.Context, *millracev1.WorkflowRun) (admission.Warnings, error) {
	return nil, nil
}

func validateRun(run *millracev1.WorkflowRun) error {
	if n := jsonLen(run.Spec.Input); n > asl.DefaultMaxPayloadBytes {
		return apierrors.NewInvalid(millracev1.GroupVersion.WithKind("WorkflowRun").GroupKind(), run.Name, field.ErrorList{
			field.Invalid(field.NewPath("spec", "input"), fmt.Sprintf("<%d bytes>", n),
				fmt.Sprintf("the input is %d bytes; a run's input may be at most %d bytes (the payload limit of Step Functions)", n, asl.DefaultMaxPayloadBytes)),
		})
	}
	return nil
}

package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/controller"
)

func newWorkflow(ns, name, definition string) *millracev1.Workflow {
	return &millracev1.Workflow{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: millracev1.WorkflowSpec{Definition: apiextensionsv1.JSON{Raw: []byte(definition)}}}
}

func waitWorkflow(t *testing.T, ns, name string, check func(*millracev1.Workflow) error) {
	t.Helper()
	eventually(t, waitReady, func() error {
		wf := &millracev1.Workflow{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, wf); err != nil {
			return err
		}
		return check(wf)
	})
}

func TestAValidWorkflowIsReady(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "ok", `{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},"B":{"Type":"Succeed"}}}`))
	waitWorkflow(t, ns, "ok", func(wf *millracev1.Workflow) error {
		if !meta.IsStatusConditionTrue(wf.Status.Conditions, millracev1.ConditionReady) || wf.Status.States != 2 || wf.Status.StartAt != "A" {
			return fmt.Errorf("status %+v", wf.Status)
		}
		return nil
	})
}

func TestAnInvalidWorkflowIsStalledWithTheJSONPathOfEachError(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "bad", `{"StartAt":"A","States":{"A":{"Type":"Pass","Nxt":"B"},"B":{"Type":"Succeed"}}}`))
	waitWorkflow(t, ns, "bad", func(wf *millracev1.Workflow) error {
		c := meta.FindStatusCondition(wf.Status.Conditions, millracev1.ConditionStalled)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != controller.ReasonInvalidDefinition ||
			!strings.Contains(strings.Join(wf.Status.Errors, "\n"), `$.States.A.Nxt: field "Nxt" is not allowed in a Pass state`) {
			return fmt.Errorf("status %+v", wf.Status)
		}
		return nil
	})
}

func TestADefinitionWithoutStartAtIsStalled(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "nostart", `{"States":{"A":{"Type":"Succeed"}}}`))
	waitWorkflow(t, ns, "nostart", func(wf *millracev1.Workflow) error {
		if !conditionTrue(wf.Status.Conditions, millracev1.ConditionStalled) || !strings.Contains(strings.Join(wf.Status.Errors, "\n"), "$.StartAt: StartAt is required") {
			return fmt.Errorf("status %+v", wf.Status)
		}
		return nil
	})
}

func conditionTrue(c []metav1.Condition, kind string) bool {
	return meta.IsStatusConditionTrue(c, kind)
}

// A Task whose Resource this manager cannot perform makes the Workflow Stalled when it is applied,
// with the field named, and its runs wait (Stalled, Pending) instead of failing one task later.
func TestAWorkflowWithAnUnsupportedResourceIsStalledAndItsRunsDoNotStart(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "lambda", `{"StartAt":"Each","States":{"Each":{"Type":"Map","End":true,
		"ItemProcessor":{"StartAt":"Invoke","States":{"Invoke":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:f","End":true}}}}}}`))
	waitWorkflow(t, ns, "lambda", func(wf *millracev1.Workflow) error {
		c := meta.FindStatusCondition(wf.Status.Conditions, millracev1.ConditionStalled)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != controller.ReasonInvalidDefinition ||
			!strings.Contains(strings.Join(wf.Status.Errors, "\n"), `$.States.Each.ItemProcessor.States.Invoke.Resource: resource "arn:aws:lambda:us-east-1:123456789012:function:f" is not supported`) {
			return fmt.Errorf("status %+v", wf.Status)
		}
		return nil
	})
	create(t, newRun(ns, "never", "lambda", `[1]`))
	run := waitRun(t, ns, "never", millracev1.RunPending)
	eventually(t, waitReady, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(run), run); err != nil {
			return err
		}
		if !conditionTrue(run.Status.Conditions, millracev1.ConditionStalled) || run.Status.Engine != nil {
			return fmt.Errorf("run status %+v", run.Status)
		}
		return nil
	})
}

// Package conditions sets the kstatus conditions (Ready, Reconciling, Stalled) consistently on every
// Millrace kind: exactly one of "Ready=True", "Reconciling=True" or "Stalled=True" describes the
// object, and the other two are removed or False.
package conditions

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// MarkReady records that the declared state holds.
func MarkReady(conds *[]metav1.Condition, generation int64, reason, message string) {
	set(conds, generation, millracev1.ConditionReady, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(conds, millracev1.ConditionReconciling)
	meta.RemoveStatusCondition(conds, millracev1.ConditionStalled)
}

// MarkReconciling records that the operator is making progress (or waiting for something that will
// come by itself); Ready is False with the same reason.
func MarkReconciling(conds *[]metav1.Condition, generation int64, reason, message string) {
	set(conds, generation, millracev1.ConditionReconciling, metav1.ConditionTrue, reason, message)
	set(conds, generation, millracev1.ConditionReady, metav1.ConditionFalse, reason, message)
	meta.RemoveStatusCondition(conds, millracev1.ConditionStalled)
}

// MarkStalled records that no progress is possible without a change; Ready is False with the same
// reason.
func MarkStalled(conds *[]metav1.Condition, generation int64, reason, message string) {
	set(conds, generation, millracev1.ConditionStalled, metav1.ConditionTrue, reason, message)
	set(conds, generation, millracev1.ConditionReady, metav1.ConditionFalse, reason, message)
	meta.RemoveStatusCondition(conds, millracev1.ConditionReconciling)
}

// IsStalled reports whether Stalled=True.
func IsStalled(conds []metav1.Condition) bool {
	return meta.IsStatusConditionTrue(conds, millracev1.ConditionStalled)
}

// IsReady reports whether Ready=True.
func IsReady(conds []metav1.Condition) bool {
	return meta.IsStatusConditionTrue(conds, millracev1.ConditionReady)
}

func set(conds *[]metav1.Condition, generation int64, kind string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               kind,
		Status:             status,
		ObservedGeneration: generation,
		Reason:             reason,
		Message:            message,
	})
}

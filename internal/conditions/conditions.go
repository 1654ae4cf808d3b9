// Package conditions keeps the kstatus conditions of every Millrace kind consistent, and decides
// Ready in one place.
//
// A controller records what it observed: Stalled (no progress without a change), Reconciling
// (progress under way, or waiting for something that comes by itself), and its kind's own abnormal
// conditions (a Consumer's Degraded). At most one of Stalled and Reconciling is True. Summarize
// then derives Ready from them, the way Flux's summarize helper does: Ready is False while any of
// them is True, with the reason and message of the one that decides (Stalled first, then the
// kind's abnormal conditions in the order it gives, then Reconciling), and True otherwise with
// the reason and message of the controller's verdict. kstatus (and so `kubectl wait`, Flux and
// Argo CD health checks) reads Stalled=True as Failed, Reconciling=True as InProgress, and a
// Ready=False without either as InProgress.
package conditions

import (
	"fmt"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// MarkReconciling records that the operator is making progress (or waiting for something that will
// come by itself); it clears Stalled.
func MarkReconciling(conds *[]metav1.Condition, generation int64, reason, message string) {
	set(conds, generation, millracev1.ConditionReconciling, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(conds, millracev1.ConditionStalled)
}

// MarkStalled records that no progress is possible without a change; it clears Reconciling.
func MarkStalled(conds *[]metav1.Condition, generation int64, reason, message string) {
	set(conds, generation, millracev1.ConditionStalled, metav1.ConditionTrue, reason, message)
	meta.RemoveStatusCondition(conds, millracev1.ConditionReconciling)
}

// MarkReconciled records that the reconcile went through: neither Stalled nor Reconciling.
func MarkReconciled(conds *[]metav1.Condition) {
	meta.RemoveStatusCondition(conds, millracev1.ConditionReconciling)
	meta.RemoveStatusCondition(conds, millracev1.ConditionStalled)
}

// Verdict is what a controller says when its reconcile went through: the reason and message of
// Ready=True, unless a condition holds Ready back. An empty Reason is no verdict (the reconcile
// ended early, e.g. on a transient error).
type Verdict struct {
	Reason, Message string
}

// Summarize sets Ready from the other conditions: False with the reason and message of the first
// True one of Stalled, abnormal (in order: the kind's negative-polarity conditions, such as
// Degraded) and Reconciling; otherwise True with the verdict's reason and message. Without a
// verdict and with nothing holding Ready back, Ready is left as it was.
func Summarize(conds *[]metav1.Condition, generation int64, v Verdict, abnormal ...string) {
	order := append(append([]string{millracev1.ConditionStalled}, abnormal...), millracev1.ConditionReconciling)
	for _, kind := range order {
		if c := meta.FindStatusCondition(*conds, kind); c != nil && c.Status == metav1.ConditionTrue {
			set(conds, generation, millracev1.ConditionReady, metav1.ConditionFalse, c.Reason, c.Message)
			return
		}
	}
	if v.Reason != "" {
		set(conds, generation, millracev1.ConditionReady, metav1.ConditionTrue, v.Reason, v.Message)
	}
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
		Message:            Clip(message),
	})
}

// MaxMessage bounds a condition's message here, well under the 32,768 characters the API server
// allows: messages may quote what tenants wrote (a run's Cause may be 256 KiB), and a status the
// API server refuses is never written, so the condition would never tell anything.
const MaxMessage = 4096

// Clip returns message cut to MaxMessage bytes at a character boundary, saying how long it was.
func Clip(message string) string {
	if len(message) <= MaxMessage {
		return message
	}
	suffix := fmt.Sprintf("… (%d bytes in all)", len(message))
	cut := MaxMessage - len(suffix)
	for cut > 0 && !utf8.RuneStart(message[cut]) {
		cut--
	}
	return message[:cut] + suffix
}

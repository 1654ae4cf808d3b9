package controller

import (
	"errors"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/depth"
	"github.com/millrace-io/millrace/internal/scaling"
)

// The Consumer's Ready as observe and summarizeConsumer set it from a decision, without a cluster.
func TestConsumerReadyFollowsItsOtherConditions(t *testing.T) {
	failed := depth.Sample{Err: errors.New("AWS.SimpleQueueService.NonExistentQueue")}
	cases := []struct {
		name      string
		decision  scaling.Decision
		sample    depth.Sample
		available bool
		ready     metav1.ConditionStatus
		reason    string
	}{
		{"scaled to zero on an empty queue is ready", scaling.Decision{Replicas: 0}, depth.Sample{}, false, metav1.ConditionTrue, ReasonScaledToZero},
		{"available replicas are ready", scaling.Decision{Replicas: 2, Active: true}, depth.Sample{}, true, metav1.ConditionTrue, ReasonAvailable},
		{"replicas not yet available are not ready", scaling.Decision{Replicas: 2, Active: true}, depth.Sample{}, false, metav1.ConditionFalse, ReasonRolling},
		{"at zero with a depth it cannot read it is not ready", scaling.Decision{Replicas: 0, Degraded: true}, failed, false, metav1.ConditionFalse, ReasonDepthUnknown},
		{"holding available replicas with a depth it cannot read it is not ready", scaling.Decision{Replicas: 3, Degraded: true}, failed, true, metav1.ConditionFalse, ReasonDepthUnknown},
		{"running available fallback replicas it is not ready, reason Fallback", scaling.Decision{Replicas: 2, Degraded: true, Fallback: true}, failed, true, metav1.ConditionFalse, ReasonFallback},
		{"paused with available replicas it is ready", scaling.Decision{Replicas: 1, Paused: true}, depth.Sample{}, true, metav1.ConditionTrue, ReasonAvailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &ConsumerReconciler{Metrics: NewConsumerMetrics(nil)}
			c := &millracev1.Consumer{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "worker", Generation: 1}}
			s := &consumerScope{c: c, st: &consumerState{}, decision: tc.decision, sample: tc.sample,
				target: &workload{obj: c, kind: "Deployment", current: tc.decision.Replicas, ready: tc.decision.Replicas, available: tc.available}}
			r.observe(s)
			summarizeConsumer(c, s.verdict)
			ready := meta.FindStatusCondition(c.Status.Conditions, millracev1.ConditionReady)
			if ready == nil || ready.Status != tc.ready || ready.Reason != tc.reason {
				t.Fatalf("Ready = %+v, want %s %s", ready, tc.ready, tc.reason)
			}
			if meta.IsStatusConditionTrue(c.Status.Conditions, ConditionDegraded) && ready.Status == metav1.ConditionTrue {
				t.Fatal("Degraded and Ready at once")
			}
		})
	}
}

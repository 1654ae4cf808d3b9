package controller

import (
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

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

// kstatus's rollout rules for the workloads a Consumer scales.
func TestWorkloadRolloutFollowsKstatus(t *testing.T) {
	three := ptr.To(int32(3))
	sts := func(gen, observed int64, current, update string, updated int32) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "db", Generation: gen}, Spec: appsv1.StatefulSetSpec{Replicas: three},
			Status: appsv1.StatefulSetStatus{ObservedGeneration: observed, Replicas: 3, ReadyReplicas: 3, AvailableReplicas: 3,
				UpdatedReplicas: updated, CurrentRevision: current, UpdateRevision: update}}
	}
	for name, tc := range map[string]struct {
		s       *appsv1.StatefulSet
		rolling bool
	}{
		"rolled out":               {sts(2, 2, "db-1", "db-1", 3), false},
		"generation not observed":  {sts(3, 2, "db-1", "db-1", 3), true},
		"revisions differ":         {sts(2, 2, "db-1", "db-2", 1), true},
		"a scale is not a rollout": {func() *appsv1.StatefulSet { s := sts(2, 2, "db-1", "db-1", 3); s.Status.ReadyReplicas = 1; return s }(), false},
		"ondelete is rolled by a user": {func() *appsv1.StatefulSet {
			s := sts(2, 2, "db-1", "db-2", 1)
			s.Spec.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType
			return s
		}(), false},
	} {
		t.Run("StatefulSet "+name, func(t *testing.T) {
			w := statefulSetWorkload(tc.s)
			if (w.rolling != "") != tc.rolling {
				t.Fatalf("rolling %q, want %v", w.rolling, tc.rolling)
			}
		})
	}
	dep := func(gen, observed int64, replicas, updated int32, progressing appsv1.DeploymentCondition) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "worker", Generation: gen}, Spec: appsv1.DeploymentSpec{Replicas: three},
			Status: appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: replicas, UpdatedReplicas: updated, ReadyReplicas: replicas, AvailableReplicas: replicas,
				Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue}, progressing}}}
	}
	ok := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"}
	exceeded := appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse, Reason: "ProgressDeadlineExceeded", Message: "timed out"}
	for name, tc := range map[string]struct {
		d              *appsv1.Deployment
		rolling, stuck bool
	}{
		"rolled out":                  {dep(2, 2, 3, 3, ok), false, false},
		"a scale up is not a rollout": {dep(2, 2, 1, 1, ok), false, false},
		"generation not observed":     {dep(3, 2, 3, 3, ok), true, false},
		"old replicas remain":         {dep(2, 2, 4, 1, ok), true, false},
		"progress deadline exceeded":  {dep(2, 2, 4, 1, exceeded), false, true},
	} {
		t.Run("Deployment "+name, func(t *testing.T) {
			w := deploymentWorkload(tc.d)
			if (w.rolling != "") != tc.rolling || (w.stuck != "") != tc.stuck {
				t.Fatalf("rolling %q stuck %q, want %v %v", w.rolling, w.stuck, tc.rolling, tc.stuck)
			}
		})
	}
}

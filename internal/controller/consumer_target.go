package controller

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// Index fields of Consumers by the workload their scaleTargetRef names, one per kind.
const (
	consumerTargetDeploymentKey  = "spec.scaleTargetRef.deployment"
	consumerTargetStatefulSetKey = "spec.scaleTargetRef.statefulset"
)

// Reasons of a scaleTargetRef that cannot be scaled.
const (
	ReasonWaitingForTarget = "WaitingForTarget"
	ReasonTargetConflict   = "TargetConflict"
	ReasonTargetScaledByHP = "TargetScaledByHPA"
)

// Reasons of a workload whose rollout is not done.
const (
	ReasonRollingOut   = "RollingOut"
	ReasonRolloutStuck = "RolloutStuck"
)

// workload is what a Consumer scales: the Deployment it renders, or the Deployment or StatefulSet
// its scaleTargetRef names. It carries what status reports.
type workload struct {
	obj       client.Object
	kind      string
	replicas  *int32 // spec.replicas
	current   int32  // status.replicas
	ready     int32
	available bool
	// rolling says how far the workload's rollout of its newest spec is, when it is not done
	// (kstatus's rules: its controller has not observed its generation, or not every replica runs
	// the newest template); empty when it is. Old replicas' availability is not the new spec's.
	rolling string
	// stuck is the workload controller's message when the rollout stopped making progress
	// (a Deployment's Progressing=False, ProgressDeadlineExceeded); empty otherwise.
	stuck string
}

func (w *workload) name() string { return w.kind + "/" + w.obj.GetName() }

func deploymentWorkload(d *appsv1.Deployment) *workload {
	w := &workload{obj: d, kind: "Deployment", replicas: d.Spec.Replicas, current: d.Status.Replicas, ready: d.Status.ReadyReplicas,
		available: meta.IsStatusConditionTrue(deploymentConditions(d), string(appsv1.DeploymentAvailable)) && d.Status.ReadyReplicas > 0}
	w.rolling, w.stuck = deploymentRollout(d)
	return w
}

// deploymentRollout applies kstatus's rules for a Deployment: the rollout is under way while the
// deployment controller has not observed the newest generation, or while some replicas do not run
// the newest template; it is stuck when the Progressing condition says ProgressDeadlineExceeded.
// A scale (more or fewer replicas of one template) is not a rollout.
func deploymentRollout(d *appsv1.Deployment) (rolling, stuck string) {
	name := "Deployment " + d.Name
	if d.Status.ObservedGeneration < d.Generation {
		return fmt.Sprintf("%s: generation %d not yet observed by its controller (observed %d); %d of %d replicas updated, %d ready",
			name, d.Generation, d.Status.ObservedGeneration, d.Status.UpdatedReplicas, ptr.Deref(d.Spec.Replicas, 1), d.Status.ReadyReplicas), ""
	}
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded" {
			return "", fmt.Sprintf("%s: rollout stuck, %d of %d replicas updated, %d ready: %s (%s)",
				name, d.Status.UpdatedReplicas, ptr.Deref(d.Spec.Replicas, 1), d.Status.ReadyReplicas, c.Message, c.Reason)
		}
	}
	if d.Status.UpdatedReplicas < d.Status.Replicas {
		return fmt.Sprintf("%s rolling out: %d of %d replicas updated, %d ready, %d desired",
			name, d.Status.UpdatedReplicas, d.Status.Replicas, d.Status.ReadyReplicas, ptr.Deref(d.Spec.Replicas, 1)), ""
	}
	return "", ""
}

func statefulSetWorkload(s *appsv1.StatefulSet) *workload {
	return &workload{obj: s, kind: "StatefulSet", replicas: s.Spec.Replicas, current: s.Status.Replicas, ready: s.Status.ReadyReplicas,
		available: s.Status.AvailableReplicas > 0 && s.Status.AvailableReplicas >= ptr.Deref(s.Spec.Replicas, 1),
		rolling:   statefulSetRollout(s)}
}

// statefulSetRollout applies kstatus's rules for a StatefulSet: the rollout is under way while its
// controller has not observed the newest generation, or while not every replica runs the update
// revision (with a partition: the replicas at and above it). An OnDelete StatefulSet is rolled out
// by its user, as kstatus has it.
func statefulSetRollout(s *appsv1.StatefulSet) string {
	name := "StatefulSet " + s.Name
	if s.Status.ObservedGeneration < s.Generation {
		return fmt.Sprintf("%s: generation %d not yet observed by its controller (observed %d); %d of %d replicas updated, %d ready",
			name, s.Generation, s.Status.ObservedGeneration, s.Status.UpdatedReplicas, ptr.Deref(s.Spec.Replicas, 1), s.Status.ReadyReplicas)
	}
	if s.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return ""
	}
	if ru := s.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil && *ru.Partition > 0 {
		if want := ptr.Deref(s.Spec.Replicas, 1) - *ru.Partition; s.Status.UpdatedReplicas < want {
			return fmt.Sprintf("%s rolling out (partition %d): %d of %d replicas updated, %d ready", name, *ru.Partition, s.Status.UpdatedReplicas, want, s.Status.ReadyReplicas)
		}
		return ""
	}
	if s.Status.UpdateRevision != "" && s.Status.CurrentRevision != s.Status.UpdateRevision {
		return fmt.Sprintf("%s rolling out to revision %s: %d of %d replicas updated, %d ready",
			name, s.Status.UpdateRevision, s.Status.UpdatedReplicas, s.Status.Replicas, s.Status.ReadyReplicas)
	}
	return ""
}

// scaleTarget reads the workload a scaleTargetRef names from the cache; nil when it does not exist.
func (r *ConsumerReconciler) scaleTarget(ctx context.Context, c *millracev1.Consumer) (*workload, error) {
	ref := c.Spec.ScaleTargetRef
	key := k8stypes.NamespacedName{Namespace: c.Namespace, Name: ref.Name}
	var w *workload
	var err error
	switch ref.Kind {
	case millracev1.ScaleTargetStatefulSet:
		s := &appsv1.StatefulSet{}
		if err = r.Get(ctx, key, s); err == nil {
			w = statefulSetWorkload(s)
		}
	default:
		d := &appsv1.Deployment{}
		if err = r.Get(ctx, key, d); err == nil {
			w = deploymentWorkload(d)
		}
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return w, err
}

// targetConflict says why a Consumer must not scale the workload its scaleTargetRef names: it is
// rendered by a Consumer, an older Consumer already scales it, or a HorizontalPodAutoscaler (KEDA
// makes one per ScaledObject) does. Empty when the Consumer may scale it.
func (r *ConsumerReconciler) targetConflict(ctx context.Context, c *millracev1.Consumer, w *workload) (reason, msg string, err error) {
	if owner := metav1.GetControllerOf(w.obj); owner != nil && owner.Kind == "Consumer" && strings.HasPrefix(owner.APIVersion, millracev1.GroupVersion.Group+"/") {
		return ReasonTargetConflict, fmt.Sprintf("spec.scaleTargetRef: %s is rendered and scaled by Consumer %q", w.name(), owner.Name), nil
	}
	consumers := &millracev1.ConsumerList{}
	if err := r.List(ctx, consumers, client.InNamespace(c.Namespace), client.MatchingFields{targetIndex(c.Spec.ScaleTargetRef.Kind): w.obj.GetName()}); err != nil {
		return "", "", err
	}
	for _, other := range consumers.Items {
		if other.UID != c.UID && claimsFirst(&other, c) {
			return ReasonTargetConflict, fmt.Sprintf("spec.scaleTargetRef: %s is already scaled by Consumer %q", w.name(), other.Name), nil
		}
	}
	hpas := &autoscalingv2.HorizontalPodAutoscalerList{}
	if err := r.List(ctx, hpas, client.InNamespace(c.Namespace)); err != nil {
		return "", "", err
	}
	for _, h := range hpas.Items {
		if ref := h.Spec.ScaleTargetRef; ref.Kind == w.kind && ref.Name == w.obj.GetName() {
			return ReasonTargetScaledByHP, fmt.Sprintf("spec.scaleTargetRef: HorizontalPodAutoscaler %q already scales %s (a KEDA ScaledObject makes one named keda-hpa-<name>); delete it, or the ScaledObject, first", h.Name, w.name()), nil
		}
	}
	return "", "", nil
}

// claimsFirst orders Consumers naming one workload: the oldest scales it, then the first by name.
func claimsFirst(a, b *millracev1.Consumer) bool {
	if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.CreationTimestamp.Before(&b.CreationTimestamp)
	}
	return a.Name < b.Name
}

func targetIndex(kind millracev1.ScaleTargetKind) string {
	if kind == millracev1.ScaleTargetStatefulSet {
		return consumerTargetStatefulSetKey
	}
	return consumerTargetDeploymentKey
}

// indexTarget returns the index function of one kind's scaleTargetRef.
func indexTarget(kind millracev1.ScaleTargetKind) client.IndexerFunc {
	return func(o client.Object) []string {
		ref := o.(*millracev1.Consumer).Spec.ScaleTargetRef
		if ref == nil || (ref.Kind != kind && !(ref.Kind == "" && kind == millracev1.ScaleTargetDeployment)) {
			return nil
		}
		return []string{ref.Name}
	}
}

// scale writes the replica count of a workload Millrace does not render through its scale
// subresource: nothing else of it is ever written.
func (r *ConsumerReconciler) scale(ctx context.Context, w *workload, replicas int32) error {
	patch := client.RawPatch(k8stypes.MergePatchType, fmt.Appendf(nil, `{"spec":{"replicas":%d}}`, replicas))
	return r.SubResource("scale").Patch(ctx, w.obj, patch, client.WithSubResourceBody(&autoscalingv1.Scale{}), client.FieldOwner(consumerFieldOwner))
}

// knownTargetKinds are the kinds a scaleTargetRef may name.
var knownTargetKinds = []millracev1.ScaleTargetKind{millracev1.ScaleTargetDeployment, millracev1.ScaleTargetStatefulSet}

package controller

import (
	"context"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
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

// workload is what a Consumer scales: the Deployment it renders, or the Deployment or StatefulSet
// its scaleTargetRef names. It carries what status reports.
type workload struct {
	obj       client.Object
	kind      string
	replicas  *int32 // spec.replicas
	current   int32  // status.replicas
	ready     int32
	available bool
}

func (w *workload) name() string { return w.kind + "/" + w.obj.GetName() }

func deploymentWorkload(d *appsv1.Deployment) *workload {
	return &workload{obj: d, kind: "Deployment", replicas: d.Spec.Replicas, current: d.Status.Replicas, ready: d.Status.ReadyReplicas,
		available: meta.IsStatusConditionTrue(deploymentConditions(d), string(appsv1.DeploymentAvailable)) && d.Status.ReadyReplicas > 0}
}

func statefulSetWorkload(s *appsv1.StatefulSet) *workload {
	return &workload{obj: s, kind: "StatefulSet", replicas: s.Spec.Replicas, current: s.Status.Replicas, ready: s.Status.ReadyReplicas,
		available: s.Status.AvailableReplicas > 0 && s.Status.AvailableReplicas >= ptr.Deref(s.Spec.Replicas, 1)}
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

package controller_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/controller"
)

// targeting is a Consumer that scales the user's own workload instead of rendering one.
func targeting(ns, name, queue string, kind millracev1.ScaleTargetKind, target string, s millracev1.ScalingSpec) *millracev1.Consumer {
	c := newConsumer(ns, name, queue, s)
	c.Spec.Template = corev1.PodTemplateSpec{}
	c.Spec.ScaleTargetRef = &millracev1.ScaleTargetReference{Kind: kind, Name: target}
	c.Spec.Delivery.Mode = millracev1.DeliveryNone
	return c
}

func usersDeployment(ns, name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{"team": "payments"}},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "worker", Image: "worker:1"}}}}},
	}
}

func stalledWith(t testing.TB, ns, name, reason, msg string) {
	t.Helper()
	eventually(t, waitReady, func() error {
		c := &millracev1.Consumer{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, c); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(c.Status.Conditions, millracev1.ConditionStalled)
		if cond == nil || cond.Status != metav1.ConditionTrue || cond.Reason != reason || !strings.Contains(cond.Message, msg) {
			return fmt.Errorf("conditions %+v", c.Status.Conditions)
		}
		return nil
	})
}

func TestConsumerScalesTheUsersDeploymentThroughItsScaleSubresource(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	create(t, newQueue(ns, "work", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "work")
	create(t, usersDeployment(ns, "worker", 2))
	create(t, targeting(ns, "scaler", "work", "", "worker", fastScaling(0)))
	waitReplicas(t, ns, "worker", 0, waitReady) // an empty queue: 2 → 0 after the 2s delay

	send(t, q.Status.QueueURL, 25)
	waitReplicas(t, ns, "worker", 3, 10*time.Second)
	eventually(t, 5*time.Second, func() error {
		c := &millracev1.Consumer{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "scaler"}, c); err != nil {
			return err
		}
		if c.Status.Target != "Deployment/worker" || c.Status.Deployment != "" || c.Status.DesiredReplicas != 3 || !strings.Contains(c.Status.LastScaleReason, "backlog 25") {
			return fmt.Errorf("status %+v", c.Status)
		}
		return nil
	})
	d := &appsv1.Deployment{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "worker"}, d); err != nil {
		t.Fatal(err)
	}
	// Only the replica count was written: no owner, no dispatcher, no labels or environment.
	if len(d.OwnerReferences) != 0 || len(d.Spec.Template.Spec.InitContainers) != 0 || len(d.Spec.Template.Spec.Containers[0].Env) != 0 ||
		len(d.Labels) != 0 || d.Annotations["team"] != "payments" || len(d.Annotations) != 1 {
		t.Fatalf("the user's Deployment was changed beyond its replicas: %+v", d.ObjectMeta)
	}
	// An edit of the replicas outside Millrace is reverted, as for a rendered Deployment.
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Replicas = ptr.To[int32](7)
	if err := k8s.Patch(ctx, d, patch); err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, ns, "worker", 3, 10*time.Second)
	eventually(t, 5*time.Second, func() error { return hasEvent(t, ns, "scaler", "ReplicasReverted") })

	drain(t, q.Status.QueueURL)
	waitReplicas(t, ns, "worker", 0, 15*time.Second)
}

func TestConsumerScalesAStatefulSet(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "work", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "work")
	labels := map[string]string{"app": "db-writer"}
	create(t, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-writer"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr.To[int32](1), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "w", Image: "w:1"}}}}}})
	create(t, targeting(ns, "scaler", "work", millracev1.ScaleTargetStatefulSet, "db-writer", fastScaling(1)))
	send(t, q.Status.QueueURL, 15)
	eventually(t, 10*time.Second, func() error {
		s := &appsv1.StatefulSet{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "db-writer"}, s); err != nil {
			return err
		}
		if r := ptr.Deref(s.Spec.Replicas, -1); r != 2 {
			return fmt.Errorf("StatefulSet replicas %d, want 2", r)
		}
		return nil
	})
}

// A Consumer never scales a workload something else already scales: a Consumer that renders it,
// an older Consumer naming it, or a HorizontalPodAutoscaler (what KEDA makes). It stalls, says
// which, and leaves the replicas alone.
func TestConsumerDoesNotTakeOverAWorkloadSomethingElseScales(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	create(t, newQueue(ns, "work", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "work")
	send(t, q.Status.QueueURL, 40) // a backlog that would scale each target to 4

	create(t, newConsumer(ns, "rendered", "work", fastScaling(1)))
	waitReplicas(t, ns, "rendered", 4, waitReady)
	create(t, targeting(ns, "thief", "work", "", "rendered", fastScaling(0)))
	stalledWith(t, ns, "thief", controller.ReasonTargetConflict, `rendered and scaled by Consumer "rendered"`)

	create(t, usersDeployment(ns, "shared", 1))
	create(t, targeting(ns, "first", "work", "", "shared", fastScaling(0)))
	waitReplicas(t, ns, "shared", 4, waitReady)
	create(t, targeting(ns, "second", "work", "", "shared", fastScaling(0)))
	stalledWith(t, ns, "second", controller.ReasonTargetConflict, `already scaled by Consumer "first"`)

	create(t, usersDeployment(ns, "keda-managed", 2))
	create(t, &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "keda-hpa-orders"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{MaxReplicas: 5,
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "keda-managed"}}})
	create(t, targeting(ns, "migrating", "work", "", "keda-managed", fastScaling(0)))
	stalledWith(t, ns, "migrating", controller.ReasonTargetScaledByHP, `HorizontalPodAutoscaler "keda-hpa-orders" already scales Deployment/keda-managed`)
	eventually(t, 5*time.Second, func() error { return hasEvent(t, ns, "migrating", controller.ReasonTargetScaledByHP) })

	time.Sleep(2 * time.Second) // several depth readings later
	for name, want := range map[string]int32{"rendered": 4, "shared": 4, "keda-managed": 2} {
		if got, err := deploymentReplicas(t, ns, name); err != nil || got != want {
			t.Errorf("Deployment %s: replicas %d (%v), want %d", name, got, err, want)
		}
	}
	// A target that does not exist yet is waited for.
	create(t, targeting(ns, "early", "work", "", "later", fastScaling(0)))
	eventually(t, waitReady, func() error {
		c := &millracev1.Consumer{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "early"}, c); err != nil {
			return err
		}
		if cond := meta.FindStatusCondition(c.Status.Conditions, millracev1.ConditionReconciling); cond == nil || cond.Reason != controller.ReasonWaitingForTarget {
			return fmt.Errorf("conditions %+v", c.Status.Conditions)
		}
		return nil
	})
	create(t, usersDeployment(ns, "later", 0))
	waitReplicas(t, ns, "later", 4, waitReady)
}

func TestPausedReplicasSetTheCountAndHoldIt(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "work", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "work")
	s := fastScaling(1)
	s.Paused, s.PausedReplicas = true, ptr.To[int32](0) // maintenance: zero, below minReplicas
	create(t, newConsumer(ns, "worker", "work", s))
	waitReplicas(t, ns, "worker", 0, waitReady)
	send(t, q.Status.QueueURL, 30)
	time.Sleep(2 * time.Second)
	if got, _ := deploymentReplicas(t, ns, "worker"); got != 0 {
		t.Fatalf("a paused Consumer scaled to %d", got)
	}
	eventually(t, 5*time.Second, func() error { return hasEvent(t, ns, "worker", "Paused") })
}

// The SQS queue deleted out of band: readings fail, and after failureThreshold of them the
// fallback count runs, from zero; an Event and the Degraded condition say so.
func TestFallbackRunsAfterFailedReadings(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "work", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "work")
	s := fastScaling(0)
	s.Fallback = &millracev1.FallbackSpec{FailureThreshold: 1, Replicas: 3}
	create(t, newConsumer(ns, "worker", "work", s))
	waitReplicas(t, ns, "worker", 0, waitReady)
	// The Queue controller recreates a queue deleted out of band within one poll (the Consumer may
	// decide on the reading after that, which is no longer a failure): delete it again until a
	// failed reading reaches a decision. With failureThreshold 1 that one reading is enough.
	eventually(t, 20*time.Second, func() error {
		if err := hasEvent(t, ns, "worker", controller.ReasonFallback); err == nil {
			return nil
		}
		_, err := sqsClient.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(q.Status.QueueURL)})
		if err == nil {
			time.Sleep(300 * time.Millisecond)
		}
		return errors.New("no Fallback event yet")
	})
	eventually(t, 5*time.Second, func() error {
		return hasEventContaining(t, ns, "worker", controller.ReasonScaled, "from 0 to 3: queue depth unknown for 1 readings")
	})
}

func hasEventContaining(t testing.TB, ns, name, reason, text string) error {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return err
	}
	var seen []string
	for _, e := range list.Items {
		if e.Regarding.Name == name && e.Reason == reason {
			if strings.Contains(e.Note, text) {
				return nil
			}
			seen = append(seen, e.Note)
		}
	}
	return fmt.Errorf("no %s event for %s containing %q (saw %q)", reason, name, text, seen)
}

func TestAConsumerCannotSwitchBetweenTemplateAndScaleTargetRef(t *testing.T) {
	ns := newNamespace(t)
	// update changes a fresh copy (the controller writes status meanwhile) and returns the
	// API server's answer.
	update := func(name string, change func(*millracev1.Consumer)) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			c := &millracev1.Consumer{}
			if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, c); err != nil {
				return err
			}
			change(c)
			return k8s.Update(context.Background(), c)
		})
	}
	create(t, newConsumer(ns, "worker", "q", fastScaling(0)))
	err := update("worker", func(c *millracev1.Consumer) {
		c.Spec.Template = corev1.PodTemplateSpec{}
		c.Spec.ScaleTargetRef = &millracev1.ScaleTargetReference{Name: "web"}
		c.Spec.Delivery.Mode = millracev1.DeliveryNone
	})
	if err == nil || !strings.Contains(err.Error(), "cannot switch between template and scaleTargetRef") {
		t.Fatalf("error %v", err)
	}
	create(t, targeting(ns, "scaler", "q", "", "web", fastScaling(0)))
	err = update("scaler", func(c *millracev1.Consumer) { c.Spec.ScaleTargetRef.Name = "api" })
	if err == nil || !strings.Contains(err.Error(), "scaleTargetRef is immutable") {
		t.Fatalf("error %v", err)
	}
}

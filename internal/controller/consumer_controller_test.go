package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/consumer"
	"github.com/millrace-io/millrace/internal/controller"
)

func newConsumer(ns, name, queue string, scaling millracev1.ScalingSpec) *millracev1.Consumer {
	return &millracev1.Consumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: millracev1.ConsumerSpec{
			QueueRef: millracev1.ConsumerQueueReference{Name: queue},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "handler", Image: "handler:1"}}}},
			Scaling:  scaling,
		},
	}
}

func deploymentReplicas(t testing.TB, ns, name string) (int32, error) {
	t.Helper()
	d := &appsv1.Deployment{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
		return 0, err
	}
	return ptr.Deref(d.Spec.Replicas, -1), nil
}

func waitReplicas(t testing.TB, ns, name string, want int32, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, func() error {
		got, err := deploymentReplicas(t, ns, name)
		if err != nil {
			return err
		}
		if got != want {
			c := &millracev1.Consumer{}
			_ = k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, c)
			return fmt.Errorf("replicas %d, want %d (status: desired %d, reason %q)", got, want, c.Status.DesiredReplicas, c.Status.LastScaleReason)
		}
		return nil
	})
}

func send(t testing.TB, url string, n int) {
	t.Helper()
	for i := 0; i < n; i += 10 {
		var entries []types.SendMessageBatchRequestEntry
		for j := i; j < min(n, i+10); j++ {
			entries = append(entries, types.SendMessageBatchRequestEntry{Id: aws.String(fmt.Sprint(j)), MessageBody: aws.String("m")})
		}
		if _, err := sqsClient.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries}); err != nil {
			t.Fatal(err)
		}
	}
}

func drain(t testing.TB, url string) {
	t.Helper()
	if _, err := sqsClient.PurgeQueue(context.Background(), &sqs.PurgeQueueInput{QueueUrl: aws.String(url)}); err != nil {
		t.Fatal(err)
	}
}

// fastScaling has no stabilization, rate limits loose enough not to matter, a 1s poll and a 2s
// scale-to-zero delay.
func fastScaling(minReplicas int32) millracev1.ScalingSpec {
	none := millracev1.Duration("0s")
	loose := []millracev1.ScalingPolicy{{Type: "Percent", Value: 1000, Period: "1s"}, {Type: "Pods", Value: 100, Period: "1s"}}
	return millracev1.ScalingSpec{
		MinReplicas: ptr.To(minReplicas), MaxReplicas: 5, BacklogPerReplica: 10,
		PollInterval: "1s", ScaleToZeroDelay: "2s",
		Behavior: &millracev1.ScalingBehavior{
			ScaleUp:   &millracev1.ScalingRules{StabilizationWindow: &none, Policies: loose},
			ScaleDown: &millracev1.ScalingRules{StabilizationWindow: &none, Policies: loose},
		},
	}
}

func TestConsumerScalesWithTheBacklogAndToZero(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "work", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "work")
	create(t, newConsumer(ns, "worker", "work", fastScaling(0)))
	waitReplicas(t, ns, "worker", 0, waitReady)

	send(t, q.Status.QueueURL, 25)
	waitReplicas(t, ns, "worker", 3, 10*time.Second)
	eventually(t, 5*time.Second, func() error {
		c := &millracev1.Consumer{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "worker"}, c); err != nil {
			return err
		}
		if !meta.IsStatusConditionTrue(c.Status.Conditions, controller.ConditionActive) || c.Status.LastScaleTime == nil ||
			!strings.Contains(c.Status.LastScaleReason, "backlog 25") || c.Status.DesiredReplicas != 3 || c.Status.Backlog == nil || c.Status.Backlog.Total != 25 {
			return fmt.Errorf("status after scaling up: %+v", c.Status)
		}
		return nil
	})
	eventually(t, 5*time.Second, func() error { return hasEvent(t, ns, "worker", controller.ReasonScaled) })

	send(t, q.Status.QueueURL, 25)
	waitReplicas(t, ns, "worker", 5, 10*time.Second) // 50 at 10 per replica, capped at max 5

	drain(t, q.Status.QueueURL)
	waitReplicas(t, ns, "worker", 0, 15*time.Second)
	eventually(t, 5*time.Second, func() error { return hasEvent(t, ns, "worker", controller.ReasonScaledToZero) })
}

func TestConsumerReturnsToMinReplicas(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "work", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "work")
	create(t, newConsumer(ns, "worker", "work", fastScaling(2)))
	waitReplicas(t, ns, "worker", 2, waitReady)
	send(t, q.Status.QueueURL, 40)
	waitReplicas(t, ns, "worker", 4, 10*time.Second)
	drain(t, q.Status.QueueURL)
	waitReplicas(t, ns, "worker", 2, 15*time.Second)
	// Held at min: never below it, even after the scale-to-zero delay.
	time.Sleep(3 * time.Second)
	if got, _ := deploymentReplicas(t, ns, "worker"); got != 2 {
		t.Fatalf("replicas %d below minReplicas 2", got)
	}
}

func TestTwoConsumersOfOneQueueShareOneDepthReading(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "shared", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "shared")
	create(t, newConsumer(ns, "a", "shared", fastScaling(0)))
	create(t, newConsumer(ns, "b", "shared", fastScaling(0)))
	waitReplicas(t, ns, "a", 0, waitReady)
	waitReplicas(t, ns, "b", 0, waitReady)
	send(t, q.Status.QueueURL, 15)
	waitReplicas(t, ns, "a", 2, 10*time.Second)
	waitReplicas(t, ns, "b", 2, 10*time.Second)

	polls := monitor.Polls().WithLabelValues(q.Status.QueueName, "ok")
	before := testutil.ToFloat64(polls)
	const window = 3 * time.Second
	time.Sleep(window)
	calls := testutil.ToFloat64(polls) - before
	// One poller for the queue at the fastest subscriber's interval (1s for the Queue's status and
	// both Consumers): about 3 readings in 3 s, where three independent pollers would make about 9.
	if calls > 5 {
		t.Fatalf("%v depth readings in %v for one queue with a Queue and two Consumers subscribed", calls, window)
	}
	if monitor.Watched() == 0 {
		t.Fatal("no poller")
	}
}

func TestConsumerDeploymentCarriesTheDispatcherAndReverts(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "work", millracev1.QueueSpec{VisibilityTimeout: dur("2m")}))
	q := waitReadyQueue(t, ns, "work")
	c := newConsumer(ns, "worker", "work", fastScaling(1))
	c.Spec.Delivery = millracev1.DeliverySpec{Timeout: "90s", BatchSize: 25, Port: 9000, Path: "/sqs", Concurrency: 3}
	create(t, c)
	waitReplicas(t, ns, "worker", 1, waitReady)
	d := &appsv1.Deployment{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "worker"}, d); err != nil {
		t.Fatal(err)
	}
	inits := d.Spec.Template.Spec.InitContainers
	if len(inits) != 1 || inits[0].Name != consumer.DispatcherName || ptr.Deref(inits[0].RestartPolicy, "") != corev1.ContainerRestartPolicyAlways || inits[0].Image != "dispatcher:test" {
		t.Fatalf("init containers %+v", inits)
	}
	env := map[string]string{}
	for _, e := range inits[0].Env {
		env[e.Name] = e.Value
	}
	for k, v := range map[string]string{
		consumer.EnvQueueURL: q.Status.QueueURL, consumer.EnvHandlerURL: "http://127.0.0.1:9000/sqs",
		consumer.EnvBatchSize: "25", consumer.EnvConcurrency: "3", consumer.EnvHandlerTimeout: "1m30s",
		consumer.EnvSQSEndpoint: sqsEndpoint, consumer.EnvRegion: "us-east-1", consumer.EnvDeliveryMode: "HTTP",
	} {
		if env[k] != v {
			t.Errorf("dispatcher env %s = %q, want %q", k, env[k], v)
		}
	}
	if g := ptr.Deref(d.Spec.Template.Spec.TerminationGracePeriodSeconds, 0); g != 105 {
		t.Errorf("termination grace period %d, want 105", g)
	}
	if o := metav1.GetControllerOf(d); o == nil || o.Kind != "Consumer" || o.Name != "worker" {
		t.Errorf("controller reference %+v", o)
	}
	// A user's edit of the replicas is reverted.
	patch := client.MergeFrom(d.DeepCopy())
	d.Spec.Replicas = ptr.To[int32](4)
	if err := k8s.Patch(context.Background(), d, patch); err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, ns, "worker", 1, 10*time.Second)
	// A template change rolls the Deployment (new hash); a scaling change alone does not.
	hash := d.Annotations[consumer.AnnotationHash]
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh := &millracev1.Consumer{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(c), fresh); err != nil {
			return err
		}
		fresh.Spec.Scaling.MinReplicas = ptr.To[int32](2)
		return k8s.Update(context.Background(), fresh)
	}); err != nil {
		t.Fatal(err)
	}
	waitReplicas(t, ns, "worker", 2, 10*time.Second)
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "worker"}, d); err != nil {
		t.Fatal(err)
	}
	if d.Annotations[consumer.AnnotationHash] != hash {
		t.Fatal("a scaling change changed the pod template")
	}
}

func TestConsumerSettingsTheQueueCannotHonourStall(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "short", millracev1.QueueSpec{VisibilityTimeout: dur("20s")}))
	waitReadyQueue(t, ns, "short")
	c := newConsumer(ns, "slow", "short", fastScaling(0))
	c.Spec.Delivery.Timeout = "45s"
	create(t, c)
	eventually(t, waitReady, func() error {
		got := &millracev1.Consumer{}
		if err := k8s.Get(context.Background(), client.ObjectKeyFromObject(c), got); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(got.Status.Conditions, millracev1.ConditionStalled)
		if cond == nil || cond.Status != metav1.ConditionTrue || !strings.Contains(cond.Message, "spec.delivery.timeout: 45s exceeds the visibility timeout") {
			return fmt.Errorf("conditions %+v", got.Status.Conditions)
		}
		return nil
	})
	if _, err := deploymentReplicas(t, ns, "slow"); err == nil {
		t.Fatal("a Stalled Consumer got a Deployment")
	}
}

func TestACrossNamespaceQueueRefIsRejected(t *testing.T) {
	ns := newNamespace(t)
	c := newConsumer(ns, "thief", "orders", fastScaling(0))
	c.Spec.QueueRef.Namespace = "someone-else"
	// The admission policy takes a moment to be loaded after the suite installs it.
	eventually(t, 10*time.Second, func() error {
		err := k8s.Create(context.Background(), c.DeepCopy())
		if err == nil {
			_ = k8s.Delete(context.Background(), c.DeepCopy())
			return fmt.Errorf("accepted")
		}
		if !strings.Contains(err.Error(), "spec.queueRef.namespace: a Consumer may only use Queues of its own namespace") {
			return fmt.Errorf("unexpected error: %v", err)
		}
		return nil
	})
}

func TestTheAPIServerRejectsInvalidConsumers(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name   string
		change func(*millracev1.Consumer)
		want   string
	}{
		{"minReplicas above maxReplicas is rejected", func(c *millracev1.Consumer) { c.Spec.Scaling.MinReplicas = ptr.To[int32](6) }, "minReplicas must not exceed maxReplicas"},
		{"a batch window above 300s is rejected", func(c *millracev1.Consumer) { c.Spec.Delivery.BatchWindow = dur("301s") }, "spec.delivery.batchWindow"},
		{"a failure backoff above 12h is rejected", func(c *millracev1.Consumer) { c.Spec.Delivery.FailureBackoff = dur("13h") }, "spec.delivery.failureBackoff"},
		{"a batch size above 10000 is rejected", func(c *millracev1.Consumer) { c.Spec.Delivery.BatchSize = 10001 }, "spec.delivery.batchSize"},
		{"an unknown delivery mode is rejected", func(c *millracev1.Consumer) { c.Spec.Delivery.Mode = "Carrier" }, "spec.delivery.mode"},
		{"a poll interval below 1s is rejected", func(c *millracev1.Consumer) { c.Spec.Scaling.PollInterval = "0s" }, "spec.scaling.pollInterval"},
		{"a batch window with mode None is rejected", func(c *millracev1.Consumer) {
			c.Spec.Delivery.Mode = millracev1.DeliveryNone
			c.Spec.Delivery.BatchWindow = dur("1s")
		}, "not valid with mode None"},
		{"lambda settings with mode HTTP are rejected", func(c *millracev1.Consumer) {
			c.Spec.Delivery.Mode = millracev1.DeliveryHTTP
			c.Spec.Delivery.Lambda = &millracev1.LambdaSpec{Handler: "index.handler"}
		}, "lambda is only valid with mode LambdaRuntime"},
		{"a relative lambda task root is rejected", func(c *millracev1.Consumer) {
			c.Spec.Delivery.Mode = millracev1.DeliveryLambdaRuntime
			c.Spec.Delivery.Lambda = &millracev1.LambdaSpec{TaskRoot: "var/task"}
		}, "spec.delivery.lambda.taskRoot"},
		{"a lambda handler with spaces is rejected", func(c *millracev1.Consumer) {
			c.Spec.Delivery.Mode = millracev1.DeliveryLambdaRuntime
			c.Spec.Delivery.Lambda = &millracev1.LambdaSpec{Handler: "index handler"}
		}, "spec.delivery.lambda.handler"},
		{"both a template and a scaleTargetRef are rejected", func(c *millracev1.Consumer) {
			c.Spec.ScaleTargetRef = &millracev1.ScaleTargetReference{Name: "web"}
			c.Spec.Delivery.Mode = millracev1.DeliveryNone
		}, "set exactly one of template"},
		{"neither a template nor a scaleTargetRef is rejected", func(c *millracev1.Consumer) { c.Spec.Template = corev1.PodTemplateSpec{} }, "set exactly one of template"},
		{"a scaleTargetRef with a dispatcher mode is rejected", func(c *millracev1.Consumer) {
			c.Spec.Template = corev1.PodTemplateSpec{}
			c.Spec.ScaleTargetRef = &millracev1.ScaleTargetReference{Name: "web"}
		}, "set delivery.mode to None"},
		{"a scaleTargetRef of another kind is rejected", func(c *millracev1.Consumer) {
			c.Spec.Template = corev1.PodTemplateSpec{}
			c.Spec.Delivery.Mode = millracev1.DeliveryNone
			c.Spec.ScaleTargetRef = &millracev1.ScaleTargetReference{Kind: "ReplicaSet", Name: "web"}
		}, "spec.scaleTargetRef.kind"},
		{"idleReplicas at minReplicas is rejected", func(c *millracev1.Consumer) {
			c.Spec.Scaling.MinReplicas, c.Spec.Scaling.IdleReplicas = ptr.To[int32](2), ptr.To[int32](2)
		}, "idleReplicas must be below minReplicas"},
		{"a fallback above maxReplicas is rejected", func(c *millracev1.Consumer) {
			c.Spec.Scaling.Fallback = &millracev1.FallbackSpec{FailureThreshold: 3, Replicas: 6}
		}, "fallback.replicas must not exceed maxReplicas"},
		{"a fallback of zero replicas is rejected", func(c *millracev1.Consumer) {
			c.Spec.Scaling.Fallback = &millracev1.FallbackSpec{FailureThreshold: 3, Replicas: 0}
		}, "spec.scaling.fallback.replicas"},
		{"an unknown fallback behavior is rejected", func(c *millracev1.Consumer) {
			c.Spec.Scaling.Fallback = &millracev1.FallbackSpec{FailureThreshold: 3, Replicas: 2, Behavior: "Sometimes"}
		}, "spec.scaling.fallback.behavior"},
		{"a tolerance of 100% is rejected", func(c *millracev1.Consumer) { c.Spec.Scaling.Behavior.ScaleDown.TolerancePercent = ptr.To[int32](100) }, "tolerancePercent"},
		{"an idle poll interval above 5m is rejected", func(c *millracev1.Consumer) { c.Spec.Scaling.IdlePollInterval = dur("6m") }, "spec.scaling.idlePollInterval"},
		{"negative pausedReplicas are rejected", func(c *millracev1.Consumer) { c.Spec.Scaling.PausedReplicas = ptr.To[int32](-1) }, "spec.scaling.pausedReplicas"},
		{"a rate policy without a period is rejected", func(c *millracev1.Consumer) {
			c.Spec.Scaling.Behavior.ScaleUp.Policies = []millracev1.ScalingPolicy{{Type: "Pods", Value: 1}}
		}, "period"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newConsumer(ns, fmt.Sprintf("invalid-%d", i), "q", fastScaling(0))
			tc.change(c)
			err := k8s.Create(context.Background(), c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// setDeploymentStatus writes a Deployment's status as the deployment controller would (the
// envtest runs none): f edits the status of the Deployment as stored.
func setDeploymentStatus(t testing.TB, ns, name string, f func(d *appsv1.Deployment)) {
	t.Helper()
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		d := &appsv1.Deployment{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
			return err
		}
		f(d)
		return k8s.Status().Update(context.Background(), d)
	}); err != nil {
		t.Fatal(err)
	}
}

func rolledOut(d *appsv1.Deployment) {
	n := ptr.Deref(d.Spec.Replicas, 1)
	now := metav1.Now()
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable", LastUpdateTime: now, LastTransitionTime: now},
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable", LastUpdateTime: now, LastTransitionTime: now},
		}}
}

func waitConsumerReady(t testing.TB, ns, name string, status metav1.ConditionStatus, reason string, check func(c *millracev1.Consumer) error) *millracev1.Consumer {
	t.Helper()
	c := &millracev1.Consumer{}
	eventually(t, 10*time.Second, func() error {
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, c); err != nil {
			return err
		}
		ready := meta.FindStatusCondition(c.Status.Conditions, millracev1.ConditionReady)
		if ready == nil || ready.Status != status || ready.Reason != reason {
			return fmt.Errorf("Ready %+v, want %s %s (conditions %+v)", ready, status, reason, c.Status.Conditions)
		}
		if check != nil {
			return check(c)
		}
		return nil
	})
	return c
}

// After a template change the Deployment's status is the old spec's until its controller observes
// the new generation: the Consumer is not Ready (Reconciling, RollingOut) while it rolls out, and
// Degraded (RolloutStuck) when the rollout exceeds its progress deadline — not Ready on the old
// replicas' availability.
func TestConsumerIsNotReadyWhileItsDeploymentRollsOutOrIsStuck(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "work", millracev1.QueueSpec{}))
	waitReadyQueue(t, ns, "work")
	create(t, newConsumer(ns, "worker", "work", fastScaling(1)))
	waitReplicas(t, ns, "worker", 1, waitReady)
	setDeploymentStatus(t, ns, "worker", rolledOut)
	waitConsumerReady(t, ns, "worker", metav1.ConditionTrue, controller.ReasonAvailable, nil)

	// A bad image: the spec changes, the deployment controller has not caught up.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		c := &millracev1.Consumer{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "worker"}, c); err != nil {
			return err
		}
		c.Spec.Template.Spec.Containers[0].Image = "handler:does-not-exist"
		return k8s.Update(context.Background(), c)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		d := &appsv1.Deployment{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "worker"}, d); err != nil {
			return err
		}
		if d.Spec.Template.Spec.Containers[0].Image != "handler:does-not-exist" {
			return fmt.Errorf("Deployment image %s", d.Spec.Template.Spec.Containers[0].Image)
		}
		return nil
	})
	waitConsumerReady(t, ns, "worker", metav1.ConditionFalse, controller.ReasonRollingOut, func(c *millracev1.Consumer) error {
		r := meta.FindStatusCondition(c.Status.Conditions, millracev1.ConditionReconciling)
		if r == nil || r.Status != metav1.ConditionTrue || r.Reason != controller.ReasonRollingOut || !strings.Contains(r.Message, "not yet observed") {
			return fmt.Errorf("Reconciling %+v", r)
		}
		return nil
	})

	// The deployment controller observes it: one new pod does not start, the old one serves.
	setDeploymentStatus(t, ns, "worker", func(d *appsv1.Deployment) {
		rolledOut(d)
		d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.ReadyReplicas, d.Status.AvailableReplicas, d.Status.UnavailableReplicas = 2, 1, 1, 1, 1
	})
	waitConsumerReady(t, ns, "worker", metav1.ConditionFalse, controller.ReasonRollingOut, func(c *millracev1.Consumer) error {
		if r := meta.FindStatusCondition(c.Status.Conditions, millracev1.ConditionReconciling); r == nil || !strings.Contains(r.Message, "1 of 2 replicas updated") {
			return fmt.Errorf("Reconciling %+v", r)
		}
		return nil
	})

	// The progress deadline passes.
	const stuck = `ReplicaSet "worker-7d9f" has timed out progressing.`
	setDeploymentStatus(t, ns, "worker", func(d *appsv1.Deployment) {
		for i := range d.Status.Conditions {
			if d.Status.Conditions[i].Type == appsv1.DeploymentProgressing {
				d.Status.Conditions[i].Status, d.Status.Conditions[i].Reason, d.Status.Conditions[i].Message = corev1.ConditionFalse, "ProgressDeadlineExceeded", stuck
			}
		}
	})
	waitConsumerReady(t, ns, "worker", metav1.ConditionFalse, controller.ReasonRolloutStuck, func(c *millracev1.Consumer) error {
		dg := meta.FindStatusCondition(c.Status.Conditions, controller.ConditionDegraded)
		if dg == nil || dg.Status != metav1.ConditionTrue || dg.Reason != controller.ReasonRolloutStuck || !strings.Contains(dg.Message, stuck) {
			return fmt.Errorf("Degraded %+v", dg)
		}
		return nil
	})

	// The image is fixed and rolled out: Ready again.
	setDeploymentStatus(t, ns, "worker", rolledOut)
	waitConsumerReady(t, ns, "worker", metav1.ConditionTrue, controller.ReasonAvailable, nil)
}

// A Consumer whose Queue was deleted kept its depth subscription: the poller of the deleted
// queue's URL lived on (no Queue had the URL any more, so it was read with the manager's own
// identity, also for a namespace mapped to an IAM role). The Consumer now stops reading it.
func TestAConsumerStopsReadingADeletedQueue(t *testing.T) {
	ns := newNamespace(t)
	q := newQueue(ns, "gone", millracev1.QueueSpec{})
	create(t, q)
	url := waitReadyQueue(t, ns, "gone").Status.QueueURL
	create(t, newConsumer(ns, "c", "gone", fastScaling(0)))
	waitReplicas(t, ns, "c", 0, waitReady)
	if n := monitor.Subscribers(url); n != 2 {
		t.Fatalf("%d subscribers, want 2 (the Queue and the Consumer)", n)
	}
	deleteAndWaitGone(t, q)
	eventually(t, 10*time.Second, func() error {
		if n := monitor.Subscribers(url); n != 0 {
			return fmt.Errorf("%s still has %d subscriber(s) after its Queue was deleted", url, n)
		}
		return nil
	})
}

package kstatus_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/controller"
	"github.com/millrace-io/millrace/internal/testenv"
)

const settle = 20 * time.Second

func queue(ns, name string, spec millracev1.QueueSpec) *millracev1.Queue {
	return &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

func consumerOf(ns, name, queue string, change func(*millracev1.ConsumerSpec)) *millracev1.Consumer {
	c := &millracev1.Consumer{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: millracev1.ConsumerSpec{
			QueueRef: millracev1.ConsumerQueueReference{Name: queue},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "handler", Image: "handler:1"}}}},
			Scaling:  millracev1.ScalingSpec{MinReplicas: ptr.To[int32](0), MaxReplicas: 2, PollInterval: "1s", ScaleToZeroDelay: "1s"},
		},
	}
	if change != nil {
		change(&c.Spec)
	}
	return c
}

func workflow(ns, name, definition string) *millracev1.Workflow {
	return &millracev1.Workflow{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: millracev1.WorkflowSpec{Definition: apiextensionsv1.JSON{Raw: []byte(definition)}}}
}

func run(ns, name, wf string) *millracev1.WorkflowRun {
	return &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: millracev1.WorkflowRunSpec{WorkflowRef: millracev1.WorkflowReference{Name: wf}}}
}

// compute reads an object as the real controllers left it, unstructured, and asks kstatus.
func compute(kind, ns, name string) (*status.Result, *unstructured.Unstructured, error) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(millracev1.GroupVersion.WithKind(kind))
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u); err != nil {
		return nil, nil, err
	}
	res, err := status.Compute(u)
	return res, u, err
}

// waitStatus waits until kstatus reads the object as want, and returns the object.
func waitStatus(t *testing.T, kind, ns, name string, want status.Status) *unstructured.Unstructured {
	t.Helper()
	var obj *unstructured.Unstructured
	testenv.Eventually(t, settle, func() error {
		res, u, err := compute(kind, ns, name)
		if err != nil {
			return err
		}
		obj = u
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		if res.Status != want {
			return fmt.Errorf("%s %s reads %s (%s), want %s; conditions %v", kind, name, res.Status, res.Message, want, conds)
		}
		if len(conds) == 0 {
			// kstatus reads an object no controller has looked at yet as Current.
			return fmt.Errorf("%s %s has no conditions yet", kind, name)
		}
		return nil
	})
	return obj
}

// TestEveryKindReadsAsKstatusExpects drives each kind into each state a user waits on and reads
// it back with kstatus, as `kubectl wait`, Flux and Argo CD do. For the Current ones it also bumps
// the generation of the object read (a spec change the controller has not seen): that must read
// InProgress, which holds only if the kind sets status.observedGeneration.
func TestEveryKindReadsAsKstatusExpects(t *testing.T) {
	ns := newNamespace(t)
	create(t, queue(ns, "fifo-dlq", millracev1.QueueSpec{Type: millracev1.QueueTypeFIFO}))
	create(t, workflow(ns, "pass", `{"StartAt":"A","States":{"A":{"Type":"Pass","End":true}}}`))
	create(t, workflow(ns, "fail", `{"StartAt":"A","States":{"A":{"Type":"Fail","Error":"Boom","Cause":"on purpose"}}}`))
	create(t, workflow(ns, "wait", `{"StartAt":"A","States":{"A":{"Type":"Wait","Seconds":3600,"End":true}}}`))
	cases := []struct {
		name string
		kind string
		obj  client.Object
		want status.Status
	}{
		{"a queue that matches its spec is Current", "Queue", queue(ns, "ready", millracev1.QueueSpec{}), status.CurrentStatus},
		{"a queue waiting for its dead-letter Queue is InProgress", "Queue", queue(ns, "waiting",
			millracev1.QueueSpec{DeadLetter: &millracev1.DeadLetterSpec{QueueRef: &millracev1.QueueReference{Name: "not-yet"}, MaxReceiveCount: 3}}), status.InProgressStatus},
		{"a queue whose dead-letter queue is of another type is Failed", "Queue", queue(ns, "mismatch",
			millracev1.QueueSpec{DeadLetter: &millracev1.DeadLetterSpec{QueueRef: &millracev1.QueueReference{Name: "fifo-dlq"}, MaxReceiveCount: 3}}), status.FailedStatus},
		{"a consumer scaled to zero on an empty queue is Current", "Consumer", consumerOf(ns, "idle", "ready", nil), status.CurrentStatus},
		{"a consumer whose pods are not available yet is InProgress", "Consumer", consumerOf(ns, "rolling", "ready",
			func(s *millracev1.ConsumerSpec) { s.Scaling.MinReplicas = ptr.To[int32](1) }), status.InProgressStatus},
		{"a consumer waiting for its Queue is InProgress", "Consumer", consumerOf(ns, "orphan", "not-yet", nil), status.InProgressStatus},
		{"a consumer whose handler timeout exceeds the queue's visibility timeout is Failed", "Consumer", consumerOf(ns, "too-slow", "ready",
			func(s *millracev1.ConsumerSpec) { s.Delivery.Timeout = "1h" }), status.FailedStatus},
		{"a valid workflow is Current", "Workflow", workflow(ns, "valid", `{"StartAt":"A","States":{"A":{"Type":"Succeed"}}}`), status.CurrentStatus},
		{"an invalid workflow is Failed", "Workflow", workflow(ns, "invalid", `{"StartAt":"Nowhere","States":{"A":{"Type":"Succeed"}}}`), status.FailedStatus},
		{"a run that succeeded is Current", "WorkflowRun", run(ns, "succeeded", "pass"), status.CurrentStatus},
		{"a running run is InProgress", "WorkflowRun", run(ns, "running", "wait"), status.InProgressStatus},
		{"a run of a Workflow that does not exist yet is InProgress", "WorkflowRun", run(ns, "pending", "missing"), status.InProgressStatus},
		{"a run that failed is Failed", "WorkflowRun", run(ns, "failed", "fail"), status.FailedStatus},
	}
	for _, tc := range cases {
		create(t, tc.obj)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := waitStatus(t, tc.kind, ns, tc.obj.GetName(), tc.want)
			if tc.want == status.InProgressStatus {
				// Still so a moment later: not a passing state on the way to another.
				time.Sleep(time.Second)
				if res, _, err := compute(tc.kind, ns, tc.obj.GetName()); err != nil || res.Status != tc.want {
					t.Fatalf("then reads %v (%v)", res, err)
				}
				return
			}
			if tc.want == status.CurrentStatus {
				og, found, _ := unstructured.NestedInt64(u.Object, "status", "observedGeneration")
				if !found || og != u.GetGeneration() {
					t.Fatalf("Current with status.observedGeneration %d (set: %v), generation %d", og, found, u.GetGeneration())
				}
				u.SetGeneration(u.GetGeneration() + 1)
				if res, err := status.Compute(u); err != nil || res.Status != status.InProgressStatus {
					t.Fatalf("a generation not observed yet reads %v (%v), want InProgress", res, err)
				}
			}
		})
	}
}

func readyOf(conds []metav1.Condition) string {
	c := meta.FindStatusCondition(conds, millracev1.ConditionReady)
	if c == nil {
		return "absent"
	}
	return fmt.Sprintf("%s %s: %s", c.Status, c.Reason, c.Message)
}

func getQueue(t testing.TB, ns, name string) *millracev1.Queue {
	t.Helper()
	q := &millracev1.Queue{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, q); err != nil {
		t.Fatal(err)
	}
	return q
}

func getConsumer(t testing.TB, ns, name string) *millracev1.Consumer {
	t.Helper()
	c := &millracev1.Consumer{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, c); err != nil {
		t.Fatal(err)
	}
	return c
}

// A Consumer must never say Degraded=True and Ready=True at once.
func checkConsumerConsistent(t *testing.T, c *millracev1.Consumer) {
	t.Helper()
	if meta.IsStatusConditionTrue(c.Status.Conditions, controller.ConditionDegraded) && meta.IsStatusConditionTrue(c.Status.Conditions, millracev1.ConditionReady) {
		t.Fatalf("Consumer %s is Degraded and Ready at once: %+v", c.Name, c.Status.Conditions)
	}
}

// The SQS queue behind a Ready Queue is deleted out of band. The manager here resyncs once an
// hour: the depth monitor's failed reading must bring the Queue's reconcile, which creates the
// queue again (Millrace created it), within a few polls.
func TestAQueueDeletedOutOfBandIsRecreatedWithinAPoll(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	create(t, queue(ns, "orders", millracev1.QueueSpec{}))
	create(t, consumerOf(ns, "worker", "orders", nil))
	waitStatus(t, "Queue", ns, "orders", status.CurrentStatus)
	waitStatus(t, "Consumer", ns, "worker", status.CurrentStatus)
	q := getQueue(t, ns, "orders")
	if _, err := sqsClient.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(q.Status.QueueURL)}); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	testenv.Eventually(t, 10*depthInterval, func() error {
		checkConsumerConsistent(t, getConsumer(t, ns, "worker"))
		if _, err := sqsClient.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(q.Status.QueueName)}); err != nil {
			return fmt.Errorf("queue %s not recreated: %v; Queue Ready: %s", q.Status.QueueName, err, readyOf(getQueue(t, ns, "orders").Status.Conditions))
		}
		return nil
	})
	t.Logf("recreated %v after the deletion", time.Since(deleted).Round(time.Millisecond))
	waitStatus(t, "Queue", ns, "orders", status.CurrentStatus)
	waitStatus(t, "Consumer", ns, "worker", status.CurrentStatus)
}

// An adopted queue (Millrace did not create it) deleted out of band is not created again: the
// Queue says Ready=False with the reason, and its Consumer, which cannot read the queue, is not
// Ready either — never Degraded and Ready at once.
func TestAnAdoptedQueueDeletedOutOfBandIsNotReadyNorItsConsumer(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	name := "adopted-" + ns
	policy := &millracev1.TenantPolicy{ObjectMeta: metav1.ObjectMeta{Name: "adopt-" + ns}, Spec: millracev1.TenantPolicySpec{
		Namespaces: []string{ns},
		Queues:     &millracev1.TenantQueuePolicy{QueueNamePrefixes: []string{"adopted-"}, AllowAdoption: true},
	}}
	create(t, policy)
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), policy) })
	out, err := sqsClient.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	create(t, queue(ns, "legacy", millracev1.QueueSpec{QueueName: name, AdoptionPolicy: millracev1.AdoptionPolicyAdopt}))
	create(t, consumerOf(ns, "worker", "legacy", nil))
	waitStatus(t, "Queue", ns, "legacy", status.CurrentStatus)
	waitStatus(t, "Consumer", ns, "worker", status.CurrentStatus)
	if _, err := sqsClient.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: out.QueueUrl}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*depthInterval, func() error {
		c := getConsumer(t, ns, "worker")
		checkConsumerConsistent(t, c)
		q := getQueue(t, ns, "legacy")
		if meta.IsStatusConditionTrue(q.Status.Conditions, millracev1.ConditionReady) {
			return fmt.Errorf("the Queue is still Ready: %s", readyOf(q.Status.Conditions))
		}
		if meta.IsStatusConditionTrue(c.Status.Conditions, millracev1.ConditionReady) {
			return fmt.Errorf("the Consumer is still Ready: %s", readyOf(c.Status.Conditions))
		}
		return nil
	})
	q := getQueue(t, ns, "legacy")
	ready := meta.FindStatusCondition(q.Status.Conditions, millracev1.ConditionReady)
	if ready.Reason != controller.ReasonQueueMissing || !strings.Contains(ready.Message, name) {
		t.Fatalf("Ready=False does not say why: %s", readyOf(q.Status.Conditions))
	}
	if _, err := sqsClient.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)}); err == nil {
		t.Fatal("Millrace created again a queue it had only adopted")
	}
	waitStatus(t, "Queue", ns, "legacy", status.FailedStatus)
	for range 4 {
		checkConsumerConsistent(t, getConsumer(t, ns, "worker"))
		time.Sleep(depthInterval)
	}
}

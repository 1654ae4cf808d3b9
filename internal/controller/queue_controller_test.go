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
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/controller"
	"github.com/millrace-io/millrace/internal/depth"
	"github.com/millrace-io/millrace/internal/sqsx"
	"github.com/millrace-io/millrace/internal/testenv"
)

const waitReady = 20 * time.Second

func dur(s string) *millracev1.Duration { d := millracev1.Duration(s); return &d }

func newQueue(ns, name string, spec millracev1.QueueSpec) *millracev1.Queue {
	return &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
}

func create(t testing.TB, obj client.Object) { testenv.Create(t, k8s, obj) }

func getQueue(t testing.TB, ns, name string) *millracev1.Queue {
	t.Helper()
	q := &millracev1.Queue{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, q); err != nil {
		t.Fatal(err)
	}
	return q
}

// waitCondition waits until the Queue's condition has the status and (when given) the reason, for
// the current generation, and returns the Queue.
func waitCondition(t testing.TB, ns, name, kind string, status metav1.ConditionStatus, reason string) *millracev1.Queue {
	t.Helper()
	var q *millracev1.Queue
	eventually(t, waitReady, func() error {
		q = getQueue(t, ns, name)
		c := meta.FindStatusCondition(q.Status.Conditions, kind)
		switch {
		case c == nil:
			return fmt.Errorf("no %s condition; conditions: %+v", kind, q.Status.Conditions)
		case c.Status != status || (reason != "" && c.Reason != reason):
			return fmt.Errorf("%s=%s (%s: %s), want %s %s", kind, c.Status, c.Reason, c.Message, status, reason)
		case c.ObservedGeneration != q.Generation:
			return fmt.Errorf("condition is for generation %d, object is at %d", c.ObservedGeneration, q.Generation)
		}
		return nil
	})
	return q
}

// updateQueue changes a Queue's spec on its latest version, retrying on conflicts with the
// controller's own writes, and returns the API server's answer.
func updateQueue(t testing.TB, ns, name string, change func(*millracev1.QueueSpec)) error {
	t.Helper()
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		q := getQueue(t, ns, name)
		change(&q.Spec)
		return k8s.Update(context.Background(), q)
	})
}

func waitReadyQueue(t testing.TB, ns, name string) *millracev1.Queue {
	t.Helper()
	q := waitCondition(t, ns, name, millracev1.ConditionReady, metav1.ConditionTrue, controller.ReasonSynced)
	if q.Status.ObservedGeneration != q.Generation {
		t.Fatalf("Ready but observedGeneration %d != generation %d", q.Status.ObservedGeneration, q.Generation)
	}
	if q.Status.QueueURL == "" || q.Status.QueueARN == "" {
		t.Fatalf("Ready without URL/ARN: %+v", q.Status)
	}
	return q
}

func attributes(t testing.TB, url string) map[string]string {
	t.Helper()
	out, err := sqsClient.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Attributes
}

func tags(t testing.TB, url string) map[string]string {
	t.Helper()
	out, err := sqsClient.ListQueueTags(context.Background(), &sqs.ListQueueTagsInput{QueueUrl: aws.String(url)})
	if err != nil {
		t.Fatal(err)
	}
	return out.Tags
}

func expectAttributes(t testing.TB, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if !sqsx.Equal(k, v, got[k]) {
			t.Errorf("attribute %s = %q, want %q", k, got[k], v)
		}
	}
}

func queueExists(name string) (string, bool) {
	out, err := sqsClient.GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return "", false
	}
	return aws.ToString(out.QueueUrl), true
}

func hasEvent(t testing.TB, ns, name, reason string) error {
	t.Helper()
	var list eventsv1.EventList
	if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		return err
	}
	var seen []string
	for _, e := range list.Items {
		if e.Regarding.Name == name {
			if e.Reason == reason {
				return nil
			}
			seen = append(seen, e.Reason)
		}
	}
	return fmt.Errorf("no %s event for %s (saw %v)", reason, name, seen)
}

func TestStandardQueueWithEveryAttribute(t *testing.T) {
	ns := newNamespace(t)
	grant(t, ns, millracev1.TenantPolicySpec{Queues: &millracev1.TenantQueuePolicy{DeadLetterARNs: []string{"arn:aws:sqs:us-east-1:000000000000:elsewhere-*"},
		KMSKeys: []string{"alias/orders"}}})
	create(t, newQueue(ns, "orders", millracev1.QueueSpec{
		VisibilityTimeout:  dur("45s"),
		MessageRetention:   dur("48h"),
		DeliveryDelay:      dur("5s"),
		ReceiveWaitTime:    dur("20s"),
		MaximumMessageSize: ptr.To[int32](65536),
		Encryption:         &millracev1.EncryptionSpec{Type: millracev1.EncryptionKMS, KMSKeyID: "alias/orders", DataKeyReusePeriod: dur("10m")},
		Tags:               map[string]string{"team": "payments", "env": "test"},
		DeadLetter:         &millracev1.DeadLetterSpec{ARN: "arn:aws:sqs:us-east-1:000000000000:elsewhere-dlq", MaxReceiveCount: 4},
	}))
	q := waitReadyQueue(t, ns, "orders")
	if want := sqsx.QueueName(ns, "orders", q.Spec); q.Status.QueueName != want {
		t.Fatalf("queueName = %q, want %q", q.Status.QueueName, want)
	}
	if q.Spec.Type != millracev1.QueueTypeStandard || q.Spec.DeletionPolicy != "" || q.Spec.AdoptionPolicy != millracev1.AdoptionPolicyNever {
		t.Fatalf("defaults not applied: %+v", q.Spec)
	}
	expectAttributes(t, attributes(t, q.Status.QueueURL), map[string]string{
		"VisibilityTimeout":             "45",
		"MessageRetentionPeriod":        "172800",
		"DelaySeconds":                  "5",
		"ReceiveMessageWaitTimeSeconds": "20",
		"MaximumMessageSize":            "65536",
		"KmsMasterKeyId":                "alias/orders",
		"KmsDataKeyReusePeriodSeconds":  "600",
		"RedrivePolicy":                 `{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:elsewhere-dlq","maxReceiveCount":4}`,
	})
	got := tags(t, q.Status.QueueURL)
	if got["team"] != "payments" || got["env"] != "test" || got[sqsx.OwnerTag] != "test/"+ns+"/orders" || len(got) != 3 {
		t.Fatalf("tags = %v", got)
	}
	eventually(t, 5*time.Second, func() error { return hasEvent(t, ns, "orders", controller.ReasonCreated) })
}

func TestFIFOQueueWithEveryAttribute(t *testing.T) {
	ns := newNamespace(t)
	grant(t, ns, millracev1.TenantPolicySpec{Queues: &millracev1.TenantQueuePolicy{QueueNamePrefixes: []string{"payments-"}}})
	create(t, newQueue(ns, "payments", millracev1.QueueSpec{
		Type:                      millracev1.QueueTypeFIFO,
		QueueName:                 "payments-" + ns + ".fifo",
		VisibilityTimeout:         dur("2m"),
		ContentBasedDeduplication: ptr.To(true),
		HighThroughput:            ptr.To(true),
		Encryption:                &millracev1.EncryptionSpec{Type: millracev1.EncryptionSQSManaged},
		DeadLetter:                &millracev1.DeadLetterSpec{QueueRef: &millracev1.QueueReference{Name: "payments-dlq"}, MaxReceiveCount: 3},
	}))
	// The dead-letter queue is applied after its user: the source waits for it, with a condition.
	waitCondition(t, ns, "payments", millracev1.ConditionReconciling, metav1.ConditionTrue, controller.ReasonWaitingDeadLetter)
	create(t, newQueue(ns, "payments-dlq", millracev1.QueueSpec{Type: millracev1.QueueTypeFIFO, MessageRetention: dur("336h")}))
	dlq := waitReadyQueue(t, ns, "payments-dlq")
	if !strings.HasSuffix(dlq.Status.QueueName, ".fifo") {
		t.Fatalf("default FIFO name %q lacks .fifo", dlq.Status.QueueName)
	}
	q := waitReadyQueue(t, ns, "payments")
	expectAttributes(t, attributes(t, q.Status.QueueURL), map[string]string{
		"FifoQueue":                 "true",
		"VisibilityTimeout":         "120",
		"ContentBasedDeduplication": "true",
		"DeduplicationScope":        "messageGroup",
		"FifoThroughputLimit":       "perMessageGroupId",
		"SqsManagedSseEnabled":      "true",
		"RedrivePolicy":             fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":3}`, dlq.Status.QueueARN),
	})
	expectAttributes(t, attributes(t, dlq.Status.QueueURL), map[string]string{"FifoQueue": "true", "MessageRetentionPeriod": "1209600",
		"RedriveAllowPolicy": sqsx.RedriveAllow([]string{q.Status.QueueARN})})
}

func TestDeadLetterQueueReceivesMessagesAfterMaxReceiveCount(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "dlq", millracev1.QueueSpec{}))
	create(t, newQueue(ns, "work", millracev1.QueueSpec{
		VisibilityTimeout: dur("1s"),
		DeadLetter:        &millracev1.DeadLetterSpec{QueueRef: &millracev1.QueueReference{Name: "dlq"}, MaxReceiveCount: 2},
	}))
	dlq := waitReadyQueue(t, ns, "dlq")
	work := waitReadyQueue(t, ns, "work")
	ctx := context.Background()
	if _, err := sqsClient.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(work.Status.QueueURL), MessageBody: aws.String("poison")}); err != nil {
		t.Fatal(err)
	}
	// Receive it twice without deleting it; the third receive moves it to the dead-letter queue.
	for i := 0; i < 2; i++ {
		eventually(t, 10*time.Second, func() error {
			out, err := sqsClient.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(work.Status.QueueURL), WaitTimeSeconds: 1})
			if err != nil {
				return err
			}
			if len(out.Messages) != 1 {
				return fmt.Errorf("receive %d: got %d messages", i+1, len(out.Messages))
			}
			return nil
		})
	}
	eventually(t, 15*time.Second, func() error {
		_, _ = sqsClient.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(work.Status.QueueURL), WaitTimeSeconds: 1})
		out, err := sqsClient.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(dlq.Status.QueueURL), WaitTimeSeconds: 1})
		if err != nil {
			return err
		}
		if len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != "poison" {
			return fmt.Errorf("dead-letter queue holds %d messages", len(out.Messages))
		}
		return nil
	})
}

func TestDeadLetterQueueOfAnotherTypeStalls(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "std-dlq", millracev1.QueueSpec{}))
	create(t, newQueue(ns, "fifo", millracev1.QueueSpec{
		Type:       millracev1.QueueTypeFIFO,
		DeadLetter: &millracev1.DeadLetterSpec{QueueRef: &millracev1.QueueReference{Name: "std-dlq"}, MaxReceiveCount: 3},
	}))
	q := waitCondition(t, ns, "fifo", millracev1.ConditionStalled, metav1.ConditionTrue, controller.ReasonInvalidDeadLetter)
	if msg := meta.FindStatusCondition(q.Status.Conditions, millracev1.ConditionStalled).Message; !strings.Contains(msg, "spec.deadLetter.queueRef") {
		t.Fatalf("stalled message does not name the field: %q", msg)
	}
}

func TestDriftMadeBehindTheOperatorsBackIsCorrected(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "drifty", millracev1.QueueSpec{
		VisibilityTimeout: dur("60s"),
		Tags:              map[string]string{"team": "a"},
	}))
	q := waitReadyQueue(t, ns, "drifty")
	ctx := context.Background()
	url := aws.String(q.Status.QueueURL)
	if _, err := sqsClient.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: url, Attributes: map[string]string{
		"VisibilityTimeout": "5", "DelaySeconds": "7",
	}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sqsClient.UntagQueue(ctx, &sqs.UntagQueueInput{QueueUrl: url, TagKeys: []string{"team"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sqsClient.TagQueue(ctx, &sqs.TagQueueInput{QueueUrl: url, Tags: map[string]string{"intruder": "x"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*testResync, func() error {
		attrs, got := attributes(t, q.Status.QueueURL), tags(t, q.Status.QueueURL)
		if attrs["VisibilityTimeout"] != "60" || attrs["DelaySeconds"] != "0" {
			return fmt.Errorf("attributes not corrected: VisibilityTimeout=%s DelaySeconds=%s", attrs["VisibilityTimeout"], attrs["DelaySeconds"])
		}
		if got["team"] != "a" || got["intruder"] != "" {
			return fmt.Errorf("tags not corrected: %v", got)
		}
		return nil
	})
	eventually(t, 5*time.Second, func() error { return hasEvent(t, ns, "drifty", controller.ReasonUpdated) })
}

func TestSemanticallyEqualAttributesCauseNoUpdates(t *testing.T) {
	ns := newNamespace(t)
	grant(t, ns, millracev1.TenantPolicySpec{Queues: &millracev1.TenantQueuePolicy{DeadLetterARNs: []string{"arn:aws:sqs:us-east-1:000000000000:steady-dlq"}}})
	create(t, newQueue(ns, "steady", millracev1.QueueSpec{
		VisibilityTimeout: dur("1m30s"),
		DeadLetter:        &millracev1.DeadLetterSpec{ARN: "arn:aws:sqs:us-east-1:000000000000:steady-dlq", MaxReceiveCount: 5},
	}))
	waitReadyQueue(t, ns, "steady")
	before := testutil.ToFloat64(sqsMetrics.Calls.WithLabelValues("SetQueueAttributes"))
	resyncsBefore := testutil.ToFloat64(sqsMetrics.Calls.WithLabelValues("ListQueueTags"))
	// Let several resyncs pass: each reads the queue and must find nothing to change.
	eventually(t, 6*testResync, func() error {
		if n := testutil.ToFloat64(sqsMetrics.Calls.WithLabelValues("ListQueueTags")) - resyncsBefore; n < 3 {
			return fmt.Errorf("%v resyncs so far", n)
		}
		return nil
	})
	if after := testutil.ToFloat64(sqsMetrics.Calls.WithLabelValues("SetQueueAttributes")); after != before {
		// Other tests run in parallel only when marked so; none is, so any call is this queue's.
		t.Fatalf("SetQueueAttributes called %v times on a queue that matches its spec", after-before)
	}
}

func TestAdoption(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	name := "legacy-" + ns
	grant(t, ns, millracev1.TenantPolicySpec{Queues: &millracev1.TenantQueuePolicy{QueueNamePrefixes: []string{"legacy-"}, AllowAdoption: true}})
	pre, err := sqsClient.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: map[string]string{"VisibilityTimeout": "300"}})
	if err != nil {
		t.Fatal(err)
	}
	create(t, newQueue(ns, "legacy", millracev1.QueueSpec{QueueName: name, VisibilityTimeout: dur("10s")}))
	q := waitCondition(t, ns, "legacy", millracev1.ConditionStalled, metav1.ConditionTrue, controller.ReasonAlreadyExists)
	if msg := meta.FindStatusCondition(q.Status.Conditions, millracev1.ConditionStalled).Message; !strings.Contains(msg, "spec.adoptionPolicy") {
		t.Fatalf("message does not say how to adopt: %q", msg)
	}
	if got := attributes(t, aws.ToString(pre.QueueUrl))["VisibilityTimeout"]; got != "300" {
		t.Fatalf("a queue that was not adopted was changed: VisibilityTimeout=%s", got)
	}
	if err := updateQueue(t, ns, "legacy", func(s *millracev1.QueueSpec) { s.AdoptionPolicy = millracev1.AdoptionPolicyAdopt }); err != nil {
		t.Fatal(err)
	}
	q = waitReadyQueue(t, ns, "legacy")
	if !q.Status.Adopted || q.Status.QueueURL != aws.ToString(pre.QueueUrl) {
		t.Fatalf("not adopted: %+v", q.Status)
	}
	expectAttributes(t, attributes(t, q.Status.QueueURL), map[string]string{"VisibilityTimeout": "10"})
	eventually(t, 5*time.Second, func() error { return hasEvent(t, ns, "legacy", controller.ReasonAdopted) })
}

func TestAQueueNeverAdoptedIsNotDeletedWithTheResource(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	name := "foreign-" + ns
	grant(t, ns, millracev1.TenantPolicySpec{Queues: &millracev1.TenantQueuePolicy{QueueNamePrefixes: []string{"foreign-"}}})
	if _, err := sqsClient.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
	q := newQueue(ns, "foreign", millracev1.QueueSpec{QueueName: name})
	create(t, q)
	waitCondition(t, ns, "foreign", millracev1.ConditionStalled, metav1.ConditionTrue, controller.ReasonAlreadyExists)
	deleteAndWaitGone(t, q)
	if _, ok := queueExists(name); !ok {
		t.Fatal("a queue the resource never owned was deleted")
	}
}

func deleteAndWaitGone(t testing.TB, q *millracev1.Queue) {
	t.Helper()
	if err := k8s.Delete(context.Background(), q); err != nil {
		t.Fatal(err)
	}
	eventually(t, waitReady, func() error {
		err := k8s.Get(context.Background(), client.ObjectKeyFromObject(q), &millracev1.Queue{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("still there (err=%v)", err)
	})
}

func TestDeletionPolicies(t *testing.T) {
	ns := newNamespace(t)
	gone := newQueue(ns, "gone", millracev1.QueueSpec{})
	kept := newQueue(ns, "kept", millracev1.QueueSpec{DeletionPolicy: millracev1.DeletionPolicyRetain})
	create(t, gone)
	create(t, kept)
	goneName := waitReadyQueue(t, ns, "gone").Status.QueueName
	keptName := waitReadyQueue(t, ns, "kept").Status.QueueName
	deleteAndWaitGone(t, gone)
	deleteAndWaitGone(t, kept)
	if _, ok := queueExists(goneName); ok {
		t.Fatal("deletionPolicy Delete left the queue in SQS")
	}
	if _, ok := queueExists(keptName); !ok {
		t.Fatal("deletionPolicy Retain deleted the queue")
	}
}

func TestAnSQSRefusalStallsAndIsNotRetried(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "refused", millracev1.QueueSpec{Type: millracev1.QueueTypeFIFO}))
	q := waitReadyQueue(t, ns, "refused")
	// fauxqs, unlike AWS, refuses to change DeduplicationScope on an existing queue: a real SQS-side
	// refusal of something the CRD allows.
	if err := updateQueue(t, ns, "refused", func(s *millracev1.QueueSpec) { s.HighThroughput = ptr.To(true) }); err != nil {
		t.Fatal(err)
	}
	q = waitCondition(t, ns, "refused", millracev1.ConditionStalled, metav1.ConditionTrue, controller.ReasonSQSRefused)
	msg := meta.FindStatusCondition(q.Status.Conditions, millracev1.ConditionStalled).Message
	if !strings.Contains(msg, "SetQueueAttributes") || !strings.Contains(msg, "InvalidAttributeName") {
		t.Fatalf("stalled message does not carry SQS's reason: %q", msg)
	}
	if q.Status.ObservedGeneration != q.Generation {
		t.Fatalf("a stalled spec was observed: observedGeneration %d != %d", q.Status.ObservedGeneration, q.Generation)
	}
	before := testutil.ToFloat64(sqsMetrics.Errors.WithLabelValues("SetQueueAttributes", "AWS.SimpleQueueService.InvalidAttributeName"))
	time.Sleep(2 * testResync)
	if after := testutil.ToFloat64(sqsMetrics.Errors.WithLabelValues("SetQueueAttributes", "AWS.SimpleQueueService.InvalidAttributeName")); after != before {
		t.Fatalf("a refused request was retried %v times", after-before)
	}
	eventually(t, 5*time.Second, func() error { return hasEvent(t, ns, "refused", controller.ReasonSQSRefused) })
	// Undoing the change makes it Ready again.
	if err := updateQueue(t, ns, "refused", func(s *millracev1.QueueSpec) { s.HighThroughput = nil }); err != nil {
		t.Fatal(err)
	}
	waitReadyQueue(t, ns, "refused")
}

func TestStatusCountsFollowMessages(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "counted", millracev1.QueueSpec{VisibilityTimeout: dur("1h")}))
	q := waitReadyQueue(t, ns, "counted")
	ctx := context.Background()
	url := aws.String(q.Status.QueueURL)
	for i := 0; i < 5; i++ {
		if _, err := sqsClient.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sqsClient.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String("later"), DelaySeconds: 900}); err != nil {
		t.Fatal(err)
	}
	waitCounts := func(visible, inFlight, delayed int64) {
		t.Helper()
		eventually(t, 10*time.Second, func() error {
			m := getQueue(t, ns, "counted").Status.Messages
			if m == nil || m.Visible != visible || m.InFlight != inFlight || m.Delayed != delayed {
				return fmt.Errorf("messages = %+v, want visible %d, in flight %d, delayed %d", m, visible, inFlight, delayed)
			}
			return nil
		})
	}
	waitCounts(5, 0, 1)
	out, err := sqsClient.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: url, MaxNumberOfMessages: 2})
	if err != nil || len(out.Messages) != 2 {
		t.Fatalf("received %d messages: %v", len(out.Messages), err)
	}
	waitCounts(3, 2, 1)
	if _, err := sqsClient.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: url, ReceiptHandle: out.Messages[0].ReceiptHandle}); err != nil {
		t.Fatal(err)
	}
	waitCounts(3, 1, 1)
}

func TestQueueDeletedOutsideMillraceIsRecreated(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "phoenix", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "phoenix")
	if _, err := sqsClient.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(q.Status.QueueURL)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*testResync, func() error {
		if _, ok := queueExists(q.Status.QueueName); !ok {
			return fmt.Errorf("queue %s not recreated", q.Status.QueueName)
		}
		return nil
	})
}

// A Queue whose queue URL changes (its namespace mapped to another account or region) stops
// watching the old URL: its poller would keep reading a queue the Queue no longer has, and the
// NotFound readings would keep reconciling the Queue.
func TestAChangedQueueURLIsNoLongerWatched(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "mover", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "mover")
	current := q.Status.QueueURL
	if n := monitor.Subscribers(current); n != 1 {
		t.Fatalf("%d subscribers of %s, want 1", n, current)
	}
	// The state before a move: the Queue recorded, and watched, the URL it had in the old account.
	old := strings.Replace(current, "/000000000000/", "/111111111111/", 1)
	if old == current {
		old = current + "-in-the-old-account"
	}
	monitor.Watch(old, "queue/"+ns+"/mover", depth.Subscription{Interval: time.Hour})
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		got := &millracev1.Queue{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "mover"}, got); err != nil {
			return err
		}
		patch := client.MergeFrom(got.DeepCopy())
		got.Status.QueueURL = old
		if err := k8s.Status().Patch(context.Background(), got, patch); err != nil {
			return err
		}
		patch = client.MergeFrom(got.DeepCopy())
		metav1.SetMetaDataAnnotation(&got.ObjectMeta, "test.millrace.io/touch", "moved")
		return k8s.Patch(context.Background(), got, patch)
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 4*testResync, func() error {
		got := &millracev1.Queue{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "mover"}, got); err != nil {
			return err
		}
		if got.Status.QueueURL != current {
			return fmt.Errorf("status.queueURL %s, want %s", got.Status.QueueURL, current)
		}
		if n := monitor.Subscribers(old); n != 0 {
			return fmt.Errorf("the old URL %s still has %d subscribers", old, n)
		}
		return nil
	})
	if n := monitor.Subscribers(current); n != 1 {
		t.Fatalf("%d subscribers of %s, want 1", n, current)
	}
	if err := hasEvent(t, ns, "mover", "Recreating"); err == nil {
		t.Fatal("a Recreating event for a Queue whose queue was never deleted")
	}
}

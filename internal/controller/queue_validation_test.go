package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// TestTheAPIServerRejectsInvalidQueues checks that every rule of the Queue schema is enforced by
// the API server itself, with a message that names the field.
func TestTheAPIServerRejectsInvalidQueues(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name string
		spec millracev1.QueueSpec
		want []string // substrings of the error
	}{
		{"content-based deduplication on a standard queue is rejected",
			millracev1.QueueSpec{ContentBasedDeduplication: ptr.To(true)},
			[]string{"spec.contentBasedDeduplication", "only valid for FIFO"}},
		{"high throughput on a standard queue is rejected",
			millracev1.QueueSpec{HighThroughput: ptr.To(true)},
			[]string{"spec.highThroughput", "only valid for FIFO"}},
		{"a fifo queue name without the .fifo suffix is rejected",
			millracev1.QueueSpec{Type: millracev1.QueueTypeFIFO, QueueName: "orders"},
			[]string{"spec.queueName", "must end with .fifo"}},
		{"a standard queue name with the .fifo suffix is rejected",
			millracev1.QueueSpec{QueueName: "orders.fifo"},
			[]string{"spec.queueName", "must end with .fifo"}},
		{"a queue name with a character SQS refuses is rejected",
			millracev1.QueueSpec{QueueName: "orders!"},
			[]string{"spec.queueName", "should match"}},
		{"a queue name longer than 80 characters is rejected",
			millracev1.QueueSpec{QueueName: strings.Repeat("q", 81)},
			[]string{"spec.queueName", "80"}},
		{"a standard dead-letter arn for a fifo queue is rejected",
			millracev1.QueueSpec{Type: millracev1.QueueTypeFIFO, DeadLetter: &millracev1.DeadLetterSpec{ARN: "arn:aws:sqs:us-east-1:123456789012:dlq", MaxReceiveCount: 3}},
			[]string{"spec.deadLetter.arn", "must be a FIFO queue"}},
		{"a fifo dead-letter arn for a standard queue is rejected",
			millracev1.QueueSpec{DeadLetter: &millracev1.DeadLetterSpec{ARN: "arn:aws:sqs:us-east-1:123456789012:dlq.fifo", MaxReceiveCount: 3}},
			[]string{"spec.deadLetter.arn", "Standard queue a Standard queue"}},
		{"a dead-letter spec with both a reference and an arn is rejected",
			millracev1.QueueSpec{DeadLetter: &millracev1.DeadLetterSpec{ARN: "arn:aws:sqs:us-east-1:123456789012:dlq", QueueRef: &millracev1.QueueReference{Name: "dlq"}, MaxReceiveCount: 3}},
			[]string{"spec.deadLetter", "exactly one of deadLetter.queueRef and deadLetter.arn"}},
		{"a dead-letter spec with neither a reference nor an arn is rejected",
			millracev1.QueueSpec{DeadLetter: &millracev1.DeadLetterSpec{MaxReceiveCount: 3}},
			[]string{"spec.deadLetter", "exactly one of"}},
		{"a maxReceiveCount of zero is rejected",
			millracev1.QueueSpec{DeadLetter: &millracev1.DeadLetterSpec{ARN: "arn:aws:sqs:us-east-1:123456789012:dlq"}},
			[]string{"spec.deadLetter.maxReceiveCount"}},
		{"a maxReceiveCount above 1000 is rejected",
			millracev1.QueueSpec{DeadLetter: &millracev1.DeadLetterSpec{ARN: "arn:aws:sqs:us-east-1:123456789012:dlq", MaxReceiveCount: 1001}},
			[]string{"spec.deadLetter.maxReceiveCount", "1000"}},
		{"a malformed dead-letter arn is rejected",
			millracev1.QueueSpec{DeadLetter: &millracev1.DeadLetterSpec{ARN: "arn:aws:sns:us-east-1:123456789012:topic", MaxReceiveCount: 3}},
			[]string{"spec.deadLetter.arn", "should match"}},
		{"a forwarded header that would set a reserved attribute (the task token) is rejected",
			millracev1.QueueSpec{HTTP: &millracev1.QueueHTTP{Enabled: true, ForwardHeaders: []string{"X-Tenant", "Millrace-Task-Token"}}},
			[]string{"spec.http.forwardHeaders", "millrace- are reserved"}},
		{"a forwarded header SQS could not name an attribute after is rejected",
			millracev1.QueueSpec{HTTP: &millracev1.QueueHTTP{Enabled: true, ForwardHeaders: []string{"X Tenant"}}},
			[]string{"spec.http.forwardHeaders[0]", "should match"}},
		{"a visibility timeout above 12h is rejected",
			millracev1.QueueSpec{VisibilityTimeout: dur("13h")},
			[]string{"spec.visibilityTimeout", "must be at most 12h"}},
		{"a message retention below 1m is rejected",
			millracev1.QueueSpec{MessageRetention: dur("30s")},
			[]string{"spec.messageRetention", "between 1m and 336h"}},
		{"a message retention above 14 days is rejected",
			millracev1.QueueSpec{MessageRetention: dur("337h")},
			[]string{"spec.messageRetention", "between 1m and 336h"}},
		{"a delivery delay above 15m is rejected",
			millracev1.QueueSpec{DeliveryDelay: dur("16m")},
			[]string{"spec.deliveryDelay", "must be at most 15m"}},
		{"a receive wait time above 20s is rejected",
			millracev1.QueueSpec{ReceiveWaitTime: dur("21s")},
			[]string{"spec.receiveWaitTime", "must be at most 20s"}},
		{"a duration with a fraction of a second is rejected",
			millracev1.QueueSpec{VisibilityTimeout: dur("1.5s")},
			[]string{"spec.visibilityTimeout", "should match"}},
		{"a duration in milliseconds is rejected",
			millracev1.QueueSpec{VisibilityTimeout: dur("500ms")},
			[]string{"spec.visibilityTimeout"}},
		{"a maximum message size below 1 KiB is rejected",
			millracev1.QueueSpec{MaximumMessageSize: ptr.To[int32](1023)},
			[]string{"spec.maximumMessageSize", "1024"}},
		{"a maximum message size above 1 MiB is rejected",
			millracev1.QueueSpec{MaximumMessageSize: ptr.To[int32](1048577)},
			[]string{"spec.maximumMessageSize", "1048576"}},
		{"kms encryption without a key is rejected",
			millracev1.QueueSpec{Encryption: &millracev1.EncryptionSpec{Type: millracev1.EncryptionKMS}},
			[]string{"spec.encryption", "kmsKeyID is required"}},
		{"a kms key with sqs-managed encryption is rejected",
			millracev1.QueueSpec{Encryption: &millracev1.EncryptionSpec{Type: millracev1.EncryptionSQSManaged, KMSKeyID: "alias/x"}},
			[]string{"spec.encryption", "kmsKeyID is required when encryption.type is KMS and not allowed otherwise"}},
		{"a data key reuse period without kms is rejected",
			millracev1.QueueSpec{Encryption: &millracev1.EncryptionSpec{Type: millracev1.EncryptionNone, DataKeyReusePeriod: dur("5m")}},
			[]string{"spec.encryption", "dataKeyReusePeriod is only valid"}},
		{"a data key reuse period above 24h is rejected",
			millracev1.QueueSpec{Encryption: &millracev1.EncryptionSpec{Type: millracev1.EncryptionKMS, KMSKeyID: "alias/x", DataKeyReusePeriod: dur("25h")}},
			[]string{"spec.encryption.dataKeyReusePeriod", "between 1m and 24h"}},
		{"an unknown encryption type is rejected",
			millracev1.QueueSpec{Encryption: &millracev1.EncryptionSpec{Type: "Magic"}},
			[]string{"spec.encryption.type", "Unsupported value"}},
		{"an unknown queue type is rejected",
			millracev1.QueueSpec{Type: "Priority"},
			[]string{"spec.type", "Unsupported value"}},
		{"an unknown deletion policy is rejected",
			millracev1.QueueSpec{DeletionPolicy: "Orphan"},
			[]string{"spec.deletionPolicy", "Unsupported value"}},
		{"a reserved tag key is rejected",
			millracev1.QueueSpec{Tags: map[string]string{"millrace.io/owner": "me"}},
			[]string{"spec.tags", "must not start with millrace.io/"}},
		{"a tag value longer than 256 characters is rejected",
			millracev1.QueueSpec{Tags: map[string]string{"k": strings.Repeat("v", 257)}},
			[]string{"spec.tags", "at most 256"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(ns, fmt.Sprintf("invalid-%d", i), tc.spec)
			err := k8s.Create(context.Background(), q)
			if err == nil {
				t.Fatalf("accepted: %+v", tc.spec)
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not contain %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestImmutableFieldsCannotChange(t *testing.T) {
	ns := newNamespace(t)
	cases := []struct {
		name   string
		spec   millracev1.QueueSpec
		change func(*millracev1.QueueSpec)
		want   string
	}{
		{"the queue type cannot change", millracev1.QueueSpec{},
			func(s *millracev1.QueueSpec) { s.Type = millracev1.QueueTypeFIFO }, "type is immutable"},
		{"the queue name cannot change", millracev1.QueueSpec{QueueName: "immutable-a-" + ns},
			func(s *millracev1.QueueSpec) { s.QueueName = "immutable-b-" + ns }, "queueName is immutable"},
		{"a queue name cannot be set after creation", millracev1.QueueSpec{},
			func(s *millracev1.QueueSpec) { s.QueueName = "late-" + ns }, "queueName is immutable"},
		{"a queue name cannot be removed after creation", millracev1.QueueSpec{QueueName: "removed-" + ns},
			func(s *millracev1.QueueSpec) { s.QueueName = "" }, "queueName is immutable"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue(ns, "immutable-"+string(rune('a'+i)), tc.spec)
			q.Spec.DeletionPolicy = millracev1.DeletionPolicyDelete
			create(t, q)
			err := updateQueue(t, ns, q.Name, tc.change)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("update error = %v, want %q", err, tc.want)
			}
		})
	}
}

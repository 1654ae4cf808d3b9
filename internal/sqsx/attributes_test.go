package sqsx

import (
	"maps"
	"reflect"
	"testing"

	"k8s.io/utils/ptr"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

func d(s string) *millracev1.Duration { v := millracev1.Duration(s); return &v }

func TestDesiredAttributes(t *testing.T) {
	standardDefaults := map[string]string{
		"VisibilityTimeout": "30", "MessageRetentionPeriod": "345600", "DelaySeconds": "0",
		"ReceiveMessageWaitTimeSeconds": "0", "MaximumMessageSize": "1048576", "RedrivePolicy": "",
	}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := maps.Clone(base)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	fifoDefaults := with(standardDefaults, "ContentBasedDeduplication", "false", "DeduplicationScope", "queue", "FifoThroughputLimit", "perQueue")
	cases := []struct {
		name string
		spec millracev1.QueueSpec
		dlq  string
		want map[string]string
	}{
		{"an empty standard spec asks for the SQS defaults", millracev1.QueueSpec{Type: millracev1.QueueTypeStandard}, "", standardDefaults},
		{"durations become whole seconds",
			millracev1.QueueSpec{VisibilityTimeout: d("1m30s"), MessageRetention: d("336h"), DeliveryDelay: d("15m"), ReceiveWaitTime: d("20s")}, "",
			with(standardDefaults, "VisibilityTimeout", "90", "MessageRetentionPeriod", "1209600", "DelaySeconds", "900", "ReceiveMessageWaitTimeSeconds", "20")},
		{"the maximum message size is in bytes", millracev1.QueueSpec{MaximumMessageSize: ptr.To[int32](2048)}, "",
			with(standardDefaults, "MaximumMessageSize", "2048")},
		{"a resolved dead-letter queue becomes a redrive policy",
			millracev1.QueueSpec{DeadLetter: &millracev1.DeadLetterSpec{QueueRef: &millracev1.QueueReference{Name: "dlq"}, MaxReceiveCount: 5}}, "arn:aws:sqs:eu-west-1:1:dlq",
			with(standardDefaults, "RedrivePolicy", `{"deadLetterTargetArn":"arn:aws:sqs:eu-west-1:1:dlq","maxReceiveCount":5}`)},
		{"a fifo queue manages deduplication and throughput", millracev1.QueueSpec{Type: millracev1.QueueTypeFIFO}, "", fifoDefaults},
		{"high throughput fifo deduplicates and limits per message group",
			millracev1.QueueSpec{Type: millracev1.QueueTypeFIFO, HighThroughput: ptr.To(true), ContentBasedDeduplication: ptr.To(true)}, "",
			with(fifoDefaults, "DeduplicationScope", "messageGroup", "FifoThroughputLimit", "perMessageGroupId", "ContentBasedDeduplication", "true")},
		{"no encryption turns both kinds off", millracev1.QueueSpec{Encryption: &millracev1.EncryptionSpec{Type: millracev1.EncryptionNone}}, "",
			with(standardDefaults, "SqsManagedSseEnabled", "false", "KmsMasterKeyId", "")},
		{"sqs-managed encryption clears any kms key", millracev1.QueueSpec{Encryption: &millracev1.EncryptionSpec{Type: millracev1.EncryptionSQSManaged}}, "",
			with(standardDefaults, "SqsManagedSseEnabled", "true", "KmsMasterKeyId", "")},
		{"kms encryption sets the key and the reuse period",
			millracev1.QueueSpec{Encryption: &millracev1.EncryptionSpec{Type: millracev1.EncryptionKMS, KMSKeyID: "alias/k", DataKeyReusePeriod: d("1h")}}, "",
			with(standardDefaults, "KmsMasterKeyId", "alias/k", "KmsDataKeyReusePeriodSeconds", "3600")},
		{"kms encryption without a reuse period asks for the default", millracev1.QueueSpec{Encryption: &millracev1.EncryptionSpec{Type: millracev1.EncryptionKMS, KMSKeyID: "k"}}, "",
			with(standardDefaults, "KmsMasterKeyId", "k", "KmsDataKeyReusePeriodSeconds", "300")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := DesiredAttributes(tc.spec, tc.dlq); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestCreateAttributesDropEmptyValuesAndMarkFIFO(t *testing.T) {
	got := CreateAttributes(millracev1.QueueSpec{Type: millracev1.QueueTypeFIFO, Encryption: &millracev1.EncryptionSpec{Type: millracev1.EncryptionNone}}, "")
	if got["FifoQueue"] != "true" {
		t.Fatalf("FifoQueue = %q", got["FifoQueue"])
	}
	for k, v := range got {
		if v == "" {
			t.Fatalf("empty attribute %s sent on create", k)
		}
	}
	if _, ok := CreateAttributes(millracev1.QueueSpec{Type: millracev1.QueueTypeStandard}, "")["FifoQueue"]; ok {
		t.Fatal("FifoQueue sent for a standard queue")
	}
}

func TestEqual(t *testing.T) {
	cases := []struct {
		name, attr, a, b string
		want             bool
	}{
		{"an absent attribute equals its default", "DelaySeconds", "0", "", true},
		{"an absent attribute differs from another value", "DelaySeconds", "5", "", false},
		{"numbers compare as numbers", "VisibilityTimeout", "030", "30", true},
		{"numbers ignore surrounding spaces", "VisibilityTimeout", " 30", "30", true},
		{"different numbers differ", "VisibilityTimeout", "30", "31", false},
		{"booleans ignore case", "ContentBasedDeduplication", "True", "true", true},
		{"an absent boolean is false", "ContentBasedDeduplication", "false", "", true},
		{"different booleans differ", "FifoQueue", "true", "false", false},
		{"redrive policies ignore key order and spacing", "RedrivePolicy",
			`{"deadLetterTargetArn":"arn:a","maxReceiveCount":3}`, `{ "maxReceiveCount": 3, "deadLetterTargetArn": "arn:a" }`, true},
		{"redrive policies accept a quoted count", "RedrivePolicy",
			`{"deadLetterTargetArn":"arn:a","maxReceiveCount":3}`, `{"deadLetterTargetArn":"arn:a","maxReceiveCount":"3"}`, true},
		{"redrive policies with another count differ", "RedrivePolicy",
			`{"deadLetterTargetArn":"arn:a","maxReceiveCount":3}`, `{"deadLetterTargetArn":"arn:a","maxReceiveCount":4}`, false},
		{"redrive policies with another target differ", "RedrivePolicy",
			`{"deadLetterTargetArn":"arn:a","maxReceiveCount":3}`, `{"deadLetterTargetArn":"arn:b","maxReceiveCount":3}`, false},
		{"no redrive policy differs from one", "RedrivePolicy", "", `{"deadLetterTargetArn":"arn:a","maxReceiveCount":3}`, false},
		{"strings compare exactly", "KmsMasterKeyId", "alias/a", "alias/A", false},
		{"an absent kms key equals none", "KmsMasterKeyId", "", "", true},
		{"the reuse period defaults to 300 seconds", "KmsDataKeyReusePeriodSeconds", "300", "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Equal(tc.attr, tc.a, tc.b); got != tc.want {
				t.Fatalf("Equal(%s, %q, %q) = %v", tc.attr, tc.a, tc.b, got)
			}
			if got := Equal(tc.attr, tc.b, tc.a); got != tc.want {
				t.Fatalf("Equal is not symmetric for %s", tc.attr)
			}
		})
	}
}

func TestAttributeDiffReportsOnlyWhatDiffers(t *testing.T) {
	desired := map[string]string{"VisibilityTimeout": "30", "DelaySeconds": "0", "RedrivePolicy": "", "MaximumMessageSize": "2048"}
	observed := map[string]string{
		"VisibilityTimeout": "30", "MaximumMessageSize": "1048576", "QueueArn": "arn:x",
		"ApproximateNumberOfMessages": "12", "RedrivePolicy": `{"deadLetterTargetArn":"arn:a","maxReceiveCount":3}`,
	}
	want := map[string]string{"MaximumMessageSize": "2048", "RedrivePolicy": ""}
	if got := AttributeDiff(desired, observed); !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := DriftedNames(want); !reflect.DeepEqual(got, []string{"MaximumMessageSize", "RedrivePolicy"}) {
		t.Fatalf("DriftedNames = %v", got)
	}
	if got := AttributeDiff(DesiredAttributes(millracev1.QueueSpec{Type: millracev1.QueueTypeStandard}, ""), map[string]string{}); len(got) != 0 {
		t.Fatalf("a queue SQS reports nothing for matches an empty spec, got diff %v", got)
	}
}

func TestParseRedrivePolicyRejectsGarbage(t *testing.T) {
	for _, s := range []string{"", "{", `{"maxReceiveCount":"x"}`} {
		if _, err := ParseRedrivePolicy(s); err == nil {
			t.Errorf("ParseRedrivePolicy(%q) succeeded", s)
		}
	}
}

func TestRedriveAllowPolicy(t *testing.T) {
	cases := []struct {
		name  string
		a, b  string
		equal bool
	}{
		{"no sources deny every queue", RedriveAllow(nil), `{"redrivePermission":"denyAll"}`, true},
		{"sources compare as a set", RedriveAllow([]string{"arn:aws:sqs:r:1:b", "arn:aws:sqs:r:1:a"}),
			`{"redrivePermission":"byQueue","sourceQueueArns":["arn:aws:sqs:r:1:b","arn:aws:sqs:r:1:a"]}`, true},
		{"an absent policy allows all and differs from denyAll", "", RedriveAllow(nil), false},
		{"another source differs", RedriveAllow([]string{"arn:aws:sqs:r:1:a"}), RedriveAllow([]string{"arn:aws:sqs:r:1:victim"}), false},
	}
	for _, tc := range cases {
		if got := Equal(AttrRedriveAllowPolicy, tc.a, tc.b); got != tc.equal {
			t.Errorf("%s: Equal(%s, %s) = %v", tc.name, tc.a, tc.b, got)
		}
	}
	if got := SiblingARN("arn:aws:sqs:eu-west-1:111122223333:dlq", "orders"); got != "arn:aws:sqs:eu-west-1:111122223333:orders" {
		t.Errorf("SiblingARN: %s", got)
	}
}

package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// QueueType is the kind of SQS queue.
// +kubebuilder:validation:Enum=Standard;FIFO
type QueueType string

const (
	// QueueTypeStandard is an at-least-once, best-effort-ordered queue with nearly unlimited throughput.
	QueueTypeStandard QueueType = "Standard"
	// QueueTypeFIFO is an exactly-once-processing queue that keeps order per message group.
	QueueTypeFIFO QueueType = "FIFO"
)

// DeletionPolicy says what happens to the SQS queue when the Queue resource is deleted.
// +kubebuilder:validation:Enum=Delete;Retain
type DeletionPolicy string

const (
	// DeletionPolicyDelete deletes the SQS queue (and its messages) with the resource.
	DeletionPolicyDelete DeletionPolicy = "Delete"
	// DeletionPolicyRetain leaves the SQS queue in place.
	DeletionPolicyRetain DeletionPolicy = "Retain"
)

// AdoptionPolicy says what to do when a queue with the same name already exists in SQS and was not
// created for this resource.
// +kubebuilder:validation:Enum=Never;Adopt
type AdoptionPolicy string

const (
	// AdoptionPolicyNever refuses to manage a pre-existing queue (the Queue becomes Stalled).
	AdoptionPolicyNever AdoptionPolicy = "Never"
	// AdoptionPolicyAdopt takes a pre-existing queue over and converges its attributes and tags.
	AdoptionPolicyAdopt AdoptionPolicy = "Adopt"
)

// EncryptionType selects server-side encryption of messages at rest.
// +kubebuilder:validation:Enum=None;SQSManaged;KMS
type EncryptionType string

const (
	// EncryptionNone disables server-side encryption.
	EncryptionNone EncryptionType = "None"
	// EncryptionSQSManaged uses SQS-owned keys (SSE-SQS), the SQS default for new queues.
	EncryptionSQSManaged EncryptionType = "SQSManaged"
	// EncryptionKMS uses an AWS KMS key (SSE-KMS).
	EncryptionKMS EncryptionType = "KMS"
)

// QueueReference names another Queue in the same namespace.
type QueueReference struct {
	// name of the Queue resource in the same namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// DeadLetterSpec sends messages that were received maxReceiveCount times without being deleted to
// another queue (the SQS redrive policy).
// +kubebuilder:validation:XValidation:rule="has(self.queueRef) != has(self.arn)",message="exactly one of deadLetter.queueRef and deadLetter.arn must be set"
type DeadLetterSpec struct {
	// queueRef names the dead-letter Queue resource in the same namespace. Millrace waits until that
	// Queue has a queue ARN, then wires it.
	// +optional
	QueueRef *QueueReference `json:"queueRef,omitempty"`

	// arn of a dead-letter queue not managed by Millrace (arn:aws:sqs:<region>:<account>:<name>);
	// allowed only when a TenantPolicy lists it for the namespace (queues.deadLetterARNs).
	// +optional
	// +kubebuilder:validation:Pattern=`^arn:[a-z0-9-]+:sqs:[a-z0-9-]*:[0-9]*:[A-Za-z0-9_-]{1,80}(\.fifo)?$`
	// +kubebuilder:validation:MaxLength=256
	ARN string `json:"arn,omitempty"`

	// maxReceiveCount is how many times a message is received before SQS moves it to the
	// dead-letter queue (1 to 1000).
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	MaxReceiveCount int32 `json:"maxReceiveCount"`
}

// EncryptionSpec configures server-side encryption.
// +kubebuilder:validation:XValidation:rule="self.type == 'KMS' ? has(self.kmsKeyID) : !has(self.kmsKeyID)",message="encryption.kmsKeyID is required when encryption.type is KMS and not allowed otherwise"
// +kubebuilder:validation:XValidation:rule="self.type == 'KMS' || !has(self.dataKeyReusePeriod)",message="encryption.dataKeyReusePeriod is only valid when encryption.type is KMS"
type EncryptionSpec struct {
	// type is None, SQSManaged (SSE-SQS) or KMS (SSE-KMS).
	// +required
	Type EncryptionType `json:"type"`

	// kmsKeyID is the KMS key id, alias (alias/...) or ARN; required for type KMS.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	KMSKeyID string `json:"kmsKeyID,omitempty"`

	// dataKeyReusePeriod is how long SQS reuses a data key before calling KMS again
	// (1m to 24h, whole seconds; SQS default 5m). Only for type KMS.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('60s') && duration(self) <= duration('24h')",message="must be between 1m and 24h"
	DataKeyReusePeriod *Duration `json:"dataKeyReusePeriod,omitempty"`
}

// Duration is a whole number of seconds written as a Go duration: "30s", "5m", "1h30m", "336h".
// Only the units h, m and s are accepted, because SQS counts in whole seconds.
// +kubebuilder:validation:Pattern=`^([0-9]+h)?([0-9]+m)?([0-9]+s)?$`
// +kubebuilder:validation:MinLength=2
// +kubebuilder:validation:MaxLength=16
type Duration string

// Duration parses d; the CRD schema guarantees it parses, so an error yields 0.
func (d Duration) Duration() time.Duration {
	v, err := time.ParseDuration(string(d))
	if err != nil {
		return 0
	}
	return v
}

// QueueSpec declares an SQS queue.
// +kubebuilder:validation:XValidation:rule="self.type == 'FIFO' || !has(self.contentBasedDeduplication) || !self.contentBasedDeduplication",message="contentBasedDeduplication is only valid for FIFO queues",fieldPath=".contentBasedDeduplication"
// +kubebuilder:validation:XValidation:rule="self.type == 'FIFO' || !has(self.highThroughput) || !self.highThroughput",message="highThroughput is only valid for FIFO queues",fieldPath=".highThroughput"
// +kubebuilder:validation:XValidation:rule="!has(self.queueName) || (self.type == 'FIFO') == self.queueName.endsWith('.fifo')",message="queueName must end with .fifo for a FIFO queue, and must not for a Standard queue",fieldPath=".queueName"
// +kubebuilder:validation:XValidation:rule="!has(self.deadLetter) || !has(self.deadLetter.arn) || (self.type == 'FIFO') == self.deadLetter.arn.endsWith('.fifo')",message="the dead-letter queue of a FIFO queue must be a FIFO queue, and of a Standard queue a Standard queue",fieldPath=".deadLetter.arn"
// +kubebuilder:validation:XValidation:rule="has(oldSelf.queueName) == has(self.queueName)",message="queueName is immutable",fieldPath=".queueName"
type QueueSpec struct {
	// type is Standard or FIFO (default Standard). Immutable.
	// +optional
	// +kubebuilder:default=Standard
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="type is immutable"
	Type QueueType `json:"type,omitempty"`

	// queueName is the name of the queue in SQS (1 to 80 letters, digits, '-' or '_'; FIFO names
	// end in .fifo). Allowed only with a prefix a TenantPolicy grants the namespace
	// (queues.queueNamePrefixes). Default: <namespace>-<name>-<8 hex digits of a hash of both>,
	// with .fifo appended for FIFO, unique across namespaces. Immutable.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=80
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_-]+(\.fifo)?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="queueName is immutable"
	QueueName string `json:"queueName,omitempty"`

	// visibilityTimeout is how long a received message stays hidden from other consumers
	// (0s to 12h; SQS default 30s).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('12h')",message="must be at most 12h"
	VisibilityTimeout *Duration `json:"visibilityTimeout,omitempty"`

	// messageRetention is how long SQS keeps a message (1m to 336h = 14 days; SQS default 96h).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('60s') && duration(self) <= duration('336h')",message="must be between 1m and 336h (14 days)"
	MessageRetention *Duration `json:"messageRetention,omitempty"`

	// deliveryDelay postpones the delivery of every new message (0s to 15m; SQS default 0s).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('15m')",message="must be at most 15m"
	DeliveryDelay *Duration `json:"deliveryDelay,omitempty"`

	// receiveWaitTime is the default long-poll wait of ReceiveMessage (0s to 20s; SQS default 0s).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('20s')",message="must be at most 20s"
	ReceiveWaitTime *Duration `json:"receiveWaitTime,omitempty"`

	// maximumMessageSize is the largest message SQS accepts, in bytes (1024 to 1048576; SQS
	// default 1048576).
	// +optional
	// +kubebuilder:validation:Minimum=1024
	// +kubebuilder:validation:Maximum=1048576
	MaximumMessageSize *int32 `json:"maximumMessageSize,omitempty"`

	// contentBasedDeduplication makes SQS derive the deduplication id from a SHA-256 of the body.
	// FIFO only (default false).
	// +optional
	ContentBasedDeduplication *bool `json:"contentBasedDeduplication,omitempty"`

	// highThroughput enables high-throughput FIFO: deduplication and the throughput limit apply per
	// message group rather than per queue. FIFO only (default false).
	// +optional
	HighThroughput *bool `json:"highThroughput,omitempty"`

	// deadLetter moves messages to another queue after maxReceiveCount receives.
	// +optional
	DeadLetter *DeadLetterSpec `json:"deadLetter,omitempty"`

	// encryption of messages at rest. Unset: the SQS default for new queues (SQSManaged), and an
	// adopted queue's setting is left alone.
	// +optional
	Encryption *EncryptionSpec `json:"encryption,omitempty"`

	// tags on the SQS queue (at most 50; keys up to 128 characters, values up to 256). Keys starting
	// with "millrace.io/" are reserved. Tags added outside Millrace are removed.
	// +optional
	// +kubebuilder:validation:MaxProperties=50
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(k) >= 1 && size(k) <= 128 && !k.startsWith('millrace.io/') && !k.startsWith('aws:'))",message="tag keys must be 1 to 128 characters and must not start with millrace.io/ or aws:"
	// +kubebuilder:validation:XValidation:rule="self.all(k, size(self[k]) <= 256)",message="tag values must be at most 256 characters"
	Tags map[string]string `json:"tags,omitempty"`

	// deletionPolicy is Delete (the SQS queue is deleted with the resource) or Retain. Default:
	// Delete for a queue this resource created, Retain for one it adopted.
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`

	// adoptionPolicy is Never (default: a pre-existing queue of the same name makes the Queue
	// Stalled) or Adopt (take it over and converge it to this spec). Adopt works only in namespaces
	// a TenantPolicy grants allowAdoption, and only for queues no Millrace Queue owns.
	// +optional
	// +kubebuilder:default=Never
	AdoptionPolicy AdoptionPolicy `json:"adoptionPolicy,omitempty"`

	// http exposes the queue through the Millrace gateway (nothing is exposed by default).
	// +optional
	HTTP *QueueHTTP `json:"http,omitempty"`
}

// QueueHTTP says how the gateway accepts messages for a queue at
// POST /v1/namespaces/{namespace}/queues/{name}/messages.
type QueueHTTP struct {
	// enabled exposes the queue (callers still need RBAC: create on queues/messages).
	Enabled bool `json:"enabled"`
	// forwardHeaders are request headers copied into message attributes (at most 9: SQS allows
	// 10 attributes and the gateway sets content-type).
	// Names starting with "millrace-" are reserved (task tokens and heartbeats travel in them).
	// +optional
	// +kubebuilder:validation:MaxItems=9
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=128
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9][A-Za-z0-9_-]*$`
	// +kubebuilder:validation:XValidation:rule="self.all(h, !h.lowerAscii().startsWith('millrace-'))",message="header names starting with millrace- are reserved for Millrace's own message attributes"
	// +listType=set
	ForwardHeaders []string `json:"forwardHeaders,omitempty"`
	// rateLimit bounds the requests the gateway accepts for this queue (beyond it: 429).
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
}

// RateLimit is a token bucket: requestsPerSecond on average, bursts of up to burst.
type RateLimit struct {
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	RequestsPerSecond int32 `json:"requestsPerSecond"`
	// burst defaults to requestsPerSecond.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	Burst int32 `json:"burst,omitempty"`
}

// MessageCounts are SQS's approximate message counts, refreshed by the depth monitor.
type MessageCounts struct {
	// visible is ApproximateNumberOfMessages: messages ready to be received.
	Visible int64 `json:"visible"`
	// inFlight is ApproximateNumberOfMessagesNotVisible: received, not yet deleted.
	InFlight int64 `json:"inFlight"`
	// delayed is ApproximateNumberOfMessagesDelayed: not yet deliverable.
	Delayed int64 `json:"delayed"`
	// observedAt is when SQS reported these counts.
	// +optional
	ObservedAt *metav1.Time `json:"observedAt,omitempty"`
}

// QueueStatus is what Millrace observed of the queue.
type QueueStatus struct {
	// observedGeneration is the generation of the spec that was last fully acted on.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling, Stalled.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// queueName is the name of the queue in SQS.
	// +optional
	QueueName string `json:"queueName,omitempty"`

	// queueURL is the queue's URL, for SDK calls.
	// +optional
	QueueURL string `json:"queueURL,omitempty"`

	// queueARN is the queue's ARN, for IAM policies and dead-letter references.
	// +optional
	QueueARN string `json:"queueARN,omitempty"`

	// adopted is true when the queue existed before this resource and was taken over.
	// +optional
	Adopted bool `json:"adopted,omitempty"`

	// deadLetterSources are the Queues of this namespace that SQS lets move messages into this
	// queue (its RedriveAllowPolicy, read back from SQS; at most 10). Empty: no queue may.
	// +optional
	// +listType=atomic
	DeadLetterSources []string `json:"deadLetterSources,omitempty"`

	// messages are the approximate message counts.
	// +optional
	Messages *MessageCounts `json:"messages,omitempty"`
}

// Queue is an Amazon SQS queue kept in sync with its spec.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=millrace,shortName=sqs
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Visible",type=integer,JSONPath=`.status.messages.visible`
// +kubebuilder:printcolumn:name="In-Flight",type=integer,JSONPath=`.status.messages.inFlight`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Queue-Name",type=string,JSONPath=`.status.queueName`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
type Queue struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec declares the queue.
	// +required
	Spec QueueSpec `json:"spec"`

	// status is what Millrace observed.
	// +optional
	Status QueueStatus `json:"status,omitempty"`
}

// QueueList is a list of Queues.
// +kubebuilder:object:root=true
type QueueList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Queue `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Queue{}, &QueueList{})
}

package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DeliveryMode is how the dispatcher hands messages to the handler.
// +kubebuilder:validation:Enum=HTTP;LambdaRuntime;None
type DeliveryMode string

const (
	// DeliveryHTTP POSTs Lambda SQS events to the handler on localhost.
	DeliveryHTTP DeliveryMode = "HTTP"
	// DeliveryLambdaRuntime serves the AWS Lambda Runtime API, so Lambda container images run unchanged.
	DeliveryLambdaRuntime DeliveryMode = "LambdaRuntime"
	// DeliveryNone injects no dispatcher: the handler consumes the queue itself and only receives
	// the queue URL, region and endpoint as environment.
	DeliveryNone DeliveryMode = "None"
)

// ConsumerQueueReference names the Queue a Consumer reads.
type ConsumerQueueReference struct {
	// name of the Queue.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// namespace of the Queue; when set it must be the Consumer's own namespace (namespaces are
	// tenancy boundaries). Omit it.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// DeliverySpec says how messages reach the handler.
// +kubebuilder:validation:XValidation:rule="self.mode != 'None' || (!has(self.batchWindow) && !has(self.reportBatchItemFailures))",message="batchWindow and reportBatchItemFailures need a dispatcher; they are not valid with mode None"
// +kubebuilder:validation:XValidation:rule="!has(self.lambda) || self.mode == 'LambdaRuntime'",message="lambda is only valid with mode LambdaRuntime"
type DeliverySpec struct {
	// mode is HTTP (default), LambdaRuntime or None.
	// +optional
	// +kubebuilder:default=HTTP
	Mode DeliveryMode `json:"mode,omitempty"`

	// port of the handler on localhost, for mode HTTP (default 8080).
	// +optional
	// +kubebuilder:default=8080
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// path the events are POSTed to, for mode HTTP (default "/").
	// +optional
	// +kubebuilder:default="/"
	// +kubebuilder:validation:Pattern=`^/`
	// +kubebuilder:validation:MaxLength=1024
	Path string `json:"path,omitempty"`

	// batchSize is the most messages in one event (default 10; 1 to 10 for FIFO queues, up to
	// 10000 for Standard queues).
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	BatchSize int32 `json:"batchSize,omitempty"`

	// batchWindow is how long the dispatcher gathers messages before delivering a batch smaller
	// than batchSize (0s to 300s; Standard queues only; default 0s).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('300s')",message="must be at most 300s"
	BatchWindow *Duration `json:"batchWindow,omitempty"`

	// concurrency is how many batches one pod handles at once (1 to 1000; default 1).
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	Concurrency int32 `json:"concurrency,omitempty"`

	// timeout is how long the handler may take for one batch (1s to 12h; default 30s). It must not
	// exceed the queue's visibility timeout, or messages would reappear while being handled.
	// +optional
	// +kubebuilder:default="30s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('12h')",message="must be between 1s and 12h"
	Timeout Duration `json:"timeout,omitempty"`

	// reportBatchItemFailures lets the handler answer {"batchItemFailures": [...]} so that only the
	// failed messages return to the queue (default false).
	// +optional
	ReportBatchItemFailures *bool `json:"reportBatchItemFailures,omitempty"`

	// failureBackoff makes a failed message visible again after this long instead of after the
	// queue's visibility timeout (0s to 12h; unset: the visibility timeout, as in Lambda). With a
	// dead-letter queue, a poison message then reaches it after maxReceiveCount × failureBackoff.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('12h')",message="must be between 0s and 12h"
	FailureBackoff *Duration `json:"failureBackoff,omitempty"`

	// lambda sets what a Lambda runtime reads from its environment, for mode LambdaRuntime.
	// +optional
	Lambda *LambdaSpec `json:"lambda,omitempty"`
}

// LambdaSpec is the function configuration a Lambda runtime expects in its environment. Images
// built on AWS's Lambda base images carry both in the image (their CMD names the handler); images
// that run a runtime interface client on another base image need them here.
type LambdaSpec struct {
	// handler is the function's handler, set as _HANDLER (e.g. "index.handler" for Node.js,
	// "app.handler" for Python). Unset: the image's own (an AWS base image's CMD).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[^\s]+$`
	Handler string `json:"handler,omitempty"`
	// taskRoot is the directory of the function's code, set as LAMBDA_TASK_ROOT (an absolute path;
	// default /var/task, as in Lambda).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	TaskRoot string `json:"taskRoot,omitempty"`
}

// ScalingPolicyType is the unit of a rate policy.
// +kubebuilder:validation:Enum=Pods;Percent
type ScalingPolicyType string

// ScalingPolicySelect chooses among rate policies.
// +kubebuilder:validation:Enum=Max;Min;Disabled
type ScalingPolicySelect string

// ScalingPolicy limits how fast replicas change, as in autoscaling/v2.
type ScalingPolicy struct {
	// type is Pods or Percent.
	// +required
	Type ScalingPolicyType `json:"type"`
	// value is the number of pods or the percentage (at least 1).
	// +required
	// +kubebuilder:validation:Minimum=1
	Value int32 `json:"value"`
	// period over which the change is limited (1s to 30m).
	// +required
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('30m')",message="must be between 1s and 30m"
	Period Duration `json:"period"`
}

// ScalingRules are the behavior of one direction, as in autoscaling/v2.
type ScalingRules struct {
	// stabilizationWindow: scaling up follows the lowest, scaling down the highest recommendation
	// within the window (0s to 1h).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('1h')",message="must be at most 1h"
	StabilizationWindow *Duration `json:"stabilizationWindow,omitempty"`
	// selectPolicy is Max (default), Min or Disabled.
	// +optional
	SelectPolicy ScalingPolicySelect `json:"selectPolicy,omitempty"`
	// policies limit the rate of change.
	// +optional
	// +kubebuilder:validation:MaxItems=10
	// +listType=atomic
	Policies []ScalingPolicy `json:"policies,omitempty"`
	// tolerancePercent: a change in this direction is ignored while the backlog per replica is
	// within this percentage of backlogPerReplica (0 to 99; default 10, the HPA's tolerance;
	// autoscaling/v2's behavior tolerance 0.05 is tolerancePercent 5).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=99
	TolerancePercent *int32 `json:"tolerancePercent,omitempty"`
}

// ScalingBehavior configures scale-up and scale-down separately. Unset directions take the HPA
// defaults: up at once by 100% or 4 pods per 15s; down after a 5m window by 100% per 15s.
type ScalingBehavior struct {
	// +optional
	ScaleUp *ScalingRules `json:"scaleUp,omitempty"`
	// +optional
	ScaleDown *ScalingRules `json:"scaleDown,omitempty"`
}

// FallbackBehavior chooses the replica count of a fallback (KEDA's fallback.behavior).
// +kubebuilder:validation:Enum=Static;CurrentReplicas;CurrentReplicasIfHigher;CurrentReplicasIfLower
type FallbackBehavior string

// FallbackSpec is the replica count to run while the queue depth cannot be read.
type FallbackSpec struct {
	// failureThreshold is how many depth readings in a row must fail before the fallback applies
	// (1 to 1000).
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	FailureThreshold int32 `json:"failureThreshold"`
	// replicas to run once the threshold is reached, also from zero (at least 1: Millrace never
	// scales to zero on an error; kept within minReplicas and maxReplicas).
	// +required
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	Replicas int32 `json:"replicas"`
	// behavior is Static (default: replicas), CurrentReplicas (keep the count),
	// CurrentReplicasIfHigher (the higher of the two) or CurrentReplicasIfLower (the lower).
	// +optional
	// +kubebuilder:default=Static
	Behavior FallbackBehavior `json:"behavior,omitempty"`
}

// ScalingSpec says how the replica count follows the queue.
// +kubebuilder:validation:XValidation:rule="!has(self.minReplicas) || self.minReplicas <= self.maxReplicas",message="minReplicas must not exceed maxReplicas",fieldPath=".minReplicas"
// +kubebuilder:validation:XValidation:rule="!has(self.idleReplicas) || (has(self.minReplicas) && self.idleReplicas < self.minReplicas)",message="idleReplicas must be below minReplicas (with minReplicas 0 the Consumer idles at zero already)",fieldPath=".idleReplicas"
// +kubebuilder:validation:XValidation:rule="!has(self.fallback) || self.fallback.replicas <= self.maxReplicas",message="fallback.replicas must not exceed maxReplicas",fieldPath=".fallback.replicas"
type ScalingSpec struct {
	// minReplicas is the fewest replicas (0 allows scaling to zero; default 0).
	// +optional
	// +kubebuilder:validation:Minimum=0
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// maxReplicas is the most replicas (default 10).
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	MaxReplicas int32 `json:"maxReplicas,omitempty"`
	// idleReplicas is the replica count after scaleToZeroDelay without any message, below
	// minReplicas (KEDA's idleReplicaCount); a backlog above activationBacklog lifts it to
	// minReplicas at once. Unset: a Consumer with minReplicas 0 idles at zero, one with
	// minReplicas above 0 never goes below it.
	// +optional
	// +kubebuilder:validation:Minimum=0
	IdleReplicas *int32 `json:"idleReplicas,omitempty"`
	// backlogPerReplica is the backlog one replica is expected to handle (default 10).
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	BacklogPerReplica int32 `json:"backlogPerReplica,omitempty"`
	// activationBacklog: at zero replicas, nothing starts until the backlog exceeds it (default 0).
	// +optional
	// +kubebuilder:validation:Minimum=0
	ActivationBacklog int32 `json:"activationBacklog,omitempty"`
	// countInFlight counts received-but-not-deleted messages as backlog (default true).
	// +optional
	CountInFlight *bool `json:"countInFlight,omitempty"`
	// countDelayed counts delayed messages as backlog (default false).
	// +optional
	CountDelayed bool `json:"countDelayed,omitempty"`
	// pollInterval is how often the queue depth is read while it moves (1s to 5m; default 5s).
	// +optional
	// +kubebuilder:default="5s"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="must be between 1s and 5m"
	PollInterval Duration `json:"pollInterval,omitempty"`
	// idlePollInterval is how often the queue depth is read while the Consumer is idle (at zero
	// or idleReplicas), waiting for the first message: the longest a message waits before the
	// Consumer wakes, and the SQS bill of an idle queue (1s to 5m; unset: the manager's
	// --idle-poll-interval, default 30s, KEDA's pollingInterval).
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('5m')",message="must be between 1s and 5m"
	IdlePollInterval *Duration `json:"idlePollInterval,omitempty"`
	// scaleToZeroDelay is how long the queue must be empty (in flight included) before the last
	// replica is removed (0s to 24h; default 5m).
	// +optional
	// +kubebuilder:default="5m"
	// +kubebuilder:validation:XValidation:rule="duration(self) <= duration('24h')",message="must be at most 24h"
	ScaleToZeroDelay Duration `json:"scaleToZeroDelay,omitempty"`
	// behavior tunes stabilization and rate limits.
	// +optional
	Behavior *ScalingBehavior `json:"behavior,omitempty"`
	// fallback is the replica count to run after consecutive failed depth readings (KEDA's
	// fallback). Unset: the current count is held while the depth is unknown.
	// +optional
	Fallback *FallbackSpec `json:"fallback,omitempty"`
	// paused stops autoscaling: the current replica count is held, or set to pausedReplicas.
	// +optional
	Paused bool `json:"paused,omitempty"`
	// pausedReplicas is the replica count while paused (KEDA's paused-replicas annotation),
	// even outside minReplicas and maxReplicas, e.g. 0 for maintenance. Ignored while not paused,
	// so a pause is switched with paused alone. Unset: paused holds the current count.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	PausedReplicas *int32 `json:"pausedReplicas,omitempty"`
}

// ScaleTargetKind is the kind of workload a Consumer may scale without rendering it.
// +kubebuilder:validation:Enum=Deployment;StatefulSet
type ScaleTargetKind string

const (
	ScaleTargetDeployment  ScaleTargetKind = "Deployment"
	ScaleTargetStatefulSet ScaleTargetKind = "StatefulSet"
)

// ScaleTargetReference names a workload in the Consumer's namespace whose replica count the
// Consumer drives (KEDA's scaleTargetRef). Only its scale subresource is written.
type ScaleTargetReference struct {
	// apiVersion of the workload (apps/v1, the default and only value).
	// +optional
	// +kubebuilder:default="apps/v1"
	// +kubebuilder:validation:Enum="apps/v1"
	APIVersion string `json:"apiVersion,omitempty"`
	// kind is Deployment (default) or StatefulSet.
	// +optional
	// +kubebuilder:default=Deployment
	Kind ScaleTargetKind `json:"kind,omitempty"`
	// name of the workload, in the Consumer's namespace.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ConsumerSpec declares a handler of a queue's messages.
// +kubebuilder:validation:XValidation:rule="has(self.template) != has(self.scaleTargetRef)",message="set exactly one of template (Millrace runs the handler as a Deployment it renders) and scaleTargetRef (Millrace scales your own Deployment or StatefulSet)"
// +kubebuilder:validation:XValidation:rule="!has(self.scaleTargetRef) || (has(self.delivery) && has(self.delivery.mode) && self.delivery.mode == 'None')",message="scaleTargetRef scales a workload Millrace does not render, so no dispatcher is injected: set delivery.mode to None",fieldPath=".delivery.mode"
// +kubebuilder:validation:XValidation:rule="has(oldSelf.scaleTargetRef) == has(self.scaleTargetRef)",message="a Consumer cannot switch between template and scaleTargetRef; create a new Consumer"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.scaleTargetRef) || oldSelf.scaleTargetRef.kind == self.scaleTargetRef.kind && oldSelf.scaleTargetRef.name == self.scaleTargetRef.name",message="scaleTargetRef is immutable; create a new Consumer",fieldPath=".scaleTargetRef"
type ConsumerSpec struct {
	// queueRef names the Queue in the Consumer's namespace.
	// +required
	QueueRef ConsumerQueueReference `json:"queueRef"`
	// template is the pod template of the handler; Millrace renders a Deployment of it with the
	// dispatcher. Exactly one of template and scaleTargetRef is set.
	// +optional
	Template corev1.PodTemplateSpec `json:"template,omitzero"`
	// scaleTargetRef names an existing Deployment or StatefulSet in the Consumer's namespace that
	// Millrace scales without rendering it (your manifests, delivery mode None): only its replica
	// count is written, through the scale subresource. Exactly one of template and scaleTargetRef
	// is set.
	// +optional
	ScaleTargetRef *ScaleTargetReference `json:"scaleTargetRef,omitempty"`
	// delivery says how messages reach the handler.
	// +optional
	// +kubebuilder:default={}
	Delivery DeliverySpec `json:"delivery,omitempty"`
	// scaling says how the replica count follows the queue.
	// +optional
	// +kubebuilder:default={}
	Scaling ScalingSpec `json:"scaling,omitempty"`
}

// BacklogStatus is the backlog and its parts at the last decision.
type BacklogStatus struct {
	// total is the counted backlog (visible, plus in flight and delayed when counted).
	Total int64 `json:"total"`
	// visible, inFlight and delayed are SQS's approximate counts.
	Visible  int64 `json:"visible"`
	InFlight int64 `json:"inFlight"`
	Delayed  int64 `json:"delayed"`
	// observedAt is when SQS reported them.
	// +optional
	ObservedAt *metav1.Time `json:"observedAt,omitempty"`
}

// ConsumerStatus is what Millrace observed and decided.
type ConsumerStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready, Reconciling, Stalled, Active, Degraded, Paused.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// deployment is the name of the Deployment Millrace renders for the handler.
	// +optional
	Deployment string `json:"deployment,omitempty"`
	// target is the workload whose replicas the Consumer drives: Deployment/<name> or
	// StatefulSet/<name>.
	// +optional
	Target string `json:"target,omitempty"`
	// replicas is the Deployment's current replica count.
	// +optional
	Replicas int32 `json:"replicas"`
	// readyReplicas is how many pods are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas"`
	// desiredReplicas is the scaling decision.
	// +optional
	DesiredReplicas int32 `json:"desiredReplicas"`
	// backlog at the last decision.
	// +optional
	Backlog *BacklogStatus `json:"backlog,omitempty"`
	// lastScaleTime is when the replica count last changed.
	// +optional
	LastScaleTime *metav1.Time `json:"lastScaleTime,omitempty"`
	// lastScaleReason says why.
	// +optional
	LastScaleReason string `json:"lastScaleReason,omitempty"`
}

// Consumer runs a handler for a queue's messages as a Deployment autoscaled on queue depth.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=millrace
// +kubebuilder:printcolumn:name="Queue",type=string,JSONPath=`.spec.queueRef.name`
// +kubebuilder:printcolumn:name="Backlog",type=integer,JSONPath=`.status.backlog.total`
// +kubebuilder:printcolumn:name="Desired",type=integer,JSONPath=`.status.desiredReplicas`
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.conditions[?(@.type=="Active")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.status.target`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.lastScaleReason`,priority=1
type Consumer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// +required
	Spec ConsumerSpec `json:"spec"`
	// +optional
	Status ConsumerStatus `json:"status,omitempty"`
}

// ConsumerList is a list of Consumers.
// +kubebuilder:object:root=true
type ConsumerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Consumer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Consumer{}, &ConsumerList{})
}

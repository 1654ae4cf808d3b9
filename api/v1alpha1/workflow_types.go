package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WorkflowSpec declares a state machine in the Amazon States Language.
type WorkflowSpec struct {
	// definition is the state machine: the JSON of a Step Functions definition, written as YAML or
	// JSON (StartAt, States, ...). Validated by the operator; errors name the JSON path of the field.
	// +required
	// +kubebuilder:validation:Type=object
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	Definition apiextensionsv1.JSON `json:"definition"`

	// historyLimit is how many finished WorkflowRuns of this Workflow are kept (default 50).
	// +optional
	// +kubebuilder:default=50
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=10000
	HistoryLimit *int32 `json:"historyLimit,omitempty"`

	// http lets the gateway start runs (POST /v1/namespaces/{namespace}/workflows/{name}/runs) and
	// read them; nothing is exposed by default.
	// +optional
	HTTP *WorkflowHTTP `json:"http,omitempty"`
}

// WorkflowHTTP says whether the gateway exposes a Workflow.
type WorkflowHTTP struct {
	// enabled exposes the Workflow (callers still need RBAC: create on workflows/runs to start a
	// run, get on workflows/runs to read one).
	Enabled bool `json:"enabled"`
	// rateLimit bounds the runs the gateway starts for this Workflow (beyond it: 429).
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`
}

// WorkflowStatus reports the validation of the definition.
type WorkflowStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// conditions: Ready (the definition is valid) or Stalled (it is not; the message lists every
	// error with its JSON path).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// states is the number of top-level states.
	// +optional
	States int32 `json:"states,omitempty"`
	// startAt is the first state.
	// +optional
	StartAt string `json:"startAt,omitempty"`
	// errors lists every validation error ("<json path>: <message>"), at most 50.
	// +optional
	// +listType=atomic
	Errors []string `json:"errors,omitempty"`
}

// Workflow is a state machine whose runs (WorkflowRun) execute on Kubernetes.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=millrace,shortName=wf
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="States",type=integer,JSONPath=`.status.states`
// +kubebuilder:printcolumn:name="Start-At",type=string,JSONPath=`.status.startAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
type Workflow struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// +required
	Spec WorkflowSpec `json:"spec"`
	// +optional
	Status WorkflowStatus `json:"status,omitempty"`
}

// WorkflowList is a list of Workflows.
// +kubebuilder:object:root=true
type WorkflowList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Workflow `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Workflow{}, &WorkflowList{})
}

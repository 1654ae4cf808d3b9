package v1alpha1

import (
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RunPhase is where a WorkflowRun is.
// +kubebuilder:validation:Enum=Pending;Running;Succeeded;Failed;TimedOut;Aborted
type RunPhase string

const (
	RunPending   RunPhase = "Pending"
	RunRunning   RunPhase = "Running"
	RunSucceeded RunPhase = "Succeeded"
	RunFailed    RunPhase = "Failed"
	RunTimedOut  RunPhase = "TimedOut"
	RunAborted   RunPhase = "Aborted"
)

// WorkflowReference names a Workflow in the same namespace.
type WorkflowReference struct {
	// name of the Workflow.
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
}

// ParentRunReference names the run whose DISTRIBUTED Map state started a child run, and the
// iteration the child runs.
type ParentRunReference struct {
	// name of the parent WorkflowRun (same namespace).
	// +required
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// uid of the parent WorkflowRun.
	// +required
	// +kubebuilder:validation:MinLength=1
	UID string `json:"uid"`
	// mapState is the name of the DISTRIBUTED Map state whose ItemProcessor the child runs, as
	// pinned by the parent.
	// +required
	// +kubebuilder:validation:MinLength=1
	MapState string `json:"mapState"`
	// item is the iteration's index (the batch's, with an ItemBatcher).
	// +required
	// +kubebuilder:validation:Minimum=0
	Item int32 `json:"item"`
	// key identifies this start of the iteration in the parent's engine state.
	// +required
	// +kubebuilder:validation:MinLength=1
	Key string `json:"key"`
	// signature is the manager's proof that it created this child run: an HMAC, with the
	// manager's task-token key, of the parent's UID, the Map state, the item, the key and the
	// child's name. A run whose parentRef does not carry a valid one is not run as a child, and
	// no parent reads it.
	// +optional
	Signature string `json:"signature,omitempty"`
}

// WorkflowRunSpec starts one execution of a Workflow.
// +kubebuilder:validation:XValidation:rule="has(self.parentRef) == has(oldSelf.parentRef) && (!has(self.parentRef) || self.parentRef == oldSelf.parentRef)",message="parentRef is immutable",fieldPath=".parentRef"
// +kubebuilder:validation:XValidation:rule="self.workflowRef == oldSelf.workflowRef",message="workflowRef is immutable",fieldPath=".workflowRef"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.abort) || !oldSelf.abort || (has(self.abort) && self.abort) || (has(self.redrive) && self.redrive > (has(oldSelf.redrive) ? oldSelf.redrive : 0))",message="abort cannot be undone, except in the update that raises redrive",fieldPath=".abort"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.redrive) || (has(self.redrive) && self.redrive >= oldSelf.redrive)",message="redrive cannot decrease: raise it by one to ask for a redrive",fieldPath=".redrive"
type WorkflowRunSpec struct {
	// workflowRef names the Workflow to run. Immutable.
	// +required
	WorkflowRef WorkflowReference `json:"workflowRef"`
	// input is the execution's input document (default {}). Read once, when the run starts.
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Input *apiextensionsv1.JSON `json:"input,omitempty"`
	// abort stops the run (phase Aborted). It cannot be undone, except in the update that raises
	// redrive (so that the redriven run can be aborted again); an abort stops the run once, and
	// does not stop it again after a redrive.
	// +optional
	Abort bool `json:"abort,omitempty"`
	// redrive asks for a redrive each time it is raised (e.g. from 0 to 1): a Failed, TimedOut or
	// Aborted run goes on from the state where it stopped, keeping what succeeded, if its
	// Workflow's definition is the one it started with (status.definitionHash). A refused redrive
	// is reported by a RedriveRefused Event and the Redrive condition, and is not tried again
	// until redrive is raised again. It cannot decrease (default 0).
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000000
	Redrive int32 `json:"redrive,omitempty"`
	// parentRef is set on the child runs of a DISTRIBUTED Map state (by the controller, with an
	// owner reference to the parent): the run executes the Map state's ItemProcessor, as the
	// parent pinned it, and the parent reads its end. Immutable.
	// +optional
	ParentRef *ParentRunReference `json:"parentRef,omitempty"`
}

// ActiveState is a state a run is in.
type ActiveState struct {
	// name of the state; for states inside Parallel branches or Map items, path gives the
	// position, e.g. "Fulfil[1].Ship".
	Name string `json:"name"`
	// +optional
	Path string `json:"path,omitempty"`
	// attempt of a Task (1 for the first execution).
	// +optional
	Attempt int32 `json:"attempt,omitempty"`
	// since when the state was entered.
	// +optional
	Since *metav1.Time `json:"since,omitempty"`
	// until when a Wait state or a retry delay lasts, or the Task's timeout.
	// +optional
	Until *metav1.Time `json:"until,omitempty"`
}

// FanOutProgress summarizes a running Parallel or Map state: its iterations are counted, not
// listed.
type FanOutProgress struct {
	// name of the state; path gives its position when nested, e.g. "Orders[3].Lines".
	Name string `json:"name"`
	// +optional
	Path string `json:"path,omitempty"`
	// total branches or items.
	Total int32 `json:"total"`
	// succeeded iterations so far.
	Succeeded int32 `json:"succeeded"`
	// running iterations (a Map runs at most MaxConcurrency, and never more than 40, at once).
	Running int32 `json:"running"`
	// pending iterations, not started yet.
	Pending int32 `json:"pending"`
}

// HistoryEvent is one transition.
type HistoryEvent struct {
	Time  metav1.Time `json:"time"`
	State string      `json:"state"`
	// type: Entered, Exited, Failed, Retrying, Caught, Redriven, SUCCEEDED, FAILED, TIMED_OUT,
	// ABORTED.
	Type string `json:"type"`
	// +optional
	Info string `json:"info,omitempty"`
}

// TaskHeartbeat is the last heartbeat of a running task attempt.
type TaskHeartbeat struct {
	// task is the attempt: "<state>/<path>/<attempt>".
	Task string      `json:"task"`
	Time metav1.Time `json:"time"`
}

// WorkflowRunStatus is every transition of the run, as the operator recorded it.
type WorkflowRunStatus struct {
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// +optional
	Phase RunPhase `json:"phase,omitempty"`
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// currentState is the top-level state the run is in.
	// +optional
	CurrentState string `json:"currentState,omitempty"`
	// activeStates are the states being executed (several inside Parallel and Map states).
	// +optional
	// +listType=atomic
	ActiveStates []ActiveState `json:"activeStates,omitempty"`
	// activeStatesTotal counts the active states when there are more than activeStates lists
	// (at most 100).
	// +optional
	ActiveStatesTotal int32 `json:"activeStatesTotal,omitempty"`
	// fanOuts summarize the running Parallel and Map states.
	// +optional
	// +listType=atomic
	FanOuts []FanOutProgress `json:"fanOuts,omitempty"`
	// history holds the latest transitions (at most 100); historyTotal counts all of them.
	// +optional
	// +listType=atomic
	History []HistoryEvent `json:"history,omitempty"`
	// +optional
	HistoryTotal int64 `json:"historyTotal,omitempty"`
	// output of a Succeeded run.
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Output *apiextensionsv1.JSON `json:"output,omitempty"`
	// error and cause of a Failed, TimedOut or Aborted run.
	// +optional
	Error string `json:"error,omitempty"`
	// +optional
	Cause string `json:"cause,omitempty"`
	// definitionHash identifies the definition the run started with ("sha256:<hex>" of its
	// canonical JSON): a redrive needs the Workflow's definition to have the same.
	// +optional
	DefinitionHash string `json:"definitionHash,omitempty"`
	// redriveCount counts the redrives of the run ($$.Execution.RedriveCount).
	// +optional
	RedriveCount int32 `json:"redriveCount,omitempty"`
	// redriveDate is when the latest redrive happened.
	// +optional
	RedriveDate *metav1.Time `json:"redriveDate,omitempty"`
	// lastHandledRedrive is the latest spec.redrive the controller acted on (redrove the run or
	// refused to): a redrive is asked for while spec.redrive is greater.
	// +optional
	LastHandledRedrive int32 `json:"lastHandledRedrive,omitempty"`
	// abortedAtRedrive is status.redriveCount when spec.abort stopped the run: the same
	// spec.abort does not stop the run again once it has been redriven.
	// +optional
	AbortedAtRedrive *int32 `json:"abortedAtRedrive,omitempty"`
	// definition is the Workflow definition the run started with (a run pins it).
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Definition *apiextensionsv1.JSON `json:"definition,omitempty"`
	// engine is the interpreter's state between events (internal).
	// +optional
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	Engine *apiextensionsv1.JSON `json:"engine,omitempty"`
	// dispatched lists the task attempts already sent (state/path/attempt keys), so a restart
	// does not send them again.
	// +optional
	// +listType=atomic
	Dispatched []string `json:"dispatched,omitempty"`
	// heartbeats are the last heartbeats of running tasks with HeartbeatSeconds.
	// +optional
	// +listType=atomic
	Heartbeats []TaskHeartbeat `json:"heartbeats,omitempty"`
}

// WorkflowRun is one execution of a Workflow.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=millrace,shortName=wfr
// +kubebuilder:printcolumn:name="Workflow",type=string,JSONPath=`.spec.workflowRef.name`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.currentState`
// +kubebuilder:printcolumn:name="Redrives",type=integer,JSONPath=`.status.redriveCount`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Error",type=string,JSONPath=`.status.error`,priority=1
type WorkflowRun struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// +required
	Spec WorkflowRunSpec `json:"spec"`
	// +optional
	Status WorkflowRunStatus `json:"status,omitempty"`
}

// WorkflowRunList is a list of WorkflowRuns.
// +kubebuilder:object:root=true
type WorkflowRunList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WorkflowRun `json:"items"`
}

func init() {
	SchemeBuilder.Register(&WorkflowRun{}, &WorkflowRunList{})
}

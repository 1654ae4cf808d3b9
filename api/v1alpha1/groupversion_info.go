// Package v1alpha1 holds the millrace.io/v1alpha1 API: the namespaced Queue, Consumer, Workflow and
// WorkflowRun a tenant writes, and the cluster-scoped TenantPolicy an administrator writes.
// +kubebuilder:object:generate=true
// +groupName=millrace.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every Millrace kind.
	GroupVersion = schema.GroupVersion{Group: "millrace.io", Version: "v1alpha1"}

	// SchemeBuilder registers the Millrace kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the Millrace kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

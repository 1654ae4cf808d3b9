package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TenantPolicySpec grants the namespaces it lists what Millrace refuses tenants by default. It is
// cluster-scoped, so only a cluster administrator writes it: a tenant with rights in its own
// namespace can neither create one nor widen one. Several policies may list one namespace; their
// grants add up.
type TenantPolicySpec struct {
	// namespaces this policy applies to (exact names).
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1000
	// +kubebuilder:validation:items:MaxLength=63
	// +kubebuilder:validation:items:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +listType=set
	Namespaces []string `json:"namespaces"`

	// queues grants explicit SQS queue names, adoption of existing queues and foreign dead-letter
	// queues.
	// +optional
	Queues *TenantQueuePolicy `json:"queues,omitempty"`

	// http grants millrace:http workflow tasks destinations (the manager must also run with
	// --http-tasks; without a grant every destination is refused).
	// +optional
	HTTP *TenantHTTPPolicy `json:"http,omitempty"`

	// aws chooses the AWS account, region and IAM role that manage the Queues of these namespaces:
	// the manager assumes the role (STS AssumeRole, session name millrace-<namespace>) to create,
	// update, delete and read the depth of their queues, and to send their workflow task messages.
	// Without it the manager's own identity and region do. Consumers' pods always use their own
	// identity. Two policies that map one namespace to different identities stall its Queues.
	// +optional
	AWS *TenantAWSPolicy `json:"aws,omitempty"`
}

// TenantAWSPolicy is the AWS identity that manages a namespace's queues.
type TenantAWSPolicy struct {
	// roleARN is the IAM role the manager assumes; its account is the account of the queues. Its
	// trust policy must let the manager's identity assume it (README, "One AWS account (and role) per namespace").
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$`
	RoleARN string `json:"roleARN"`

	// region of the queues (default: the manager's --region).
	// +optional
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[a-z]{2}(-[a-z]+)+-[0-9]+$`
	Region string `json:"region,omitempty"`

	// externalID is handed to AssumeRole when the role's trust policy requires one (sts:ExternalId).
	// +optional
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=1224
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9+=,.@:/_-]+$`
	ExternalID string `json:"externalID,omitempty"`
}

// TenantQueuePolicy is what a namespace's Queues may do beyond their generated names.
type TenantQueuePolicy struct {
	// queueNamePrefixes are the prefixes a Queue's spec.queueName may start with. Without one, a
	// Queue of these namespaces may not set spec.queueName (its SQS name is generated and cannot
	// collide with another namespace's).
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=80
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9_-]+(\.fifo)?$`
	// +listType=set
	QueueNamePrefixes []string `json:"queueNamePrefixes,omitempty"`

	// allowAdoption lets Queues of these namespaces set adoptionPolicy: Adopt and take over an
	// existing SQS queue that no Millrace Queue owns (its name must still be allowed: generated, or
	// starting with one of queueNamePrefixes). Default false.
	// +optional
	AllowAdoption bool `json:"allowAdoption,omitempty"`

	// deadLetterARNs are the queue ARNs that spec.deadLetter.arn may name (exact, or ending in '*'
	// to allow a prefix). Queues of the same namespace are always allowed by reference.
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=256
	// +kubebuilder:validation:items:Pattern=`^arn:[a-z0-9-]+:sqs:[a-z0-9-*]*:[0-9*]*:[A-Za-z0-9_.*-]{1,85}$`
	// +listType=set
	DeadLetterARNs []string `json:"deadLetterARNs,omitempty"`

	// kmsKeys are the customer-managed KMS keys spec.encryption.kmsKeyID may name: a key id, an
	// alias (alias/...) or an ARN, written exactly as the Queue writes it, or ending in '*' to allow
	// a prefix (e.g. "arn:aws:kms:eu-west-1:123456789012:key/*"). SQS's own key, alias/aws/sqs, is
	// always allowed; without a grant no other key is (another team's key would be used through
	// Millrace's AWS identity).
	// +optional
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=2048
	// +listType=set
	KMSKeys []string `json:"kmsKeys,omitempty"`
}

// TenantHTTPPolicy is where millrace:http tasks of a namespace may connect.
type TenantHTTPPolicy struct {
	// destinations a task may connect to. A host rule admits only public addresses (loopback,
	// link-local, private, the cluster's ranges and the cloud metadata addresses are refused
	// whatever the host resolves to); a cidr rule admits exactly its range, private or not.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	// +listType=atomic
	Destinations []HTTPDestination `json:"destinations"`
}

// HTTPDestination is one allowed destination: a host name (or "*.suffix") or an IP range, on
// some ports.
// +kubebuilder:validation:XValidation:rule="has(self.host) != has(self.cidr)",message="exactly one of host and cidr must be set"
type HTTPDestination struct {
	// host is a DNS name ("api.example.com") or a wildcard for its subdomains ("*.example.com").
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Host string `json:"host,omitempty"`

	// cidr is an IPv4 or IPv6 range ("203.0.113.0/24", "2001:db8::/32"); an address alone is a
	// range of one.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="isCIDR(self) || isIP(self)",message="must be an IP address or a CIDR range"
	CIDR string `json:"cidr,omitempty"`

	// ports the destination may be reached on (default: 443 and 80).
	// +optional
	// +kubebuilder:validation:MaxItems=20
	// +kubebuilder:validation:items:Minimum=1
	// +kubebuilder:validation:items:Maximum=65535
	// +listType=set
	Ports []int32 `json:"ports,omitempty"`
}

// TenantPolicy grants namespaces exceptions to Millrace's tenant defaults: explicit queue names,
// queue adoption, foreign dead-letter queues and outbound HTTP destinations; and maps them to the
// AWS account, region and IAM role that manage their queues.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster,categories=millrace
// +kubebuilder:printcolumn:name="Namespaces",type=string,JSONPath=`.spec.namespaces`
// +kubebuilder:printcolumn:name="Adoption",type=boolean,JSONPath=`.spec.queues.allowAdoption`
// +kubebuilder:printcolumn:name="Role",type=string,JSONPath=`.spec.aws.roleARN`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type TenantPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// +required
	Spec TenantPolicySpec `json:"spec"`
}

// TenantPolicyList is a list of TenantPolicies.
// +kubebuilder:object:root=true
type TenantPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []TenantPolicy `json:"items"`
}

func init() {
	SchemeBuilder.Register(&TenantPolicy{}, &TenantPolicyList{})
}

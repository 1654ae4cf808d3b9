// Package awsidentity hands out the SQS client that manages one namespace's queues: the manager's
// own identity, or the IAM role an administrator mapped the namespace to (a TenantPolicy's
// spec.aws), assumed with STS AssumeRole under a session name that names the namespace, so that
// CloudTrail in the queue's account says which namespace acted. Assumed credentials are cached per
// namespace and role and refreshed before they expire: a namespace costs one AssumeRole call per
// credential lifetime (an hour by default), not one per SQS call.
package awsidentity

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/prometheus/client_golang/prometheus"
)

// Role is an IAM role to manage a namespace's queues with.
type Role struct {
	// ARN of the role; its account is the account of the queues.
	ARN string
	// Region of the queues; empty is the manager's region.
	Region string
	// ExternalID is handed to AssumeRole when the role's trust policy asks for one.
	ExternalID string
}

// Options configure Clients.
type Options struct {
	// STSEndpoint overrides the STS endpoint (an interface VPC endpoint; a test's stand-in).
	STSEndpoint string
	// Duration is the lifetime asked for assumed credentials (default 1h, the default maximum
	// session duration of a role); Refresh is how long before expiry they are renewed (default
	// 5 min, jittered by up to half of it).
	Duration, Refresh time.Duration
	// Registerer receives millrace_sts_assume_role_calls_total (nil: not registered).
	Registerer prometheus.Registerer
}

// Clients caches one SQS client per namespace mapped to a role.
type Clients struct {
	own   *sqs.Client
	opts  Options
	sts   stscreds.AssumeRoleAPIClient
	calls *prometheus.CounterVec

	mu          sync.Mutex
	byNamespace map[string]assumed
}

type assumed struct {
	role   Role
	client *sqs.Client
}

// New returns the clients of namespaces: own for those without a role. own is the manager's own
// client: its credentials call STS, and the clients of roles take its region (unless the role says
// another), endpoint, transport and metrics.
func New(own *sqs.Client, opts Options) *Clients {
	if opts.Duration <= 0 {
		opts.Duration = time.Hour
	}
	if opts.Refresh <= 0 {
		opts.Refresh = 5 * time.Minute
	}
	c := &Clients{
		own:         own,
		opts:        opts,
		byNamespace: map[string]assumed{},
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "millrace_sts_assume_role_calls_total",
			Help: "STS AssumeRole calls the manager made for namespaces mapped to an IAM role, by role and result.",
		}, []string{"role", "result"}),
	}
	base := own.Options()
	stsClient := sts.NewFromConfig(aws.Config{Region: base.Region, Credentials: base.Credentials}, func(o *sts.Options) {
		if opts.STSEndpoint != "" {
			o.BaseEndpoint = aws.String(opts.STSEndpoint)
		}
	})
	c.sts = countingSTS{api: stsClient, calls: c.calls}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(c.calls)
	}
	return c
}

// For returns the SQS client for namespace's queues: the manager's own without a role, else one
// whose credentials come from assuming role (made once per namespace and role, and kept).
func (c *Clients) For(namespace string, role *Role) *sqs.Client {
	if role == nil || role.ARN == "" {
		return c.own
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.byNamespace[namespace]; ok && a.role == *role {
		return a.client
	}
	o := c.own.Options()
	if role.Region != "" {
		o.Region = role.Region
	}
	provider := stscreds.NewAssumeRoleProvider(c.sts, role.ARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = SessionName(namespace)
		o.Duration = c.opts.Duration
		if role.ExternalID != "" {
			o.ExternalID = aws.String(role.ExternalID)
		}
	})
	o.Credentials = aws.NewCredentialsCache(provider, func(cache *aws.CredentialsCacheOptions) {
		cache.ExpiryWindow = c.opts.Refresh
		cache.ExpiryWindowJitterFrac = 0.5
	})
	client := sqs.New(o)
	// One entry per namespace: a namespace mapped to another role replaces its client.
	c.byNamespace[namespace] = assumed{role: *role, client: client}
	return client
}

// SessionName is the AssumeRole session name for a namespace: "millrace-<namespace>", cut to the
// 64 characters STS allows (namespace names hold only characters STS accepts).
func SessionName(namespace string) string {
	name := "millrace-" + namespace
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

// countingSTS counts AssumeRole calls by role and result.
type countingSTS struct {
	api   stscreds.AssumeRoleAPIClient
	calls *prometheus.CounterVec
}

func (s countingSTS) AssumeRole(ctx context.Context, in *sts.AssumeRoleInput, opts ...func(*sts.Options)) (*sts.AssumeRoleOutput, error) {
	out, err := s.api.AssumeRole(ctx, in, opts...)
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.calls.WithLabelValues(aws.ToString(in.RoleArn), result).Inc()
	return out, err
}

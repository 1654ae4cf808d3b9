// Package awsidentity hands out the SQS client that manages one namespace's queues: the manager's
// own identity, or the IAM role an administrator mapped the namespace to (a TenantPolicy's
// spec.aws), assumed with STS AssumeRole under a session name that names the namespace, so that
// CloudTrail in the queue's account says which namespace acted. Assumed credentials are cached per
// namespace and role and refreshed before they expire: a namespace costs one AssumeRole call per
// credential lifetime (an hour by default), not one per SQS call. A role that cannot be assumed
// is asked again only after a backoff that doubles with each failure (1 s up to 5 min by default,
// reset by a success): in between, the namespace's SQS calls fail at once with the last error,
// so a broken mapping never floods STS (and never throttles the refreshes of other namespaces).
package awsidentity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
	// FailureBackoff is how long a role that could not be assumed is not asked again (default
	// 1s); it doubles with each failure in a row up to MaxFailureBackoff (default 5 min) and
	// resets on success.
	FailureBackoff, MaxFailureBackoff time.Duration
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
	if opts.FailureBackoff <= 0 {
		opts.FailureBackoff = time.Second
	}
	if opts.MaxFailureBackoff <= 0 {
		opts.MaxFailureBackoff = 5 * time.Minute
	}
	opts.MaxFailureBackoff = max(opts.MaxFailureBackoff, opts.FailureBackoff)
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
	// The cache keeps credentials but not failures: the backoff in front of the provider keeps a
	// role that refuses from being asked on every SQS call.
	guarded := &backoffProvider{
		provider: provider, namespace: namespace, role: role.ARN,
		min: c.opts.FailureBackoff, max: c.opts.MaxFailureBackoff, now: time.Now,
	}
	o.Credentials = aws.NewCredentialsCache(guarded, func(cache *aws.CredentialsCacheOptions) {
		cache.ExpiryWindow = c.opts.Refresh
		cache.ExpiryWindowJitterFrac = 0.5
	})
	client := sqs.New(o)
	// One entry per namespace: a namespace mapped to another role replaces its client.
	c.byNamespace[namespace] = assumed{role: *role, client: client}
	return client
}

// maxSessionName is the longest RoleSessionName STS accepts.
const maxSessionName = 64

// SessionName is the AssumeRole session name for a namespace: "millrace-<namespace>" (namespace
// names hold only characters STS accepts). A name longer than the 64 characters STS allows keeps
// its first 55 characters and ends in "-" and 8 hex digits of the SHA-256 of the namespace, so
// that long namespaces sharing a prefix still get distinct session names.
func SessionName(namespace string) string {
	name := "millrace-" + namespace
	if len(name) <= maxSessionName {
		return name
	}
	sum := sha256.Sum256([]byte(namespace))
	suffix := "-" + hex.EncodeToString(sum[:])[:8]
	return name[:maxSessionName-len(suffix)] + suffix
}

// backoffProvider stands in front of a role's AssumeRole provider: after a failure, the role is
// not asked again before the backoff has passed, and Retrieve fails at once with the last error.
// aws.CredentialsCache caches credentials but not failures, and its single flight only merges
// concurrent calls: without this, every SQS call of a namespace whose role cannot be assumed
// (depth readings, task sends and their retries) would be an AssumeRole call.
type backoffProvider struct {
	provider  aws.CredentialsProvider
	namespace string
	role      string
	min, max  time.Duration
	now       func() time.Time

	mu       sync.Mutex
	lastErr  error
	failedAt time.Time
	backoff  time.Duration // zero after a success
}

func (b *backoffProvider) Retrieve(ctx context.Context) (aws.Credentials, error) {
	b.mu.Lock()
	defer b.mu.Unlock() // one AssumeRole at a time per namespace and role
	if b.lastErr != nil {
		if wait := b.backoff - b.now().Sub(b.failedAt); wait > 0 {
			return aws.Credentials{}, &BackoffError{Namespace: b.namespace, Role: b.role, Retry: wait, Err: b.lastErr}
		}
	}
	creds, err := b.provider.Retrieve(ctx)
	if err != nil {
		if ctx.Err() != nil {
			// The caller gave up; that says nothing about the role.
			return creds, err
		}
		if b.backoff == 0 {
			b.backoff = b.min
		} else {
			b.backoff = min(b.backoff*2, b.max)
		}
		b.lastErr, b.failedAt = err, b.now()
		return creds, err
	}
	b.lastErr, b.backoff = nil, 0
	return creds, nil
}

// BackoffError is the error of a namespace's SQS call made while its role, which could not be
// assumed, is not asked again yet. It wraps the last AssumeRole error.
type BackoffError struct {
	Namespace, Role string
	// Retry is how long until the role is asked again.
	Retry time.Duration
	Err   error
}

func (e *BackoffError) Error() string {
	return fmt.Sprintf("IAM role %s of namespace %s could not be assumed; not asking STS again for %s (backing off after failures): %v",
		e.Role, e.Namespace, e.Retry.Round(time.Millisecond), e.Err)
}

func (e *BackoffError) Unwrap() error { return e.Err }

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

// Package tenancy decides what a namespace's tenants may do beyond Millrace's defaults, and which
// AWS identity manages their queues, from the cluster-scoped TenantPolicies an administrator wrote. By default a tenant gets generated queue
// names, no adoption, dead-letter queues of its own namespace only, SQS's own KMS key only, and no outbound HTTP; a
// TenantPolicy listing the namespace adds exceptions, and the grants of several policies add up.
// Everything here is pure: the controllers load the policies and ask.
package tenancy

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// Grants is what the policies listing one namespace allow it.
type Grants struct {
	Namespace         string
	QueueNamePrefixes []string
	AllowAdoption     bool
	DeadLetterARNs    []string
	KMSKeys           []string
	Destinations      []Destination
	// Policies names the policies that contributed, for messages.
	Policies []string

	// aws is the AWS identity the policies map the namespace to (nil: the manager's own), and
	// awsFrom the policies that map it; awsConflict is set when two of them disagree.
	aws         *AWSIdentity
	awsFrom     []string
	awsConflict bool
}

// AWSIdentity is the IAM role, region and external id that manage a namespace's queues.
type AWSIdentity struct {
	RoleARN, Region, ExternalID string
}

// Destination is one allowed outbound HTTP destination: a host pattern or a prefix, on ports.
type Destination struct {
	// Host is an exact name or "*.suffix"; empty for a range.
	Host   string
	Prefix netip.Prefix
	Ports  []int
}

// DefaultPorts are the ports of a destination that names none.
var DefaultPorts = []int{443, 80}

// For merges the grants of every policy that lists ns. Destinations that fail to parse (the CRD's
// validation should have refused them) are skipped: a bad rule never widens access.
func For(ns string, policies []millracev1.TenantPolicy) Grants {
	g := Grants{Namespace: ns}
	for _, p := range policies {
		if !slices.Contains(p.Spec.Namespaces, ns) {
			continue
		}
		g.Policies = append(g.Policies, p.Name)
		if q := p.Spec.Queues; q != nil {
			g.QueueNamePrefixes = append(g.QueueNamePrefixes, q.QueueNamePrefixes...)
			g.AllowAdoption = g.AllowAdoption || q.AllowAdoption
			g.DeadLetterARNs = append(g.DeadLetterARNs, q.DeadLetterARNs...)
			g.KMSKeys = append(g.KMSKeys, q.KMSKeys...)
		}
		if a := p.Spec.AWS; a != nil {
			id := AWSIdentity{RoleARN: a.RoleARN, Region: a.Region, ExternalID: a.ExternalID}
			if g.aws != nil && *g.aws != id {
				g.awsConflict = true
			}
			if g.aws == nil {
				g.aws = &id
			}
			g.awsFrom = append(g.awsFrom, p.Name)
		}
		if h := p.Spec.HTTP; h != nil {
			for _, d := range h.Destinations {
				if dest, ok := parseDestination(d); ok {
					g.Destinations = append(g.Destinations, dest)
				}
			}
		}
	}
	return g
}

func parseDestination(d millracev1.HTTPDestination) (Destination, bool) {
	dest := Destination{Host: strings.ToLower(strings.TrimSuffix(d.Host, "."))}
	for _, p := range d.Ports {
		dest.Ports = append(dest.Ports, int(p))
	}
	if len(dest.Ports) == 0 {
		dest.Ports = DefaultPorts
	}
	if d.CIDR == "" {
		return dest, dest.Host != ""
	}
	if p, err := netip.ParsePrefix(d.CIDR); err == nil {
		dest.Prefix = p.Masked()
		return dest, true
	}
	if a, err := netip.ParseAddr(d.CIDR); err == nil {
		dest.Prefix = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		return dest, true
	}
	return Destination{}, false
}

// AWS is the identity that manages the namespace's queues: nil for the manager's own. Policies
// that map the namespace to different identities are an error: which account a queue lives in is
// never decided by the order of policies.
func (g Grants) AWS() (*AWSIdentity, error) {
	if g.awsConflict {
		return nil, fmt.Errorf("TenantPolicies %s map namespace %s to different AWS identities (spec.aws); an administrator must keep one", strings.Join(g.awsFrom, ", "), g.Namespace)
	}
	return g.aws, nil
}

// QueueName says whether a Queue may use an explicit SQS name (spec.queueName).
func (g Grants) QueueName(name string) error {
	for _, p := range g.QueueNamePrefixes {
		if strings.HasPrefix(name, p) {
			return nil
		}
	}
	if len(g.QueueNamePrefixes) == 0 {
		return fmt.Errorf("spec.queueName: namespace %s may not name its SQS queues (no TenantPolicy grants it queueNamePrefixes); remove spec.queueName to use the generated name", g.Namespace)
	}
	return fmt.Errorf("spec.queueName: %q does not start with a prefix namespace %s is granted (%s)", name, g.Namespace, strings.Join(g.QueueNamePrefixes, ", "))
}

// Adoption says whether a Queue may take over an existing SQS queue.
func (g Grants) Adoption() error {
	if g.AllowAdoption {
		return nil
	}
	return fmt.Errorf("spec.adoptionPolicy: namespace %s may not adopt existing SQS queues (no TenantPolicy grants it allowAdoption)", g.Namespace)
}

// DeadLetterARN says whether spec.deadLetter.arn may name a queue outside the namespace.
func (g Grants) DeadLetterARN(arn string) error {
	if grantedByPattern(g.DeadLetterARNs, arn) {
		return nil
	}
	return fmt.Errorf("spec.deadLetter.arn: %s is not a dead-letter queue namespace %s is granted; use deadLetter.queueRef to a Queue of this namespace, or ask an administrator to list the ARN in a TenantPolicy's queues.deadLetterARNs", arn, g.Namespace)
}

// SQSManagedKMSKey is the AWS-managed key of SQS in every account, which any queue may use.
const SQSManagedKMSKey = "alias/aws/sqs"

// KMSKey says whether spec.encryption.kmsKeyID may name a key: SQS's own, or one a TenantPolicy
// grants the namespace (exact, or by a prefix ending in '*').
func (g Grants) KMSKey(id string) error {
	if id == SQSManagedKMSKey || grantedByPattern(g.KMSKeys, id) {
		return nil
	}
	return fmt.Errorf("spec.encryption.kmsKeyID: %s is not a KMS key namespace %s is granted; use %s (or encryption.type SQSManaged), or ask an administrator to list the key in a TenantPolicy's queues.kmsKeys", id, g.Namespace, SQSManagedKMSKey)
}

// grantedByPattern says whether value is one of patterns, or starts with one ending in '*'.
func grantedByPattern(patterns []string, value string) bool {
	for _, p := range patterns {
		if p == value || (strings.HasSuffix(p, "*") && strings.HasPrefix(value, strings.TrimSuffix(p, "*"))) {
			return true
		}
	}
	return false
}

// HostAllowed says whether a host name matches a host rule on port.
func (g Grants) HostAllowed(host string, port int) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, d := range g.Destinations {
		if d.Host == "" || !slices.Contains(d.Ports, port) {
			continue
		}
		if d.Host == host || (strings.HasPrefix(d.Host, "*.") && strings.HasSuffix(host, d.Host[1:]) && len(host) > len(d.Host)-1) {
			return true
		}
	}
	return false
}

// HasRanges says whether any cidr rule is granted (a name may then resolve into one).
func (g Grants) HasRanges() bool {
	return slices.ContainsFunc(g.Destinations, func(d Destination) bool { return d.Host == "" })
}

// AddressAllowed says whether a cidr rule admits addr on port.
func (g Grants) AddressAllowed(addr netip.Addr, port int) bool {
	addr = addr.Unmap()
	for _, d := range g.Destinations {
		if d.Host == "" && d.Prefix.Contains(addr) && slices.Contains(d.Ports, port) {
			return true
		}
	}
	return false
}

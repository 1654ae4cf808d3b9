package tenancy_test

import (
	"net/netip"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/tenancy"
)

func policy(name string, spec millracev1.TenantPolicySpec) millracev1.TenantPolicy {
	return millracev1.TenantPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
}

var policies = []millracev1.TenantPolicy{
	policy("team-a", millracev1.TenantPolicySpec{Namespaces: []string{"a"}, Queues: &millracev1.TenantQueuePolicy{
		QueueNamePrefixes: []string{"team-a-"}, DeadLetterARNs: []string{"arn:aws:sqs:eu-west-1:111122223333:shared-dlq", "arn:aws:sqs:eu-west-1:111122223333:a-*"},
		KMSKeys: []string{"alias/team-a", "arn:aws:kms:eu-west-1:111122223333:key/a-*"}}}),
	policy("adopters", millracev1.TenantPolicySpec{Namespaces: []string{"a", "b"}, Queues: &millracev1.TenantQueuePolicy{AllowAdoption: true},
		HTTP: &millracev1.TenantHTTPPolicy{Destinations: []millracev1.HTTPDestination{
			{Host: "*.example.com"}, {Host: "api.partner.io", Ports: []int32{8443}}, {CIDR: "10.0.0.0/8", Ports: []int32{8080}}, {CIDR: "192.0.2.7"}, {CIDR: "not-a-range"}}}}),
}

func TestGrantsAddUpAcrossPolicies(t *testing.T) {
	a := tenancy.For("a", policies)
	if len(a.Policies) != 2 || !a.AllowAdoption || len(a.QueueNamePrefixes) != 1 || len(a.Destinations) != 4 {
		t.Fatalf("grants of a: %+v", a)
	}
	b := tenancy.For("b", policies)
	if len(b.QueueNamePrefixes) != 0 || b.Adoption() != nil {
		t.Fatalf("grants of b: %+v", b)
	}
	none := tenancy.For("c", policies)
	if none.Adoption() == nil || none.QueueName("anything") == nil || none.DeadLetterARN("arn:aws:sqs:eu-west-1:111122223333:shared-dlq") == nil {
		t.Fatalf("a namespace no policy lists is granted something: %+v", none)
	}
}

func TestQueueNamesDeadLetterARNsAndKMSKeys(t *testing.T) {
	a := tenancy.For("a", policies)
	for _, tc := range []struct {
		name  string
		err   error
		allow bool
	}{
		{"a queue name with the granted prefix is allowed", a.QueueName("team-a-orders"), true},
		{"a queue name without the granted prefix is refused", a.QueueName("team-b-orders"), false},
		{"an exact dead-letter ARN is allowed", a.DeadLetterARN("arn:aws:sqs:eu-west-1:111122223333:shared-dlq"), true},
		{"a dead-letter ARN under a granted prefix is allowed", a.DeadLetterARN("arn:aws:sqs:eu-west-1:111122223333:a-dlq"), true},
		{"another namespace's queue as dead-letter ARN is refused", a.DeadLetterARN("arn:aws:sqs:eu-west-1:111122223333:victim-orders"), false},
		{"an exact ARN does not match as a prefix", a.DeadLetterARN("arn:aws:sqs:eu-west-1:111122223333:shared-dlq2"), false},
		{"a granted KMS alias is allowed", a.KMSKey("alias/team-a"), true},
		{"a KMS key under a granted prefix is allowed", a.KMSKey("arn:aws:kms:eu-west-1:111122223333:key/a-1234"), true},
		{"SQS's own KMS key is always allowed", tenancy.For("c", policies).KMSKey("alias/aws/sqs"), true},
		{"another team's KMS alias is refused", a.KMSKey("alias/team-b"), false},
		{"another team's KMS key by ARN is refused", a.KMSKey("arn:aws:kms:eu-west-1:111122223333:key/b-1234"), false},
		{"an exact alias does not match as a prefix", a.KMSKey("alias/team-a2"), false},
		{"a namespace without a grant may name no customer key", tenancy.For("c", policies).KMSKey("alias/team-a"), false},
	} {
		if (tc.err == nil) != tc.allow {
			t.Errorf("%s: %v", tc.name, tc.err)
		}
	}
}

func TestDestinations(t *testing.T) {
	a := tenancy.For("a", policies)
	for _, tc := range []struct {
		name  string
		got   bool
		allow bool
	}{
		{"a subdomain of a wildcard on a default port", a.HostAllowed("api.example.com", 443), true},
		{"a wildcard does not match its own apex", a.HostAllowed("example.com", 443), false},
		{"a wildcard does not match a look-alike suffix", a.HostAllowed("evilexample.com", 443), false},
		{"a wildcard on a port it does not name", a.HostAllowed("api.example.com", 22), false},
		{"an exact host on its port, any case, trailing dot", a.HostAllowed("API.Partner.io.", 8443), true},
		{"an exact host on a default port it replaced", a.HostAllowed("api.partner.io", 443), false},
		{"an address inside a granted range and port", a.AddressAllowed(netip.MustParseAddr("10.1.2.3"), 8080), true},
		{"an IPv4-mapped address inside a granted range", a.AddressAllowed(netip.MustParseAddr("::ffff:10.1.2.3"), 8080), true},
		{"an address inside a granted range on another port", a.AddressAllowed(netip.MustParseAddr("10.1.2.3"), 443), false},
		{"a single address granted on default ports", a.AddressAllowed(netip.MustParseAddr("192.0.2.7"), 80), true},
		{"a host rule never admits a bare address", a.AddressAllowed(netip.MustParseAddr("93.184.215.14"), 443), false},
	} {
		if tc.got != tc.allow {
			t.Errorf("%s: got %v", tc.name, tc.got)
		}
	}
}

func TestAWSIdentities(t *testing.T) {
	roleA := &millracev1.TenantAWSPolicy{RoleARN: "arn:aws:iam::111111111111:role/a"}
	roleB := &millracev1.TenantAWSPolicy{RoleARN: "arn:aws:iam::222222222222:role/b", Region: "eu-west-1", ExternalID: "xid"}
	cases := []struct {
		name     string
		policies []millracev1.TenantPolicy
		want     *tenancy.AWSIdentity
		conflict bool
	}{
		{"a namespace no policy maps uses the manager's identity", []millracev1.TenantPolicy{
			policy("grants", millracev1.TenantPolicySpec{Namespaces: []string{"ns"}, Queues: &millracev1.TenantQueuePolicy{AllowAdoption: true}}),
		}, nil, false},
		{"a namespace mapped to a role gets that role, region and external id", []millracev1.TenantPolicy{
			policy("b", millracev1.TenantPolicySpec{Namespaces: []string{"ns"}, AWS: roleB}),
		}, &tenancy.AWSIdentity{RoleARN: roleB.RoleARN, Region: "eu-west-1", ExternalID: "xid"}, false},
		{"a mapping of another namespace does not apply", []millracev1.TenantPolicy{
			policy("a", millracev1.TenantPolicySpec{Namespaces: []string{"other"}, AWS: roleA}),
		}, nil, false},
		{"two policies that map the namespace alike agree", []millracev1.TenantPolicy{
			policy("a1", millracev1.TenantPolicySpec{Namespaces: []string{"ns"}, AWS: roleA}),
			policy("a2", millracev1.TenantPolicySpec{Namespaces: []string{"ns", "x"}, AWS: roleA}),
		}, &tenancy.AWSIdentity{RoleARN: roleA.RoleARN}, false},
		{"two policies that map the namespace to different roles are an error, whatever their order", []millracev1.TenantPolicy{
			policy("a", millracev1.TenantPolicySpec{Namespaces: []string{"ns"}, AWS: roleA}),
			policy("b", millracev1.TenantPolicySpec{Namespaces: []string{"ns"}, AWS: roleB}),
		}, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tenancy.For("ns", tc.policies).AWS()
			if (err != nil) != tc.conflict {
				t.Fatalf("err = %v, conflict expected: %v", err, tc.conflict)
			}
			if (got == nil) != (tc.want == nil) || (got != nil && *got != *tc.want) {
				t.Fatalf("identity = %+v, want %+v", got, tc.want)
			}
		})
	}
}

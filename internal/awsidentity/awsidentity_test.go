package awsidentity_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/millrace-io/millrace/internal/awsidentity"
	"github.com/millrace-io/millrace/internal/testenv/fakeaws"
)

const (
	roleA = "arn:aws:iam::111111111111:role/millrace-team-a"
	roleB = "arn:aws:iam::222222222222:role/millrace-team-b"
)

// setup returns clients whose STS is the FAKE STS of internal/testenv/fakeaws on 127.0.0.1.
func setup(t *testing.T) (*awsidentity.Clients, *sqs.Client, *fakeaws.STS) {
	t.Helper()
	fake := fakeaws.StartSTS()
	t.Cleanup(fake.Close)
	fake.Trust(roleA, "")
	fake.Trust(roleB, "team-b-external-id")
	base := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIAMANAGER", "manager-secret", "")}
	own := sqs.NewFromConfig(base)
	return awsidentity.New(own, awsidentity.Options{STSEndpoint: fake.URL}), own, fake
}

func retrieve(t *testing.T, c *sqs.Client) aws.Credentials {
	t.Helper()
	creds, err := c.Options().Credentials.Retrieve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

func TestANamespaceWithoutARoleUsesTheManagersOwnClient(t *testing.T) {
	clients, own, fake := setup(t)
	if got := clients.For("plain", nil); got != own {
		t.Fatal("a namespace without a role got another client than the manager's")
	}
	if n := len(fake.Calls()); n != 0 {
		t.Fatalf("%d AssumeRole calls for a namespace without a role", n)
	}
}

func TestAssumedCredentialsAreReusedAndNameTheNamespace(t *testing.T) {
	clients, _, fake := setup(t)
	a := clients.For("team-a", &awsidentity.Role{ARN: roleA})
	for range 5 {
		if clients.For("team-a", &awsidentity.Role{ARN: roleA}) != a {
			t.Fatal("a second client for the same namespace and role")
		}
		if creds := retrieve(t, a); !strings.HasPrefix(creds.AccessKeyID, "ASIAFAKE111111111111") {
			t.Fatalf("credentials %s are not the role's", creds.AccessKeyID)
		}
	}
	b := clients.For("team-b", &awsidentity.Role{ARN: roleB, Region: "eu-west-1", ExternalID: "team-b-external-id"})
	retrieve(t, b)
	if b.Options().Region != "eu-west-1" {
		t.Fatalf("team-b's client is in %s, want eu-west-1", b.Options().Region)
	}
	calls := fake.Calls()
	if len(calls) != 2 {
		t.Fatalf("%d AssumeRole calls, want one per namespace: %+v", len(calls), calls)
	}
	want := []fakeaws.AssumeRoleCall{
		{RoleARN: roleA, SessionName: "millrace-team-a", Duration: time.Hour, CallerKey: "AKIAMANAGER", Region: "us-east-1"},
		{RoleARN: roleB, SessionName: "millrace-team-b", ExternalID: "team-b-external-id", Duration: time.Hour, CallerKey: "AKIAMANAGER", Region: "us-east-1"},
	}
	for i := range want {
		if calls[i] != want[i] {
			t.Errorf("call %d = %+v, want %+v", i, calls[i], want[i])
		}
	}
}

func TestANamespaceMappedToAnotherRoleGetsNewCredentials(t *testing.T) {
	clients, _, fake := setup(t)
	first := clients.For("team", &awsidentity.Role{ARN: roleA})
	retrieve(t, first)
	second := clients.For("team", &awsidentity.Role{ARN: roleB, ExternalID: "team-b-external-id"})
	if second == first {
		t.Fatal("the namespace kept the client of its former role")
	}
	if creds := retrieve(t, second); !strings.HasPrefix(creds.AccessKeyID, "ASIAFAKE222222222222") {
		t.Fatalf("credentials %s are not the new role's", creds.AccessKeyID)
	}
	if n := len(fake.Calls()); n != 2 {
		t.Fatalf("%d AssumeRole calls, want 2", n)
	}
}

func TestARoleThatRefusesTheManagerYieldsAnError(t *testing.T) {
	clients, _, _ := setup(t)
	c := clients.For("team-b", &awsidentity.Role{ARN: roleB}) // the trust policy wants an external id
	if _, err := c.Options().Credentials.Retrieve(context.Background()); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Fatalf("err = %v, want AccessDenied", err)
	}
}

// A role that refuses the manager is asked at most once per backoff period, however many SQS
// calls the namespace makes: the SDK's credential cache does not keep failures.
func TestARoleThatRefusesIsNotAskedOnEverySQSCall(t *testing.T) {
	clients, _, fake := setup(t)
	c := clients.For("team-b", &awsidentity.Role{ARN: roleB}) // refused: no external id
	var backoff *awsidentity.BackoffError
	for i := range 100 {
		_, err := c.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{
			QueueUrl: aws.String("http://127.0.0.1:1/222222222222/orders"),
		}, func(o *sqs.Options) { o.BaseEndpoint = aws.String("http://127.0.0.1:1") })
		if err == nil {
			t.Fatalf("call %d succeeded with a role that refuses", i)
		}
		if !strings.Contains(err.Error(), "AccessDenied") {
			t.Fatalf("call %d: err = %v, want the AccessDenied of STS", i, err)
		}
		if i > 0 && errors.As(err, &backoff) && !strings.Contains(err.Error(), "not asking STS again") {
			t.Fatalf("call %d: the backoff error does not say so: %v", i, err)
		}
	}
	if backoff == nil {
		t.Error("no call failed fast with a BackoffError")
	}
	if n := len(fake.Calls()); n > 2 {
		t.Fatalf("%d AssumeRole calls for 100 SQS calls, want at most 2", n)
	}
}

// After the backoff, the role is asked again; a success ends the backoff.
func TestARoleIsAskedAgainAfterTheBackoffAndASuccessResetsIt(t *testing.T) {
	fake := fakeaws.StartSTS()
	t.Cleanup(fake.Close)
	base := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("AKIAMANAGER", "manager-secret", "")}
	clients := awsidentity.New(sqs.NewFromConfig(base), awsidentity.Options{
		STSEndpoint: fake.URL, FailureBackoff: 50 * time.Millisecond, MaxFailureBackoff: time.Second,
	})
	c := clients.For("team-a", &awsidentity.Role{ARN: roleA}) // not trusted yet
	for range 3 {
		if _, err := c.Options().Credentials.Retrieve(context.Background()); err == nil {
			t.Fatal("credentials of a role not trusted yet")
		}
	}
	if n := len(fake.Calls()); n != 1 {
		t.Fatalf("%d AssumeRole calls within the backoff, want 1", n)
	}
	fake.Trust(roleA, "")
	time.Sleep(60 * time.Millisecond)
	if creds := retrieve(t, c); !strings.HasPrefix(creds.AccessKeyID, "ASIAFAKE111111111111") {
		t.Fatalf("credentials %s are not the role's", creds.AccessKeyID)
	}
	if n := len(fake.Calls()); n != 2 {
		t.Fatalf("%d AssumeRole calls, want 2", n)
	}
}

func TestSessionNames(t *testing.T) {
	long := strings.Repeat("n", 63)
	for ns, want := range map[string]string{
		"orders":                "millrace-orders",
		strings.Repeat("n", 55): "millrace-" + strings.Repeat("n", 55), // exactly 64
	} {
		if got := awsidentity.SessionName(ns); got != want {
			t.Errorf("SessionName(%q) = %q, want %q", ns, got, want)
		}
	}
	// Long namespaces that share their first 55 characters get distinct names of at most 64.
	seen := map[string]string{}
	for _, ns := range []string{long, long[:62] + "a", long[:56], long[:60] + "-x"} {
		got := awsidentity.SessionName(ns)
		if len(got) > 64 || !strings.HasPrefix(got, "millrace-"+long[:40]) {
			t.Errorf("SessionName(%q) = %q (%d characters)", ns, got, len(got))
		}
		if other, ok := seen[got]; ok {
			t.Errorf("namespaces %q and %q share the session name %q", other, ns, got)
		}
		seen[got] = ns
		if again := awsidentity.SessionName(ns); again != got {
			t.Errorf("SessionName(%q) is not stable: %q then %q", ns, got, again)
		}
	}
}

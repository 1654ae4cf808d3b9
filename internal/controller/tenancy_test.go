package controller_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/controller"
	"github.com/millrace-io/millrace/internal/sqsx"
)

// grant writes a TenantPolicy for namespace ns (removed when the test ends).
func grant(t testing.TB, ns string, spec millracev1.TenantPolicySpec) {
	t.Helper()
	spec.Namespaces = []string{ns}
	p := &millracev1.TenantPolicy{ObjectMeta: metav1.ObjectMeta{Name: "grant-" + ns}, Spec: spec}
	create(t, p)
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), p) })
}

func grantHTTP(t testing.TB, ns string, dests ...millracev1.HTTPDestination) {
	grant(t, ns, millracev1.TenantPolicySpec{HTTP: &millracev1.TenantHTTPPolicy{Destinations: dests}})
}

func portOf(t testing.TB, rawURL string) int32 {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return int32(p)
}

// imdsStandIn plays the cloud metadata service's IMDSv2 exchange on 127.0.0.1 (a PUT for a session
// token, then a GET of the node role's credentials with it) and counts the requests that reach it.
func imdsStandIn(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			_, _ = w.Write([]byte("imds-session-token"))
		case r.Header.Get("X-Aws-Ec2-Metadata-Token") == "imds-session-token":
			_, _ = w.Write([]byte(`{"AccessKeyId":"ASIANODEROLE","SecretAccessKey":"node-role-secret"}`))
		default:
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

const imdsWorkflow = `{"StartAt":"Token","States":{
	"Token":{"Type":"Task","Resource":"millrace:http","Parameters":{"Method":"PUT","Url":"%[1]s/latest/api/token",
		"Headers":{"X-aws-ec2-metadata-token-ttl-seconds":"21600"}},"ResultSelector":{"token.$":"$.Body"},"ResultPath":"$.imds","Next":"Credentials"},
	"Credentials":{"Type":"Task","Resource":"millrace:http","Parameters":{"Url":"%[2]s",
		"Headers":{"X-aws-ec2-metadata-token.$":"$.imds.token"}},"End":true}}}`

// A tenant's millrace:http task cannot make the manager fetch the node role's credentials from
// the metadata service: not directly, not through a redirect from a destination it was granted.
func TestHTTPTaskCannotReachTheMetadataService(t *testing.T) {
	imds, hits := imdsStandIn(t)
	innocent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, imds.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer innocent.Close()
	ns := newNamespace(t)
	grantHTTP(t, ns, millracev1.HTTPDestination{CIDR: "127.0.0.1/32", Ports: []int32{portOf(t, innocent.URL)}})
	for name, base := range map[string]string{"direct": imds.URL, "redirected": innocent.URL} {
		create(t, newWorkflow(ns, name, fmt.Sprintf(imdsWorkflow, base, base+"/latest/meta-data/iam/security-credentials/node")))
		create(t, newRun(ns, name, name, `{}`))
		run := waitRun(t, ns, name, millracev1.RunFailed)
		if run.Status.Error != controller.ErrForbidden || run.Status.CurrentState != "Token" {
			t.Errorf("%s: failed with %q in %s (%s), want %s in Token", name, run.Status.Error, run.Status.CurrentState, run.Status.Cause, controller.ErrForbidden)
		}
		if run.Status.Output != nil && strings.Contains(string(run.Status.Output.Raw), "node-role-secret") {
			t.Errorf("%s: the node's credentials are in the run's output: %s", name, run.Status.Output.Raw)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the metadata stand-in was reached %d times", n)
	}
	if n := testutil.ToFloat64(runs.Metrics.HTTPCalls.WithLabelValues(ns, "forbidden")); n != 2 {
		t.Fatalf("millrace_http_task_calls_total{result=forbidden} = %v, want 2", n)
	}
}

// Without a grant a namespace's HTTP tasks reach nothing, not even a public-looking address.
func TestHTTPTaskWithoutAGrantIsForbidden(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "call", `{"StartAt":"Call","States":{"Call":{"Type":"Task","Resource":"millrace:http","Parameters":{"Url":"https://93.184.215.14/"},"End":true}}}`))
	create(t, newRun(ns, "call", "call", `{}`))
	run := waitRun(t, ns, "call", millracev1.RunFailed)
	if run.Status.Error != controller.ErrForbidden || !strings.Contains(run.Status.Cause, "no HTTP destinations") {
		t.Fatalf("failed with %q: %s", run.Status.Error, run.Status.Cause)
	}
}

// A tenant cannot name another team's SQS queue, adopt it, read it or delete it with its Queue:
// an explicit queueName needs a granted prefix, adoption needs allowAdoption, and an adopted
// queue outlives its Queue unless the spec says Delete.
func TestTenantCannotTakeOverAQueueItDidNotCreate(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	victimName := "victim-" + ns
	victim, err := sqsClient.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(victimName), Tags: map[string]string{"team": "victim"}})
	if err != nil {
		t.Fatal(err)
	}
	victimURL := aws.ToString(victim.QueueUrl)
	if _, err := sqsClient.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: victim.QueueUrl, MessageBody: aws.String("victim's order")}); err != nil {
		t.Fatal(err)
	}
	q := newQueue(ns, "grab", millracev1.QueueSpec{QueueName: victimName, AdoptionPolicy: millracev1.AdoptionPolicyAdopt})
	create(t, q)
	stalled := waitCondition(t, ns, "grab", millracev1.ConditionStalled, metav1.ConditionTrue, controller.ReasonNameNotAllowed)
	if msg := meta.FindStatusCondition(stalled.Status.Conditions, millracev1.ConditionStalled).Message; !strings.Contains(msg, "spec.queueName") {
		t.Fatalf("the message does not name the field: %q", msg)
	}
	if stalled.Status.QueueURL != "" {
		t.Fatalf("the tenant's Queue learned the victim's URL: %s", stalled.Status.QueueURL)
	}

	// Granted the name but not adoption: still refused, without touching the queue.
	grant(t, ns, millracev1.TenantPolicySpec{Queues: &millracev1.TenantQueuePolicy{QueueNamePrefixes: []string{"victim-"}}})
	waitCondition(t, ns, "grab", millracev1.ConditionStalled, metav1.ConditionTrue, controller.ReasonAdoptionNotAllowed)
	if got := tags(t, victimURL); got["team"] != "victim" || got[sqsx.OwnerTag] != "" {
		t.Fatalf("the victim's tags changed: %v", got)
	}
	deleteAndWaitGone(t, q)
	if _, ok := queueExists(victimName); !ok {
		t.Fatal("the victim's queue was deleted with the tenant's Queue")
	}
	if n := attributes(t, victimURL)["ApproximateNumberOfMessages"]; n != "1" {
		t.Fatalf("the victim's queue holds %s messages, want 1", n)
	}
}

// adoptExisting creates an SQS queue named prefix+ns outside Millrace, grants ns that prefix and
// adoption, and has a Queue named prefix without its dash adopt it, with deletion as given.
func adoptExisting(t *testing.T, ns, prefix string, deletion millracev1.DeletionPolicy) (string, *millracev1.Queue) {
	t.Helper()
	name := prefix + ns
	if _, err := sqsClient.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name), Tags: map[string]string{"team": "owner"}}); err != nil {
		t.Fatal(err)
	}
	grant(t, ns, millracev1.TenantPolicySpec{Queues: &millracev1.TenantQueuePolicy{QueueNamePrefixes: []string{prefix}, AllowAdoption: true}})
	q := newQueue(ns, strings.TrimSuffix(prefix, "-"), millracev1.QueueSpec{QueueName: name, AdoptionPolicy: millracev1.AdoptionPolicyAdopt, DeletionPolicy: deletion})
	create(t, q)
	if got := waitReadyQueue(t, ns, q.Name); !got.Status.Adopted {
		t.Fatalf("not adopted: %+v", got.Status)
	}
	return name, q
}

// revokeAdoption takes allowAdoption back from the policy grant wrote for ns (the name prefix
// stays granted).
func revokeAdoption(t *testing.T, ns string) {
	t.Helper()
	p := &millracev1.TenantPolicy{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Name: "grant-" + ns}, p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Queues.AllowAdoption = false
	if err := k8s.Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// With adoption granted, an adopted queue is kept when its Queue goes (deletionPolicy unset).
func TestAnAdoptedQueueIsRetainedByDefault(t *testing.T) {
	name, q := adoptExisting(t, newNamespace(t), "shared-", "")
	deleteAndWaitGone(t, q)
	if _, ok := queueExists(name); !ok {
		t.Fatal("an adopted queue was deleted although deletionPolicy was not set to Delete")
	}
}

// A tenant cannot make another namespace's queue its dead-letter queue (and redrive forged
// messages into it); Millrace's queues admit as redrive sources only Queues of their namespace.
func TestTenantCannotRedriveIntoAnotherNamespacesQueue(t *testing.T) {
	victimNS, tenantNS := newNamespace(t), newNamespace(t)
	create(t, newQueue(victimNS, "tasks", millracev1.QueueSpec{}))
	victim := waitReadyQueue(t, victimNS, "tasks")
	if got := attributes(t, victim.Status.QueueURL)[sqsx.AttrRedriveAllowPolicy]; !sqsx.Equal(sqsx.AttrRedriveAllowPolicy, got, sqsx.RedriveAllow(nil)) {
		t.Fatalf("a queue with no sources allows %q", got)
	}
	create(t, newQueue(tenantNS, "forger", millracev1.QueueSpec{
		DeadLetter: &millracev1.DeadLetterSpec{ARN: victim.Status.QueueARN, MaxReceiveCount: 1}}))
	stalled := waitCondition(t, tenantNS, "forger", millracev1.ConditionStalled, metav1.ConditionTrue, controller.ReasonDeadLetterDenied)
	if msg := meta.FindStatusCondition(stalled.Status.Conditions, millracev1.ConditionStalled).Message; !strings.Contains(msg, "spec.deadLetter.arn") {
		t.Fatalf("the message does not name the field: %q", msg)
	}
	if _, ok := queueExists(sqsx.QueueName(tenantNS, "forger", millracev1.QueueSpec{})); ok {
		t.Fatal("the forger's queue was created with the victim as its dead-letter queue")
	}

	// A dead-letter queue of the tenant's own namespace admits exactly its sources.
	create(t, newQueue(tenantNS, "dlq", millracev1.QueueSpec{}))
	create(t, newQueue(tenantNS, "work", millracev1.QueueSpec{DeadLetter: &millracev1.DeadLetterSpec{QueueRef: &millracev1.QueueReference{Name: "dlq"}, MaxReceiveCount: 3}}))
	work := waitReadyQueue(t, tenantNS, "work")
	dlq := waitReadyQueue(t, tenantNS, "dlq")
	if len(dlq.Status.DeadLetterSources) != 1 || dlq.Status.DeadLetterSources[0] != "work" {
		t.Fatalf("status.deadLetterSources = %v", dlq.Status.DeadLetterSources)
	}
	expectAttributes(t, attributes(t, dlq.Status.QueueURL), map[string]string{sqsx.AttrRedriveAllowPolicy: sqsx.RedriveAllow([]string{work.Status.QueueARN})})
}

// An adopted queue that was retained kept the Queue's owner tag, so a new Queue of the same name
// claimed it again as if it had created it: without allowAdoption (revoked meanwhile), and with
// status.adopted false, so deleting that Queue deleted the other team's queue although
// deletionPolicy was never set to Delete. An adopted queue now carries millrace.io/adopted: taking
// it again is adopting it (Stalled without the grant), and deleting it needs the grant still.
func TestARetainedAdoptedQueueCannotBeReclaimedAndDeletedWithoutAdoption(t *testing.T) {
	ns := newNamespace(t)
	name, q := adoptExisting(t, ns, "shared-", "")
	deleteAndWaitGone(t, q)
	url, ok := queueExists(name)
	if !ok {
		t.Fatal("retained queue deleted")
	}
	revokeAdoption(t, ns)

	// The tenant creates the Queue again, adoptionPolicy Never (the default), no deletionPolicy.
	again := newQueue(ns, "shared", millracev1.QueueSpec{QueueName: name})
	create(t, again)
	var got *millracev1.Queue
	eventually(t, waitReady, func() error {
		got = getQueue(t, ns, "shared")
		for _, kind := range []string{millracev1.ConditionReady, millracev1.ConditionStalled} {
			if c := meta.FindStatusCondition(got.Status.Conditions, kind); c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == got.Generation {
				return nil
			}
		}
		return fmt.Errorf("neither Ready nor Stalled: %+v", got.Status.Conditions)
	})
	if c := meta.FindStatusCondition(got.Status.Conditions, millracev1.ConditionStalled); c == nil || c.Status != metav1.ConditionTrue || c.Reason != controller.ReasonAlreadyExists {
		t.Errorf("the retained queue was claimed again without adopting it: conditions %+v, status.adopted=%v, tags %v",
			got.Status.Conditions, got.Status.Adopted, tags(t, url))
	}
	deleteAndWaitGone(t, again)
	if _, ok := queueExists(name); !ok {
		t.Errorf("the other team's queue %s was DELETED with the second Queue (deletionPolicy never set to Delete, adoption revoked; %s=%s)",
			name, sqsx.OwnerTag, sqsx.OwnerValue("?", ns, "shared"))
	}
}

// Once adoption is taken back, a Queue that adopted a queue cannot delete it by setting
// deletionPolicy: Delete: deleting a queue that existed before Millrace needs the grant still.
func TestAnAdoptedQueueIsNotDeletedOnceAdoptionIsRevoked(t *testing.T) {
	ns := newNamespace(t)
	name, q := adoptExisting(t, ns, "legacy-", millracev1.DeletionPolicyDelete)
	revokeAdoption(t, ns)
	time.Sleep(time.Second) // the manager's cache sees the policy
	deleteAndWaitGone(t, q)
	if _, ok := queueExists(name); !ok {
		t.Fatal("the adopted queue was deleted after adoption was revoked")
	}
}

// A tenant cannot make its queue use another team's KMS key through Millrace's AWS identity: a
// customer-managed key needs a TenantPolicy grant (SQS's own key needs none), and the Queue stalls
// naming the field before any SQS call.
func TestTenantCannotUseAnotherTeamsKMSKey(t *testing.T) {
	ns := newNamespace(t)
	const theirs = "arn:aws:kms:us-east-1:000000000000:key/team-b-0001"
	create(t, newQueue(ns, "borrower", millracev1.QueueSpec{Encryption: &millracev1.EncryptionSpec{Type: millracev1.EncryptionKMS, KMSKeyID: theirs}}))
	stalled := waitCondition(t, ns, "borrower", millracev1.ConditionStalled, metav1.ConditionTrue, controller.ReasonKMSKeyDenied)
	if msg := meta.FindStatusCondition(stalled.Status.Conditions, millracev1.ConditionStalled).Message; !strings.Contains(msg, "spec.encryption.kmsKeyID") {
		t.Fatalf("the message does not name the field: %q", msg)
	}
	if _, ok := queueExists(sqsx.QueueName(ns, "borrower", stalled.Spec)); ok {
		t.Fatal("the queue was created with another team's key")
	}
	create(t, newQueue(ns, "own", millracev1.QueueSpec{Encryption: &millracev1.EncryptionSpec{Type: millracev1.EncryptionKMS, KMSKeyID: "alias/aws/sqs"}}))
	waitReadyQueue(t, ns, "own")

	// Granted, the same key is used.
	grant(t, ns, millracev1.TenantPolicySpec{Queues: &millracev1.TenantQueuePolicy{KMSKeys: []string{"arn:aws:kms:us-east-1:000000000000:key/team-b-*"}}})
	q := waitReadyQueue(t, ns, "borrower")
	expectAttributes(t, attributes(t, q.Status.QueueURL), map[string]string{"KmsMasterKeyId": theirs})
}

// A Consumer named like a Deployment it did not create never applies over it (no owner
// reference, no replica change, no dispatcher container added): it stalls and says why. The
// second Deployment has the selector Millrace renders, so applying over it would succeed.
func TestConsumerCannotTakeOverAnotherDeployment(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	create(t, newQueue(ns, "jobs", millracev1.QueueSpec{}))
	waitReadyQueue(t, ns, "jobs")
	for name, labels := range map[string]map[string]string{"web": {"app": "web"}, "api": {"millrace.io/consumer": "api"}} {
		dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: name + ":1"}}}}}}
		create(t, dep)
		create(t, newConsumer(ns, name, "jobs", fastScaling(0)))
		eventually(t, waitReady, func() error {
			c := &millracev1.Consumer{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, c); err != nil {
				return err
			}
			cond := meta.FindStatusCondition(c.Status.Conditions, millracev1.ConditionStalled)
			if cond == nil || cond.Reason != controller.ReasonNotOwned {
				return fmt.Errorf("%s: conditions %+v", name, c.Status.Conditions)
			}
			return nil
		})
		got := &appsv1.Deployment{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(dep), got); err != nil {
			t.Fatal(err)
		}
		if len(got.OwnerReferences) != 0 || *got.Spec.Replicas != 2 || len(got.Spec.Template.Spec.Containers) != 1 || len(got.Spec.Template.Spec.InitContainers) != 0 {
			t.Fatalf("%s was changed: owners %v, replicas %d, containers %d, init containers %d", name,
				got.OwnerReferences, *got.Spec.Replicas, len(got.Spec.Template.Spec.Containers), len(got.Spec.Template.Spec.InitContainers))
		}
	}
}

func TestTheAPIServerRejectsInvalidTenantPolicies(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec millracev1.TenantPolicySpec
		want string
	}{
		{"a policy for no namespace is rejected", millracev1.TenantPolicySpec{}, "spec.namespaces"},
		{"a destination with both a host and a range is rejected", millracev1.TenantPolicySpec{Namespaces: []string{"a"},
			HTTP: &millracev1.TenantHTTPPolicy{Destinations: []millracev1.HTTPDestination{{Host: "a.example.com", CIDR: "10.0.0.0/8"}}}}, "exactly one of host and cidr"},
		{"a range that does not parse is rejected", millracev1.TenantPolicySpec{Namespaces: []string{"a"},
			HTTP: &millracev1.TenantHTTPPolicy{Destinations: []millracev1.HTTPDestination{{CIDR: "10.0.0.0/33"}}}}, "must be an IP address or a CIDR range"},
		{"a host with a path is rejected", millracev1.TenantPolicySpec{Namespaces: []string{"a"},
			HTTP: &millracev1.TenantHTTPPolicy{Destinations: []millracev1.HTTPDestination{{Host: "a.example.com/x"}}}}, "spec.http.destinations[0].host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := k8s.Create(context.Background(), &millracev1.TenantPolicy{ObjectMeta: metav1.ObjectMeta{GenerateName: "invalid-"}, Spec: tc.spec})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error with %q, got %v", tc.want, err)
			}
		})
	}
}

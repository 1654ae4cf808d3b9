package accounts_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/controller"
	"github.com/millrace-io/millrace/internal/testenv"
	"github.com/millrace-io/millrace/internal/testenv/fakeaws"
)

func mapNamespace(t *testing.T, ns string, aws *millracev1.TenantAWSPolicy) {
	t.Helper()
	p := &millracev1.TenantPolicy{ObjectMeta: metav1.ObjectMeta{Name: "aws-" + ns}, Spec: millracev1.TenantPolicySpec{Namespaces: []string{ns}, AWS: aws}}
	create(t, p)
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), p) })
}

func queue(ns, name string) *millracev1.Queue {
	return &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
}

func getQueue(t testing.TB, ns, name string) *millracev1.Queue {
	t.Helper()
	q := &millracev1.Queue{}
	if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, q); err != nil {
		t.Fatal(err)
	}
	return q
}

func waitQueue(t *testing.T, ns, name, kind, reason string) *millracev1.Queue {
	t.Helper()
	var q *millracev1.Queue
	testenv.Eventually(t, settle, func() error {
		q = getQueue(t, ns, name)
		c := meta.FindStatusCondition(q.Status.Conditions, kind)
		if c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason {
			return fmt.Errorf("%s/%s: %s is %+v, want True %s", ns, name, kind, c, reason)
		}
		return nil
	})
	return q
}

// existsIn says whether account's own fauxqs holds a queue of that name in region.
func existsIn(account, region, name string) bool {
	_, err := direct[account].GetQueueUrl(context.Background(), &sqs.GetQueueUrlInput{QueueName: aws.String(name)},
		func(o *sqs.Options) { o.Region = region })
	return err == nil
}

func callsFor(account string) []fakeaws.SQSCall {
	var out []fakeaws.SQSCall
	for _, c := range front.Calls() {
		if c.Account == account {
			out = append(out, c)
		}
	}
	return out
}

func assumeCallsFor(session string) []fakeaws.AssumeRoleCall {
	var out []fakeaws.AssumeRoleCall
	for _, c := range fakeSTS.Calls() {
		if c.SessionName == session {
			out = append(out, c)
		}
	}
	return out
}

// Two namespaces mapped to two roles in two accounts, and one mapped to none: each Queue's SQS
// queue is created, read and deleted in its namespace's account, with the right role, session name,
// external id and region; credentials are assumed once per namespace and reused for every call,
// the depth readings included; the namespace without a mapping uses the manager's own identity.
func TestNamespacesMappedToRolesGetTheirQueuesInTheirAccounts(t *testing.T) {
	ctx := context.Background()
	nsA, nsB, nsOwn := newNamespace(t), newNamespace(t), newNamespace(t)
	mapNamespace(t, nsA, &millracev1.TenantAWSPolicy{RoleARN: roleA})
	mapNamespace(t, nsB, &millracev1.TenantAWSPolicy{RoleARN: roleB, Region: "eu-west-1", ExternalID: externalB})
	want := map[string]struct{ account, region string }{
		nsA:   {accountA, "us-east-1"},
		nsB:   {accountB, "eu-west-1"},
		nsOwn: {fakeaws.NativeAccount, "us-east-1"},
	}
	for ns := range want {
		create(t, queue(ns, "orders"))
		// A Consumer at zero reads the queue's depth through the same identity; it is Ready only
		// if those readings succeed.
		create(t, &millracev1.Consumer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "worker"}, Spec: millracev1.ConsumerSpec{
			QueueRef: millracev1.ConsumerQueueReference{Name: "orders"},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "handler", Image: "handler:1"}}}},
			Scaling:  millracev1.ScalingSpec{MinReplicas: ptr.To[int32](0), MaxReplicas: 1, PollInterval: "1s"},
		}})
	}
	for ns, w := range want {
		q := waitQueue(t, ns, "orders", millracev1.ConditionReady, controller.ReasonSynced)
		if !strings.Contains(q.Status.QueueURL, "/"+w.account+"/") {
			t.Errorf("%s: queue URL %s is not in account %s", ns, q.Status.QueueURL, w.account)
		}
		if wantARN := fmt.Sprintf("arn:aws:sqs:%s:%s:%s", w.region, w.account, q.Status.QueueName); q.Status.QueueARN != wantARN {
			t.Errorf("%s: queue ARN %s, want %s", ns, q.Status.QueueARN, wantARN)
		}
		for account := range direct {
			if got := existsIn(account, w.region, q.Status.QueueName); got != (account == w.account) {
				t.Errorf("%s: queue %s exists in account %s: %v", ns, q.Status.QueueName, account, got)
			}
		}
	}
	for ns := range want {
		testenv.Eventually(t, settle, func() error {
			c := &millracev1.Consumer{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "worker"}, c); err != nil {
				return err
			}
			if !meta.IsStatusConditionTrue(c.Status.Conditions, millracev1.ConditionReady) {
				return fmt.Errorf("%s: Consumer not Ready: %+v", ns, c.Status.Conditions)
			}
			return nil
		})
	}
	// Let the depth monitor read every queue a few more times.
	time.Sleep(10 * depthInterval)

	for _, c := range front.Calls() {
		if c.Refused {
			t.Errorf("a call was refused: %+v", c)
		}
	}
	for ns, w := range want {
		calls := callsFor(w.account)
		reads := 0
		for _, c := range calls {
			if c.Region != w.region {
				t.Errorf("%s: %s signed for region %s, want %s", ns, c.Operation, c.Region, w.region)
			}
			if c.Operation == "GetQueueAttributes" {
				reads++
			}
		}
		if reads < 5 {
			t.Errorf("%s: %d GetQueueAttributes calls in account %s, want the depth readings there", ns, reads, w.account)
		}
	}
	a, b := assumeCallsFor("millrace-"+nsA), assumeCallsFor("millrace-"+nsB)
	if len(a) != 1 || len(b) != 1 {
		t.Fatalf("AssumeRole calls: %d for %s, %d for %s; want one each, reused for %d and %d SQS calls",
			len(a), nsA, len(b), nsB, len(callsFor(accountA)), len(callsFor(accountB)))
	}
	if a[0].RoleARN != roleA || a[0].ExternalID != "" || b[0].RoleARN != roleB || b[0].ExternalID != externalB {
		t.Errorf("AssumeRole calls %+v and %+v do not name the mapped roles", a[0], b[0])
	}
	for _, c := range append(a, b...) {
		if c.CallerKey != "test" {
			t.Errorf("AssumeRole was called with key %s, not the manager's own identity", c.CallerKey)
		}
	}
	if n := len(assumeCallsFor("millrace-" + nsOwn)); n != 0 {
		t.Errorf("%d AssumeRole calls for the namespace without a mapping", n)
	}

	// Deleting a Queue deletes its queue in its account.
	q := getQueue(t, nsB, "orders")
	if err := k8s.Delete(ctx, q); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, settle, func() error {
		if existsIn(accountB, "eu-west-1", q.Status.QueueName) {
			return fmt.Errorf("queue %s still exists in account %s", q.Status.QueueName, accountB)
		}
		return nil
	})
}

// A workflow task that sends to its namespace's Queue sends with the namespace's identity.
func TestATaskMessageIsSentWithTheNamespacesIdentity(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	mapNamespace(t, ns, &millracev1.TenantAWSPolicy{RoleARN: roleA})
	create(t, queue(ns, "events"))
	q := waitQueue(t, ns, "events", millracev1.ConditionReady, controller.ReasonSynced)
	create(t, &millracev1.Workflow{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "notify"}, Spec: millracev1.WorkflowSpec{
		Definition: apiextensionsv1.JSON{Raw: []byte(`{"StartAt":"Send","States":{"Send":{"Type":"Task","Resource":"arn:aws:states:::sqs:sendMessage",
			"Parameters":{"Queue":"events","MessageBody":"hello"},"End":true}}}`)}}})
	create(t, &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "once"},
		Spec: millracev1.WorkflowRunSpec{WorkflowRef: millracev1.WorkflowReference{Name: "notify"}}})
	testenv.Eventually(t, settle, func() error {
		run := &millracev1.WorkflowRun{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "once"}, run); err != nil {
			return err
		}
		if run.Status.Phase != millracev1.RunSucceeded {
			return fmt.Errorf("run is %s (%s: %s)", run.Status.Phase, run.Status.Error, run.Status.Cause)
		}
		return nil
	})
	url, err := direct[accountA].GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(q.Status.QueueName)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := direct[accountA].ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: url.QueueUrl, WaitTimeSeconds: 1})
	if err != nil || len(out.Messages) != 1 || aws.ToString(out.Messages[0].Body) != "hello" {
		t.Fatalf("account %s's queue holds %+v (%v), want the task's message", accountA, out, err)
	}
}

// Two policies that map one namespace to different roles stall its Queues, before any SQS call.
func TestConflictingMappingsStallTheNamespacesQueues(t *testing.T) {
	ns := newNamespace(t)
	mapNamespace(t, ns, &millracev1.TenantAWSPolicy{RoleARN: roleA})
	second := &millracev1.TenantPolicy{ObjectMeta: metav1.ObjectMeta{Name: "second-" + ns},
		Spec: millracev1.TenantPolicySpec{Namespaces: []string{ns}, AWS: &millracev1.TenantAWSPolicy{RoleARN: roleB, ExternalID: externalB}}}
	create(t, second)
	t.Cleanup(func() { _ = k8s.Delete(context.Background(), second) })
	create(t, queue(ns, "orders"))
	q := waitQueue(t, ns, "orders", millracev1.ConditionStalled, controller.ReasonAWSIdentity)
	if msg := meta.FindStatusCondition(q.Status.Conditions, millracev1.ConditionStalled).Message; !strings.Contains(msg, second.Name) {
		t.Errorf("the message does not name the policies: %s", msg)
	}
	if n := len(assumeCallsFor("millrace-" + ns)); n != 0 {
		t.Errorf("%d AssumeRole calls for a namespace with conflicting mappings", n)
	}
	// The administrator removes one mapping: the Queue is created with the other at once.
	if err := k8s.Delete(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	q = waitQueue(t, ns, "orders", millracev1.ConditionReady, controller.ReasonSynced)
	if !strings.Contains(q.Status.QueueURL, "/"+accountA+"/") {
		t.Fatalf("queue URL %s is not in account %s", q.Status.QueueURL, accountA)
	}
}

// A tenant, with every right in its own namespace, can neither write a TenantPolicy (cluster-scoped)
// nor name a role in its Queue (the Queue has no such field: the API server refuses it).
func TestATenantCannotPickARole(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t)
	create(t, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenant-admin"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}})
	create(t, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tenant-admin"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "tenant-admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "tenant"}}})
	cfg := rest.CopyConfig(adminCfg)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: "tenant"}
	tenant, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	// Its rights hold in its namespace...
	if err := tenant.Create(ctx, queue(ns, "mine")); err != nil {
		t.Fatalf("the tenant cannot create a Queue in its namespace: %v", err)
	}
	// ...but a TenantPolicy is no namespace's.
	policy := &millracev1.TenantPolicy{ObjectMeta: metav1.ObjectMeta{Name: "self-service-" + ns},
		Spec: millracev1.TenantPolicySpec{Namespaces: []string{ns}, AWS: &millracev1.TenantAWSPolicy{RoleARN: roleA}}}
	if err := tenant.Create(ctx, policy); !apierrors.IsForbidden(err) {
		t.Fatalf("a tenant creating a TenantPolicy: %v, want Forbidden", err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": millracev1.GroupVersion.String(), "kind": "Queue",
		"metadata": map[string]any{"namespace": ns, "name": "smuggled"},
		"spec":     map[string]any{"aws": map[string]any{"roleARN": roleA}, "roleARN": roleA},
	}}
	err = tenant.Create(ctx, u, client.FieldValidation(metav1.FieldValidationStrict))
	if err == nil || !strings.Contains(err.Error(), "unknown field") {
		t.Fatalf("a Queue naming a role: %v, want refused as unknown fields", err)
	}
	q := waitQueue(t, ns, "mine", millracev1.ConditionReady, controller.ReasonSynced)
	if !strings.Contains(q.Status.QueueURL, "/"+fakeaws.NativeAccount+"/") {
		t.Fatalf("the tenant's queue %s is not in the manager's own account", q.Status.QueueURL)
	}
}

package realnode_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/hack/demo"
	"github.com/millrace-io/millrace/hack/realnode"
	"github.com/millrace-io/millrace/internal/testenv"
)

const (
	release = demo.Release
	system  = demo.SystemNamespace
	tenant  = demo.Tenant // the samples' namespace, Pod Security "restricted"
)

// TestTheDemoOnARealNode is test/e2e's demo with real pods: the images built by hack/images.sh,
// the chart installed with Helm into a real kubelet + containerd node (the manager and the gateway
// as pods), the SQS emulator on the node's bridge address, the samples in a namespace enforcing
// Pod Security "restricted". It asserts what test/e2e does, plus Ready on every kind, a manager
// pod deleted mid-run, and the gateway taking a ServiceAccount token; it logs the time from a
// burst to the first pod Ready and from an empty queue to zero pods.
func TestTheDemoOnARealNode(t *testing.T) {
	if os.Getenv("MILLRACE_REALNODE") != "1" {
		t.Skip("set MILLRACE_REALNODE=1 (make test-e2e-realnode) to start a real kubelet + containerd node")
	}
	skipWhereNoNodeCanRun(t, realnode.Check())
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	helm, err := testenv.HelmBinary()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	start := time.Now()
	build := exec.CommandContext(ctx, "bash", filepath.Join(root, "hack", "images.sh"), "manager", "dispatcher", "gateway", "handler", "pause", "caller")
	build.Dir, build.Stderr = root, os.Stderr
	if out, err := build.Output(); err != nil {
		t.Fatalf("hack/images.sh: %v %s", err, out)
	}
	t.Logf("images built in %.1fs", time.Since(start).Seconds())

	// Cleanups run last-registered first: fauxqs stops, then the node goes down, also on failure.
	node, err := realnode.Up(ctx, realnode.Config{Log: t.Logf})
	skipWhereNoNodeCanRun(t, err)
	t.Cleanup(func() {
		start := time.Now()
		node.Stop()
		t.Logf("node down in %.1fs", time.Since(start).Seconds())
	})
	fauxqs, err := testenv.StartFauxqsOn(realnode.NodeIP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fauxqs.Stop)
	t.Logf("node up in %.1fs (Ready %.1fs); fauxqs at %s", node.PodsReady.Seconds(), node.NodeReady.Seconds(), fauxqs.Endpoint)

	cfg, err := clientcmd.BuildConfigFromFlags("", node.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	logf.SetLogger(logr.Discard()) // the client's own logging is not this test's output
	k8s, err := client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpPods(t, cs)
		}
	})

	start = time.Now()
	if err := demo.InstallChart(ctx, k8s, demo.Install{Helm: helm, Chart: filepath.Join(root, "charts", "millrace"),
		Kubeconfig: node.Kubeconfig, SQSEndpoint: fauxqs.Endpoint}); err != nil {
		t.Fatal(err)
	}
	t.Logf("chart installed, manager and gateway Ready in %.1fs", time.Since(start).Seconds())

	if err := demo.ApplySamples(ctx, k8s, filepath.Join(root, "config", "samples")); err != nil {
		t.Fatal(err)
	}
	pods := demo.WatchConsumerPods(ctx, k8s, cs, "billing", t.TempDir())
	t.Cleanup(func() {
		pods.Stop()
		if t.Failed() {
			pods.Dump(t.Logf)
		}
	})

	testenv.UseLocalCredentials()
	sqsClient, err := fauxqs.Client(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	res, err := demo.Run(ctx, demo.Options{Client: k8s, SQS: sqsClient, Namespace: tenant, OutDir: t.TempDir(), Out: &progress,
		Timeout: 5 * time.Minute, Running: pods.Running, Handled: pods.Handled})
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}

	// What test/e2e asserts.
	for _, p := range res.Problems() {
		t.Error(p)
	}
	if t.Failed() {
		t.FailNow()
	}
	// Scale-in (4 -> 1 -> 0 while handlers sleep a second per batch) cut no batch short: a batch cut
	// short would come back after the visibility timeout and be handled twice.
	twice := 0
	for _, id := range res.Sent {
		if res.Handled[id] > 1 {
			twice++
		}
	}
	if twice > 0 {
		t.Errorf("%d orders were handled more than once: a scale-in cut a batch short?", twice)
	}
	t.Logf("scale-in: %d pods drained with batches in flight, none cut short (every order handled once)", pods.DrainedMidBatch())
	t.Logf("order-1 was handled %d times", pods.Charges("order-1"))

	// The Consumer was Ready with replicas running (from its Deployment), and pods came and went.
	firstReady, zeroAt, readyWithReplicas := pods.Timings(res.Drained)
	if !readyWithReplicas {
		t.Errorf("the Consumer was never Ready=True with replicas > 0")
	}
	if firstReady.IsZero() || zeroAt.IsZero() || res.Drained.IsZero() {
		t.Errorf("no timings: first pod Ready %v, queue drained %v, zero pods %v", firstReady, res.Drained, zeroAt)
	} else {
		t.Logf("TIMING burst -> first consumer pod Ready: %.2fs; empty queue -> zero pods: %.2fs (scaleToZeroDelay 5s, scale-down window 3s)",
			firstReady.Sub(res.Burst).Seconds(), zeroAt.Sub(res.Drained).Seconds())
	}

	// `kubectl wait --for=condition=Ready` (kubectl v1.37) on every kind.
	kubectl, err := testenv.KubectlBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range []string{"queue/orders", "queue/orders-dlq", "queue/payments", "queue/payments-dlq", "consumer/billing", "workflow/order", "workflowrun/order-1"} {
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", node.Kubeconfig, "-n", tenant, "wait", "--for=condition=Ready", "--timeout=60s", obj).CombinedOutput()
		if err != nil {
			t.Errorf("kubectl wait --for=condition=Ready %s: %v %s", obj, err, out)
		}
	}

	scaleInMidBatch(ctx, t, k8s, sqsClient, pods)
	managerRestartMidRun(ctx, t, k8s, pods)
	gatewayTakesAPodsToken(ctx, t, k8s, cs, pods)
}

// scaleInMidBatch proves the order preStop -> drain -> SIGTERM on the kubelet: three pods take
// batches whose handler works 4 s each (two at a time each, more waiting in the queue), and the
// Consumer is cut to one replica while they work.
// The two pods deleted mid-batch finish their batches before their handlers get SIGTERM: every
// message is handled exactly once, all within the visibility timeout (a batch cut short would come
// back only after it), and the queue ends empty (each message deleted).
func scaleInMidBatch(ctx context.Context, t *testing.T, k8s client.Client, sqsClient *sqs.Client, pods *demo.ConsumerPods) {
	setScaling := func(work string, minReplicas, maxReplicas int) {
		t.Helper()
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(millracev1.GroupVersion.WithKind("Consumer"))
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: tenant, Name: "billing"}, u); err != nil {
				return err
			}
			containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
			containers[0].(map[string]any)["env"] = []any{map[string]any{"name": "HANDLER_WORK", "value": work}}
			_ = unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers")
			_ = unstructured.SetNestedField(u.Object, int64(minReplicas), "spec", "scaling", "minReplicas")
			_ = unstructured.SetNestedField(u.Object, int64(maxReplicas), "spec", "scaling", "maxReplicas")
			return k8s.Update(ctx, u)
		}); err != nil {
			t.Fatal(err)
		}
	}
	readyPods := func(want int) {
		t.Helper()
		testenv.Eventually(t, 2*time.Minute, func() error {
			d := &appsv1.Deployment{}
			if err := k8s.Get(ctx, client.ObjectKey{Namespace: tenant, Name: "billing"}, d); err != nil {
				return err
			}
			if d.Status.UpdatedReplicas != int32(want) || d.Status.ReadyReplicas != int32(want) || d.Status.Replicas != int32(want) {
				return fmt.Errorf("billing: %d replicas, %d updated, %d ready; want %d", d.Status.Replicas, d.Status.UpdatedReplicas, d.Status.ReadyReplicas, want)
			}
			return nil
		})
	}
	setScaling("4s", 3, 3)
	readyPods(3)
	q := &millracev1.Queue{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: tenant, Name: "orders"}, q); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for b := 0; b < 12; b++ { // 12 batches of 10: two at a time on each of three pods, six waiting
		var entries []sqstypes.SendMessageBatchRequestEntry
		for i := 0; i < 10; i++ {
			entries = append(entries, sqstypes.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(fmt.Sprintf(`{"order":"scale-in-%d-%d"}`, b, i))})
		}
		out, err := sqsClient.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.Status.QueueURL), Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("sending: %v %+v", err, out)
		}
		for _, e := range out.Successful {
			ids = append(ids, aws.ToString(e.MessageId))
		}
	}
	sent := time.Now()
	drainedBefore := pods.DrainedMidBatch()
	time.Sleep(2 * time.Second) // the batches are received and handed over; the handlers work 4 s
	setScaling("4s", 0, 1)
	deadline := 25 * time.Second // under the queue's 30 s visibility timeout
	testenv.Eventually(t, deadline, func() error {
		handled := pods.Handled()
		for _, id := range ids {
			if handled[id] == 0 {
				return fmt.Errorf("message %s not handled yet", id)
			}
		}
		return nil
	})
	took := time.Since(sent)
	handled := pods.Handled()
	for _, id := range ids {
		if handled[id] != 1 {
			t.Errorf("message %s handled %d times: a batch cut short by the scale-in?", id, handled[id])
		}
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		attrs, err := sqsClient.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.Status.QueueURL),
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages, sqstypes.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
		if err != nil {
			return err
		}
		if v, n := attrs.Attributes["ApproximateNumberOfMessages"], attrs.Attributes["ApproximateNumberOfMessagesNotVisible"]; v != "0" || n != "0" {
			return fmt.Errorf("queue orders: %s visible, %s in flight; want every message deleted", v, n)
		}
		return nil
	})
	drained := pods.DrainedMidBatch() - drainedBefore
	if drained < 2 {
		t.Errorf("%d pods began draining with batches in flight; want the 2 removed by the scale-in", drained)
	}
	t.Logf("scale-in mid-batch: 3 -> 1 replicas while 120 messages were in 4 s batches; %d pods drained with batches in flight, every message handled once within %.1fs and deleted",
		drained, took.Seconds())
	setScaling("1s", 0, 20) // back to the demo's settings
}

// managerRestartMidRun deletes the manager's pod while a WorkflowRun waits for its Charge task
// (the Consumer wakes from zero): a new manager pod takes over and the run finishes, charged once.
func managerRestartMidRun(ctx context.Context, t *testing.T, k8s client.Client, pods *demo.ConsumerPods) {
	run := &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "order-2"},
		Spec: millracev1.WorkflowRunSpec{WorkflowRef: millracev1.WorkflowReference{Name: "order"},
			Input: &apiextensionsv1.JSON{Raw: []byte(`{"id":"order-2","amount":20}`)}}}
	if err := k8s.Create(ctx, run); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, time.Minute, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(run), run); err != nil {
			return err
		}
		if run.Status.CurrentState != "Charge" {
			return fmt.Errorf("run order-2 in %q %s, not yet in Charge", run.Status.CurrentState, run.Status.Phase)
		}
		return nil
	})
	old := &corev1.PodList{}
	if err := k8s.List(ctx, old, client.InNamespace(system), client.MatchingLabels{"app.kubernetes.io/component": "manager"}); err != nil || len(old.Items) != 1 {
		t.Fatalf("manager pods: %v %d", err, len(old.Items))
	}
	start := time.Now()
	if err := k8s.Delete(ctx, &old.Items[0]); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 3*time.Minute, func() error {
		list := &corev1.PodList{}
		if err := k8s.List(ctx, list, client.InNamespace(system), client.MatchingLabels{"app.kubernetes.io/component": "manager"}); err != nil {
			return err
		}
		for i := range list.Items {
			if list.Items[i].Name != old.Items[0].Name && demo.PodReady(&list.Items[i]) {
				return nil
			}
		}
		return errors.New("no new manager pod Ready")
	})
	replaced := time.Since(start)
	testenv.Eventually(t, 3*time.Minute, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(run), run); err != nil {
			return err
		}
		if run.Status.Phase != millracev1.RunSucceeded && run.Status.Phase != millracev1.RunFailed {
			return fmt.Errorf("run order-2 %s in %s", run.Status.Phase, run.Status.CurrentState)
		}
		return nil
	})
	t.Logf("manager pod deleted mid-run: a new one Ready in %.1fs, the run %s %.1fs after the deletion",
		replaced.Seconds(), run.Status.Phase, time.Since(start).Seconds())
	if run.Status.Phase != millracev1.RunSucceeded {
		t.Fatalf("run order-2 %s: %s %s", run.Status.Phase, run.Status.Error, run.Status.Cause)
	}
	if p := demo.ChargeProblem(run, "order-2", 25); p != "" {
		t.Error(p)
	}
	// Finished once: one terminal entry in the history. The task may have been handled twice: a
	// manager that restarts between persisting the Charge state and seeing its result sends the
	// task again (at-least-once on a Standard queue); the second result is refused as stale.
	finished := 0
	for _, h := range run.Status.History {
		if h.Type == "SUCCEEDED" || h.Type == "FAILED" {
			finished++
		}
	}
	if finished != 1 {
		t.Errorf("run order-2 finished %d times: %+v", finished, run.Status.History)
	}
	time.Sleep(2 * time.Second) // the handler's log may still be streaming in
	n := pods.Charges("order-2")
	if n == 0 {
		t.Errorf("no handler charged order-2")
	}
	t.Logf("order-2 was handled %d times across the manager's restart", n)
}

// gatewayTakesAPodsToken runs a client pod (test/realnode/caller) that sends an order through the
// gateway with its kubelet-projected ServiceAccount token (audience millrace-gateway, RBAC on
// queues/messages of orders) and once without a token, and finds the order handled.
func gatewayTakesAPodsToken(ctx context.Context, t *testing.T, k8s client.Client, cs *kubernetes.Clientset, pods *demo.ConsumerPods) {
	q := &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "orders"}}
	if err := k8s.Patch(ctx, q, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"http":{"enabled":true}}}`))); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: system, Name: release + "-gateway"}, svc); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://%s:%d/v1/namespaces/%s/queues/orders/messages", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port, tenant)
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "checkout"}}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "checkout"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"millrace.io"}, Resources: []string{"queues/messages"}, Verbs: []string{"create"}, ResourceNames: []string{"orders"}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "checkout"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "checkout"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "checkout", Namespace: tenant}}}
	for _, obj := range []client.Object{sa, role, binding} {
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	// The gateway sees the Queue's http setting through its informer: a first pod may get 404.
	var sent struct{ MessageID string }
	testenv.Eventually(t, time.Minute, func() error {
		answers, err := runCaller(ctx, k8s, cs, url)
		if err != nil {
			return err
		}
		if len(answers) != 2 {
			return fmt.Errorf("caller printed %d answers: %+v", len(answers), answers)
		}
		with, without := answers[0], answers[1]
		if with.Status != http.StatusAccepted {
			return fmt.Errorf("with the pod's token the gateway answered %d %s %s", with.Status, with.Body, with.Error)
		}
		if without.Status != http.StatusUnauthorized {
			t.Errorf("without a token the gateway answered %d %s %s, want 401", without.Status, without.Body, without.Error)
		}
		return json.Unmarshal([]byte(with.Body), &sent)
	})
	testenv.Eventually(t, time.Minute, func() error {
		if pods.Handled()[sent.MessageID] == 0 {
			return fmt.Errorf("message %s from the gateway not handled yet", sent.MessageID)
		}
		return nil
	})
	t.Logf("a pod's projected ServiceAccount token was taken by the gateway (202, message %s) and a request without one refused (401); the message was handled", sent.MessageID)
}

// callerAnswer is one line test/realnode/caller prints.
type callerAnswer struct {
	Auth   string `json:"auth"`
	Status int    `json:"status"`
	Body   string `json:"body"`
	Error  string `json:"error"`
}

// runCaller runs the caller pod once (restricted profile, token projected for the gateway's
// audience) and returns what it printed.
func runCaller(ctx context.Context, k8s client.Client, cs *kubernetes.Clientset, url string) ([]callerAnswer, error) {
	name := "checkout-" + rand.Text()[:6]
	name = strings.ToLower(name)
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: name},
		Spec: corev1.PodSpec{ServiceAccountName: "checkout", RestartPolicy: corev1.RestartPolicyNever,
			AutomountServiceAccountToken: ptr.To(false),
			SecurityContext:              &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Volumes: []corev1.Volume{{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Audience: demo.GatewayAudience, ExpirationSeconds: ptr.To[int64](600), Path: "gateway"}}}}}}},
			Containers: []corev1.Container{{Name: "caller", Image: "millrace.local/caller:dev", ImagePullPolicy: corev1.PullNever,
				Args:         []string{"-url", url, "-token-file", "/var/run/secrets/tokens/gateway"},
				VolumeMounts: []corev1.VolumeMount{{Name: "token", MountPath: "/var/run/secrets/tokens", ReadOnly: true}},
				SecurityContext: &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}}}}}
	if err := k8s.Create(ctx, pod); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(pod), pod); err != nil {
			return nil, err
		}
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("caller pod %s still %s", name, pod.Status.Phase)
		}
		time.Sleep(200 * time.Millisecond)
	}
	raw, err := cs.CoreV1().Pods(tenant).GetLogs(name, &corev1.PodLogOptions{Container: "caller"}).DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	if pod.Status.Phase == corev1.PodFailed {
		return nil, fmt.Errorf("caller pod %s failed: %s", name, raw)
	}
	var answers []callerAnswer
	dec := json.NewDecoder(bytes.NewReader(raw))
	for dec.More() {
		var a callerAnswer
		if err := dec.Decode(&a); err != nil {
			return nil, fmt.Errorf("caller's output %q: %w", raw, err)
		}
		answers = append(answers, a)
	}
	return answers, nil
}

func dumpPods(t *testing.T, cs *kubernetes.Clientset) {
	for _, ns := range []string{system, tenant} {
		list, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			continue
		}
		for _, pod := range list.Items {
			t.Logf("--- pod %s/%s %s", ns, pod.Name, pod.Status.Phase)
			if ns != system {
				continue
			}
			for _, c := range pod.Spec.Containers {
				b, _ := cs.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{Container: c.Name, TailLines: ptrTo[int64](60)}).DoRaw(context.Background())
				t.Logf("--- %s/%s %s (tail)\n%s", ns, pod.Name, c.Name, b)
			}
		}
		events, _ := cs.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{})
		for _, e := range events.Items {
			if e.Type != corev1.EventTypeNormal {
				t.Logf("event %s %s/%s: %s %s", ns, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
			}
		}
	}
}

func ptrTo[T any](v T) *T { return &v }

// skipWhereNoNodeCanRun skips with the one-line reason when this machine cannot run a real node
// (not Linux, not root, its packages not installable): test/e2e covers the demo there with
// replicas as local processes. Any other error fails the test.
func skipWhereNoNodeCanRun(t *testing.T, err error) {
	t.Helper()
	var unsupported *realnode.UnsupportedError
	switch {
	case errors.As(err, &unsupported):
		t.Skipf("%v; test/e2e runs the demo with replicas as local processes instead", err)
	case err != nil:
		t.Fatal(err)
	}
}

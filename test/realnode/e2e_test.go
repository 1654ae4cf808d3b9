package realnode_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/go-logr/logr"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"strings"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/hack/demo"
	"github.com/millrace-io/millrace/hack/realnode"
	"github.com/millrace-io/millrace/internal/consumer"
	"github.com/millrace-io/millrace/internal/testenv"
)

const (
	// gatewayAudience is the audience the gateway requires of bearer tokens here (a token for the
	// API server, which any pod has mounted, is refused).
	gatewayAudience = "millrace-gateway"
	release         = "millrace"
	system    = "millrace-system"
	tenant    = "shop" // the samples' namespace, Pod Security "restricted"
	awsSecret = "aws-keys"
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
	install(ctx, t, k8s, helm, filepath.Join(root, "charts", "millrace"), node.Kubeconfig, fauxqs.Endpoint)
	t.Logf("chart installed, manager and gateway Ready in %.1fs", time.Since(start).Seconds())

	applySamples(ctx, t, k8s, filepath.Join(root, "config", "samples"))
	pods := watchConsumerPods(ctx, t, k8s, cs, "billing")
	t.Cleanup(func() {
		if t.Failed() {
			pods.dump(t)
		}
	})

	testenv.UseLocalCredentials()
	sqsClient, err := fauxqs.Client(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	res, err := demo.Run(ctx, demo.Options{Client: k8s, SQS: sqsClient, Namespace: tenant, OutDir: t.TempDir(), Out: &progress,
		Timeout: 5 * time.Minute, Running: pods.running, Handled: pods.handled})
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}

	// What test/e2e asserts.
	for _, id := range res.Sent {
		if res.Handled[id] == 0 {
			t.Errorf("order %s was never handled", id)
		}
	}
	if res.MaxReplicas < 2 || res.FinalReplicas != 0 {
		t.Errorf("replicas rose to %d and ended at %d; want above 1, then 0", res.MaxReplicas, res.FinalReplicas)
	}
	if res.Handled[res.Poison] != 0 || len(res.InDLQ) != 1 || res.InDLQ[0] != res.Poison {
		t.Errorf("the poison message %s: handled %d times; dead-letter queue holds %v", res.Poison, res.Handled[res.Poison], res.InDLQ)
	}
	if res.Run.Status.Phase != millracev1.RunSucceeded {
		t.Fatalf("run %s: %s %s", res.Run.Status.Phase, res.Run.Status.Error, res.Run.Status.Cause)
	}
	checkCharged(t, res.Run, "order-1", 15)
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
	t.Logf("scale-in: %d pods drained with batches in flight, none cut short (every order handled once)", pods.drainedMidBatch())
	t.Logf("order-1 was handled %d times", pods.charges("order-1"))

	// The Consumer was Ready with replicas running (from its Deployment), and pods came and went.
	firstReady, zeroAt, readyWithReplicas := pods.timings(res.Drained)
	if !readyWithReplicas {
		t.Errorf("the Consumer was never Ready=True with replicas > 0")
	}
	if firstReady.IsZero() || zeroAt.IsZero() || res.Drained.IsZero() {
		t.Errorf("no timings: first pod Ready %v, queue drained %v, zero pods %v", firstReady, res.Drained, zeroAt)
	} else {
		t.Logf("TIMING burst -> first consumer pod Ready: %.2fs; empty queue -> zero pods: %.2fs (scaleToZeroDelay 5s, scale-down window 3s)",
			firstReady.Sub(res.Burst).Seconds(), zeroAt.Sub(res.Drained).Seconds())
	}

	// `kubectl wait --for=condition=Ready` on every kind: the Ready condition is True.
	for _, obj := range []client.Object{
		&millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Name: "orders"}}, &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Name: "orders-dlq"}},
		&millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Name: "payments"}}, &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Name: "payments-dlq"}},
		&millracev1.Consumer{ObjectMeta: metav1.ObjectMeta{Name: "billing"}}, &millracev1.Workflow{ObjectMeta: metav1.ObjectMeta{Name: "order"}},
		&millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Name: "order-1"}},
	} {
		obj.SetNamespace(tenant)
		waitCondition(ctx, t, k8s, obj)
	}

	managerRestartMidRun(ctx, t, k8s, pods)
	gatewayTakesAPodsToken(ctx, t, k8s, cs, pods)
}

// install creates the namespaces and test credentials and installs the chart: the manager with the
// :dev images (pullPolicy Never), the emulator as its SQS endpoint, its own webhook certificate,
// the gateway with its own credentials. The node has no DNS for pods, so the callback URL is
// the callback Service's cluster IP (one upgrade once the Service exists).
func install(ctx context.Context, t *testing.T, k8s client.Client, helm, chart, kubeconfig, endpoint string) {
	t.Helper()
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: system}},
		{ObjectMeta: metav1.ObjectMeta{Name: tenant, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}}},
	} {
		if err := k8s.Create(ctx, ns); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []types.NamespacedName{{Namespace: system, Name: awsSecret}, {Namespace: system, Name: "gateway-aws-keys"}, {Namespace: tenant, Name: awsSecret}} {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name},
			StringData: map[string]string{"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true"}}
		if err := k8s.Create(ctx, secret); err != nil {
			t.Fatal(err)
		}
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	home := t.TempDir()
	helmRun := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, helm, append(args, "--kubeconfig", kubeconfig, "--namespace", system)...)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_CONFIG_HOME="+filepath.Join(home, "config"),
			"HELM_DATA_HOME="+filepath.Join(home, "data"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("helm %s: %v\n%s", args[0], err, out)
		}
	}
	helmRun("install", release, chart, "--wait", "--timeout", "3m",
		"--set", "image.tag=dev", "--set", "image.pullPolicy=Never", "--set", "dispatcherImage.tag=dev",
		"--set", "aws.endpoint="+endpoint, "--set", "aws.credentialsSecret="+awsSecret,
		"--set", "taskToken.key="+hex.EncodeToString(key), "--set", "admissionWebhook.enabled=true",
		"--set", "gateway.enabled=true", "--set", "gateway.image.tag=dev", "--set", "gateway.replicaCount=1",
		"--set", "gateway.credentialsSecret=gateway-aws-keys", "--set", "gateway.tokenAudiences={"+gatewayAudience+"}")
	svc := &corev1.Service{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: system, Name: release + "-callback"}, svc); err != nil {
		t.Fatal(err)
	}
	helmRun("upgrade", release, chart, "--reuse-values", "--wait", "--timeout", "3m",
		"--set", fmt.Sprintf("callback.url=http://%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port))
	waitLeader(ctx, t, k8s)
}

// waitLeader waits until a manager pod that is Ready and not terminating holds the leader lease.
func waitLeader(ctx context.Context, t *testing.T, k8s client.Client) string {
	t.Helper()
	var leader string
	testenv.Eventually(t, 2*time.Minute, func() error {
		lease := &coordinationv1.Lease{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: system, Name: "millrace-manager.millrace.io"}, lease); err != nil {
			return err
		}
		holder := ptr.Deref(lease.Spec.HolderIdentity, "")
		list := &corev1.PodList{}
		if err := k8s.List(ctx, list, client.InNamespace(system), client.MatchingLabels{"app.kubernetes.io/component": "manager"}); err != nil {
			return err
		}
		for i := range list.Items {
			pod := &list.Items[i]
			if strings.HasPrefix(holder, pod.Name+"_") && podReady(pod) && pod.DeletionTimestamp == nil {
				leader = pod.Name
				return nil
			}
		}
		return fmt.Errorf("lease held by %q, not a current manager pod", holder)
	})
	return leader
}

// applySamples creates what config/samples' kustomization lists in the tenant's namespace. The
// Consumer runs the example handler's image (a second of work per batch), and its dispatcher
// gets the test's static credentials from a Secret (no IRSA here).
func applySamples(ctx context.Context, t *testing.T, k8s client.Client, dir string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var kustomization struct{ Resources []string }
	if err := yaml.Unmarshal(raw, &kustomization); err != nil {
		t.Fatal(err)
	}
	for _, f := range kustomization.Resources {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := dec.Read()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &u.Object); err != nil || len(u.Object) == 0 {
				continue
			}
			u.SetNamespace(tenant)
			if u.GetKind() == "Consumer" {
				setHandler(t, u)
			}
			if err := k8s.Create(ctx, u); err != nil {
				t.Fatalf("creating %s %s: %v", u.GetKind(), u.GetName(), err)
			}
		}
	}
}

func setHandler(t *testing.T, u *unstructured.Unstructured) {
	containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	handler := containers[0].(map[string]any)
	handler["image"] = "ghcr.io/millrace-io/millrace-handler:dev"
	handler["imagePullPolicy"] = "Never"
	handler["env"] = []any{map[string]any{"name": "HANDLER_WORK", "value": "1s"}}
	dispatcher := map[string]any{"name": consumer.DispatcherName,
		"envFrom": []any{map[string]any{"secretRef": map[string]any{"name": awsSecret}}}}
	if err := unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedSlice(u.Object, []any{dispatcher}, "spec", "template", "spec", "initContainers"); err != nil {
		t.Fatal(err)
	}
}

// consumerPods follows a Consumer's pods: their handlers' logs (what they handled and charged:
// a pod's log goes with it, so it is read as it is written) and when they were Ready and gone.
type consumerPods struct {
	mu                sync.Mutex
	handledIDs        map[string]int
	charged           map[string]int // workflow task id -> charges
	runningNow        int
	firstReady        time.Time
	zeroAt            []time.Time // when the last pod went, each time
	podsNow           int
	readyWithReplicas bool
	logDir            string
}

var (
	handledLine = regexp.MustCompile(`handled (\S+): `)
	chargedLine = regexp.MustCompile(`charged \S+ for (\S+)`)
)

func watchConsumerPods(ctx context.Context, t *testing.T, k8s client.Client, cs *kubernetes.Clientset, name string) *consumerPods {
	p := &consumerPods{handledIDs: map[string]int{}, charged: map[string]int{}, logDir: t.TempDir()}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	following := map[types.UID]bool{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			list := &corev1.PodList{}
			if err := k8s.List(ctx, list, client.InNamespace(tenant), client.MatchingLabels{consumer.LabelConsumer: name}); err == nil {
				running, ready := 0, 0
				for i := range list.Items {
					pod := &list.Items[i]
					if pod.Status.Phase == corev1.PodRunning {
						running++
					}
					if podReady(pod) {
						ready++
					}
					if !following[pod.UID] && handlerStarted(pod) {
						following[pod.UID] = true
						wg.Add(1)
						go func() { defer wg.Done(); p.follow(ctx, cs, pod.Name) }()
					}
				}
				c := &millracev1.Consumer{}
				cReady := k8s.Get(ctx, client.ObjectKey{Namespace: tenant, Name: name}, c) == nil &&
					meta.IsStatusConditionTrue(c.Status.Conditions, "Ready") && c.Status.ReadyReplicas > 0
				now := time.Now()
				p.mu.Lock()
				p.runningNow = running
				if ready > 0 && p.firstReady.IsZero() {
					p.firstReady = now
				}
				if len(list.Items) == 0 && p.podsNow > 0 {
					p.zeroAt = append(p.zeroAt, now)
				}
				p.podsNow = len(list.Items)
				p.readyWithReplicas = p.readyWithReplicas || cReady
				p.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return p
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func handlerStarted(pod *corev1.Pod) bool {
	for _, s := range pod.Status.ContainerStatuses {
		if s.Name == "handler" && (s.State.Running != nil || s.State.Terminated != nil) {
			return true
		}
	}
	return false
}

// follow reads a pod's handler log until the container ends (and keeps both containers' logs in
// logDir, for a failure's report).
func (p *consumerPods) follow(ctx context.Context, cs *kubernetes.Clientset, pod string) {
	kept := make(chan struct{})
	go func() { p.keep(ctx, cs, pod, consumer.DispatcherName); close(kept) }()
	defer func() { <-kept }()
	stream, err := cs.CoreV1().Pods(tenant).GetLogs(pod, &corev1.PodLogOptions{Container: "handler", Follow: true}).Stream(ctx)
	if err != nil {
		return
	}
	defer stream.Close()
	f, _ := os.Create(filepath.Join(p.logDir, pod+".handler.log"))
	defer f.Close()
	scanner := bufio.NewScanner(stream)
	for scanner.Scan() {
		line := scanner.Text()
		fmt.Fprintln(f, line)
		p.mu.Lock()
		if m := handledLine.FindStringSubmatch(line); m != nil {
			p.handledIDs[m[1]]++
		} else if m := chargedLine.FindStringSubmatch(line); m != nil {
			p.charged[m[1]]++
		}
		p.mu.Unlock()
	}
}

func (p *consumerPods) keep(ctx context.Context, cs *kubernetes.Clientset, pod, container string) {
	stream, err := cs.CoreV1().Pods(tenant).GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: true}).Stream(ctx)
	if err != nil {
		return
	}
	defer stream.Close()
	f, _ := os.Create(filepath.Join(p.logDir, pod+"."+container+".log"))
	defer f.Close()
	_, _ = io.Copy(f, stream)
}

var drainingLine = regexp.MustCompile(`"draining","inFlightBatches":([1-9][0-9]*)`)

// drainedMidBatch counts the pods whose dispatcher began draining with batches in flight.
func (p *consumerPods) drainedMidBatch() int {
	files, _ := filepath.Glob(filepath.Join(p.logDir, "*."+consumer.DispatcherName+".log"))
	n := 0
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && drainingLine.Match(b) {
			n++
		}
	}
	return n
}

// dump logs the kept logs' tails.
func (p *consumerPods) dump(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(p.logDir, "*.log"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		t.Logf("--- %s (tail)\n%s", filepath.Base(f), b)
	}
}

func (p *consumerPods) running(_, _ string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runningNow
}

func (p *consumerPods) handled() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.handledIDs))
	for k, v := range p.handledIDs {
		out[k] = v
	}
	return out
}

func (p *consumerPods) charges(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.charged[id]
}

// timings: when the first pod was Ready, when the last pod went after the queue drained, and
// whether the Consumer was seen Ready=True with ready replicas.
func (p *consumerPods) timings(drained time.Time) (firstReady, zeroAt time.Time, readyWithReplicas bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, z := range p.zeroAt {
		if z.After(drained) {
			zeroAt = z
			break
		}
	}
	return p.firstReady, zeroAt, p.readyWithReplicas
}

func checkCharged(t *testing.T, run *millracev1.WorkflowRun, id string, amount float64) {
	t.Helper()
	var out struct {
		Amount float64
		Charge struct {
			Charged float64
			For     string
		}
	}
	if run.Status.Output != nil {
		_ = json.Unmarshal(run.Status.Output.Raw, &out)
	}
	if out.Amount != amount || out.Charge.Charged != amount || out.Charge.For != id {
		t.Errorf("run %s output %s; want the amount priced to %v and charged by the handler", run.Name, run.Status.Output, amount)
	}
}

// waitCondition is `kubectl wait --for=condition=Ready`: the object's Ready condition is True.
func waitCondition(ctx context.Context, t *testing.T, k8s client.Client, obj client.Object) {
	t.Helper()
	testenv.Eventually(t, time.Minute, func() error {
		u := &unstructured.Unstructured{}
		gvk, err := k8s.GroupVersionKindFor(obj)
		if err != nil {
			return err
		}
		u.SetGroupVersionKind(gvk)
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(obj), u); err != nil {
			return err
		}
		conditions, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, c := range conditions {
			if m, _ := c.(map[string]any); m["type"] == "Ready" {
				if m["status"] == "True" {
					return nil
				}
				return fmt.Errorf("%s %s: Ready=%v %v: %v", gvk.Kind, obj.GetName(), m["status"], m["reason"], m["message"])
			}
		}
		return fmt.Errorf("%s %s has no Ready condition", gvk.Kind, obj.GetName())
	})
}

// managerRestartMidRun deletes the manager's pod while a WorkflowRun waits for its Charge task
// (the Consumer wakes from zero): a new manager pod takes over and the run finishes, charged once.
func managerRestartMidRun(ctx context.Context, t *testing.T, k8s client.Client, pods *consumerPods) {
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
			if list.Items[i].Name != old.Items[0].Name && podReady(&list.Items[i]) {
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
	checkCharged(t, run, "order-2", 25)
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
	n := pods.charges("order-2")
	if n == 0 {
		t.Errorf("no handler charged order-2")
	}
	t.Logf("order-2 was handled %d times across the manager's restart", n)
}

// gatewayTakesAPodsToken runs a client pod (test/realnode/caller) that sends an order through the
// gateway with its kubelet-projected ServiceAccount token (audience millrace-gateway, RBAC on
// queues/messages of orders) and once without a token, and finds the order handled.
func gatewayTakesAPodsToken(ctx context.Context, t *testing.T, k8s client.Client, cs *kubernetes.Clientset, pods *consumerPods) {
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
		if pods.handled()[sent.MessageID] == 0 {
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
			SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Volumes: []corev1.Volume{{Name: "token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
				Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
					Audience: gatewayAudience, ExpirationSeconds: ptr.To[int64](600), Path: "gateway"}}}}}}},
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

package demo

// The demo's setup on a real node (hack/realnode), shared by `make dev` (hack/devenv realnode)
// and test/realnode: the chart installed with Helm (the manager and the gateway as pods), the
// samples applied in a namespace that enforces Pod Security "restricted", and the billing
// Consumer's pods followed through their logs.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8stypes "k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/consumer"
)

const (
	// Release is the chart's release name; SystemNamespace the manager's and gateway's namespace.
	Release         = "millrace"
	SystemNamespace = "millrace-system"
	// Tenant is the samples' namespace on a real node (Pod Security "restricted").
	Tenant = "shop"
	// AWSSecret holds the emulator's static credentials (no IRSA here), in both namespaces.
	AWSSecret = "aws-keys"
	// GatewayAudience is the audience the gateway requires of bearer tokens (a token for the API
	// server, which every pod has mounted, is refused).
	GatewayAudience = "millrace-gateway"
	// HandlerImage is the example handler's image as `make images` writes it.
	HandlerImage = "ghcr.io/millrace-io/millrace-handler:dev"
)

// Install is how InstallChart installs Millrace.
type Install struct {
	Helm, Chart, Kubeconfig string
	// SQSEndpoint is the emulator's URL as pods reach it (the node's bridge address).
	SQSEndpoint string
	// Values are more --set values.
	Values []string
	Log    func(format string, args ...any)
}

// InstallChart creates the namespaces and the emulator's credentials and installs the chart: the
// manager with the :dev images (pullPolicy Never), its own webhook certificate, the gateway with
// its own credentials and audience. Pods have no DNS on the node, so the callback URL is the
// callback Service's cluster IP (an upgrade once the Service exists). Returns when a Ready manager
// pod leads.
func InstallChart(ctx context.Context, k8s client.Client, in Install) error {
	for _, ns := range []*corev1.Namespace{
		{ObjectMeta: metav1.ObjectMeta{Name: SystemNamespace}},
		{ObjectMeta: metav1.ObjectMeta{Name: Tenant, Labels: map[string]string{
			"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/warn": "restricted"}}},
	} {
		if err := k8s.Create(ctx, ns); err != nil {
			return err
		}
	}
	for _, s := range []k8stypes.NamespacedName{{Namespace: SystemNamespace, Name: AWSSecret}, {Namespace: SystemNamespace, Name: "gateway-aws-keys"}, {Namespace: Tenant, Name: AWSSecret}} {
		secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: s.Name},
			StringData: map[string]string{"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_EC2_METADATA_DISABLED": "true"}}
		if err := k8s.Create(ctx, secret); err != nil {
			return err
		}
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	home, err := os.MkdirTemp("", "millrace-helm")
	if err != nil {
		return err
	}
	defer os.RemoveAll(home)
	helm := func(args ...string) error {
		cmd := exec.CommandContext(ctx, in.Helm, append(args, "--kubeconfig", in.Kubeconfig, "--namespace", SystemNamespace)...)
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"), "HELM_CONFIG_HOME="+filepath.Join(home, "config"),
			"HELM_DATA_HOME="+filepath.Join(home, "data"))
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("helm %s: %w\n%s", args[0], err, out)
		}
		return nil
	}
	args := []string{"install", Release, in.Chart, "--wait", "--timeout", "3m",
		"--set", "image.tag=dev", "--set", "image.pullPolicy=Never", "--set", "dispatcherImage.tag=dev",
		"--set", "aws.endpoint=" + in.SQSEndpoint, "--set", "aws.credentialsSecret=" + AWSSecret,
		"--set", "taskToken.key=" + hex.EncodeToString(key), "--set", "admissionWebhook.enabled=true",
		"--set", "gateway.enabled=true", "--set", "gateway.image.tag=dev", "--set", "gateway.replicaCount=1",
		"--set", "gateway.credentialsSecret=gateway-aws-keys", "--set", "gateway.tokenAudiences={" + GatewayAudience + "}"}
	for _, v := range in.Values {
		args = append(args, "--set", v)
	}
	if err := helm(args...); err != nil {
		return err
	}
	svc := &corev1.Service{}
	if err := k8s.Get(ctx, client.ObjectKey{Namespace: SystemNamespace, Name: Release + "-callback"}, svc); err != nil {
		return err
	}
	if err := helm("upgrade", Release, in.Chart, "--reuse-values", "--wait", "--timeout", "3m",
		"--set", fmt.Sprintf("callback.url=http://%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)); err != nil {
		return err
	}
	_, err = WaitLeader(ctx, k8s)
	return err
}

// Poll calls check until it succeeds or timeout passes (then its last error).
func Poll(ctx context.Context, timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %w)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// WaitLeader waits until a manager pod that is Ready and not terminating holds the leader lease.
func WaitLeader(ctx context.Context, k8s client.Client) (string, error) {
	var leader string
	err := Poll(ctx, 2*time.Minute, func() error {
		lease := &coordinationv1.Lease{}
		if err := k8s.Get(ctx, client.ObjectKey{Namespace: SystemNamespace, Name: "millrace-manager.millrace.io"}, lease); err != nil {
			return err
		}
		holder := ptr.Deref(lease.Spec.HolderIdentity, "")
		list := &corev1.PodList{}
		if err := k8s.List(ctx, list, client.InNamespace(SystemNamespace), client.MatchingLabels{"app.kubernetes.io/component": "manager"}); err != nil {
			return err
		}
		for i := range list.Items {
			pod := &list.Items[i]
			if strings.HasPrefix(holder, pod.Name+"_") && PodReady(pod) && pod.DeletionTimestamp == nil {
				leader = pod.Name
				return nil
			}
		}
		return fmt.Errorf("lease held by %q, not a current manager pod", holder)
	})
	return leader, err
}

// ApplySamples creates what config/samples' kustomization lists in the Tenant namespace. The
// Consumer runs the example handler's image (a second of work per batch), and its dispatcher
// gets the emulator's static credentials from a Secret.
func ApplySamples(ctx context.Context, k8s client.Client, dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return err
	}
	var kustomization struct{ Resources []string }
	if err := yaml.Unmarshal(raw, &kustomization); err != nil {
		return err
	}
	for _, f := range kustomization.Resources {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		dec := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := dec.Read()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return err
			}
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal(doc, &u.Object); err != nil || len(u.Object) == 0 {
				continue
			}
			u.SetNamespace(Tenant)
			if u.GetKind() == "Consumer" {
				if err := setHandler(u); err != nil {
					return err
				}
			}
			if err := k8s.Create(ctx, u); err != nil {
				return fmt.Errorf("creating %s %s: %w", u.GetKind(), u.GetName(), err)
			}
		}
	}
	return nil
}

func setHandler(u *unstructured.Unstructured) error {
	containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
	if len(containers) == 0 {
		return fmt.Errorf("Consumer %s has no containers", u.GetName())
	}
	handler := containers[0].(map[string]any)
	handler["image"] = HandlerImage
	handler["imagePullPolicy"] = "Never"
	handler["env"] = []any{map[string]any{"name": "HANDLER_WORK", "value": "1s"}}
	// A 5 s long poll (the dispatcher's default is 20 s): an idle pod that scales in finishes its
	// receive before it stops, so this is most of the time from an empty queue to zero pods.
	dispatcher := map[string]any{"name": consumer.DispatcherName,
		"env":     []any{map[string]any{"name": "MILLRACE_WAIT_TIME", "value": "5s"}},
		"envFrom": []any{map[string]any{"secretRef": map[string]any{"name": AWSSecret}}}}
	if err := unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		return err
	}
	return unstructured.SetNestedSlice(u.Object, []any{dispatcher}, "spec", "template", "spec", "initContainers")
}

// ConsumerPods follows a Consumer's pods: their handlers' logs (what they handled and charged:
// a pod's log goes with it, so it is read as it is written) and when they were Ready and gone.
type ConsumerPods struct {
	mu                sync.Mutex
	handledIDs        map[string]int
	charged           map[string]int // workflow task id -> charges
	runningNow        int
	firstReady        time.Time
	zeroAt            []time.Time // when the last pod went, each time
	podsNow           int
	readyWithReplicas bool
	logDir            string
	cancel            context.CancelFunc
	wg                sync.WaitGroup
}

var (
	handledLine = regexp.MustCompile(`handled (\S+): `)
	chargedLine = regexp.MustCompile(`charged \S+ for (\S+)`)
)

// WatchConsumerPods follows Consumer name's pods in the Tenant namespace until Stop, keeping
// their logs in logDir.
func WatchConsumerPods(ctx context.Context, k8s client.Client, cs *kubernetes.Clientset, name, logDir string) *ConsumerPods {
	p := &ConsumerPods{handledIDs: map[string]int{}, charged: map[string]int{}, logDir: logDir}
	ctx, p.cancel = context.WithCancel(ctx)
	following := map[k8stypes.UID]bool{}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for ctx.Err() == nil {
			list := &corev1.PodList{}
			if err := k8s.List(ctx, list, client.InNamespace(Tenant), client.MatchingLabels{consumer.LabelConsumer: name}); err == nil {
				running, ready := 0, 0
				for i := range list.Items {
					pod := &list.Items[i]
					if pod.Status.Phase == corev1.PodRunning {
						running++
					}
					if PodReady(pod) {
						ready++
					}
					if !following[pod.UID] && handlerStarted(pod) {
						following[pod.UID] = true
						p.wg.Add(1)
						go func() { defer p.wg.Done(); p.follow(ctx, cs, pod.Name) }()
					}
				}
				c := &millracev1.Consumer{}
				cReady := k8s.Get(ctx, client.ObjectKey{Namespace: Tenant, Name: name}, c) == nil &&
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

// Stop stops following and waits for the log readers.
func (p *ConsumerPods) Stop() {
	p.cancel()
	p.wg.Wait()
}

// PodReady says whether a pod's Ready condition is True.
func PodReady(pod *corev1.Pod) bool {
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
// logDir).
func (p *ConsumerPods) follow(ctx context.Context, cs *kubernetes.Clientset, pod string) {
	kept := make(chan struct{})
	go func() { p.keep(ctx, cs, pod, consumer.DispatcherName); close(kept) }()
	defer func() { <-kept }()
	stream, err := cs.CoreV1().Pods(Tenant).GetLogs(pod, &corev1.PodLogOptions{Container: "handler", Follow: true}).Stream(ctx)
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

func (p *ConsumerPods) keep(ctx context.Context, cs *kubernetes.Clientset, pod, container string) {
	stream, err := cs.CoreV1().Pods(Tenant).GetLogs(pod, &corev1.PodLogOptions{Container: container, Follow: true}).Stream(ctx)
	if err != nil {
		return
	}
	defer stream.Close()
	f, _ := os.Create(filepath.Join(p.logDir, pod+"."+container+".log"))
	defer f.Close()
	_, _ = io.Copy(f, stream)
}

var drainingLine = regexp.MustCompile(`"draining","inFlightBatches":([1-9][0-9]*)`)

// DrainedMidBatch counts the pods whose dispatcher began draining with batches in flight.
func (p *ConsumerPods) DrainedMidBatch() int {
	files, _ := filepath.Glob(filepath.Join(p.logDir, "*."+consumer.DispatcherName+".log"))
	n := 0
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && drainingLine.Match(b) {
			n++
		}
	}
	return n
}

// Dump logs the tails of the kept logs.
func (p *ConsumerPods) Dump(logf func(format string, args ...any)) {
	files, _ := filepath.Glob(filepath.Join(p.logDir, "*.log"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if len(b) > 3000 {
			b = b[len(b)-3000:]
		}
		logf("--- %s (tail)\n%s", filepath.Base(f), b)
	}
}

// Running is how many of the pods run now (demo.Options.Running).
func (p *ConsumerPods) Running(_, _ string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.runningNow
}

// Handled is message id -> times handled (demo.Options.Handled).
func (p *ConsumerPods) Handled() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.handledIDs))
	for k, v := range p.handledIDs {
		out[k] = v
	}
	return out
}

// Charges is how many times a handler charged a workflow's order.
func (p *ConsumerPods) Charges(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.charged[id]
}

// Timings: when the first pod was Ready, when the last pod went after the queue drained, and
// whether the Consumer was seen Ready=True with ready replicas.
func (p *ConsumerPods) Timings(drained time.Time) (firstReady, zeroAt time.Time, readyWithReplicas bool) {
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

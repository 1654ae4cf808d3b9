// Package realnode_test starts the real node of hack/realnode, runs the example handler's image
// as a pod under Pod Security "restricted", and tears the node down, checking that nothing is left.
// It needs Linux, root and `make images`; it runs only with MILLRACE_REALNODE=1
// (`make test-realnode`), not in `make test` yet.
package realnode_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/millrace-io/millrace/hack/realnode"
)

func TestHandlerPodOnARealNode(t *testing.T) {
	if os.Getenv("MILLRACE_REALNODE") != "1" {
		t.Skip("set MILLRACE_REALNODE=1 (make test-realnode) to start a real kubelet + containerd node")
	}
	if err := realnode.Check(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for _, img := range []string{"handler.tar", "pause.tar"} {
		if _, err := os.Stat(filepath.Join("..", "..", "build", "images", img)); err != nil {
			t.Fatalf("build/images/%s is missing: run `make images` first (%v)", img, err)
		}
	}
	node, err := realnode.Up(ctx, realnode.Config{Log: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			node.Stop()
		}
	}()
	cs := clientset(t, node.Kubeconfig)

	ns, pod := manifests(t)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := cs.CoreV1().Pods(ns.Name).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	running := waitReady(ctx, t, cs, ns.Name, pod.Name)
	podReady := time.Since(start)

	// The handler answers a Lambda SQS event sent to its pod IP (the host reaches the bridge).
	resp, err := http.Post("http://"+running.Status.PodIP+":8080/", "application/json",
		strings.NewReader(`{"Records":[{"messageId":"m1","body":"{\"order\":1}"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("handler answered %d %s", resp.StatusCode, body)
	}
	// The image's user is what runs (the pod sets runAsNonRoot, not runAsUser).
	if st := running.Status.ContainerStatuses; len(st) == 1 && st[0].User != nil && st[0].User.Linux != nil {
		if uid := st[0].User.Linux.UID; uid != 65532 {
			t.Errorf("container runs as uid %d, want the image's 65532", uid)
		}
	}
	// Pod Security "restricted" is enforced: the same pod without its security context is refused.
	bare := pod.DeepCopy()
	bare.Name, bare.Spec.SecurityContext, bare.Spec.Containers[0].SecurityContext = "bare", nil, nil
	if _, err := cs.CoreV1().Pods(ns.Name).Create(ctx, bare, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("a pod violating the restricted profile was not refused: %v", err)
	}

	components, pods := node.Memory()
	t.Logf("node Ready %.1fs after start, ready for pods %.1fs; pod Ready %.2fs after create; memory: %d MiB node processes + %d MiB pods",
		node.NodeReady.Seconds(), node.PodsReady.Seconds(), podReady.Seconds(), components>>20, pods>>20)

	start = time.Now()
	node.Stop()
	stopped = true
	t.Logf("down in %.1fs", time.Since(start).Seconds())
	assertClean(t)
}

func clientset(t *testing.T, kubeconfig string) *kubernetes.Clientset {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// manifests reads testdata/handler.yaml: a namespace enforcing "restricted" and the handler's pod.
func manifests(t *testing.T) (*corev1.Namespace, *corev1.Pod) {
	b, err := os.ReadFile(filepath.Join("testdata", "handler.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	ns, pod := &corev1.Namespace{}, &corev1.Pod{}
	for _, obj := range []any{ns, pod} {
		if err := dec.Decode(obj); err != nil {
			t.Fatal(err)
		}
	}
	return ns, pod
}

func waitReady(ctx context.Context, t *testing.T, cs *kubernetes.Clientset, ns, name string) *corev1.Pod {
	deadline := time.Now().Add(90 * time.Second)
	for {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					return p
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pod %s/%s not Ready after 90s: %v %+v", ns, name, err, p.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// assertClean checks what the node changes on the host is gone.
func assertClean(t *testing.T) {
	if exec.Command("ip", "link", "show", realnode.Bridge).Run() == nil {
		t.Errorf("bridge %s still there", realnode.Bridge)
	}
	if out, _ := exec.Command("iptables-save").Output(); bytes.Contains(out, []byte("KUBE-")) || bytes.Contains(out, []byte(realnode.Bridge)) {
		t.Errorf("iptables rules left:\n%s", out)
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	if bytes.Contains(mounts, []byte("millrace-realnode")) {
		t.Errorf("mounts left under the node's folder")
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory/kubepods"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("kubepods cgroup left: %v", err)
	}
	for _, name := range []string{"containerd", "kubelet", "kube-proxy", "kube-apiserver", "etcd"} {
		if out, _ := exec.Command("pgrep", "-f", "millrace-realnode/run.*"+name+"|"+name+".*millrace-realnode/run").Output(); len(out) > 0 {
			t.Errorf("%s still running: %s", name, out)
		}
	}
}

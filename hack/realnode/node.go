package realnode

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// start brings the node up in order: host packages and binaries, network, certificates,
// containerd and the images, the control plane, then the kubelet and kube-proxy.
func (n *Node) start(ctx context.Context) error {
	t0 := time.Now()
	log := n.cfg.Log
	if err := installPackages(log); err != nil {
		return err
	}
	bins, err := n.binaries()
	if err != nil {
		return err
	}
	logs := filepath.Join(n.cfg.Dir, "logs")
	_ = os.RemoveAll(logs)
	for _, d := range []string{"pids", "pki", "etcd", "containerd", "kubelet", "pod-logs", "cni/net.d", "cni/ipam"} {
		if err := os.MkdirAll(filepath.Join(n.run, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(logs, 0o755); err != nil {
		return err
	}
	if err := (hostState{n.cfg.Dir}).save(); err != nil {
		return err
	}
	if err := setUpNetwork(); err != nil {
		return err
	}
	log("bridge %s %s/24 up, forwarding on, guard rule in FORWARD", Bridge, NodeIP)

	p, err := newPKI(filepath.Join(n.run, "pki"))
	if err != nil {
		return err
	}
	if err := p.issueAll(n.run); err != nil {
		return err
	}
	n.Kubeconfig = filepath.Join(n.run, "admin.kubeconfig")

	// containerd and the images
	ctrd := filepath.Join(n.run, "containerd")
	sock := filepath.Join(ctrd, "containerd.sock")
	cniDir := filepath.Join(n.run, "cni", "net.d")
	files := map[string]string{
		filepath.Join(cniDir, "10-millrace.conflist"):  cniConfig(filepath.Join(n.run, "cni", "ipam")),
		filepath.Join(ctrd, "config.toml"):             containerdConfig(ctrd, sock, cniDir, n.cfg.PauseImage),
		filepath.Join(n.run, "kubelet", "config.yaml"): kubeletConfig(n.run, p.dir, sock),
		filepath.Join(n.run, "kube-proxy.yaml"):        kubeProxyConfig(filepath.Join(n.run, "kube-proxy.kubeconfig")),
	}
	for f, content := range files {
		if err := os.WriteFile(f, []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := n.spawn("containerd", "containerd", "--config", filepath.Join(ctrd, "config.toml")); err != nil {
		return err
	}
	if err := waitFor(ctx, 30*time.Second, "containerd", func() bool {
		return exec.Command("ctr", "--address", sock, "version").Run() == nil
	}); err != nil {
		return err
	}
	if err := n.importImages(sock); err != nil {
		return err
	}

	// the control plane
	pk := p.path
	if err := n.spawn("etcd", filepath.Join(bins, "etcd"), "--name", "realnode", "--data-dir", filepath.Join(n.run, "etcd"),
		"--unsafe-no-fsync", "--log-level", "warn",
		"--listen-client-urls", "http://127.0.0.1:23790", "--advertise-client-urls", "http://127.0.0.1:23790",
		"--listen-peer-urls", "http://127.0.0.1:23800", "--initial-advertise-peer-urls", "http://127.0.0.1:23800",
		"--initial-cluster", "realnode=http://127.0.0.1:23800"); err != nil {
		return err
	}
	if err := n.spawn("kube-apiserver", filepath.Join(bins, "kube-apiserver"), "--etcd-servers", "http://127.0.0.1:23790",
		"--bind-address", NodeIP, "--advertise-address", NodeIP, "--secure-port", strconv.Itoa(apiPort),
		"--tls-cert-file", pk("apiserver.crt"), "--tls-private-key-file", pk("apiserver.key"), "--client-ca-file", pk("ca.crt"),
		"--service-cluster-ip-range", svcCIDR, "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file", pk("sa.pub"), "--service-account-signing-key-file", pk("sa.key"),
		"--authorization-mode", "Node,RBAC", "--enable-admission-plugins", "NodeRestriction",
		"--kubelet-client-certificate", pk("apiserver-kubelet-client.crt"), "--kubelet-client-key", pk("apiserver-kubelet-client.key"),
		"--kubelet-certificate-authority", pk("ca.crt"), "--kubelet-preferred-address-types", "InternalIP",
		"--cert-dir", filepath.Join(n.run, "apiserver-certs"), "--profiling=false"); err != nil {
		return err
	}
	cs, err := n.clientset()
	if err != nil {
		return err
	}
	if err := waitFor(ctx, 90*time.Second, "the API server's /readyz", func() bool {
		return cs.Discovery().RESTClient().Get().AbsPath("/readyz").Do(ctx).Error() == nil
	}); err != nil {
		return err
	}
	log("API server ready at %s (%.1fs)", APIServerURL, time.Since(t0).Seconds())
	kc := func(name string) string { return filepath.Join(n.run, name+".kubeconfig") }
	if err := n.spawn("kube-controller-manager", filepath.Join(bins, "kube-controller-manager"),
		"--kubeconfig", kc("controller-manager"), "--authentication-kubeconfig", kc("controller-manager"),
		"--authorization-kubeconfig", kc("controller-manager"), "--bind-address", "127.0.0.1", "--secure-port", "10257",
		"--leader-elect=false", "--use-service-account-credentials", "--service-account-private-key-file", pk("sa.key"),
		"--root-ca-file", pk("ca.crt"), "--service-cluster-ip-range", svcCIDR, "--cluster-name", "realnode",
		"--flex-volume-plugin-dir", filepath.Join(n.run, "kubelet", "volume-plugins"), // else under /usr/libexec
		"--profiling=false"); err != nil {
		return err
	}
	if err := n.spawn("kube-scheduler", filepath.Join(bins, "kube-scheduler"), "--kubeconfig", kc("scheduler"),
		"--authentication-kubeconfig", kc("scheduler"), "--authorization-kubeconfig", kc("scheduler"),
		"--bind-address", "127.0.0.1", "--secure-port", "10259", "--leader-elect=false", "--profiling=false"); err != nil {
		return err
	}

	// the node
	if err := n.spawn("kubelet", filepath.Join(bins, "kubelet"), "--config", filepath.Join(n.run, "kubelet", "config.yaml"),
		"--kubeconfig", kc("kubelet"), "--hostname-override", NodeName, "--node-ip", NodeIP,
		"--root-dir", filepath.Join(n.run, "kubelet", "root"), "--cert-dir", filepath.Join(n.run, "kubelet", "pki"),
		"--volume-plugin-dir", filepath.Join(n.run, "kubelet", "volume-plugins")); err != nil {
		return err
	}
	if err := n.spawn("kube-proxy", filepath.Join(bins, "kube-proxy"), "--config", filepath.Join(n.run, "kube-proxy.yaml")); err != nil {
		return err
	}
	if err := waitFor(ctx, 120*time.Second, "node "+NodeName+" Ready", func() bool {
		node, err := cs.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				return c.Status == corev1.ConditionTrue
			}
		}
		return false
	}); err != nil {
		return err
	}
	n.NodeReady = time.Since(t0)
	log("node %s Ready (%.1fs)", NodeName, n.NodeReady.Seconds())
	if err := waitFor(ctx, 60*time.Second, "kube-proxy's health", func() bool {
		resp, err := http.Get("http://127.0.0.1:10256/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	}); err != nil {
		return err
	}
	// Pods are refused until the controller-manager has made the namespace's default ServiceAccount.
	if err := waitFor(ctx, 60*time.Second, "the default ServiceAccount", func() bool {
		_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}); err != nil {
		return err
	}
	n.PodsReady = time.Since(t0)
	log("ready for pods (%.1fs); KUBECONFIG=%s", n.PodsReady.Seconds(), n.Kubeconfig)
	return nil
}

// binaries returns the folder of the Kubernetes binaries, built by hack/k8s-bins.sh when missing.
func (n *Node) binaries() (string, error) {
	cmd := exec.Command(filepath.Join(n.cfg.RepoRoot, "hack", "k8s-bins.sh"),
		"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/k8s-bins.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (n *Node) importImages(sock string) error {
	if len(n.cfg.Images) == 0 {
		return fmt.Errorf("no image tarballs to import (run `make images`); the sandbox image %s is one", n.cfg.PauseImage)
	}
	for _, tar := range n.cfg.Images {
		out, err := exec.Command("ctr", "--address", sock, "-n", "k8s.io", "images", "import", tar).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ctr images import %s: %w: %s", tar, err, strings.TrimSpace(string(out)))
		}
	}
	out, _ := exec.Command("ctr", "--address", sock, "-n", "k8s.io", "images", "ls", "-q").Output()
	var names []string
	for _, l := range strings.Fields(string(out)) {
		if !strings.HasPrefix(l, "sha256:") {
			names = append(names, l)
		}
	}
	if !strings.Contains(string(out), n.cfg.PauseImage) {
		return fmt.Errorf("the sandbox image %s is not among the imported images (%s)", n.cfg.PauseImage, strings.Join(names, " "))
	}
	n.cfg.Log("images imported: %s", strings.Join(names, " "))
	return nil
}

func (n *Node) clientset() (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", n.Kubeconfig)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 5 * time.Second
	return kubernetes.NewForConfig(cfg)
}

// spawn starts a component in its own session (a Ctrl-C on the terminal reaches Up's caller, which
// stops the components in order), logging to logs/<name>.log, its PID in run/pids/<name>.pid.
func (n *Node) spawn(name string, argv ...string) error {
	logFile, err := os.Create(filepath.Join(n.cfg.Dir, "logs", name+".log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+filepath.Join(n.run, "cache"))
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { _ = cmd.Wait() }() // reap it whenever it exits
	pid := strconv.Itoa(cmd.Process.Pid)
	return os.WriteFile(filepath.Join(n.run, "pids", name+".pid"), []byte(pid+"\n"), 0o644)
}

// waitFor polls ok every 200ms until it holds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, what string, ok func() bool) error {
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
	return nil
}

// Memory returns the resident memory of the node's processes (the control plane, the kubelet,
// kube-proxy, containerd and its shims) and what the kubepods cgroup charges for the pods.
func (n *Node) Memory() (components, pods int64) {
	pidFiles, _ := filepath.Glob(filepath.Join(n.run, "pids", "*.pid"))
	var pids []int
	for _, f := range pidFiles {
		b, _ := os.ReadFile(f)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pids = append(pids, pid)
		}
	}
	sock := filepath.Join(n.run, "containerd", "containerd.sock")
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), "containerd-shim") && strings.Contains(string(b), sock) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				components += kb << 10
			}
		}
	}
	for _, f := range []string{"/sys/fs/cgroup/memory/kubepods/memory.usage_in_bytes", "/sys/fs/cgroup/kubepods/memory.current"} {
		if b, err := os.ReadFile(f); err == nil {
			pods, _ = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			break
		}
	}
	return components, pods
}

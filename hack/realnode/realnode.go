// Package realnode runs a real single-node Kubernetes on this machine for `make dev` and the
// end-to-end test: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, a kubelet on its
// own containerd (Debian's containerd, runc and CNI plugins), and kube-proxy in iptables mode.
//
// Everything lives under one folder (Config.Dir) and on one bridge, millrace0, whose address
// 10.244.0.1 is the node's IP and the API server's address: whatever pods must reach listens
// there, never on 127.0.0.1 (pods cannot reach the host's loopback). A guard rule keeps pod
// traffic off every other interface. Images come from tarballs (`make images`) imported with
// `ctr -n k8s.io images import`; pods use imagePullPolicy: Never.
//
// One node per machine (a fixed bridge, fixed ports, the machine-wide /kubepods cgroups): Up holds
// an flock on Config.Dir/lock until Stop, and cleans up what a killed run left behind first. Stop
// (and Down, for a run that was killed) removes everything it made: processes by recorded PID,
// pods through the CRI, leftover shims, mounts, cgroups, iptables rules, the bridge, and restores
// the sysctls the node changed.
package realnode

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/millrace-io/millrace/internal/testenv"
)

// Addresses and names fixed for the one node a machine runs.
const (
	NodeName  = "realnode"
	Bridge    = "millrace0"
	NodeIP    = "10.244.0.1" // on Bridge: the node's IP and the API server's address
	podSubnet = "10.244.0.0/24"
	svcCIDR   = "10.96.0.0/24"
	apiPort   = 16443
	guardNote = "millrace-realnode-guard"
)

// APIServerURL is where pods and the host reach the API server.
var APIServerURL = fmt.Sprintf("https://%s:%d", NodeIP, apiPort)

// ExitUnsupported is the exit code of `realnode up` where a real node cannot run (not Linux, not
// root): callers fall back to hack/localnodes.
const ExitUnsupported = 3

// UnsupportedError says in one line why a real node cannot run on this machine.
type UnsupportedError struct{ Reason string }

func (e *UnsupportedError) Error() string { return "real node unavailable: " + e.Reason }

// Config says where the node keeps its files and what it runs.
type Config struct {
	// Dir holds the lock, the saved host state and run/ (everything the node writes).
	// Default: $MILLRACE_REALNODE_DIR or /var/tmp/millrace-realnode.
	Dir string
	// RepoRoot is the folder of go.mod (for hack/k8s-bins.sh). Default: found from the working directory.
	RepoRoot string
	// Images are image tarballs to import; the pause image must be one of them (`make images`
	// writes build/images/pause.tar). Default: every *.tar under RepoRoot/build/images.
	Images []string
	// PauseImage is the sandbox image's name as imported. Default: millrace.local/pause:dev.
	PauseImage string
	// Log receives progress lines. Default: os.Stderr.
	Log func(format string, args ...any)
}

// Node is a running node.
type Node struct {
	cfg  Config
	run  string
	lock *os.File
	// Kubeconfig is an administrator's kubeconfig for the node's API server.
	Kubeconfig string
	// Timings of Up: when the node became Ready and when it was ready for pods.
	NodeReady, PodsReady time.Duration
}

// Check reports whether a real node can run here, as an *UnsupportedError if not.
func Check() error {
	if runtime.GOOS != "linux" {
		return &UnsupportedError{"needs Linux, this is " + runtime.GOOS}
	}
	if os.Geteuid() != 0 {
		return &UnsupportedError{"needs root (a bridge, iptables, mounts and cgroups), running as uid " + fmt.Sprint(os.Geteuid())}
	}
	if _, err := os.Stat("/sys/fs/cgroup"); err != nil {
		return &UnsupportedError{"no /sys/fs/cgroup"}
	}
	return nil
}

func (c *Config) defaults() error {
	if c.Dir == "" {
		c.Dir = os.Getenv("MILLRACE_REALNODE_DIR")
	}
	if c.Dir == "" {
		c.Dir = "/var/tmp/millrace-realnode"
	}
	if c.RepoRoot == "" {
		root, err := testenv.RepoRoot()
		if err != nil {
			return err
		}
		c.RepoRoot = root
	}
	if c.Images == nil {
		tars, _ := filepath.Glob(filepath.Join(c.RepoRoot, "build", "images", "*.tar"))
		c.Images = tars
	}
	if c.PauseImage == "" {
		c.PauseImage = "millrace.local/pause:dev"
	}
	if c.Log == nil {
		c.Log = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "realnode: "+format+"\n", args...) }
	}
	return nil
}

// Up starts the node and returns when it is Ready and the default ServiceAccount exists (pods can
// be created). On error, everything started so far is removed again.
func Up(ctx context.Context, cfg Config) (*Node, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := acquireLock(ctx, filepath.Join(cfg.Dir, "lock"), cfg.Log)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, run: filepath.Join(cfg.Dir, "run"), lock: lock}
	// A run that was killed (kill -9, a crash) left its processes, pods and rules: remove them first.
	if _, err := os.Stat(n.run); err == nil {
		cfg.Log("cleaning up after a previous run that did not stop")
		teardown(cfg.Dir, cfg.Log)
	}
	if err := n.start(ctx); err != nil {
		cfg.Log("up failed: %v; tearing down (logs kept in %s)", err, filepath.Join(cfg.Dir, "logs"))
		n.Stop()
		return nil, err
	}
	return n, nil
}

// Stop tears the node down and releases the lock. Safe to call more than once.
func (n *Node) Stop() {
	if n == nil || n.lock == nil {
		return
	}
	teardown(n.cfg.Dir, n.cfg.Log)
	_ = n.lock.Close()
	n.lock = nil
}

// Down removes what a node left behind when its process was killed. It waits for a running
// node's lock only up to ctx's deadline.
func Down(ctx context.Context, cfg Config) error {
	if err := Check(); err != nil {
		return err
	}
	if err := cfg.defaults(); err != nil {
		return err
	}
	if _, err := os.Stat(cfg.Dir); err != nil {
		return nil
	}
	lock, err := acquireLock(ctx, filepath.Join(cfg.Dir, "lock"), cfg.Log)
	if err != nil {
		return err
	}
	defer lock.Close()
	teardown(cfg.Dir, cfg.Log)
	return nil
}

// acquireLock takes an exclusive flock, waiting for another node to stop until ctx ends.
func acquireLock(ctx context.Context, path string, log func(string, ...any)) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for waited := false; ; waited = true {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !waited {
			log("another real node holds %s; waiting for it to stop", path)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("another real node holds %s: %w", path, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

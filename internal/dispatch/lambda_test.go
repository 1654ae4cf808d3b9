package dispatch_test

// Lambda behaviour checked against a real AWS runtime client: an aws-lambda-go function
// (testdata/lambdafn) run as a host process against the dispatcher's Runtime API.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/millrace-io/millrace/internal/dispatch"
	"github.com/millrace-io/millrace/internal/testenv"
)

// lambdaFn is a running aws-lambda-go function.
type lambdaFn struct {
	mu     sync.Mutex
	out    strings.Builder
	exited chan struct{}
	err    error
}

func (f *lambdaFn) output() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.out.String()
}

func (f *lambdaFn) waitOutput(t *testing.T, substr string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		if !strings.Contains(f.output(), substr) {
			select {
			case <-f.exited:
				return fmt.Errorf("the function exited (%v) before printing %q; output %q", f.err, substr, f.output())
			default:
			}
			return fmt.Errorf("no %q in %q", substr, f.output())
		}
		return nil
	})
}

// startFn serves a Runtime API on 127.0.0.1 and starts the function against it.
func startFn(t *testing.T, api *dispatch.RuntimeAPI, env ...string) *lambdaFn {
	t.Helper()
	return startFnOn(t, listen(t, api), env...)
}

// startFnOn starts the function against the Runtime API at addr.
func startFnOn(t *testing.T, addr string, env ...string) *lambdaFn {
	t.Helper()
	bin := filepath.Join(testenv.Build(t, "./internal/dispatch/testdata/lambdafn"), "lambdafn")
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append([]string{"AWS_LAMBDA_RUNTIME_API=" + addr, "AWS_LAMBDA_FUNCTION_NAME=test"}, env...)...)
	f := &lambdaFn{exited: make(chan struct{})}
	cmd.Stdout = writerFunc(func(p []byte) (int, error) { f.mu.Lock(); defer f.mu.Unlock(); return f.out.Write(p) })
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { f.err = cmd.Wait(); close(f.exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-f.exited })
	return f
}

func waitMetric(t *testing.T, name string, get func() float64, want float64) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		if v := get(); v != want {
			return fmt.Errorf("%s = %v, want %v", name, v, want)
		}
		return nil
	})
}

// Point 1: aws-lambda-go exits when the Runtime API refuses its answer. A late answer to a
// timed-out invocation is accepted and dropped, so the runtime lives on to take the next batch.
func TestALateAnswerToATimedOutInvocationDoesNotStopTheRuntime(t *testing.T) {
	api := &dispatch.RuntimeAPI{}
	fn := startFn(t, api)
	url, arn := newQueue(t, false, 30)
	sendBodies(t, url, "", "sleep:2s")
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 1, HandlerTimeout: time.Second}, nil, api)
	waitMetric(t, "failed", func() float64 { return testutil.ToFloat64(r.metrics.Failed) }, 1)
	fn.waitOutput(t, "handled sleep:2s") // the late answer is sent right after this line
	sendBodies(t, url, "", "after")
	fn.waitOutput(t, "handled after")
}

// Point 1: after a timeout the handler's liveness probe fails once, and the preStop hook of the
// restart it causes does not drain the dispatcher.
func TestATimeoutFailsTheHandlersLivenessOnce(t *testing.T) {
	api := &dispatch.RuntimeAPI{}
	startFn(t, api)
	url, arn := newQueue(t, false, 30)
	if err := api.CheckHandler(); err != nil {
		t.Fatalf("liveness before any timeout: %v", err)
	}
	if api.DrainIsRestart() {
		t.Fatal("a drain with no restart pending was taken for a restart")
	}
	sendBodies(t, url, "", "sleep:2s")
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 1, HandlerTimeout: time.Second}, nil, api)
	waitMetric(t, "failed", func() float64 { return testutil.ToFloat64(r.metrics.Failed) }, 1)
	if err := api.CheckHandler(); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("liveness after a timeout: %v, want a failure naming the timeout", err)
	}
	if err := api.CheckHandler(); err != nil {
		t.Fatalf("liveness failed twice for one timeout: %v", err)
	}
	if !api.DrainIsRestart() {
		t.Fatal("the preStop hook of the restart was taken for the pod's termination")
	}
	if api.DrainIsRestart() {
		t.Fatal("a second drain after one restart was not taken for the pod's termination")
	}
}

// Point 6: with concurrency 2 and a runtime that serves one invocation at a time, the second batch
// waits for the runtime, and its timeout counts from the hand-over: each batch takes 1.2s of a 2s
// timeout, so both succeed (before, the second had 0.8s left when the runtime took it).
func TestABatchTimeoutCountsFromTheHandOverToTheRuntime(t *testing.T) {
	api := &dispatch.RuntimeAPI{}
	fn := startFn(t, api)
	url, arn := newQueue(t, false, 30)
	sendBodies(t, url, "", "sleep:1200ms", "sleep:1200ms")
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 1, Concurrency: 2, HandlerTimeout: 2 * time.Second}, nil, api)
	waitMetric(t, "deleted", func() float64 { return testutil.ToFloat64(r.metrics.Deleted) }, 2)
	if f := testutil.ToFloat64(r.metrics.Failed); f != 0 {
		t.Fatalf("%v messages failed", f)
	}
	if n := strings.Count(fn.output(), "handled sleep"); n != 2 {
		t.Fatalf("handled %d times: %q", n, fn.output())
	}
}

// Point 6: the same combination is reported, so the operator learns why batches queue.
func TestASingleInvocationRuntimeUnderConcurrencyIsWarnedAbout(t *testing.T) {
	var mu sync.Mutex
	var logs strings.Builder
	log := funcr.New(func(prefix, args string) { mu.Lock(); defer mu.Unlock(); logs.WriteString(args + "\n") }, funcr.Options{})
	api := &dispatch.RuntimeAPI{Log: log, SlowRuntimeAfter: 300 * time.Millisecond}
	startFn(t, api)
	url, arn := newQueue(t, false, 30)
	sendBodies(t, url, "", "sleep:1s", "sleep:1s")
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 1, Concurrency: 2, HandlerTimeout: 5 * time.Second}, nil, api)
	waitMetric(t, "deleted", func() float64 { return testutil.ToFloat64(r.metrics.Deleted) }, 2)
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "AWS_LAMBDA_MAX_CONCURRENCY") {
		t.Fatalf("no warning about the runtime's concurrency in %q", logs.String())
	}
}

// Point 6: a runtime in multi-concurrency mode (AWS_LAMBDA_MAX_CONCURRENCY, several /next
// pollers) runs the dispatcher's concurrent batches at the same time.
func TestAMultiConcurrencyRuntimeRunsBatchesAtOnce(t *testing.T) {
	var mu sync.Mutex
	var logs strings.Builder
	log := funcr.New(func(prefix, args string) { mu.Lock(); defer mu.Unlock(); logs.WriteString(args + "\n") }, funcr.Options{})
	api := &dispatch.RuntimeAPI{Log: log}
	fn := startFn(t, api, "AWS_LAMBDA_MAX_CONCURRENCY=2")
	url, arn := newQueue(t, false, 30)
	sendBodies(t, url, "", "peer", "peer")
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 1, Concurrency: 2, HandlerTimeout: 15 * time.Second}, nil, api)
	waitMetric(t, "deleted", func() float64 { return testutil.ToFloat64(r.metrics.Deleted) }, 2)
	if n := strings.Count(fn.output(), "overlapped"); n != 2 {
		t.Fatalf("the two batches did not run at once: %q", fn.output())
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Contains(logs.String(), "AWS_LAMBDA_MAX_CONCURRENCY") {
		t.Fatalf("warned about a runtime that keeps up: %q", logs.String())
	}
}

// Point 5: with reportBatchItemFailures, an answer that is not JSON, or a batchItemFailures entry
// with an empty itemIdentifier, fails the whole batch, as in Lambda.
func TestAnUnreadableBatchResponseFailsTheWholeBatch(t *testing.T) {
	for _, bad := range []string{"notjson", "emptyid"} {
		t.Run(bad, func(t *testing.T) {
			api := &dispatch.RuntimeAPI{}
			fn := startFn(t, api)
			url, arn := newQueue(t, false, 30)
			sendBodies(t, url, "", "one", bad)
			r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 10, BatchWindow: 300 * time.Millisecond, ReportBatchItemFailures: true, HandlerTimeout: 5 * time.Second}, nil, api)
			waitMetric(t, "failed", func() float64 { return testutil.ToFloat64(r.metrics.Failed) }, 2)
			if d := testutil.ToFloat64(r.metrics.Deleted); d != 0 {
				t.Fatalf("deleted %v of a batch whose answer was unreadable (function output %q)", d, fn.output())
			}
		})
	}
}

// Without reportBatchItemFailures, Lambda ignores the answer: any answer deletes the batch.
func TestWithoutReportBatchItemFailuresAnyAnswerDeletesTheBatch(t *testing.T) {
	api := &dispatch.RuntimeAPI{}
	startFn(t, api)
	url, arn := newQueue(t, false, 30)
	sendBodies(t, url, "", "notjson")
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 1, HandlerTimeout: 5 * time.Second}, nil, api)
	waitMetric(t, "deleted", func() float64 { return testutil.ToFloat64(r.metrics.Deleted) }, 1)
}

// Points 4 and 8: without a configured queue ARN, the dispatcher reads it from the queue: the
// event's eventSourceARN is the queue's, invokedFunctionArn is a Lambda function ARN in the
// queue's account, and the trace id's time field is the epoch seconds.
func TestTheRuntimeSeesLambdaShapedARNsAndTraceIDs(t *testing.T) {
	api := &dispatch.RuntimeAPI{}
	fn := startFn(t, api)
	url, arn := newQueue(t, false, 30)
	sendBodies(t, url, "", "context")
	before := time.Now().Add(-time.Hour)
	start(t, dispatch.Config{QueueURL: url, BatchSize: 1, HandlerTimeout: 5 * time.Second}, nil, api)
	fn.waitOutput(t, "handled context")
	line := regexp.MustCompile(`context (\S*) (\S*) (\S*)`).FindStringSubmatch(fn.output())
	if line == nil {
		t.Fatalf("output %q", fn.output())
	}
	parts := strings.Split(arn, ":") // arn:aws:sqs:region:account:name
	queueName := parts[5]
	if want := "arn:aws:lambda:" + parts[3] + ":" + parts[4] + ":function:" + queueName; line[1] != want {
		t.Errorf("invokedFunctionArn %q, want %q", line[1], want)
	}
	if line[2] != arn {
		t.Errorf("eventSourceARN %q, want the queue's %q", line[2], arn)
	}
	m := regexp.MustCompile(`^Root=1-([0-9a-f]{8})-[0-9a-f]{24}(;|$)`).FindStringSubmatch(line[3])
	if m == nil {
		t.Fatalf("trace id %q is not Root=1-<8 hex>-<24 hex>", line[3])
	}
	secs, _ := strconv.ParseInt(m[1], 16, 64)
	if at := time.Unix(secs, 0); at.Before(before) || at.After(time.Now().Add(time.Hour)) {
		t.Errorf("trace id %q: time field %s is not now in epoch seconds", line[3], at)
	}
}

// Point 6: a batch waiting for a runtime has not started: when the dispatcher drains, it is
// released at once with the other unstarted messages instead of failing after the handler timeout.
func TestABatchNoRuntimeTookIsReleasedWhenDraining(t *testing.T) {
	api := &dispatch.RuntimeAPI{}
	runtimeCameAndWent(t, listen(t, api))
	url, arn := newQueue(t, false, 300)
	sendBodies(t, url, "", "waiting")
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 1, HandlerTimeout: time.Minute}, nil, api)
	eventually(t, 10*time.Second, func() error {
		if v, f := counts(t, url); v != 0 || f != 1 {
			return fmt.Errorf("%d visible, %d in flight", v, f)
		}
		return nil
	})
	r.stop(t)
	if v, f := counts(t, url); v != 1 || f != 0 {
		t.Fatalf("after draining: %d visible, %d in flight; want the batch no runtime took released", v, f)
	}
	if d := testutil.ToFloat64(r.metrics.Delivered); d != 0 {
		t.Fatalf("%v delivered, want none: no runtime took the batch", d)
	}
}

// Point 6: a pod whose runtime is gone (crashing, restarting) does not keep a batch from the
// other pods: with no runtime connected for NoRuntimeAfter, the batch is released.
func TestABatchIsReleasedWhenNoRuntimeIsConnected(t *testing.T) {
	api := &dispatch.RuntimeAPI{NoRuntimeAfter: 500 * time.Millisecond, SlowRuntimeAfter: 100 * time.Millisecond}
	runtimeCameAndWent(t, listen(t, api))
	url, arn := newQueue(t, false, 300)
	sendBodies(t, url, "", "waiting")
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 1, HandlerTimeout: time.Minute}, nil, api)
	waitMetric(t, "released", func() float64 { return testutil.ToFloat64(r.metrics.Released) }, 1)
	if d := testutil.ToFloat64(r.metrics.Delivered); d != 0 {
		t.Fatalf("%v delivered, want none", d)
	}
}

// runtimeCameAndWent is a runtime that asked for work once and is gone (crashed, restarting).
func runtimeCameAndWent(t *testing.T, addr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/2018-06-01/runtime/invocation/next", nil)
	go func() {
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(100 * time.Millisecond) // the poll arrives (only then does the dispatcher receive)
	cancel()
}

// countingSQS counts receives.
type countingSQS struct {
	dispatch.SQSAPI
	receives atomic.Int32
}

func (c *countingSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	c.receives.Add(1)
	return c.SQSAPI.ReceiveMessage(ctx, in, opts...)
}

// Lambda invokes an environment only after its init: nothing is received before a runtime first
// asks for work, so a pod whose runtime never comes up takes no messages from the others.
func TestNothingIsReceivedBeforeTheRuntimeAsksForWork(t *testing.T) {
	var mu sync.Mutex
	var logs strings.Builder
	log := funcr.New(func(prefix, args string) { mu.Lock(); defer mu.Unlock(); logs.WriteString(args + "\n") }, funcr.Options{})
	api := &dispatch.RuntimeAPI{}
	url, arn := newQueue(t, false, 300)
	sendBodies(t, url, "", "early")
	counting := &countingSQS{SQSAPI: sqsClient}
	addr := listen(t, api)
	d := dispatch.New(dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 1, WaitTime: time.Second, Region: "us-east-1"}, counting, api, nil, nil, log)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if !strings.Contains(logs.String(), "waiting for the handler to ask for work") {
			return fmt.Errorf("log %q", logs.String())
		}
		return nil
	})
	if n := counting.receives.Load(); n != 0 {
		t.Fatalf("%d receives before any runtime asked for work", n)
	}
	fn := startFnOn(t, addr)
	fn.waitOutput(t, "handled early")
}

// A runtime whose init failed exits, and its container is restarted: once a new runtime asks for
// work, the old init error no longer fails every batch.
func TestAnInitErrorEndsWhenARestartedRuntimeAsksForWork(t *testing.T) {
	api := &dispatch.RuntimeAPI{}
	addr := listen(t, api)
	resp, err := http.Post("http://"+addr+"/2018-06-01/runtime/init/error", "application/json", strings.NewReader(`{"errorType":"Runtime.ImportModuleError","errorMessage":"no such module"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	fn := startFnOn(t, addr) // the restarted container
	url, arn := newQueue(t, false, 30)
	sendBodies(t, url, "", "one")
	start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 1, HandlerTimeout: 5 * time.Second}, nil, api)
	fn.waitOutput(t, "handled one")
}

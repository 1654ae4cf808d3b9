// Package restart checks the WorkflowRun controller's crash safety: the manager is stopped in the
// middle of 50 runs and a new one takes over. Every run finishes; every task is performed once
// per visit with one request id, and the only repeats are of tasks the stopped manager had not
// recorded the result of (performed again with the same id).
package restart

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/consumer"
	"github.com/millrace-io/millrace/internal/controller"
	"github.com/millrace-io/millrace/internal/dispatch"
	"github.com/millrace-io/millrace/internal/egress"
	"github.com/millrace-io/millrace/internal/tasktoken"
	"github.com/millrace-io/millrace/internal/testenv"
)

var scheme = testenv.Scheme()

// switchable lets the callback API outlive the manager that serves it.
type switchable struct {
	mu sync.RWMutex
	h  http.Handler
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	h := s.h
	s.mu.RUnlock()
	if h == nil {
		http.Error(w, "manager down", http.StatusServiceUnavailable)
		return
	}
	h.ServeHTTP(w, r)
}

func (s *switchable) set(h http.Handler) { s.mu.Lock(); s.h = h; s.mu.Unlock() }

// startManager runs a manager wired by controller.Setup, as cmd/manager is (millrace:http tasks
// on, through the egress client), until stop.
func startManager(t *testing.T, cfg *rest.Config, sqsClient *sqs.Client, signer *tasktoken.Signer, cb *switchable) (stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		// The second manager of the test registers the same controllers again.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	wired, err := controller.Setup(ctx, mgr, controller.Options{
		SQS: sqsClient, ClusterName: "restart", Resync: time.Minute, StalledRetry: time.Hour, DepthInterval: time.Second,
		StatusWriteInterval: time.Second, Region: "us-east-1", Render: consumer.Options{DispatcherImage: "d"},
		Signer: signer, HTTP: egress.New(egress.Options{}),
		// The 50 runs share one namespace: its share of the executor is the whole of it here
		// (the share itself is taskexecutor_test's).
		LocalTasksPerNamespace: 16,
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = mgr.Start(ctx); close(done) }()
	cb.set(wired.Callback)
	return func() { cb.set(nil); cancel(); <-done }
}

// The workflow of every run: a millrace:http call visited twice (a loop), an sqs:sendMessage to a
// FIFO queue, then a task for a Consumer.
const workflow = `{"StartAt":"Init","States":{
	"Init":{"Type":"Pass","Result":{"n":0},"ResultPath":"$.i","Next":"Call"},
	"Call":{"Type":"Task","Resource":"millrace:http","TimeoutSeconds":60,
		"Parameters":{"Method":"POST","Url":"%s/call","Body":{"run.$":"$$.Execution.Name","n.$":"$.i.n"}},
		"ResultSelector":{"status.$":"$.StatusCode"},"ResultPath":"$.call","Next":"Inc"},
	"Inc":{"Type":"Pass","Parameters":{"n.$":"States.MathAdd($.i.n, 1)"},"ResultPath":"$.i","Next":"Again?"},
	"Again?":{"Type":"Choice","Choices":[{"Variable":"$.i.n","NumericLessThan":2,"Next":"Call"}],"Default":"Notify"},
	"Notify":{"Type":"Task","Resource":"arn:aws:states:::sqs:sendMessage",
		"Parameters":{"Queue":"events","MessageGroupId.$":"$$.Execution.Name","MessageBody":{"run.$":"$$.Execution.Name"}},
		"ResultPath":"$.sent","Next":"Work"},
	"Work":{"Type":"Task","Resource":"millrace:consumer/work","ResultPath":"$.work","End":true}}}`

// httpCalls counts the millrace:http calls the test server received.
type httpCalls struct {
	mu sync.Mutex
	// keys are the Idempotency-Keys sent for each visit (run/n), requests the calls per key,
	// firstAfterStop the keys first seen after the first manager was stopped.
	keys           map[string]map[string]bool
	requests       map[string]int
	firstAfterStop map[string]bool
	stopped        bool
	total          atomic.Int32
}

func (c *httpCalls) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Run string
		N   float64
	}
	raw, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(raw, &body)
	key := r.Header.Get(controller.IdempotencyKeyHeader)
	c.mu.Lock()
	visit := fmt.Sprintf("%s/%d", body.Run, int(body.N))
	if c.keys[visit] == nil {
		c.keys[visit] = map[string]bool{}
	}
	c.keys[visit][key] = true
	if c.requests[key] == 0 && c.stopped {
		c.firstAfterStop[key] = true
	}
	c.requests[key]++
	c.mu.Unlock()
	c.total.Add(1)
	// Longer than DispatchRecordDelay: a manager that recorded a task as dispatched while it ran
	// (as it once did) would lose the calls in flight when it stops.
	time.Sleep(1500 * time.Millisecond)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func TestRunsSurviveAManagerRestart(t *testing.T) {
	f := testenv.FauxqsFor(t)
	cp := testenv.ControlPlaneFor(t)
	ctx := context.Background()
	sqsClient, err := f.Client(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	k8s, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := tasktoken.NewSigner([]byte("restart-test-task-token-key-0123"))
	cb := &switchable{}
	cbServer := httptest.NewServer(cb)
	defer cbServer.Close()
	calls := &httpCalls{keys: map[string]map[string]bool{}, requests: map[string]int{}, firstAfterStop: map[string]bool{}}
	api := httptest.NewServer(calls)
	defer api.Close()

	stopA := startManager(t, cp.Config, sqsClient, signer, cb)
	const ns = "restart"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	// The administrator grants the namespace the test's HTTP server, on 127.0.0.1 (a cidr rule
	// naming loopback: a host rule never reaches it).
	apiURL, _ := url.Parse(api.URL)
	port, _ := strconv.Atoi(apiURL.Port())
	if err := k8s.Create(ctx, &millracev1.TenantPolicy{ObjectMeta: metav1.ObjectMeta{Name: "restart-http"}, Spec: millracev1.TenantPolicySpec{
		Namespaces: []string{ns}, HTTP: &millracev1.TenantHTTPPolicy{Destinations: []millracev1.HTTPDestination{{CIDR: "127.0.0.1", Ports: []int32{int32(port)}}}}}}); err != nil {
		t.Fatal(err)
	}
	work := &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "work"}}
	eventsQueue := &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "events"}, Spec: millracev1.QueueSpec{Type: millracev1.QueueTypeFIFO}}
	for _, q := range []*millracev1.Queue{work, eventsQueue} {
		if err := k8s.Create(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	urls := map[string]string{}
	wait(t, 30*time.Second, func() error {
		for _, q := range []*millracev1.Queue{work, eventsQueue} {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(q), q); err != nil || q.Status.QueueURL == "" {
				return fmt.Errorf("queue %s not ready: %v", q.Name, err)
			}
			urls[q.Name] = q.Status.QueueURL
		}
		return nil
	})
	c := &millracev1.Consumer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "work"}, Spec: millracev1.ConsumerSpec{
		QueueRef: millracev1.ConsumerQueueReference{Name: "work"},
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "h", Image: "h"}}}}}}
	if err := k8s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	wf := &millracev1.Workflow{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "calls"}, Spec: millracev1.WorkflowSpec{
		Definition: apiextensionsv1.JSON{Raw: fmt.Appendf(nil, workflow, api.URL)}}}
	if err := k8s.Create(ctx, wf); err != nil {
		t.Fatal(err)
	}

	// The Consumer's worker: a real dispatcher and a handler that records the token of every delivery.
	var mu sync.Mutex
	tokens := map[string]map[string]bool{} // run/state -> tokens seen
	var handled atomic.Int32
	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var e events.SQSEvent
		_ = json.Unmarshal(raw, &e)
		rec := e.Records[0]
		tok := *rec.MessageAttributes[dispatch.TaskTokenAttribute].StringValue
		claims, err := signer.Verify(tok)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		key := claims.Run + "/" + claims.State
		if tokens[key] == nil {
			tokens[key] = map[string]bool{}
		}
		tokens[key][tok] = true
		mu.Unlock()
		handled.Add(1)
		time.Sleep(20 * time.Millisecond)
		_ = json.NewEncoder(w).Encode(map[string]string{"by": claims.State})
	}))
	defer h.Close()
	d := dispatch.New(dispatch.Config{QueueURL: urls["work"], Region: "us-east-1", BatchSize: 1, Concurrency: 8, WaitTime: time.Second},
		sqsClient, &dispatch.HTTPInvoker{URL: h.URL}, &dispatch.CallbackClient{BaseURL: cbServer.URL}, nil, logr.Discard())
	dctx, dcancel := context.WithCancel(ctx)
	ddone := make(chan struct{})
	go func() { _ = d.Run(dctx); close(ddone) }()
	defer func() { dcancel(); <-ddone }()

	const runs = 50
	for i := 0; i < runs; i++ {
		run := &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("run-%02d", i)},
			Spec: millracev1.WorkflowRunSpec{WorkflowRef: millracev1.WorkflowReference{Name: "calls"}}}
		if err := k8s.Create(ctx, run); err != nil {
			t.Fatal(err)
		}
	}
	// Stop the manager while calls are in flight (half of the 100 visits of Call have reached the
	// server), leave it down a moment, start another.
	wait(t, 60*time.Second, func() error {
		if n := calls.total.Load(); n < runs {
			return fmt.Errorf("%d http calls", n)
		}
		return nil
	})
	stopA()
	calls.mu.Lock()
	calls.stopped = true
	calls.mu.Unlock()
	time.Sleep(2 * time.Second)
	stopB := startManager(t, cp.Config, sqsClient, signer, cb)
	defer stopB()

	wait(t, 120*time.Second, func() error {
		var list millracev1.WorkflowRunList
		if err := k8s.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return err
		}
		done := 0
		for _, r := range list.Items {
			switch r.Status.Phase {
			case millracev1.RunSucceeded:
				done++
			case millracev1.RunFailed, millracev1.RunTimedOut, millracev1.RunAborted:
				return fmt.Errorf("run %s ended %s: %s %s", r.Name, r.Status.Phase, r.Status.Error, r.Status.Cause)
			}
		}
		if done != runs {
			return fmt.Errorf("%d of %d runs succeeded", done, runs)
		}
		return nil
	})

	// millrace:http: one Idempotency-Key per visit, a different one for each visit; a key called
	// twice only if its first call was made by the stopped manager (at-least-once across a stop,
	// with the same key), and exactly once if the manager that made it kept running.
	calls.mu.Lock()
	if len(calls.keys) != 2*runs || len(calls.requests) != 2*runs {
		t.Errorf("%d visits and %d keys seen at the HTTP server, want %d of each", len(calls.keys), len(calls.requests), 2*runs)
	}
	repeated := 0
	for visit, keys := range calls.keys {
		if len(keys) != 1 {
			t.Errorf("visit %s was called with %d different Idempotency-Keys", visit, len(keys))
		}
		for key := range keys {
			if key == "" {
				t.Errorf("visit %s was called without an Idempotency-Key", visit)
			}
			switch n := calls.requests[key]; {
			case n > 1 && calls.firstAfterStop[key]:
				t.Errorf("visit %s was called %d times by the manager that kept running", visit, n)
			case n > 2:
				t.Errorf("visit %s was called %d times", visit, n)
			case n == 2:
				repeated++
			}
		}
	}
	calls.mu.Unlock()

	// sqs:sendMessage to a FIFO queue: the deduplication id is the visit's request id, so one
	// message per run even if the stopped manager had sent it and a new one sent it again.
	perRun := map[string]int{}
	dedupIDs := map[string]string{}
	for empty := 0; empty < 2; {
		out, err := sqsClient.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(urls["events"]), MaxNumberOfMessages: 10,
			WaitTimeSeconds: 1, MessageSystemAttributeNames: []sqstypes.MessageSystemAttributeName{sqstypes.MessageSystemAttributeNameMessageDeduplicationId}})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Messages) == 0 {
			empty++
			continue
		}
		for _, m := range out.Messages {
			var body struct{ Run string }
			_ = json.Unmarshal([]byte(aws.ToString(m.Body)), &body)
			perRun[body.Run]++
			dedupIDs[body.Run] = m.Attributes[string(sqstypes.MessageSystemAttributeNameMessageDeduplicationId)]
			if _, err := sqsClient.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(urls["events"]), ReceiptHandle: m.ReceiptHandle}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(perRun) != runs {
		t.Errorf("messages of %d runs in the FIFO queue, want %d", len(perRun), runs)
	}
	for run, n := range perRun {
		if n != 1 {
			t.Errorf("run %s sent %d messages, want 1", run, n)
		}
		if len(dedupIDs[run]) != 64 {
			t.Errorf("run %s's message has deduplication id %q, want the task's request id", run, dedupIDs[run])
		}
	}

	// Consumer tasks: each delivered with one token (a redelivery after the stop has the same).
	mu.Lock()
	defer mu.Unlock()
	if len(tokens) != runs {
		t.Fatalf("consumer tasks seen for %d runs, want %d", len(tokens), runs)
	}
	for key, seen := range tokens {
		if len(seen) != 1 {
			t.Fatalf("%s was delivered with %d different tokens", key, len(seen))
		}
	}
	t.Logf("%d http calls for %d visits (%d performed again after the stop, with the same key); %d consumer deliveries for %d tasks",
		calls.total.Load(), 2*runs, repeated, handled.Load(), runs)
}

func wait(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, check)
}

func TestMain(m *testing.M) {
	testenv.UseLocalCredentials()
	os.Exit(m.Run())
}

// Package restart checks the WorkflowRun controller's crash safety: the manager is stopped in the
// middle of 50 runs and a new one takes over; every run finishes once, and no task is ever delivered
// with two different tokens.
package restart

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
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
	"github.com/millrace-io/millrace/controllers"
	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/consumer"
	"github.com/millrace-io/millrace/internal/depth"
	"github.com/millrace-io/millrace/internal/dispatch"
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

// startManager runs a manager with the Queue, Consumer and WorkflowRun controllers until stop.
func startManager(t *testing.T, cfg *rest.Config, sqsClient *sqs.Client, signer *tasktoken.Signer, cb *switchable) (stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		// The second manager of the test registers the same controllers again.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	monitor := depth.NewMonitor(sqsClient, depth.Options{Registerer: prometheus.NewRegistry()})
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must((&controllers.QueueReconciler{Client: mgr.GetClient(), SQS: sqsClient, Recorder: mgr.GetEventRecorder("q"), Monitor: monitor,
		Counts: &controllers.QueueCountsWriter{Client: mgr.GetClient(), MinInterval: time.Second}, ClusterName: "restart",
		Resync: time.Minute, StalledRetry: time.Hour, DepthInterval: time.Second}).SetupWithManager(ctx, mgr))
	must((&controllers.ConsumerReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("c"), Monitor: monitor,
		Metrics: controllers.NewConsumerMetrics(prometheus.NewRegistry()), Render: consumer.Options{DispatcherImage: "d"},
		Region: "us-east-1", StatusWriteInterval: time.Second}).SetupWithManager(ctx, mgr))
	runs := &controllers.WorkflowRunReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("r"), SQS: sqsClient,
		Signer: signer, APIReader: mgr.GetAPIReader()}
	must(runs.SetupWithManager(ctx, mgr))
	done := make(chan struct{})
	go func() { _ = mgr.Start(ctx); close(done) }()
	cb.set(callback.Handler(signer, runs))
	return func() { cb.set(nil); cancel(); <-done }
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

	stopA := startManager(t, cp.Config, sqsClient, signer, cb)
	const ns = "restart"
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	q := &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "work"}}
	if err := k8s.Create(ctx, q); err != nil {
		t.Fatal(err)
	}
	var url string
	wait(t, 30*time.Second, func() error {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(q), q); err != nil || q.Status.QueueURL == "" {
			return fmt.Errorf("queue not ready: %v", err)
		}
		url = q.Status.QueueURL
		return nil
	})
	c := &millracev1.Consumer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "work"}, Spec: millracev1.ConsumerSpec{
		QueueRef: millracev1.ConsumerQueueReference{Name: "work"},
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "h", Image: "h"}}}}}}
	if err := k8s.Create(ctx, c); err != nil {
		t.Fatal(err)
	}
	wf := &millracev1.Workflow{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "two-steps"}, Spec: millracev1.WorkflowSpec{
		Definition: apiextensionsv1.JSON{Raw: []byte(`{"StartAt":"First","States":{
			"First":{"Type":"Task","Resource":"millrace:consumer/work","ResultPath":"$.first","Next":"Pause"},
			"Pause":{"Type":"Wait","Seconds":1,"Next":"Second"},
			"Second":{"Type":"Task","Resource":"millrace:consumer/work","ResultPath":"$.second","End":true}}}`)}}}
	if err := k8s.Create(ctx, wf); err != nil {
		t.Fatal(err)
	}

	// The worker: a real dispatcher and a handler that records the token of every delivery.
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
	d := dispatch.New(dispatch.Config{QueueURL: url, Region: "us-east-1", BatchSize: 1, Concurrency: 8, WaitTime: time.Second},
		sqsClient, &dispatch.HTTPInvoker{URL: h.URL}, &dispatch.CallbackClient{BaseURL: cbServer.URL}, nil, logr.Discard())
	dctx, dcancel := context.WithCancel(ctx)
	ddone := make(chan struct{})
	go func() { _ = d.Run(dctx); close(ddone) }()
	defer func() { dcancel(); <-ddone }()

	const runs = 50
	for i := 0; i < runs; i++ {
		run := &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("run-%02d", i)},
			Spec: millracev1.WorkflowRunSpec{WorkflowRef: millracev1.WorkflowReference{Name: "two-steps"}}}
		if err := k8s.Create(ctx, run); err != nil {
			t.Fatal(err)
		}
	}
	// Stop the manager while runs are in flight, leave it down a moment, start another.
	wait(t, 30*time.Second, func() error {
		if handled.Load() < runs/2 {
			return fmt.Errorf("%d tasks handled", handled.Load())
		}
		return nil
	})
	stopA()
	time.Sleep(2 * time.Second)
	stopB := startManager(t, cp.Config, sqsClient, signer, cb)
	defer stopB()

	wait(t, 90*time.Second, func() error {
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
	mu.Lock()
	defer mu.Unlock()
	if len(tokens) != 2*runs {
		t.Fatalf("tasks seen for %d run states, want %d", len(tokens), 2*runs)
	}
	for key, seen := range tokens {
		if len(seen) != 1 {
			t.Fatalf("%s was delivered with %d different tokens", key, len(seen))
		}
	}
	t.Logf("%d deliveries for %d tasks across the restart", handled.Load(), 2*runs)
}

func wait(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, check)
}

func TestMain(m *testing.M) {
	testenv.UseLocalCredentials()
	os.Exit(m.Run())
}

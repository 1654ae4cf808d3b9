package dispatch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/dispatch"
	"github.com/millrace-io/millrace/internal/tasktoken"
)

// sink records what the real callback API accepts.
type sink struct {
	mu      sync.Mutex
	results []callback.Result
}

func (s *sink) Report(_ context.Context, _ tasktoken.Claims, r callback.Result) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.results = append(s.results, r)
	return nil
}

func (s *sink) snapshot() []callback.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]callback.Result(nil), s.results...)
}

func runDispatcher(t *testing.T, cfg dispatch.Config, h *handler, base string) *dispatch.Metrics {
	t.Helper()
	m := dispatch.NewMetrics(prometheus.NewRegistry())
	d := dispatch.New(cfg, sqsClient, httpInvoker(h), &dispatch.CallbackClient{BaseURL: base}, m, logr.Discard())
	ctx, cancel := contextWithCancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return m
}

// A handler answer over 256 KiB drew 413 from the callback API; the dispatcher took it as final,
// deleted the message and the run waited forever. Now the task fails with
// States.DataLimitExceeded, through the real callback API.
func TestAnOversizedAnswerFailsTheTaskInsteadOfLosingIt(t *testing.T) {
	url, arn := newQueue(t, false, 2)
	signer, _ := tasktoken.NewSigner([]byte(strings.Repeat("k", 32)))
	token, _ := signer.Issue(tasktoken.Claims{Namespace: "shop", Run: "r", RunUID: "u", State: "Big", Attempt: 1})
	recorded := &sink{}
	api := httptest.NewServer(callback.Handler(signer, recorded))
	defer api.Close()
	h := newHandler(t, func(events.SQSEvent) (int, any, time.Duration) {
		return 200, map[string]string{"blob": strings.Repeat("x", callback.MaxBody)}, 0
	})
	sendTask(t, url, "big", token)
	m := runDispatcher(t, dispatch.Config{QueueURL: url, QueueARN: arn, Region: "us-east-1", BatchSize: 1, WaitTime: time.Second}, h, api.URL)
	eventually(t, 10*time.Second, func() error {
		got := recorded.snapshot()
		if len(got) != 1 || got[0].Kind != callback.Failure || got[0].Error != "States.DataLimitExceeded" {
			return fmt.Errorf("the callback API recorded %+v", got)
		}
		return nil
	})
	waitEmpty(t, url) // the failure was accepted: the message is done with
	if n := testutil.ToFloat64(m.TaskReports.WithLabelValues("too_large")); n != 1 {
		t.Errorf("too_large reports: %v", n)
	}
}

// A 403 (the manager's key rotated under a task) or any 4xx but 404/410 may change: the report is
// retried, and when it is still not accepted the message is kept and delivered again instead of
// being deleted with its result unreported.
func TestARefusedReportKeepsItsMessage(t *testing.T) {
	url, arn := newQueue(t, false, 1)
	var calls atomic.Int32
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, `{"error":"task token signature does not verify"}`, http.StatusForbidden)
	}))
	defer api.Close()
	h := newHandler(t, func(events.SQSEvent) (int, any, time.Duration) { return 200, map[string]int{"ok": 1}, 0 })
	sendTask(t, url, "task", "token-signed-with-an-old-key")
	runDispatcher(t, dispatch.Config{QueueURL: url, QueueARN: arn, Region: "us-east-1", BatchSize: 1, WaitTime: time.Second,
		ReportTimeout: 500 * time.Millisecond}, h, api.URL)
	eventually(t, 20*time.Second, func() error {
		if n := len(h.bodies()); n < 2 {
			return fmt.Errorf("delivered %d times, want the message back after its report failed", n)
		}
		return nil
	})
	if calls.Load() < 2 {
		t.Errorf("%d report attempts, want retries", calls.Load())
	}
}

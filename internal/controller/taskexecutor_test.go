package controller

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/tasktoken"
)

// executorFor runs an executor whose reports go to report, until the test ends.
func executorFor(t *testing.T, report func(context.Context, tasktoken.Claims, callback.Result) error) (*taskExecutor, *logLines, context.CancelFunc, chan struct{}) {
	t.Helper()
	logs := &logLines{}
	e := newTaskExecutor(2, report, NewWorkflowRunMetrics(nil), funcr.New(func(prefix, args string) { logs.add(args) }, funcr.Options{}))
	e.retryDelay = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e, logs, cancel, done
}

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) add(s string) { l.mu.Lock(); l.lines = append(l.lines, s); l.mu.Unlock() }
func (l *logLines) count() int   { l.mu.Lock(); defer l.mu.Unlock(); return len(l.lines) }

func eventuallyTrue(t *testing.T, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func job(key string, performed *atomic.Int32) *localJob {
	return &localJob{key: key, kind: "http", claims: tasktoken.Claims{Run: key}, perform: func(context.Context) (callback.Result, error) {
		performed.Add(1)
		return callback.Result{Kind: callback.Success, Output: []byte(`{}`)}, nil
	}}
}

// A job submitted again while held — queued, running, or reported a moment ago (a reconcile that
// read an older copy of the run) — is not performed again.
func TestAJobIsPerformedOnceWhileTheExecutorHoldsIt(t *testing.T) {
	var reports atomic.Int32
	e, _, _, _ := executorFor(t, func(context.Context, tasktoken.Claims, callback.Result) error { reports.Add(1); return nil })
	var performed atomic.Int32
	for range 5 {
		if err := e.submit(job("a", &performed)); err != nil {
			t.Fatal(err)
		}
	}
	eventuallyTrue(t, "the report", func() bool { return reports.Load() == 1 })
	if err := e.submit(job("a", &performed)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if performed.Load() != 1 || reports.Load() != 1 || !e.holds("a") {
		t.Fatalf("performed %d times, reported %d times", performed.Load(), reports.Load())
	}
}

// A report that keeps failing is logged when the executor gives up; the job's result is kept,
// and the next submission reports it again without performing the task again.
func TestAReportThatKeepsFailingIsLoggedAndMadeAgainLater(t *testing.T) {
	var failing atomic.Bool
	failing.Store(true)
	var reports atomic.Int32
	e, logs, _, _ := executorFor(t, func(context.Context, tasktoken.Claims, callback.Result) error {
		reports.Add(1)
		if failing.Load() {
			return errors.New("the API server is away")
		}
		return nil
	})
	var performed atomic.Int32
	if err := e.submit(job("a", &performed)); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "giving up", func() bool { return logs.count() == 1 })
	if got := reports.Load(); got != int32(e.reportTries) {
		t.Fatalf("%d reports before giving up, want %d", got, e.reportTries)
	}
	failing.Store(false)
	if err := e.submit(job("a", &performed)); err != nil {
		t.Fatal(err)
	}
	eventuallyTrue(t, "the report made again", func() bool { return reports.Load() == int32(e.reportTries)+1 })
	if performed.Load() != 1 {
		t.Fatalf("performed %d times, want once", performed.Load())
	}
}

// A stale report (the run moved on: timed out, aborted, deleted) ends the job without retries.
func TestAStaleReportIsNotRetried(t *testing.T) {
	var reports atomic.Int32
	e, logs, _, _ := executorFor(t, func(context.Context, tasktoken.Claims, callback.Result) error {
		reports.Add(1)
		return callback.ErrStale
	})
	var performed atomic.Int32
	_ = e.submit(job("a", &performed))
	eventuallyTrue(t, "the report", func() bool { return reports.Load() == 1 })
	time.Sleep(20 * time.Millisecond)
	if reports.Load() != 1 || logs.count() != 0 {
		t.Fatalf("%d reports, %d log lines", reports.Load(), logs.count())
	}
}

// A task that cannot be performed for now (an SQS endpoint that does not answer) is tried again,
// then dropped with a log line: the run's next reconcile submits it again.
func TestATaskThatCannotBePerformedIsDroppedToBeSubmittedAgain(t *testing.T) {
	e, logs, _, _ := executorFor(t, func(context.Context, tasktoken.Claims, callback.Result) error { return nil })
	var tries atomic.Int32
	_ = e.submit(&localJob{key: "a", kind: "sqs", perform: func(context.Context) (callback.Result, error) {
		tries.Add(1)
		return callback.Result{}, errors.New("connection refused")
	}})
	eventuallyTrue(t, "giving up", func() bool { return logs.count() == 1 })
	if tries.Load() != int32(e.reportTries) || e.holds("a") {
		t.Fatalf("%d tries; held %v", tries.Load(), e.holds("a"))
	}
}

// At shutdown the work in flight sees its context cancelled, its result is not reported (it is
// not the task's), the job is forgotten, and Start returns only when the work has stopped. Work
// handed over before the manager starts waits for it.
func TestShutdownCancelsTheWorkInFlightAndReportsNothing(t *testing.T) {
	var reports atomic.Int32
	e := newTaskExecutor(2, func(context.Context, tasktoken.Claims, callback.Result) error { reports.Add(1); return nil }, nil, funcr.New(func(string, string) {}, funcr.Options{}))
	var started, stopped atomic.Bool
	_ = e.submit(&localJob{key: "slow", perform: func(ctx context.Context) (callback.Result, error) {
		started.Store(true)
		<-ctx.Done()
		time.Sleep(20 * time.Millisecond)
		stopped.Store(true)
		return callback.Result{Kind: callback.Failure, Error: "States.Timeout"}, nil
	}})
	time.Sleep(10 * time.Millisecond)
	if started.Load() {
		t.Fatal("work ran before the manager started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Start(ctx); close(done) }()
	eventuallyTrue(t, "the work starts", started.Load)
	cancel()
	<-done
	if !stopped.Load() {
		t.Fatal("Start returned while work was in flight")
	}
	if reports.Load() != 0 || e.holds("slow") {
		t.Fatalf("%d reports after a cancelled performance; held %v", reports.Load(), e.holds("slow"))
	}
}

// A full queue refuses a job (the reconcile tries again later) and does not hold it.
func TestAFullQueueRefusesAJob(t *testing.T) {
	e := newTaskExecutor(1, nil, nil, funcr.New(func(string, string) {}, funcr.Options{}))
	var performed atomic.Int32
	for i := range executorQueue {
		j := job(strconv.Itoa(i), &performed)
		j.claims.Namespace = "ns-" + strconv.Itoa(i) // one each: the namespaces' bound is another test's
		if err := e.submit(j); err != nil {
			t.Fatalf("job %d: %v", i, err)
		}
	}
	if err := e.submit(job("one too many", &performed)); !errors.Is(err, errExecutorFull) || e.holds("one too many") {
		t.Fatalf("err %v, held %v", err, e.holds("one too many"))
	}
}

// One namespace's tasks take at most a quarter of the workers (queued or in flight): a tenant
// whose tasks hang (a slow granted HTTP destination) or keep failing leaves the other namespaces'
// tasks their workers. Its further tasks wait for its own to finish.
func TestOneNamespaceCannotTakeEveryWorker(t *testing.T) {
	e := newTaskExecutor(8, func(context.Context, tasktoken.Claims, callback.Result) error { return nil }, nil, funcr.New(func(string, string) {}, funcr.Options{}))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = e.Start(ctx); close(done) }()
	release := make(chan struct{})
	defer func() { close(release); cancel(); <-done }()
	var hanging atomic.Int32
	hang := func(key, ns string) *localJob {
		return &localJob{key: key, kind: "http", claims: tasktoken.Claims{Namespace: ns, Run: key}, perform: func(ctx context.Context) (callback.Result, error) {
			hanging.Add(1)
			select {
			case <-release:
			case <-ctx.Done():
			}
			return callback.Result{Kind: callback.Success}, nil
		}}
	}
	for i := range 2 {
		if err := e.submit(hang("a-"+strconv.Itoa(i), "tenant-a")); err != nil {
			t.Fatalf("tenant-a's job %d: %v", i, err)
		}
	}
	if err := e.submit(hang("a-2", "tenant-a")); !errors.Is(err, errNamespaceBusy) || e.holds("a-2") {
		t.Fatalf("tenant-a's third job: err %v, held %v; want errNamespaceBusy", err, e.holds("a-2"))
	}
	var performed atomic.Int32
	other := job("b-0", &performed)
	other.claims.Namespace = "tenant-b"
	if err := e.submit(other); err != nil {
		t.Fatalf("tenant-b's job: %v", err)
	}
	eventuallyTrue(t, "tenant-b's job runs while tenant-a's hang", func() bool { return performed.Load() == 1 })
	if hanging.Load() != 2 {
		t.Fatalf("%d of tenant-a's jobs running, want 2", hanging.Load())
	}
}

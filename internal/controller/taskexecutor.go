package controller

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/tasktoken"
)

// localJob is one attempt of one task the manager performs itself (a millrace:http call, an
// sqs:sendMessage) or whose failure it reports itself (a task it could not send).
type localJob struct {
	// key identifies the attempt across processes: the run's UID and the task's key (state, path,
	// attempt, visit). A job whose key the executor holds is not taken again.
	key string
	// kind is the resource kind, for metrics (http, sqs).
	kind   string
	claims tasktoken.Claims
	// perform does the task and returns its result, or an error when it could not be done and
	// may be tried again (an SQS endpoint that did not answer). It must be idempotent for its key
	// (the request id it sends is derived from the key): a restart performs it again.
	perform func(context.Context) (callback.Result, error)
}

// Outcomes of a local task's report, for the metric.
const (
	outcomeReported  = "reported"
	outcomeStale     = "stale"
	outcomeGaveUp    = "gave_up"
	outcomeCancelled = "cancelled"
	// outcomeNotPerformed: the task could not be performed after retries (it is tried again).
	outcomeNotPerformed = "not_performed"
)

// jobState is what the executor knows of a job it took.
type jobState struct {
	// result is set once the job was performed: a job whose report gave up is reported again
	// with it, not performed again.
	result *callback.Result
	// done is when the job's report was accepted or refused as stale (zero while in hand); an
	// unreported job has a result and gaveUp set.
	done   time.Time
	gaveUp time.Time
}

// taskExecutor performs the tasks the manager runs itself, on the manager's context, with a
// bounded number of workers, and reports each result through the same path as the callback API.
// It is a manager.Runnable: at shutdown the work in flight sees its context cancelled and Start
// returns when it has stopped.
//
// Nothing about such a task is written to the run before its result: a manager that stops before
// the result is recorded leaves the task running in the run's status, and the next manager
// performs it again, with the same request id (an HTTP Idempotency-Key header, an SQS
// MessageDeduplicationId on FIFO queues). Within one process a task is performed once: the
// executor remembers the jobs it took (until sentMemory after their report), and a report that
// cannot be written after reportTries tries is logged, kept, and made again when the run's next
// reconcile submits the job again.
type taskExecutor struct {
	workers int
	report  func(context.Context, tasktoken.Claims, callback.Result) error
	metrics *WorkflowRunMetrics
	log     logr.Logger
	// reportTries and retryDelay bound the retries of one report (doubling delays, at most 5 s).
	reportTries int
	retryDelay  time.Duration
	now         func() time.Time

	queue chan *localJob
	// perNamespace bounds the jobs of one namespace queued or in flight (a quarter of the
	// workers), so that one tenant's slow or failing tasks cannot take every worker.
	perNamespace int

	mu        sync.Mutex
	jobs      map[string]*jobState
	active    map[string]int // namespace -> jobs queued or in flight
	lastSweep time.Time
}

// executorQueue bounds the jobs waiting for a worker; beyond it a submission is refused and the
// run's reconcile tries again later.
const executorQueue = 4096

// errExecutorFull refuses a job while executorQueue jobs wait; errNamespaceBusy while its
// namespace has perNamespace jobs queued or in flight.
var (
	errExecutorFull  = errors.New("the manager's local task queue is full")
	errNamespaceBusy = errors.New("the namespace has as many local tasks queued or running as the manager allows one namespace")
)

func newTaskExecutor(workers int, report func(context.Context, tasktoken.Claims, callback.Result) error, metrics *WorkflowRunMetrics, log logr.Logger) *taskExecutor {
	if workers <= 0 {
		workers = 16
	}
	return &taskExecutor{workers: workers, report: report, metrics: metrics, log: log,
		reportTries: 8, retryDelay: 100 * time.Millisecond, now: time.Now, perNamespace: max(1, workers/4),
		queue: make(chan *localJob, executorQueue), jobs: map[string]*jobState{}, active: map[string]int{}}
}

// NeedLeaderElection is false: the jobs were submitted by this replica's reconciles (and a
// replica that lost the lease finishes what it took rather than leave it to a restart).
func (e *taskExecutor) NeedLeaderElection() bool { return false }

// Start runs the workers until ctx ends, then waits for the jobs in flight. Jobs submitted before
// Start wait in the queue.
func (e *taskExecutor) Start(ctx context.Context) error {
	var wg sync.WaitGroup
	for range e.workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case job := <-e.queue:
					e.run(ctx, job)
				}
			}
		})
	}
	wg.Wait()
	return nil
}

// submit hands a job over unless the executor holds it already (queued, running, or reported
// less than sentMemory ago); a job whose report gave up is queued again to report its result.
func (e *taskExecutor) submit(job *localJob) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sweep()
	st, ok := e.jobs[job.key]
	if ok && st.gaveUp.IsZero() {
		return nil
	}
	ns := job.claims.Namespace
	if e.active[ns] >= e.perNamespace {
		return errNamespaceBusy
	}
	if !ok {
		st = &jobState{}
		e.jobs[job.key] = st
	}
	select {
	case e.queue <- job:
		st.gaveUp = time.Time{}
		e.active[ns]++
		return nil
	default:
		if !ok {
			delete(e.jobs, job.key)
		}
		return errExecutorFull
	}
}

// holds reports whether the executor has the job in hand or has reported it.
func (e *taskExecutor) holds(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.jobs[key]
	return ok
}

// run performs a job (unless an earlier try did) and reports its result.
func (e *taskExecutor) run(ctx context.Context, job *localJob) {
	defer e.release(job.claims.Namespace)
	e.mu.Lock()
	st := e.jobs[job.key]
	e.mu.Unlock()
	if st == nil {
		return
	}
	res := st.result
	if res == nil {
		r, outcome := e.performWithRetries(ctx, job)
		if outcome != "" {
			// Cut short by the shutdown (what it got is not the task's result), or not possible
			// for now: nothing was recorded, so the run's next reconcile (or the next manager)
			// submits it again.
			e.forget(job.key)
			e.count(job, outcome)
			return
		}
		res = &r
		e.mu.Lock()
		st.result = res
		e.mu.Unlock()
	}
	outcome := e.reportWithRetries(ctx, job, *res)
	e.count(job, outcome)
	e.mu.Lock()
	defer e.mu.Unlock()
	switch outcome {
	case outcomeReported, outcomeStale:
		st.done, st.result = e.now(), nil
	case outcomeGaveUp:
		st.gaveUp = e.now()
	case outcomeCancelled:
		delete(e.jobs, job.key)
	}
}

// withRetries calls try until it says done, at most reportTries times with doubling delays (at
// most 5 s). It returns try's last error, and whether ctx ended first.
func (e *taskExecutor) withRetries(ctx context.Context, try func() (done bool, err error)) (lastErr error, cancelled bool) {
	delay := e.retryDelay
	for i := 0; i < e.reportTries; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return lastErr, true
			case <-time.After(delay):
			}
			delay = min(2*delay, 5*time.Second)
		}
		var done bool
		if done, lastErr = try(); done {
			return lastErr, false
		}
		if ctx.Err() != nil {
			return lastErr, true
		}
	}
	return lastErr, false
}

// performWithRetries performs a job, trying again with growing delays while it returns an error;
// a non-empty outcome means it was not performed.
func (e *taskExecutor) performWithRetries(ctx context.Context, job *localJob) (callback.Result, string) {
	var res callback.Result
	err, cancelled := e.withRetries(ctx, func() (bool, error) {
		var err error
		res, err = job.perform(ctx)
		return err == nil && ctx.Err() == nil, err
	})
	switch {
	case cancelled:
		return callback.Result{}, outcomeCancelled
	case err == nil:
		return res, ""
	}
	e.log.Error(err, "giving up performing a task for now; the run's next reconcile submits it again",
		"namespace", job.claims.Namespace, "run", job.claims.Run, "state", job.claims.State, "attempt", job.claims.Attempt, "tries", e.reportTries)
	return callback.Result{}, outcomeNotPerformed
}

// reportWithRetries reports a result, trying again with growing delays.
func (e *taskExecutor) reportWithRetries(ctx context.Context, job *localJob, res callback.Result) string {
	outcome := ""
	err, cancelled := e.withRetries(ctx, func() (bool, error) {
		err := e.report(ctx, job.claims, res)
		switch {
		case err == nil:
			outcome = outcomeReported
		case errors.Is(err, callback.ErrStale), errors.Is(err, callback.ErrUnknownRun):
			outcome = outcomeStale
		}
		return outcome != "", err
	})
	switch {
	case outcome != "":
		return outcome
	case cancelled:
		return outcomeCancelled
	}
	e.log.Error(err, "giving up reporting a task's result for now; the run's next reconcile reports it again",
		"namespace", job.claims.Namespace, "run", job.claims.Run, "state", job.claims.State, "attempt", job.claims.Attempt, "tries", e.reportTries)
	return outcomeGaveUp
}

// release ends a job's turn of its namespace.
func (e *taskExecutor) release(ns string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.active[ns]--; e.active[ns] <= 0 {
		delete(e.active, ns)
	}
}

func (e *taskExecutor) forget(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.jobs, key)
}

func (e *taskExecutor) count(job *localJob, outcome string) {
	if e.metrics != nil {
		e.metrics.LocalTasks.WithLabelValues(job.kind, outcome).Inc()
	}
}

// sweep forgets jobs reported, or given up, more than sentMemory ago (at most once a minute). A
// reconcile that reads an older copy of a run from the cache, in which a reported task is still
// running, finds the job held and does not perform it again.
func (e *taskExecutor) sweep() {
	now := e.now()
	if now.Sub(e.lastSweep) < time.Minute {
		return
	}
	e.lastSweep = now
	for k, st := range e.jobs {
		if (!st.done.IsZero() && now.Sub(st.done) > sentMemory) || (!st.gaveUp.IsZero() && now.Sub(st.gaveUp) > sentMemory) {
			delete(e.jobs, k)
		}
	}
}

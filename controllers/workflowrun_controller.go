package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/conditions"
	"github.com/millrace-io/millrace/internal/dispatch"
	"github.com/millrace-io/millrace/internal/egress"
	"github.com/millrace-io/millrace/internal/tasktoken"
)

const (
	maxHistory = 100
	// maxActiveListed bounds status.activeStates (nested Maps can run 40 × 40 states at once).
	maxActiveListed = 100
	// maxStateBytes bounds the engine state plus the run's input and pinned definition, so that
	// with the history (at most 100 short events) the object stays under etcd's 1.5 MiB limit.
	maxStateBytes = 1280 << 10

	workflowRefKey     = "spec.workflowRef.name"
	ReasonRunStarted   = "RunStarted"
	ReasonRunSucceeded = "RunSucceeded"
	ReasonRunFailed    = "RunFailed"
	ReasonRunAborted   = "RunAborted"
	ReasonWaitingWF    = "WaitingForWorkflow"
	ReasonTaskSendFail = "TaskDispatchFailed"
)

// TaskSender is the part of the SQS client that sends task messages.
type TaskSender interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// WorkflowRunMetrics are the WorkflowRun controller's Prometheus metrics.
type WorkflowRunMetrics struct {
	Started      *prometheus.CounterVec
	Finished     *prometheus.CounterVec
	Duration     *prometheus.HistogramVec
	Transitions  *prometheus.CounterVec
	Tasks        *prometheus.CounterVec
	StatusWrites *prometheus.CounterVec
	HTTPCalls    *prometheus.CounterVec
}

// NewWorkflowRunMetrics creates the WorkflowRun metrics and registers them with reg (when not nil).
func NewWorkflowRunMetrics(reg prometheus.Registerer) *WorkflowRunMetrics {
	labels := []string{"namespace", "workflow"}
	m := &WorkflowRunMetrics{
		Started:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_workflowrun_started_total", Help: "WorkflowRuns started."}, labels),
		Finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_workflowrun_finished_total", Help: "WorkflowRuns finished, by phase."}, append(labels, "phase")),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "millrace_workflowrun_duration_seconds", Help: "Time from a run's start to its end, by phase.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2.5, 14)}, append(labels, "phase")),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_workflowrun_transitions_total", Help: "State transitions recorded in run histories."}, labels),
		Tasks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_workflowrun_tasks_sent_total", Help: "Task attempts sent, by resource kind (consumer, sqs, http) and result."},
			append(labels, "kind", "result")),
		StatusWrites: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_workflowrun_status_writes_total", Help: "Status patches sent, by result (ok, conflict, error)."}, []string{"result"}),
		HTTPCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_http_task_calls_total",
			Help: "millrace:http task calls, by namespace and result (ok, status, forbidden, timeout, too_large, error); forbidden counts destinations refused by the namespace's grants."}, []string{"namespace", "result"}),
	}
	if reg != nil {
		reg.MustRegister(m.Started, m.Finished, m.Duration, m.Transitions, m.Tasks, m.StatusWrites, m.HTTPCalls)
	}
	return m
}

// WorkflowRunReconciler executes WorkflowRuns with the pure interpreter of internal/asl: it
// persists the run's new status first, then performs what the interpreter asks (sends task
// messages, arms timers), so a crash in between repeats nothing a user can see. It is also the
// Sink of the callback API.
type WorkflowRunReconciler struct {
	client.Client
	Recorder events.EventRecorder
	SQS      TaskSender
	Signer   *tasktoken.Signer
	// APIReader reads runs uncached for the callback API: a report must be judged against the
	// latest persisted state (the cache may not yet show the attempt that was just dispatched).
	APIReader client.Reader
	Now       func() time.Time
	// Workers is how many runs are reconciled at once (default 8).
	Workers int
	// Metrics (default: unregistered ones).
	Metrics *WorkflowRunMetrics
	// HTTP performs millrace:http tasks, to the destinations each namespace's TenantPolicies
	// grant; nil disables them (the manager's --http-tasks flag).
	HTTP *egress.Client

	wake     chan event.TypedGenericEvent[*millracev1.WorkflowRun]
	local    localTasks
	writes   atomic.Int64
	sent     sentTasks
	beats    heartbeatMemory
	machines machineCache
	// continuing are the runs requeued to go on with work left (types.NamespacedName): their
	// next reconcile reads them from the API server, as the cache has seldom caught up yet with
	// the write that ended the last slice (a stale copy makes the next write conflict and its
	// slice of work be done again).
	continuing sync.Map
}

// StatusWrites counts the status patches sent so far (for benchmarks and metrics).
func (r *WorkflowRunReconciler) StatusWrites() int64 { return r.writes.Load() }

// +kubebuilder:rbac:groups=millrace.io,resources=workflowruns,verbs=get;list;watch;delete
// +kubebuilder:rbac:groups=millrace.io,resources=workflowruns/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=millrace.io,resources=consumers,verbs=get;list;watch

// Reconcile advances one run.
func (r *WorkflowRunReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	run := &millracev1.WorkflowRun{}
	var reader client.Reader = r.Client
	if _, ok := r.continuing.LoadAndDelete(req.NamespacedName); ok && r.APIReader != nil {
		reader = r.APIReader
	}
	if err := reader.Get(ctx, req.NamespacedName, run); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if finished(run.Status.Phase) {
		return ctrl.Result{}, r.collectGarbage(ctx, run)
	}
	original := run.DeepCopy()
	now := r.Now()

	if run.Status.Engine == nil {
		return r.start(ctx, original, run, now)
	}
	m, engine, err := r.load(run)
	if err != nil {
		return ctrl.Result{}, r.terminal(ctx, original, run, asl.ErrRuntime, err.Error(), now)
	}
	steps := r.newSteps(run, m, engine)
	if run.Spec.Abort {
		steps.engine.Status, steps.engine.Error, steps.engine.Cause = asl.Failed, "States.Aborted", "spec.abort is set"
		steps.history = append(steps.history, asl.Transition{At: now, State: engine.State, Kind: "Aborted"})
	}
	if m.TimeoutSeconds > 0 && run.Status.StartTime != nil && !now.Before(run.Status.StartTime.Add(time.Duration(m.TimeoutSeconds)*time.Second)) {
		steps.step(asl.Event{Kind: asl.EventTimeout, At: now})
	}
	// Due timers (Wait states, retry delays) and task timeouts.
	for _, a := range m.Active(steps.engine) {
		switch {
		case a.Waiting != nil && !now.Before(*a.Waiting):
			steps.step(asl.Event{Kind: asl.EventTimer, At: now, Path: a.Path})
		case a.Running() && a.TimeoutSeconds() > 0 && !now.Before(a.Entered.Add(time.Duration(a.TimeoutSeconds())*time.Second)):
			steps.step(asl.Event{Kind: asl.EventTaskFailed, At: now, Path: a.Path, Attempt: a.Attempt, Error: asl.ErrTimeout,
				Cause: fmt.Sprintf("the task did not finish within %ds", a.TimeoutSeconds())})
		case a.Running() && a.HeartbeatSeconds() > 0 && !now.Before(r.heartbeatDeadline(run, a)):
			steps.step(asl.Event{Kind: asl.EventTaskFailed, At: now, Path: a.Path, Attempt: a.Attempt, Error: asl.ErrHeartbeatTimeout,
				Cause: fmt.Sprintf("no heartbeat within %ds", a.HeartbeatSeconds())})
		}
	}
	return r.finishSteps(ctx, original, run, steps, now)
}

// finishSteps continues the run within the reconcile's budget, records it, and acts on it; a run
// with work left is requeued at once (its next slice of work is another reconcile's).
func (r *WorkflowRunReconciler) finishSteps(ctx context.Context, original, run *millracev1.WorkflowRun, steps *runSteps, now time.Time) (ctrl.Result, error) {
	more := steps.continueRun(now)
	engine, err := r.record(run, steps.m, steps.engine, steps.history, steps.dropped(), now)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := r.persist(ctx, original, run); err != nil {
		return ctrl.Result{}, err
	}
	res, err := r.act(ctx, run, steps.m, engine, now)
	if more && engine.Status == asl.Running && err == nil && (res.RequeueAfter == 0 || res.RequeueAfter > continueAfter) {
		res.RequeueAfter = continueAfter
		r.continuing.Store(k8stypes.NamespacedName{Namespace: run.Namespace, Name: run.Name}, true)
	}
	return res, err
}

// continueAfter is when a run whose reconcile spent its budget goes on: at once, but after the
// runs already queued.
const continueAfter = time.Millisecond

// runSteps are the steps of one run in one reconcile, sharing one budget (asl.Budget): whatever
// the definition and input, one reconcile does a bounded amount of work and holds a bounded
// history.
type runSteps struct {
	m       *asl.Machine
	opt     asl.Options
	engine  asl.Run
	history []asl.Transition
}

func (r *WorkflowRunReconciler) newSteps(run *millracev1.WorkflowRun, m *asl.Machine, engine asl.Run) *runSteps {
	opt := r.options(run)
	opt.Budget = asl.NewBudget()
	return &runSteps{m: m, opt: opt, engine: engine}
}

func (s *runSteps) step(ev asl.Event) {
	var h []asl.Transition
	s.engine, _, h = s.m.Step(s.engine, ev, s.opt)
	s.history = append(s.history, h...)
	if n := len(s.history); n > 2*maxHistory {
		s.opt.Budget.HistoryDropped += n - maxHistory
		s.history = slices.Clone(s.history[n-maxHistory:])
	}
}

// continueRun goes on with work the run can do without waiting until the budget is spent, and
// reports whether some is left.
func (s *runSteps) continueRun(now time.Time) bool {
	for s.engine.Status == asl.Running && s.m.NeedsContinue(s.engine, s.opt) {
		if s.opt.Budget.Spent() {
			return true
		}
		before := *s.opt.Budget
		s.step(asl.Event{Kind: asl.EventContinue, At: now})
		if *s.opt.Budget == before {
			return false // no progress: nothing to continue after all
		}
	}
	return false
}

// dropped is how many transitions the steps made beyond the history they kept.
func (s *runSteps) dropped() int { return s.opt.Budget.HistoryDropped }

func finished(p millracev1.RunPhase) bool {
	return p == millracev1.RunSucceeded || p == millracev1.RunFailed || p == millracev1.RunTimedOut || p == millracev1.RunAborted
}

// start pins the definition and takes the first step.
func (r *WorkflowRunReconciler) start(ctx context.Context, original, run *millracev1.WorkflowRun, now time.Time) (ctrl.Result, error) {
	wf := &millracev1.Workflow{}
	err := r.Get(ctx, k8stypes.NamespacedName{Namespace: run.Namespace, Name: run.Spec.WorkflowRef.Name}, wf)
	if apierrors.IsNotFound(err) {
		run.Status.Phase = millracev1.RunPending
		conditions.MarkReconciling(&run.Status.Conditions, run.Generation, ReasonWaitingWF,
			fmt.Sprintf("spec.workflowRef: Workflow %q does not exist", run.Spec.WorkflowRef.Name))
		return ctrl.Result{}, r.persist(ctx, original, run)
	} else if err != nil {
		return ctrl.Result{}, err
	}
	m, errs := asl.Parse(wf.Spec.Definition.Raw)
	if len(errs) > 0 {
		run.Status.Phase = millracev1.RunPending
		conditions.MarkStalled(&run.Status.Conditions, run.Generation, ReasonInvalidDefinition,
			fmt.Sprintf("Workflow %q is invalid: %s", wf.Name, errs[0].Error()))
		run.Status.ObservedGeneration = run.Generation
		return ctrl.Result{}, r.persist(ctx, original, run)
	}
	if n := jsonLen(run.Spec.Input); n > asl.DefaultMaxPayloadBytes {
		return ctrl.Result{}, r.terminal(ctx, original, run, asl.ErrDataLimitExceeded,
			fmt.Sprintf("spec.input is %d bytes (limit %d)", n, asl.DefaultMaxPayloadBytes), now)
	}
	var input any = map[string]any{}
	if run.Spec.Input != nil && len(run.Spec.Input.Raw) > 0 {
		if err := json.Unmarshal(run.Spec.Input.Raw, &input); err != nil {
			return ctrl.Result{}, r.terminal(ctx, original, run, asl.ErrRuntime, "spec.input: "+err.Error(), now)
		}
	}
	run.Status.Definition = &apiextensionsv1.JSON{Raw: slices.Clone(wf.Spec.Definition.Raw)}
	t := metav1.NewTime(now)
	run.Status.StartTime = &t
	steps := r.newSteps(run, m, asl.Run{})
	steps.step(asl.Event{Kind: asl.EventStart, At: now, Input: input,
		Execution: asl.Execution{ID: string(run.UID), Name: run.Name, StartTime: now}})
	r.Recorder.Eventf(run, nil, corev1.EventTypeNormal, ReasonRunStarted, "Start", "run of Workflow %s started at %s", wf.Name, m.StartAt)
	return r.finishSteps(ctx, original, run, steps, now)
}

func (r *WorkflowRunReconciler) options(run *millracev1.WorkflowRun) asl.Options {
	return asl.Options{TaskToken: func(state string, path []int, attempt int, visit string, entered time.Time) string {
		return r.token(run, state, path, attempt, visit, entered)
	}}
}

// token is the one way a task's token is made, for $$.Task.Token and for the task's message alike.
// It is issued at the attempt's start, not now: issued again after a crash between persist and
// send it is the same token (the task's message is the same message), and it expires with the
// attempt's TimeoutSeconds.
func (r *WorkflowRunReconciler) token(run *millracev1.WorkflowRun, state string, path []int, attempt int, visit string, entered time.Time) string {
	tok, _ := r.Signer.Issue(tasktoken.Claims{Namespace: run.Namespace, Run: run.Name, RunUID: string(run.UID), Visit: visit,
		State: state, Path: path, Attempt: attempt, IssuedAt: entered.UTC().Truncate(time.Second)})
	return tok
}

func (r *WorkflowRunReconciler) load(run *millracev1.WorkflowRun) (*asl.Machine, asl.Run, error) {
	if run.Status.Definition == nil {
		return nil, asl.Run{}, errors.New("the run lost its pinned definition")
	}
	m, err := r.machines.parse(run.Status.Definition.Raw)
	if err != nil {
		return nil, asl.Run{}, err
	}
	var engine asl.Run
	if err := json.Unmarshal(run.Status.Engine.Raw, &engine); err != nil {
		return nil, asl.Run{}, fmt.Errorf("the run's engine state is unreadable: %w", err)
	}
	return m, engine, nil
}

// record writes the engine's state into the run's status (persisted by the caller) and returns
// the state it recorded: the caller acts on that one (a run too large to record has failed).
//
// dropped counts the transitions the steps made but did not keep (see asl.Budget).
func (r *WorkflowRunReconciler) record(run *millracev1.WorkflowRun, m *asl.Machine, engine asl.Run, history []asl.Transition, dropped int, now time.Time) (asl.Run, error) {
	kept := engine
	var output []byte
	if engine.Status != asl.Running {
		// A finished run is never stepped again: its output is status.output, its input spec.input.
		kept.Input, kept.Output, kept.Execution.Input = nil, nil, nil
	}
	if engine.Status == asl.Succeeded {
		output, _ = json.Marshal(engine.Output)
	}
	raw, err := json.Marshal(kept)
	if err != nil {
		return engine, err
	}
	// The output counts: a run whose output does not fit in its object would fail to be
	// written forever.
	if size := len(raw) + len(output) + jsonLen(run.Spec.Input) + jsonLen(run.Status.Definition); size > maxStateBytes {
		// The run's state would not fit in its object (etcd refuses objects over 1.5 MiB): end
		// the run with an error that says so, rather than fail to record it forever.
		exec := engine.Execution
		exec.Input = nil
		engine = asl.Run{Status: asl.Failed, State: engine.State, Execution: exec, Transitions: engine.Transitions,
			Error: asl.ErrDataLimitExceeded, Cause: fmt.Sprintf("the run's state in %s reached %d bytes with its input and definition (limit %d)", engine.State, size, maxStateBytes)}
		history = append(history, asl.Transition{At: now, State: engine.State, Kind: string(asl.Failed), Info: asl.ErrDataLimitExceeded})
		if raw, err = json.Marshal(engine); err != nil {
			return engine, err
		}
	}
	run.Status.Engine = &apiextensionsv1.JSON{Raw: raw}
	for _, h := range history {
		run.Status.History = append(run.Status.History, millracev1.HistoryEvent{Time: metav1.NewTime(h.At), State: h.State, Type: h.Kind, Info: h.Info})
	}
	run.Status.HistoryTotal += int64(len(history) + dropped)
	if n := len(run.Status.History); n > maxHistory {
		run.Status.History = slices.Clone(run.Status.History[n-maxHistory:])
	}
	run.Status.CurrentState = engine.State
	run.Status.ActiveStates, run.Status.ActiveStatesTotal, run.Status.FanOuts = nil, 0, nil
	active := m.Active(engine)
	if len(active) > maxActiveListed {
		run.Status.ActiveStatesTotal = int32(len(active))
	}
	for _, f := range m.FanOuts(engine) {
		run.Status.FanOuts = append(run.Status.FanOuts, millracev1.FanOutProgress{Name: f.State.Name, Path: f.Label,
			Total: int32(f.Total), Succeeded: int32(f.Succeeded), Running: int32(f.Running), Pending: int32(f.Pending)})
	}
	live := map[string]bool{}
	for _, a := range active {
		live[a.Key()] = true
		if len(run.Status.ActiveStates) == maxActiveListed {
			continue
		}
		as := millracev1.ActiveState{Name: a.State.Name, Path: a.Label, Attempt: int32(a.Attempt)}
		since := metav1.NewTime(a.Entered)
		as.Since = &since
		if a.Waiting != nil {
			until := metav1.NewTime(*a.Waiting)
			as.Until = &until
		} else if a.Running() && a.TimeoutSeconds() > 0 {
			until := metav1.NewTime(a.Entered.Add(time.Duration(a.TimeoutSeconds()) * time.Second))
			as.Until = &until
		}
		run.Status.ActiveStates = append(run.Status.ActiveStates, as)
	}
	run.Status.Dispatched = slices.DeleteFunc(run.Status.Dispatched, func(k string) bool { return !live[k] })
	run.Status.Heartbeats = slices.DeleteFunc(run.Status.Heartbeats, func(h millracev1.TaskHeartbeat) bool { return !live[h.Task] })
	r.beats.keep(run.UID, live)
	switch engine.Status {
	case asl.Running:
		run.Status.Phase = millracev1.RunRunning
		conditions.MarkReconciling(&run.Status.Conditions, run.Generation, "Running", "in "+engine.State)
	case asl.Succeeded:
		run.Status.Output = &apiextensionsv1.JSON{Raw: output}
		r.complete(run, millracev1.RunSucceeded, now)
		conditions.MarkReady(&run.Status.Conditions, run.Generation, "Succeeded", "the run succeeded")
		r.Recorder.Eventf(run, nil, corev1.EventTypeNormal, ReasonRunSucceeded, "Complete", "run succeeded")
	default:
		phase := millracev1.RunFailed
		switch {
		case engine.Error == "States.Aborted":
			phase = millracev1.RunAborted
		case engine.Status == asl.TimedOut:
			phase = millracev1.RunTimedOut
		}
		run.Status.Error, run.Status.Cause = engine.Error, engine.Cause
		r.complete(run, phase, now)
		conditions.MarkStalled(&run.Status.Conditions, run.Generation, string(phase), fmt.Sprintf("%s: %s", engine.Error, engine.Cause))
		reason := ReasonRunFailed
		if phase == millracev1.RunAborted {
			reason = ReasonRunAborted
		}
		r.Recorder.Eventf(run, nil, corev1.EventTypeWarning, reason, "Complete", "run %s: %s: %s", strings.ToLower(string(phase)), engine.Error, engine.Cause)
	}
	run.Status.ObservedGeneration = run.Generation
	return engine, nil
}

func jsonLen(j *apiextensionsv1.JSON) int {
	if j == nil {
		return 0
	}
	return len(j.Raw)
}

func (r *WorkflowRunReconciler) complete(run *millracev1.WorkflowRun, phase millracev1.RunPhase, now time.Time) {
	run.Status.Phase = phase
	t := metav1.NewTime(now)
	run.Status.CompletionTime = &t
	run.Status.ActiveStates, run.Status.Dispatched, run.Status.Heartbeats = nil, nil, nil
	run.Status.ActiveStatesTotal, run.Status.FanOuts = 0, nil
}

func (r *WorkflowRunReconciler) terminal(ctx context.Context, original, run *millracev1.WorkflowRun, errName, cause string, now time.Time) error {
	run.Status.Error, run.Status.Cause = errName, cause
	r.complete(run, millracev1.RunFailed, now)
	conditions.MarkStalled(&run.Status.Conditions, run.Generation, string(millracev1.RunFailed), errName+": "+cause)
	return r.persist(ctx, original, run)
}

// persist writes the status with optimistic locking: a concurrent writer (the callback API) makes
// this reconcile retry from the latest version rather than overwrite it.
func (r *WorkflowRunReconciler) persist(ctx context.Context, original, run *millracev1.WorkflowRun) error {
	if equality.Semantic.DeepEqual(original.Status, run.Status) {
		return nil
	}
	r.writes.Add(1)
	err := r.Status().Patch(ctx, run, client.MergeFromWithOptions(original, client.MergeFromWithOptimisticLock{}), client.FieldOwner(fieldOwner))
	result := "ok"
	switch {
	case apierrors.IsConflict(err):
		result = "conflict"
	case err != nil:
		result = "error"
	}
	r.Metrics.StatusWrites.WithLabelValues(result).Inc()
	if err == nil && finished(run.Status.Phase) && !finished(original.Status.Phase) {
		// Counted once: only the write that ends the run gets here.
		labels := []string{run.Namespace, run.Spec.WorkflowRef.Name, string(run.Status.Phase)}
		r.Metrics.Finished.WithLabelValues(labels...).Inc()
		if run.Status.StartTime != nil && run.Status.CompletionTime != nil {
			r.Metrics.Duration.WithLabelValues(labels...).Observe(run.Status.CompletionTime.Sub(run.Status.StartTime.Time).Seconds())
		}
	}
	if err == nil && original.Status.StartTime == nil && run.Status.StartTime != nil {
		r.Metrics.Started.WithLabelValues(run.Namespace, run.Spec.WorkflowRef.Name).Inc()
	}
	if err == nil && run.Status.HistoryTotal > original.Status.HistoryTotal {
		r.Metrics.Transitions.WithLabelValues(run.Namespace, run.Spec.WorkflowRef.Name).Add(float64(run.Status.HistoryTotal - original.Status.HistoryTotal))
	}
	return err
}

// act performs the interpreter's requests after the status was persisted: it sends every running
// task not yet dispatched, and wakes the run at its next timer or task deadline.
func (r *WorkflowRunReconciler) act(ctx context.Context, run *millracev1.WorkflowRun, m *asl.Machine, engine asl.Run, now time.Time) (ctrl.Result, error) {
	if engine.Status != asl.Running {
		return ctrl.Result{}, r.collectGarbage(ctx, run)
	}
	original := run.DeepCopy()
	var next time.Time
	wakeAt := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	var sendErr error
	var recorded []string
	for _, a := range m.Active(engine) {
		if a.Waiting != nil {
			wakeAt(*a.Waiting)
			continue
		}
		if !a.Running() {
			continue
		}
		if a.TimeoutSeconds() > 0 {
			wakeAt(a.Entered.Add(time.Duration(a.TimeoutSeconds()) * time.Second))
		}
		if a.HeartbeatSeconds() > 0 {
			wakeAt(r.heartbeatDeadline(run, a))
		}
		if slices.Contains(run.Status.Dispatched, a.Key()) {
			continue
		}
		if at, ok := r.sent.when(run.UID, a.Key()); ok {
			// Sent by this process: record it once the record is due, unless the task has
			// reported (and left the active states) first, which makes the record unneeded.
			if due := at.Add(DispatchRecordDelay); now.Before(due) {
				wakeAt(due)
			} else {
				run.Status.Dispatched = append(run.Status.Dispatched, a.Key())
				recorded = append(recorded, a.Key())
			}
			continue
		}
		input, err := m.TaskInput(engine, a.Path, r.options(run))
		var credentials any
		if err == nil {
			credentials, err = m.TaskCredentials(engine, a.Path, r.options(run))
		}
		if err == nil {
			err = r.dispatch(ctx, run, a, input, credentials)
		}
		result := "ok"
		if err != nil {
			result = "error"
		}
		r.Metrics.Tasks.WithLabelValues(run.Namespace, run.Spec.WorkflowRef.Name, resourceKind(a.State.Resource), result).Inc()
		if err != nil {
			sendErr = err
			r.Recorder.Eventf(run, nil, corev1.EventTypeWarning, ReasonTaskSendFail, "Dispatch", "%s: %v", a.Label, err)
			continue
		}
		r.sent.add(run.UID, a.Key(), now)
		wakeAt(now.Add(DispatchRecordDelay))
	}
	if m.TimeoutSeconds > 0 && run.Status.StartTime != nil {
		wakeAt(run.Status.StartTime.Add(time.Duration(m.TimeoutSeconds) * time.Second))
	}
	if err := r.persist(ctx, original, run); err != nil {
		return ctrl.Result{}, err
	}
	r.sent.forget(run.UID, recorded)
	if sendErr != nil {
		return ctrl.Result{}, sendErr
	}
	if !next.IsZero() {
		return ctrl.Result{RequeueAfter: max(next.Sub(now), 10*time.Millisecond)}, nil
	}
	return ctrl.Result{}, nil
}

// DispatchRecordDelay is how long after sending a task the run records it in status.dispatched
// (which keeps a restarted manager from sending it again). A task that reports sooner needs no
// record: most short tasks cost one status write less. The price: a manager that stops within
// this delay of sending a task sends it again, with the same token, when it restarts.
var DispatchRecordDelay = time.Second

// sentTasks are the task attempts this process has sent, by run, until status.dispatched records
// them (or, for tasks that reported first, for sentMemory). They keep a task from being sent twice
// by a reconcile that reads an older copy of the run from the cache than the one that sent it: a
// task that has already left the run's active states in the newest copy may still be active in
// that older one.
type sentTasks struct {
	mu        sync.Mutex
	byRun     map[k8stypes.UID]map[string]time.Time
	lastSweep time.Time
}

// sentMemory is how long a sent task is remembered when no record of it is written; far longer
// than the cache can lag behind.
const sentMemory = 10 * time.Minute

func (s *sentTasks) when(run k8stypes.UID, key string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.byRun[run][key]
	return at, ok
}

func (s *sentTasks) add(run k8stypes.UID, key string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byRun == nil {
		s.byRun = map[k8stypes.UID]map[string]time.Time{}
	}
	if at.Sub(s.lastSweep) > time.Minute {
		s.lastSweep = at
		for r, tasks := range s.byRun {
			for k, t := range tasks {
				if at.Sub(t) > sentMemory {
					delete(tasks, k)
				}
			}
			if len(tasks) == 0 {
				delete(s.byRun, r)
			}
		}
	}
	if s.byRun[run] == nil {
		s.byRun[run] = map[string]time.Time{}
	}
	s.byRun[run][key] = at
}

// forget drops tasks whose sending status.dispatched now records.
func (s *sentTasks) forget(run k8stypes.UID, keys []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.byRun[run], k)
	}
	if len(s.byRun[run]) == 0 {
		delete(s.byRun, run)
	}
}

// resourceKind is a task resource's kind for metrics: consumer, sqs, http or other.
func resourceKind(resource string) string {
	switch {
	case strings.HasPrefix(resource, "millrace:consumer/"):
		return "consumer"
	case strings.HasPrefix(resource, "arn:aws:states:::sqs:"):
		return "sqs"
	case resource == "millrace:http":
		return "http"
	}
	return "other"
}

// dispatch sends a task: to a Consumer's queue (millrace:consumer/<name>), or through the SQS
// sendMessage integration. A Task's evaluated Credentials go with a Consumer's message (attribute
// millrace-credentials); the tasks the manager performs itself use none (Millrace assumes no
// role).
func (r *WorkflowRunReconciler) dispatch(ctx context.Context, run *millracev1.WorkflowRun, a asl.Active, input, credentials any) error {
	token := r.token(run, a.State.Name, a.Path, a.Attempt, a.Visit, a.Entered)
	sum := sha256.Sum256([]byte(string(run.UID) + "/" + a.Key()))
	dedup := hex.EncodeToString(sum[:])
	resource := a.State.Resource
	switch {
	case strings.HasPrefix(resource, "millrace:consumer/"):
		url, fifo, err := r.consumerQueue(ctx, run.Namespace, strings.TrimPrefix(resource, "millrace:consumer/"))
		if err != nil {
			return err
		}
		body, _ := json.Marshal(input)
		attrs := map[string]sqstypes.MessageAttributeValue{dispatch.TaskTokenAttribute: {DataType: aws.String("String"), StringValue: aws.String(token)}}
		if hb := a.HeartbeatSeconds(); hb > 0 {
			attrs[dispatch.HeartbeatAttribute] = sqstypes.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(fmt.Sprint(hb))}
		}
		if credentials != nil {
			c, _ := json.Marshal(credentials)
			attrs[dispatch.CredentialsAttribute] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(string(c))}
		}
		in := &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(string(body)), MessageAttributes: attrs}
		if fifo {
			in.MessageGroupId, in.MessageDeduplicationId = aws.String(run.Name), aws.String(dedup)
		}
		_, err = r.SQS.SendMessage(ctx, in)
		return err
	case resource == "arn:aws:states:::sqs:sendMessage" || resource == "arn:aws:states:::sqs:sendMessage.waitForTaskToken":
		params, _ := input.(map[string]any)
		url, problem, err := r.namespaceQueue(ctx, run.Namespace, params)
		if err != nil {
			return err
		}
		if problem != nil {
			r.reportLater(run, a, constant(*problem))
			return nil
		}
		body, ok := params["MessageBody"].(string)
		if !ok {
			b, _ := json.Marshal(params["MessageBody"])
			body = string(b)
		}
		in := &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body)}
		if g, ok := params["MessageGroupId"].(string); ok {
			in.MessageGroupId = aws.String(g)
			in.MessageDeduplicationId = aws.String(dedup)
		}
		if d, ok := params["MessageDeduplicationId"].(string); ok {
			in.MessageDeduplicationId = aws.String(d)
		}
		if attrs, ok := params["MessageAttributes"].(map[string]any); ok {
			if in.MessageAttributes, err = messageAttributes(attrs); err != nil {
				r.reportLater(run, a, failure("Parameters.MessageAttributes: "+err.Error()))
				return nil
			}
		}
		out, err := r.SQS.SendMessage(ctx, in)
		if err != nil {
			return err
		}
		if strings.HasSuffix(resource, ".waitForTaskToken") {
			return nil
		}
		result, _ := json.Marshal(map[string]any{"MessageId": aws.ToString(out.MessageId), "MD5OfMessageBody": aws.ToString(out.MD5OfMessageBody)})
		r.reportLater(run, a, constant(callback.Result{Kind: callback.Success, Output: result}))
		return nil
	case resource == "millrace:http":
		params, _ := input.(map[string]any)
		timeout := 60 * time.Second
		if a.TimeoutSeconds() > 0 {
			timeout = time.Duration(a.TimeoutSeconds()) * time.Second
		}
		ns := run.Namespace
		r.reportLater(run, a, func(ctx context.Context) callback.Result { return r.httpTask(ctx, ns, params, timeout) })
		return nil
	default:
		r.reportLater(run, a, failure(fmt.Sprintf("resource %q is not supported (millrace:consumer/<name>, millrace:http, arn:aws:states:::sqs:sendMessage[.waitForTaskToken])", resource)))
		return nil
	}
}

func (r *WorkflowRunReconciler) consumerQueue(ctx context.Context, ns, name string) (string, bool, error) {
	c := &millracev1.Consumer{}
	if err := r.Get(ctx, k8stypes.NamespacedName{Namespace: ns, Name: name}, c); err != nil {
		return "", false, fmt.Errorf("Consumer %q: %w", name, err)
	}
	q := &millracev1.Queue{}
	if err := r.Get(ctx, k8stypes.NamespacedName{Namespace: ns, Name: c.Spec.QueueRef.Name}, q); err != nil {
		return "", false, fmt.Errorf("Queue %q of Consumer %q: %w", c.Spec.QueueRef.Name, name, err)
	}
	if q.Status.QueueURL == "" {
		return "", false, fmt.Errorf("Queue %q has no URL yet", q.Name)
	}
	return q.Status.QueueURL, q.Spec.Type == millracev1.QueueTypeFIFO, nil
}

// reportLater performs a task the manager runs itself and records its result through the same
// path as the callback API, retrying on conflicts. It runs after the dispatch was recorded, on
// the manager's context (cancelled at shutdown), not on one that outlives the manager.
func (r *WorkflowRunReconciler) reportLater(run *millracev1.WorkflowRun, a asl.Active, result func(context.Context) callback.Result) {
	claims := tasktoken.Claims{Namespace: run.Namespace, Run: run.Name, RunUID: string(run.UID), State: a.State.Name, Path: a.Path, Attempt: a.Attempt, Visit: a.Visit}
	r.local.Go(func(ctx context.Context) {
		res := result(ctx)
		for i := 0; i < 10 && ctx.Err() == nil; i++ {
			if err := r.Report(ctx, claims, res); err == nil || errors.Is(err, callback.ErrStale) {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
}

// ErrForbidden is the task error for a QueueUrl that is not a Queue of the run's namespace.
const ErrForbidden = "Millrace.Forbidden"

// namespaceQueue resolves the queue of an sqs:sendMessage task: Parameters.Queue names a Queue of
// the run's namespace, or Parameters.QueueUrl must be the URL of one (a run never reaches another
// namespace's queues, nor queues Millrace does not manage). A problem is returned as the task's
// failure.
func (r *WorkflowRunReconciler) namespaceQueue(ctx context.Context, ns string, params map[string]any) (string, *callback.Result, error) {
	url, _ := params["QueueUrl"].(string)
	name, _ := params["Queue"].(string)
	var queues millracev1.QueueList
	if err := r.List(ctx, &queues, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return "", nil, err
	}
	for _, q := range queues.Items {
		if q.Status.QueueURL == "" {
			continue
		}
		if (url != "" && q.Status.QueueURL == url) || (url == "" && q.Name == name) {
			return q.Status.QueueURL, nil, nil
		}
	}
	switch {
	case url != "":
		return "", &callback.Result{Kind: callback.Failure, Error: ErrForbidden,
			Cause: fmt.Sprintf("QueueUrl %s is not the URL of a Queue of namespace %s", url, ns)}, nil
	case name != "":
		return "", &callback.Result{Kind: callback.Failure, Error: asl.ErrRuntime,
			Cause: fmt.Sprintf("Queue %q is not a ready Queue of namespace %s", name, ns)}, nil
	}
	return "", &callback.Result{Kind: callback.Failure, Error: asl.ErrRuntime, Cause: "Parameters need QueueUrl or Queue"}, nil
}

// messageAttributes converts Step Functions' MessageAttributes parameter
// ({"name": {"DataType": "String", "StringValue": "..."}} or BinaryValue in base64).
func messageAttributes(in map[string]any) (map[string]sqstypes.MessageAttributeValue, error) {
	out := make(map[string]sqstypes.MessageAttributeValue, len(in))
	for name, v := range in {
		m, _ := v.(map[string]any)
		dataType, _ := m["DataType"].(string)
		if dataType == "" {
			return nil, fmt.Errorf("%s: DataType is required", name)
		}
		attr := sqstypes.MessageAttributeValue{DataType: aws.String(dataType)}
		switch {
		case m["StringValue"] != nil:
			sv, ok := m["StringValue"].(string)
			if !ok {
				sv = fmt.Sprint(m["StringValue"])
			}
			attr.StringValue = aws.String(sv)
		case m["BinaryValue"] != nil:
			bv, _ := m["BinaryValue"].(string)
			raw, err := base64.StdEncoding.DecodeString(bv)
			if err != nil {
				return nil, fmt.Errorf("%s: BinaryValue is not base64: %v", name, err)
			}
			attr.BinaryValue = raw
		default:
			return nil, fmt.Errorf("%s: StringValue or BinaryValue is required", name)
		}
		out[name] = attr
	}
	return out, nil
}

func failure(cause string) func(context.Context) callback.Result {
	return constant(callback.Result{Kind: callback.Failure, Error: asl.ErrRuntime, Cause: cause})
}

func constant(res callback.Result) func(context.Context) callback.Result {
	return func(context.Context) callback.Result { return res }
}

// Report records a task result from the callback API (callback.Sink).
func (r *WorkflowRunReconciler) Report(ctx context.Context, c tasktoken.Claims, res callback.Result) error {
	if res.Kind == callback.Heartbeat {
		return r.heartbeat(ctx, c)
	}
	for attempt := 0; attempt < 5; attempt++ {
		run, m, engine, err := r.currentTask(ctx, c, attempt)
		if err != nil {
			return err
		}
		now := r.Now()
		ev := asl.Event{Kind: asl.EventTaskFailed, At: now, Path: c.Path, Attempt: c.Attempt, Error: res.Error, Cause: res.Cause}
		if res.Kind == callback.Success {
			var out any
			_ = json.Unmarshal(res.Output, &out)
			ev = asl.Event{Kind: asl.EventTaskSucceeded, At: now, Path: c.Path, Attempt: c.Attempt, Output: out}
		}
		original := run.DeepCopy()
		steps := r.newSteps(run, m, engine)
		steps.step(ev)
		if _, err := r.record(run, m, steps.engine, steps.history, steps.dropped(), now); err != nil {
			return err
		}
		err = r.persist(ctx, original, run)
		if apierrors.IsConflict(err) {
			continue
		}
		if err != nil {
			return err
		}
		r.wakeUp(run)
		return nil
	}
	return errors.New("the run kept changing; try again")
}

// currentTask reads the run and checks that the claims name one of its running task attempts:
// ErrUnknownRun for another run, ErrStale for an attempt the run has left. The first try reads
// the cache (a write based on a stale copy fails its optimistic lock and is tried again); a
// refusal, or any later try, is judged against the API server itself, since the cache may not
// yet show the attempt that was just dispatched.
func (r *WorkflowRunReconciler) currentTask(ctx context.Context, c tasktoken.Claims, try int) (*millracev1.WorkflowRun, *asl.Machine, asl.Run, error) {
	if try == 0 && r.APIReader != nil {
		run, m, engine, err := r.readTask(ctx, r.Client, c)
		if err == nil {
			return run, m, engine, nil
		}
	}
	reader := r.APIReader
	if reader == nil {
		reader = r.Client
	}
	return r.readTask(ctx, reader, c)
}

func (r *WorkflowRunReconciler) readTask(ctx context.Context, reader client.Reader, c tasktoken.Claims) (*millracev1.WorkflowRun, *asl.Machine, asl.Run, error) {
	run := &millracev1.WorkflowRun{}
	if err := reader.Get(ctx, k8stypes.NamespacedName{Namespace: c.Namespace, Name: c.Run}, run); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil, asl.Run{}, callback.ErrUnknownRun
		}
		return nil, nil, asl.Run{}, err
	}
	if string(run.UID) != c.RunUID {
		return nil, nil, asl.Run{}, callback.ErrUnknownRun
	}
	if finished(run.Status.Phase) || run.Status.Engine == nil {
		return nil, nil, asl.Run{}, callback.ErrStale
	}
	m, engine, err := r.load(run)
	if err != nil {
		return nil, nil, asl.Run{}, err
	}
	key := asl.TaskKey(c.State, c.Path, c.Attempt, c.Visit)
	active := m.Active(engine)
	i := slices.IndexFunc(active, func(a asl.Active) bool { return a.Running() && a.Key() == key })
	if i < 0 {
		return nil, nil, asl.Run{}, callback.ErrStale
	}
	// The token dies with its task's timeout even before a reconcile has recorded the timeout.
	if c.Expired(time.Duration(active[i].TimeoutSeconds())*time.Second, time.Now()) {
		return nil, nil, asl.Run{}, callback.ErrStale
	}
	return run, m, engine, nil
}

func (r *WorkflowRunReconciler) wakeUp(run *millracev1.WorkflowRun) {
	obj := &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: run.Namespace, Name: run.Name}}
	select {
	case r.wake <- event.TypedGenericEvent[*millracev1.WorkflowRun]{Object: obj}:
	default:
	}
}

// collectGarbage deletes the oldest finished runs of a Workflow beyond its historyLimit.
func (r *WorkflowRunReconciler) collectGarbage(ctx context.Context, run *millracev1.WorkflowRun) error {
	wf := &millracev1.Workflow{}
	if err := r.Get(ctx, k8stypes.NamespacedName{Namespace: run.Namespace, Name: run.Spec.WorkflowRef.Name}, wf); err != nil {
		return client.IgnoreNotFound(err)
	}
	limit := 50
	if wf.Spec.HistoryLimit != nil {
		limit = int(*wf.Spec.HistoryLimit)
	}
	var list millracev1.WorkflowRunList
	// Read-only use of the cached objects: no deep copy of every run on every completion.
	if err := r.List(ctx, &list, client.InNamespace(run.Namespace), client.MatchingFields{workflowRefKey: wf.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	// The cache may not have this run's completion yet: count the run as we know it.
	items := slices.DeleteFunc(list.Items, func(i millracev1.WorkflowRun) bool { return i.UID == run.UID })
	items = append(items, *run)
	var done []millracev1.WorkflowRun
	for _, item := range items {
		if finished(item.Status.Phase) && item.Status.CompletionTime != nil && item.DeletionTimestamp.IsZero() {
			done = append(done, item)
		}
	}
	if len(done) <= limit {
		return nil
	}
	// Oldest first; times have second precision, so creation order and name break ties.
	slices.SortFunc(done, func(a, b millracev1.WorkflowRun) int {
		if c := a.Status.CompletionTime.Compare(b.Status.CompletionTime.Time); c != 0 {
			return c
		}
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for _, old := range done[:len(done)-limit] {
		if err := r.Delete(ctx, &old); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

// SetupWithManager registers the controller.
func (r *WorkflowRunReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Workers == 0 {
		r.Workers = 8
	}
	if r.Metrics == nil {
		r.Metrics = NewWorkflowRunMetrics(nil)
	}
	r.wake = make(chan event.TypedGenericEvent[*millracev1.WorkflowRun], 4096)
	if err := mgr.Add(&r.local); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &millracev1.WorkflowRun{}, workflowRefKey, func(o client.Object) []string {
		return []string{o.(*millracev1.WorkflowRun).Spec.WorkflowRef.Name}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&millracev1.WorkflowRun{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&millracev1.Workflow{}, handler.EnqueueRequestsFromMapFunc(r.pendingRuns)).
		WatchesRawSource(source.TypedChannel(r.wake, &handler.TypedEnqueueRequestForObject[*millracev1.WorkflowRun]{})).
		Named("workflowrun").
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Workers, 1)}).
		Complete(r)
}

// pendingRuns maps a Workflow to its runs that have not started (they wait for it).
func (r *WorkflowRunReconciler) pendingRuns(ctx context.Context, o client.Object) []reconcile.Request {
	return referrers(ctx, r.Client, &millracev1.WorkflowRunList{}, workflowRefKey, o, func(obj client.Object) bool {
		return obj.(*millracev1.WorkflowRun).Status.Engine == nil
	})
}

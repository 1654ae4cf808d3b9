package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	lru "github.com/hashicorp/golang-lru/v2"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
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

	"github.com/go-logr/logr"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
	"github.com/millrace-io/millrace/internal/egress"
	"github.com/millrace-io/millrace/internal/tasktoken"
)

// The WorkflowRun controller is spread over files by concern:
//
//	workflowrun_controller.go  Reconcile: load → step → render status → persist → act
//	workflowrun_steps.go       stepping the interpreter within a budget; deadlines
//	workflowrun_status.go      rendering the engine's state into status; the one status write
//	workflowrun_act.go         acting on the persisted state: sending tasks, waking up
//	workflowrun_dispatch.go    the task backends (a Consumer's queue, SQS, HTTP)
//	taskexecutor.go            the runnable that performs the tasks the manager runs itself
//	callback_sink.go           task results and heartbeats from the callback API
//	workflowrun_redrive.go     redrive requests (spec.redrive): checks, refusals, abort once
//	workflowrun_children.go    DISTRIBUTED Map iterations as child WorkflowRuns
//	workflowrun_gc.go          deleting finished runs beyond a Workflow's historyLimit
//	workflowrun_metrics.go     Prometheus metrics

const (
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

// WorkflowRunReconciler executes WorkflowRuns with the pure interpreter of internal/asl: it
// persists the run's new status first, then performs what the persisted state asks for (sends
// task messages, hands tasks to the task executor, arms timers), so a crash in between repeats
// nothing a user can see. It is also the Sink of the callback API.
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
	// LocalTaskWorkers is how many tasks the manager performs itself at once (default 16).
	LocalTaskWorkers int
	// LocalTasksPerNamespace bounds one namespace's share of them (default a quarter, at least 1).
	LocalTasksPerNamespace int
	// Metrics (default: unregistered ones).
	Metrics *WorkflowRunMetrics
	// HTTP performs millrace:http tasks, to the destinations each namespace's TenantPolicies
	// grant; nil disables them (the manager's --http-tasks flag).
	HTTP *egress.Client
	// Log (default: the controller-runtime logger).
	Log logr.Logger

	defaultsOnce sync.Once
	wake         chan event.TypedGenericEvent[*millracev1.WorkflowRun]
	tasks        *taskExecutor
	writes       atomic.Int64
	sent         sentTasks
	beats        heartbeatMemory
	// refused remembers the tokens the API server refused for good (callback_sink.go).
	refused  *lru.Cache[refusedKey, error]
	machines machineCache
	// continuing are the runs requeued to go on with work left (types.NamespacedName): their
	// next reconcile reads them from the API server, as the cache has seldom caught up yet with
	// the write that ended the last slice (a stale copy makes the next write conflict and its
	// slice of work be done again).
	continuing sync.Map
	// rejectedChildren are the iterations whose child run the API server refused to create
	// (rejectedChildKey: rejectedChild), for the parent's next reconcile to fail them.
	rejectedChildren sync.Map
}

// setDefaults fills what was left out; every entry point calls it, so a reconciler built by hand
// (tests, benchmarks) works without SetupWithManager.
func (r *WorkflowRunReconciler) setDefaults() {
	r.defaultsOnce.Do(func() {
		if r.Now == nil {
			r.Now = time.Now
		}
		if r.Workers <= 0 {
			r.Workers = 8
		}
		if r.Metrics == nil {
			r.Metrics = NewWorkflowRunMetrics(nil)
		}
		if r.Log.GetSink() == nil {
			r.Log = ctrl.Log.WithName("workflowrun")
		}
		if r.Recorder == nil {
			r.Recorder = &events.FakeRecorder{} // records nothing
		}
		r.wake = make(chan event.TypedGenericEvent[*millracev1.WorkflowRun], 4096)
		r.refused, _ = lru.New[refusedKey, error](refusedTokens)
		r.tasks = newTaskExecutor(r.LocalTaskWorkers, r.Report, r.Metrics, r.Log.WithName("local-tasks"))
		if r.LocalTasksPerNamespace > 0 {
			r.tasks.perNamespace = r.LocalTasksPerNamespace
		}
	})
}

// StatusWrites counts the status patches sent so far (for benchmarks and metrics).
func (r *WorkflowRunReconciler) StatusWrites() int64 { return r.writes.Load() }

// +kubebuilder:rbac:groups=millrace.io,resources=workflowruns,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=millrace.io,resources=workflowruns/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=millrace.io,resources=consumers,verbs=get;list;watch

// Reconcile advances one run: load it, step the interpreter (pure), render the new status,
// persist it (one write), then act on what was persisted.
func (r *WorkflowRunReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	r.setDefaults()
	run, err := r.getRun(ctx, req.NamespacedName)
	if err != nil || run == nil {
		return ctrl.Result{}, err
	}
	if finished(run.Status.Phase) && !redriveRequested(run) {
		return r.finishedRun(ctx, run)
	}
	original := run.DeepCopy()
	now := r.Now()
	steps, err := r.advance(ctx, run, now)
	if err != nil {
		return ctrl.Result{}, err
	}
	var recorded asl.Run
	if steps != nil {
		if recorded, err = r.record(run, steps, now); err != nil {
			return ctrl.Result{}, err
		}
	}
	if err := r.persist(ctx, original, run); err != nil {
		return ctrl.Result{}, err
	}
	if steps == nil {
		return ctrl.Result{}, nil // the run waits for its Workflow, ended before it started, or a redrive was refused
	}
	return r.act(ctx, run, steps, recorded, now)
}

// getRun reads the run: from the API server when a reconcile of it is going on with work left
// (see continuing), else from the cache. A run that no longer exists is nil.
func (r *WorkflowRunReconciler) getRun(ctx context.Context, key k8stypes.NamespacedName) (*millracev1.WorkflowRun, error) {
	var reader client.Reader = r.Client
	if _, ok := r.continuing.LoadAndDelete(key); ok && r.APIReader != nil {
		reader = r.APIReader
	}
	run := &millracev1.WorkflowRun{}
	if err := reader.Get(ctx, key, run); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return run, nil
}

// advance steps the run with what happened since it was persisted: its start, a redrive, an
// abort, the deadlines that passed (timers, task timeouts, missed heartbeats, the run's own
// timeout), then the work it can do without waiting, within one budget. Nil steps mean there is
// no engine to step: the run waits for its Workflow, failed before starting, or is a finished run
// whose redrive was refused (its status says which).
func (r *WorkflowRunReconciler) advance(ctx context.Context, run *millracev1.WorkflowRun, now time.Time) (*runSteps, error) {
	if !run.Spec.Abort {
		run.Status.AbortedAtRedrive = nil // abort was cleared (with a redrive): a new one stops the run
	}
	if redriveRequested(run) {
		steps, err := r.redrive(ctx, run, now)
		if err != nil || steps != nil || finished(run.Status.Phase) {
			return steps, err
		}
		// Refused for a run that has not finished: it goes on as it was.
	}
	if run.Status.Engine == nil {
		return r.begin(ctx, run, now)
	}
	m, engine, err := r.loadEngine(run)
	if err != nil {
		failBeforeStart(run, asl.ErrRuntime, err.Error(), now)
		return nil, nil
	}
	steps := r.newSteps(run, m, engine)
	endsLeft, err := r.childRunEnds(ctx, run, steps, now)
	if err != nil {
		return nil, err
	}
	if abortAsked(run, steps.engine) {
		steps.step(asl.Event{Kind: asl.EventAbort, At: now, Cause: "spec.abort is set"})
		if steps.engine.Status == asl.Aborted {
			at := int32(steps.engine.Execution.RedriveCount)
			run.Status.AbortedAtRedrive = &at
		}
	}
	for _, d := range r.deadlines(run, m, steps.engine) {
		if !now.Before(d.at) {
			ev := d.event
			ev.At = now
			steps.step(ev)
		}
	}
	steps.continueRun(now)
	steps.more = steps.more || endsLeft
	return steps, nil
}

// begin pins the definition of the run's Workflow (of a child run: its parent's Map state's
// ItemProcessor) and starts the run. A missing Workflow keeps the run Pending; an invalid one, or
// an unusable input, ends it before it starts.
func (r *WorkflowRunReconciler) begin(ctx context.Context, run *millracev1.WorkflowRun, now time.Time) (*runSteps, error) {
	if run.Spec.ParentRef != nil {
		if !r.createdByMillrace(run) {
			// Written by hand: the run is no Map iteration, and runs nothing of the parent's.
			setPending(run, true, ReasonParentRefForged, fmt.Sprintf(
				"spec.parentRef: this run was not created by Millrace as a child run of %s (no valid spec.parentRef.signature); only Millrace creates child runs: create the run without parentRef", run.Spec.ParentRef.Name))
			return nil, nil
		}
		def, err := r.parentDefinition(ctx, run, now)
		if def == nil || err != nil {
			return nil, err
		}
		m, errs := parseWorkflow(def)
		if len(errs) > 0 {
			failBeforeStart(run, asl.ErrRuntime, "the Map state's ItemProcessor: "+errs[0].Error(), now)
			return nil, nil
		}
		return r.start(run, m, def, now)
	}
	wf := &millracev1.Workflow{}
	err := r.Get(ctx, k8stypes.NamespacedName{Namespace: run.Namespace, Name: run.Spec.WorkflowRef.Name}, wf)
	if apierrors.IsNotFound(err) {
		setPending(run, false, ReasonWaitingWF, fmt.Sprintf("spec.workflowRef: Workflow %q does not exist", run.Spec.WorkflowRef.Name))
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	m, errs := parseWorkflow(wf.Spec.Definition.Raw)
	if len(errs) > 0 {
		setPending(run, true, ReasonInvalidDefinition, fmt.Sprintf("Workflow %q is invalid: %s", wf.Name, errs[0].Error()))
		return nil, nil
	}
	return r.start(run, m, wf.Spec.Definition.Raw, now)
}

// start pins the definition and starts the run with spec.input.
func (r *WorkflowRunReconciler) start(run *millracev1.WorkflowRun, m *workflowMachine, def []byte, now time.Time) (*runSteps, error) {
	if n := jsonLen(run.Spec.Input); n > asl.DefaultMaxPayloadBytes {
		failBeforeStart(run, asl.ErrDataLimitExceeded, fmt.Sprintf("spec.input is %d bytes (limit %d)", n, asl.DefaultMaxPayloadBytes), now)
		return nil, nil
	}
	var input any = map[string]any{}
	if run.Spec.Input != nil && len(run.Spec.Input.Raw) > 0 {
		if err := json.Unmarshal(run.Spec.Input.Raw, &input); err != nil {
			failBeforeStart(run, asl.ErrRuntime, "spec.input: "+err.Error(), now)
			return nil, nil
		}
	}
	run.Status.Definition = &apiextensionsv1.JSON{Raw: slices.Clone(def)}
	run.Status.DefinitionHash, _ = asl.DefinitionHash(def) // valid: it parsed
	t := metav1.NewTime(now)
	run.Status.StartTime = &t
	steps := r.newSteps(run, m, asl.Run{})
	steps.step(asl.Event{Kind: asl.EventStart, At: now, Input: input,
		Execution: asl.Execution{ID: string(run.UID), Name: run.Name, StartTime: now}})
	steps.continueRun(now)
	return steps, nil
}

// loadEngine reads the run's pinned definition (parsed once per definition) and engine state.
func (r *WorkflowRunReconciler) loadEngine(run *millracev1.WorkflowRun) (*workflowMachine, asl.Run, error) {
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

// options are the engine's options for the run: its task tokens, and child runs for its
// DISTRIBUTED Map states unless it is a child run itself (whose DISTRIBUTED Maps run inline).
func (r *WorkflowRunReconciler) options(run *millracev1.WorkflowRun) asl.Options {
	return asl.Options{TaskToken: func(state string, path []int, attempt int, visit string, entered time.Time) string {
		return r.token(run, state, path, attempt, visit, entered)
	}, ChildRuns: run.Spec.ParentRef == nil}
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

func finished(p millracev1.RunPhase) bool {
	return p == millracev1.RunSucceeded || p == millracev1.RunFailed || p == millracev1.RunTimedOut || p == millracev1.RunAborted
}

// SetupWithManager registers the controller and its task executor.
func (r *WorkflowRunReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	r.setDefaults()
	if err := mgr.Add(r.tasks); err != nil {
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
		Watches(&millracev1.WorkflowRun{}, handler.EnqueueRequestsFromMapFunc(r.parentOf), builder.WithPredicates(childRunEnded)).
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

// wakeUp reconciles the run soon (after a task report changed it).
func (r *WorkflowRunReconciler) wakeUp(run *millracev1.WorkflowRun) {
	obj := &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: run.Namespace, Name: run.Name}}
	select {
	case r.wake <- event.TypedGenericEvent[*millracev1.WorkflowRun]{Object: obj}:
	default:
	}
}

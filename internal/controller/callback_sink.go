package controller

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/tasktoken"
)

// Report records a task result (callback.Sink): from the callback API, for tasks a dispatcher or
// anyone holding the token answers, and from the task executor, for tasks the manager performs
// itself. The result is one more event for the interpreter, persisted like a reconcile's steps;
// the run's reconcile then acts on it.
func (r *WorkflowRunReconciler) Report(ctx context.Context, c tasktoken.Claims, res callback.Result) error {
	r.setDefaults()
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
		if _, err := r.record(run, steps, now); err != nil {
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
//
// What the API server refuses for good (the run is gone, or has left that attempt: it never comes
// back, since a run's status shows an attempt before its token is handed out) is remembered per
// token, so a token replayed after its run finished or was deleted costs one API-server read, not
// one per replay (tokens verify for up to a year, and the manager's client is not rate limited).
func (r *WorkflowRunReconciler) currentTask(ctx context.Context, c tasktoken.Claims, try int) (*millracev1.WorkflowRun, *workflowMachine, asl.Run, error) {
	token := refusedKey{run: c.RunUID, task: asl.TaskKey(c.State, c.Path, c.Attempt, c.Visit), issued: c.IssuedAt.Unix()}
	if err, ok := r.refused.Get(token); ok {
		return nil, nil, asl.Run{}, err
	}
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
	run, m, engine, err := r.readTask(ctx, reader, c)
	if errors.Is(err, callback.ErrStale) || errors.Is(err, callback.ErrUnknownRun) {
		r.refused.Add(token, err)
	}
	return run, m, engine, err
}

// refusedKey names one token: its run, task attempt and issue time.
type refusedKey struct {
	run, task string
	issued    int64
}

// refusedTokens bounds the tokens remembered as refused.
const refusedTokens = 4096

func (r *WorkflowRunReconciler) readTask(ctx context.Context, reader client.Reader, c tasktoken.Claims) (*millracev1.WorkflowRun, *workflowMachine, asl.Run, error) {
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
	m, engine, err := r.loadEngine(run)
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

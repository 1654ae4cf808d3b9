package controller

import (
	"fmt"
	"slices"
	"time"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
)

// runSteps are the steps of one run in one reconcile (or one task report), sharing one budget
// (asl.Budget): whatever the definition and input, one reconcile does a bounded amount of work
// and holds a bounded history.
//
// The controller reads what to do from the engine state it persisted (Machine.Active and
// NeedsContinue), never from the effects asl.Step returns: a restarted manager has only the
// persisted state, and must do exactly what the process that wrote it would have done. The
// effects serve drivers that live as long as the run (Machine.RunLocally, the CLI).
type runSteps struct {
	m       *workflowMachine
	opt     asl.Options
	engine  asl.Run
	history []asl.Transition
	// more is set when the budget ran out with work left: the run goes on in another reconcile.
	more bool
}

func (r *WorkflowRunReconciler) newSteps(run *millracev1.WorkflowRun, m *workflowMachine, engine asl.Run) *runSteps {
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
// records whether some is left.
func (s *runSteps) continueRun(now time.Time) {
	s.more = false
	for s.engine.Status == asl.Running && s.m.NeedsContinue(s.engine, s.opt) {
		if s.opt.Budget.Spent() {
			s.more = true
			return
		}
		before := *s.opt.Budget
		s.step(asl.Event{Kind: asl.EventContinue, At: now})
		if *s.opt.Budget == before {
			return // no progress: nothing to continue after all
		}
	}
}

// dropped is how many transitions the steps made beyond the history they kept.
func (s *runSteps) dropped() int { return s.opt.Budget.HistoryDropped }

// deadline is a time at which something happens to a run unless something else happens first,
// and the event that says so.
type deadline struct {
	at    time.Time
	event asl.Event
}

// deadlines lists what the run waits for with a time limit: its TimeoutSeconds, its Wait states
// and retry delays, its tasks' TimeoutSeconds and HeartbeatSeconds. The reconcile fires the ones
// that passed (with At set) and is requeued at the earliest of the others: the one place these
// times are computed.
func (r *WorkflowRunReconciler) deadlines(run *millracev1.WorkflowRun, m *workflowMachine, engine asl.Run) []deadline {
	if engine.Status != asl.Running {
		return nil
	}
	var out []deadline
	if at, ok := m.Deadline(engine); ok { // TimeoutSeconds, from the start or the latest redrive
		out = append(out, deadline{at: at, event: asl.Event{Kind: asl.EventTimeout}})
	}
	for _, a := range m.Active(engine) {
		if a.Waiting != nil {
			out = append(out, deadline{at: *a.Waiting, event: asl.Event{Kind: asl.EventTimer, Path: a.Path}})
			continue
		}
		if !a.Running() {
			continue
		}
		if at, ok := taskTimeoutAt(a); ok {
			out = append(out, deadline{at: at, event: asl.Event{Kind: asl.EventTaskFailed, Path: a.Path, Attempt: a.Attempt,
				Error: asl.ErrTimeout, Cause: fmt.Sprintf("the task did not finish within %ds", a.TimeoutSeconds())}})
		}
		if a.HeartbeatSeconds() > 0 {
			out = append(out, deadline{at: r.heartbeatDeadline(run, a), event: asl.Event{Kind: asl.EventTaskFailed, Path: a.Path, Attempt: a.Attempt,
				Error: asl.ErrHeartbeatTimeout, Cause: fmt.Sprintf("no heartbeat within %ds", a.HeartbeatSeconds())}})
		}
	}
	return out
}

// taskTimeoutAt is when a running task attempt times out (its TimeoutSeconds).
func taskTimeoutAt(a asl.Active) (time.Time, bool) {
	if a.TimeoutSeconds() <= 0 {
		return time.Time{}, false
	}
	return a.Entered.Add(time.Duration(a.TimeoutSeconds()) * time.Second), true
}

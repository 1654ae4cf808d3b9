package asl

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"sigs.k8s.io/yaml"
)

// Redrive, as Step Functions' RedriveExecution: a run that failed, was aborted or timed out goes
// on from where it stopped, with the same input and definition, keeping what succeeded. The
// state that did not finish runs again (a new visit: its retriers start from zero, a Task is a
// new attempt with its input computed again); inside a Parallel or Map state that did not
// finish, only the branches and iterations that did not succeed run again, and the results of
// the others are kept. The variables are those the run had when it stopped (a failed state does
// not assign), so the state runs again with the values it first saw.

// Limits of redrive.
const (
	// RedrivePeriod is how long after it stopped a run can be redriven (Step Functions': 14 days).
	RedrivePeriod = 14 * 24 * time.Hour
	// MaxExecutionTime is how long after it started a run can be redriven (Step Functions' longest
	// execution: a year).
	MaxExecutionTime = MaxWaitSeconds * time.Second
	// MaxRedrives bounds the redrives of one run (Step Functions bounds a Map Run's at 1,000, an
	// execution's by its history; a run here is bounded by MaxTransitionsPerRun too).
	MaxRedrives = 1000
)

// ErrNotRedrivable is what every redrive refusal wraps (errors.Is).
var ErrNotRedrivable = errors.New("the run cannot be redriven")

// Reasons a run cannot be redriven (RedriveError.Reason), fit for a Kubernetes condition or event
// reason.
const (
	RedriveRunning             = "RunRunning"
	RedriveSucceeded           = "RunSucceeded"
	RedriveNotStarted          = "RunNotStarted"
	RedriveTransitionLimit     = "TransitionLimitReached"
	RedriveExecutionTime       = "ExecutionTimeExceeded"
	RedrivePeriodExceeded      = "RedrivePeriodExceeded"
	RedriveLimit               = "RedriveLimitReached"
	RedriveDefinitionMismatch  = "DefinitionMismatch"
	RedriveNotRedrivableReason = "NotRedrivable"
)

// RedriveError is a refused redrive: Reason is one of the Redrive* reasons, Message says why.
type RedriveError struct {
	Reason  string
	Message string
}

func (e *RedriveError) Error() string { return "cannot redrive the run: " + e.Message }

// Unwrap makes errors.Is(err, ErrNotRedrivable) hold.
func (e *RedriveError) Unwrap() error { return ErrNotRedrivable }

// Redrivable reports whether a run can be redriven at a given time (nil) or why not: it must have
// failed, been aborted (EventAbort) or timed out; stopped less
// than RedrivePeriod ago (a run without Stopped is not checked for it); started less than
// MaxExecutionTime ago; been redriven fewer than MaxRedrives times; and have ended with the state
// a redrive needs (not at the transition limit of a run, nor marked NotRedrivable by its
// caller). That the definition is unchanged is the caller's to check (see DefinitionHash).
func Redrivable(run Run, at time.Time) error {
	refuse := func(reason, format string, a ...any) error {
		return &RedriveError{Reason: reason, Message: fmt.Sprintf(format, a...)}
	}
	switch run.Status {
	case Running:
		return refuse(RedriveRunning, "it is still running")
	case Succeeded:
		return refuse(RedriveSucceeded, "it succeeded")
	case Failed, TimedOut, Aborted:
	default:
		return refuse(RedriveNotStarted, "it has not started")
	}
	switch {
	case run.NotRedrivable != "":
		return refuse(RedriveNotRedrivableReason, "%s", run.NotRedrivable)
	case run.Executed >= MaxTransitionsPerRun:
		return refuse(RedriveTransitionLimit, "it made %d transitions, the limit of a run", run.Executed)
	case run.Execution.RedriveCount >= MaxRedrives:
		return refuse(RedriveLimit, "it was redriven %d times, the limit", run.Execution.RedriveCount)
	case !run.Execution.StartTime.IsZero() && at.Sub(run.Execution.StartTime) > MaxExecutionTime:
		return refuse(RedriveExecutionTime, "it started on %s, more than a year ago", run.Execution.StartTime.UTC().Format(time.RFC3339))
	case !run.Stopped.IsZero() && at.Sub(run.Stopped) > RedrivePeriod:
		return refuse(RedrivePeriodExceeded, "it stopped on %s, more than 14 days ago", run.Stopped.UTC().Format(time.RFC3339))
	}
	return nil
}

// Redrive restarts a run that failed, was aborted or timed out (see Redrivable, whose errors it
// returns, and the comment at the top of this file) at time at. It returns the running run, the
// effects to perform after persisting it and its transitions: first a "Redriven" one on the
// state the run stopped in (Info "redrive <n>"), then one on every Parallel or Map state it goes
// on with ("Redriven" too) and the states it enters again ("Entered"). The run's
// Execution.RedriveCount counts the redrive and Execution.RedriveTime is at ($$.Execution.
// RedriveCount and RedriveTime; $states.context.Execution in JSONata); the execution's
// TimeoutSeconds counts from at (see Deadline). It never mutates its argument.
//
// The run must be as Step left it (Stored keeps what a redrive needs), with Execution.Input the
// execution's input.
func (m *Machine) Redrive(run Run, at time.Time, opt Options) (Run, []Effect, []Transition, error) {
	if err := Redrivable(run, at); err != nil {
		return run, nil, nil, err
	}
	if m.States[run.State] == nil {
		return run, nil, nil, &RedriveError{Reason: RedriveDefinitionMismatch,
			Message: fmt.Sprintf("it stopped in state %q, which the definition does not have", run.State)}
	}
	opt = opt.withDefaults()
	opt.tree = &tree{mapItems: run.MapItems, executed: run.Executed}
	before := run
	run.Execution.RedriveCount++
	when := at
	run.Execution.RedriveTime = &when
	run.Stopped = time.Time{}
	s := &stepper{m: m, run: run, opt: opt, now: at}
	s.redrive(fmt.Sprintf("redrive %d", run.Execution.RedriveCount), true)
	s.advance()
	before.Status = Running // the redriven run is a running one: settle notes when it stops
	next, eff, hist := settle(before, s.run, s.effects, s.history, opt, at)
	return next, eff, trimHistory(hist, opt, opt.MaxHistory), nil
}

// redrive makes the (sub)run run again from where it stopped: a Parallel or Map state that had
// started its children goes on with those that did not succeed; any other state is entered
// again. Transitions "Redriven" (Info info) mark the top run's state and the Parallel and Map
// states that go on.
func (s *stepper) redrive(info string, top bool) {
	s.run.Status, s.run.Output, s.run.Error, s.run.Cause = Running, nil, "", ""
	s.run.Waiting, s.run.Retrying = nil, false
	st := s.m.States[s.run.State]
	if st == nil || (st.Type != "Parallel" && st.Type != "Map") || s.run.Attempt == 0 || s.run.ItemsTotal == 0 {
		if top {
			s.record(s.run.State, "Redriven", info)
		}
		s.enter(s.run.State, s.run.Input)
		return
	}
	s.record(s.run.State, "Redriven", info)
	s.run.RetryCounts = nil
	// A new start of the children: the tasks they run again are new tasks (see Active.Visit).
	s.run.Epoch++
	children := slices.Clone(s.run.Children)
	for pos, c := range children {
		if c.Status == Succeeded {
			continue
		}
		if c.Remote {
			// A child run that failed or was abandoned: a new child run (the Epoch makes a new key).
			children[pos] = Run{Status: Running, Remote: true, Item: c.Item, Entered: s.now}
			continue
		}
		sub := &stepper{m: s.childMachine(st, c.Item), run: s.withExecution(c), opt: s.childOptions(c.Item), now: s.now}
		sub.redrive(info, false)
		sub.advance()
		next := sub.run
		next.Execution = Execution{}
		children[pos] = next
		s.adopt(c.Item, sub.effects, sub.history)
	}
	s.run.Children = children
	if mr := s.run.Map; mr != nil && (len(mr.FailedItems) > 0 || mr.Failures > 0) {
		// The iterations that failed within the tolerated threshold run again, from their
		// beginning (only their errors were kept); the failures are counted again.
		next := *mr
		s.run.Redo = append(slices.Clip(s.run.Redo), mr.FailedItems...)
		for _, i := range mr.FailedItems {
			if i < len(s.run.Results) && s.run.Results[i] != nil {
				n, _ := jsonSize(s.run.Results[i], s.opt.MaxPayloadBytes)
				s.run.ResultBytes -= n
				s.run.Results = slices.Clone(s.run.Results)
				s.run.Results[i] = nil
			}
		}
		next.FailedItems, next.Failures = nil, 0
		s.run.Map = &next
	}
	s.childrenChanged(st)
}

// Stored is the run as a caller persists it between steps: a run that succeeded needs neither
// its input nor its output (kept elsewhere), nor its variables; any other keeps everything, as a
// redrive needs it (the input of the state it stopped in, its variables, a Parallel or Map
// state's children and results).
func (r Run) Stored() Run {
	if r.Status == Succeeded {
		r.Input, r.Output, r.Execution.Input = nil, nil, nil
		r.Variables, r.VariableBytes = nil, 0
	}
	return r
}

// Deadline is when the execution's TimeoutSeconds ends: that long after it started, or after its
// latest redrive (a redrive starts the machine's timeout again, as in Step Functions). ok is false
// when the machine has no TimeoutSeconds or the run has no start time.
func (m *Machine) Deadline(run Run) (deadline time.Time, ok bool) {
	from := run.Execution.StartTime
	if t := run.Execution.RedriveTime; t != nil {
		from = *t
	}
	if m.TimeoutSeconds <= 0 || from.IsZero() {
		return time.Time{}, false
	}
	return from.Add(time.Duration(m.TimeoutSeconds) * time.Second), true
}

// DefinitionHash identifies a definition (JSON or YAML) whatever its formatting and key order:
// "sha256:" and the hex SHA-256 of its canonical JSON. A caller that pins a run's definition can
// compare the hash of the pinned one with the current one's before a redrive (which must run an
// unchanged definition).
func DefinitionHash(def []byte) (string, error) {
	js := def
	if !json.Valid(def) {
		var err error
		if js, err = yaml.YAMLToJSON(def); err != nil {
			return "", fmt.Errorf("not JSON or YAML: %w", err)
		}
	}
	var v any
	if err := json.Unmarshal(js, &v); err != nil {
		return "", err
	}
	canonical, err := json.Marshal(v) // objects' keys sorted
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canonical)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

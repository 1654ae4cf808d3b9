package asl

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Status of a run.
type Status string

const (
	Running   Status = "RUNNING"
	Succeeded Status = "SUCCEEDED"
	Failed    Status = "FAILED"
	TimedOut  Status = "TIMED_OUT"
	Aborted   Status = "ABORTED"
)

// Predefined error names.
const (
	ErrAll                   = "States.ALL"
	ErrRuntime               = "States.Runtime"
	ErrTimeout               = "States.Timeout"
	ErrTaskFailed            = "States.TaskFailed"
	ErrNoChoiceMatched       = "States.NoChoiceMatched"
	ErrIntrinsicFailure      = "States.IntrinsicFailure"
	ErrResultPathMatchFailed = "States.ResultPathMatchFailure"
	ErrParameterPathFailure  = "States.ParameterPathFailure"
	ErrHeartbeatTimeout      = "States.HeartbeatTimeout"
	ErrDataLimitExceeded     = "States.DataLimitExceeded"
	// ErrAborted is the error of a run stopped by its owner (EventAbort).
	ErrAborted = "States.Aborted"
	// ErrExceedToleratedFailureThreshold: more iterations of a Map state failed than it tolerates.
	ErrExceedToleratedFailureThreshold = "States.ExceedToleratedFailureThreshold"
)

// Defaults of Options, as in Step Functions: inline Map states run at most 40 iterations at once,
// and a state's result is at most 256 KiB of JSON.
const (
	DefaultMaxMapConcurrency = 40
	DefaultMaxPayloadBytes   = 256 << 10
)

// Run is the whole state of one execution between events: what the controller persists.
type Run struct {
	Status Status `json:"status"`
	// State is the current state's name; Input its raw input.
	State   string    `json:"state,omitempty"`
	Input   any       `json:"input,omitempty"`
	Entered time.Time `json:"entered,omitempty"`
	// Attempt counts the executions of the current Task (1-based), RetryCounts its retriers' use.
	Attempt     int   `json:"attempt,omitempty"`
	RetryCounts []int `json:"retryCounts,omitempty"`
	// Waiting is set while a Wait state or a retry delay runs.
	Waiting *time.Time `json:"waiting,omitempty"`
	// Retrying is true while Waiting is a retry delay (the Task runs again when it ends).
	Retrying bool `json:"retrying,omitempty"`

	Output any    `json:"output,omitempty"`
	Error  string `json:"error,omitempty"`
	Cause  string `json:"cause,omitempty"`

	// Execution is kept on the top run only; children take their parent's while they step.
	Execution   Execution `json:"execution,omitzero"`
	Transitions int       `json:"transitions,omitempty"`

	// Children are the unfinished branch runs of a Parallel state or item runs of a Map state.
	// A finished child leaves: its output goes to Results. So a Map of any size keeps at most
	// its concurrency's worth of child state.
	Children []Run `json:"children,omitempty"`
	// Item is a child's position: its branch (Parallel) or item index (Map). Event paths and
	// task tokens address children by it.
	Item int `json:"item,omitempty"`
	// Epoch counts the starts of this Parallel or Map state's children (a Retry starts them again),
	// so that their tasks are told apart from those of an earlier start.
	Epoch int `json:"epoch,omitempty"`
	// ItemsTotal is how many branches or items the state has, NextItem the next one to start.
	ItemsTotal int `json:"itemsTotal,omitempty"`
	NextItem   int `json:"nextItem,omitempty"`
	// Results are the outputs of the finished children by position (null until finished), and
	// ResultBytes their JSON size, bounded by Options.MaxPayloadBytes.
	Results     []any `json:"results,omitempty"`
	ResultBytes int   `json:"resultBytes,omitempty"`
	// MapItems counts the iterations the run's Map states have started (top run only), bounded
	// by MaxMapItemsPerRun.
	MapItems int `json:"mapItems,omitempty"`
	// Executed counts the transitions of the whole run (states executed, branches and items
	// started; top run only), bounded by MaxTransitionsPerRun.
	Executed int `json:"executed,omitempty"`

	// TaskTimeout and TaskHeartbeat are the running Task's TimeoutSecondsPath and
	// HeartbeatSecondsPath as evaluated when the attempt started (0: none; see Active).
	TaskTimeout   int `json:"taskTimeout,omitempty"`
	TaskHeartbeat int `json:"taskHeartbeat,omitempty"`
	// Map is what a running Map state evaluated when it started and the failures it tolerated
	// (nil unless it has MaxConcurrencyPath, ItemBatcher or a tolerated failure threshold).
	Map *MapRun `json:"map,omitempty"`
	// Variables are the workflow variables of this run's scope (the top run's, or a Parallel
	// branch's or Map iteration's: those read the enclosing scopes' too), VariableBytes their
	// JSON size. A finished run drops them.
	Variables     map[string]any `json:"variables,omitempty"`
	VariableBytes int            `json:"variableBytes,omitempty"`
	// MaxConcurrency is the running Map state's, where a JSONata expression gives it (0: the
	// state's own).
	MaxConcurrency int `json:"maxConcurrency,omitempty"`
	// Remote marks an iteration of a DISTRIBUTED Map state that runs as a child run of its own:
	// the run holds only its status, Entered, and its output or error once it ends (see
	// ChildRuns).
	Remote bool `json:"remote,omitempty"`
	// Redo are the iterations of a redriven Map state to start again from their beginning (those
	// that failed within its tolerated failure threshold), before the items not started yet.
	Redo []int `json:"redo,omitempty"`

	// Stopped is when the run stopped (top run only; zero while it runs, or when the caller
	// stopped it without the engine). A redrive is refused RedrivePeriod after it.
	Stopped time.Time `json:"stopped,omitzero"`
	// NotRedrivable says why the run cannot be redriven ("": it can, if it did not succeed): set
	// when the run ended without the state a redrive needs (the transition limit of a run).
	NotRedrivable string `json:"notRedrivable,omitempty"`
}

// Execution identifies a run in the context object ($$.Execution).
type Execution struct {
	ID        string    `json:"Id"`
	Name      string    `json:"Name"`
	Input     any       `json:"Input"`
	StartTime time.Time `json:"StartTime"`
	// RedriveCount counts the redrives of the run ($$.Execution.RedriveCount, 0 before any);
	// RedriveTime is when the latest one happened ($$.Execution.RedriveTime, only once redriven).
	RedriveCount int        `json:"RedriveCount,omitempty"`
	RedriveTime  *time.Time `json:"RedriveTime,omitempty"`
}

// EventKind is what happened to a run.
type EventKind string

const (
	EventStart         EventKind = "Start"
	EventTaskSucceeded EventKind = "TaskSucceeded"
	EventTaskFailed    EventKind = "TaskFailed"
	EventTimer         EventKind = "TimerFired"
	EventContinue      EventKind = "Continue"
	EventTimeout       EventKind = "ExecutionTimedOut"
	// EventAbort stops a running run at once (Cause says why); its tasks' later reports are stale.
	EventAbort EventKind = "Abort"
)

// Event drives a run one step.
type Event struct {
	Kind   EventKind
	At     time.Time
	Input  any    // Start
	Output any    // TaskSucceeded
	Error  string // TaskFailed
	Cause  string // TaskFailed, Abort
	// Execution names the run (Start).
	Execution Execution
	// Attempt is the attempt a task event belongs to; events of other attempts are ignored.
	Attempt int
	// Path addresses a nested run: child indexes from the top run (Parallel branch, Map item).
	Path []int
}

// EffectKind is something the caller must do after persisting the run.
type EffectKind string

const (
	EffectRunTask  EffectKind = "RunTask"
	EffectTimer    EffectKind = "Timer"
	EffectContinue EffectKind = "Continue"
)

// Effect is a side effect to perform (idempotently: State + Attempt identify it).
type Effect struct {
	Kind             EffectKind
	State            string
	Resource         string
	Input            any
	Attempt          int
	TimeoutSeconds   int
	HeartbeatSeconds int
	Until            time.Time
	// Credentials are a Task's evaluated Credentials (RoleArn), carried to its message: Millrace
	// assumes no role itself.
	Credentials any
	// Path addresses the nested run the effect belongs to (echoed in the event it causes).
	Path []int
}

// Transition is one entry of the run's history.
type Transition struct {
	At    time.Time
	State string
	Kind  string // Entered, Exited, Failed, Retrying, Caught, Succeeded
	Info  string
}

// Options tune the interpreter.
type Options struct {
	// Budget is the work the step may do across the whole tree of the run; when it is spent the
	// step yields a Continue effect. Steps may share one (a reconcile's); nil gives the step a
	// budget of its own: MaxTransitionsPerStep transitions (default DefaultStepTransitions) and
	// DefaultStepBytes.
	Budget *Budget
	// MaxTransitionsPerStep is the transitions of a budget made for the step (see Budget).
	MaxTransitionsPerStep int
	// MaxHistory bounds the transitions a step returns: the latest are kept, the others counted
	// in Budget.HistoryDropped (0: DefaultMaxHistory; negative: no bound).
	MaxHistory int
	// Jitter returns a number in [0,1) for FULL jitter; nil uses no randomness (the full delay).
	Jitter func() float64
	// TaskToken returns the token of a task attempt, offered to its Parameters as $$.Task.Token
	// (for waitForTaskToken integrations); nil offers none. entered is when the attempt started,
	// so a token issued again for the same attempt can be the same token.
	TaskToken func(state string, path []int, attempt int, visit string, entered time.Time) string
	// MaxMapConcurrency caps the iterations a Map state runs at once, whatever its
	// MaxConcurrency (0: DefaultMaxMapConcurrency).
	MaxMapConcurrency int
	// MaxPayloadBytes bounds the JSON size of a Parallel or Map state's results; beyond it the
	// state fails with States.DataLimitExceeded (0: DefaultMaxPayloadBytes).
	MaxPayloadBytes int
	// ChildRuns says the driver runs the iterations of DISTRIBUTED Map states as child runs of
	// their own (see ChildRuns); without it they run inline. MaxChildRunConcurrency caps the
	// child runs of one Map state at once (0: DefaultMaxChildRunConcurrency).
	ChildRuns              bool
	MaxChildRunConcurrency int

	// path is the position of the run being stepped inside the top run (Parallel/Map children),
	// visit the prefix of its visits (see Active.Visit).
	path  []int
	visit string
	// tree is shared by the steps of a top run and its children.
	tree *tree
	// outer are the variables of the scopes enclosing the run being stepped (outermost first),
	// outerBytes their size.
	outer      []map[string]any
	outerBytes int
}

// tree is the state of one top-level step shared with the steps of its children.
type tree struct {
	mapItems int // the top run's MapItems, as they grow
	executed int // the top run's Executed, as they grow
	// exhausted is set when the run reached MaxTransitionsPerRun: the top step fails it.
	exhausted bool
}

// spend takes one transition from the step's budget and the run's; false when the run has none
// left.
func (s *stepper) spend() bool {
	if s.opt.tree.executed >= MaxTransitionsPerRun {
		s.opt.tree.exhausted = true
		return false
	}
	s.opt.tree.executed++
	s.opt.Budget.Transitions--
	return true
}

func (opt Options) withDefaults() Options {
	if opt.MaxTransitionsPerStep <= 0 {
		opt.MaxTransitionsPerStep = DefaultStepTransitions
	}
	if opt.Budget == nil {
		opt.Budget = &Budget{Transitions: opt.MaxTransitionsPerStep, Bytes: DefaultStepBytes}
	}
	if opt.MaxHistory == 0 {
		opt.MaxHistory = DefaultMaxHistory
	}
	if opt.MaxMapConcurrency <= 0 {
		opt.MaxMapConcurrency = DefaultMaxMapConcurrency
	}
	if opt.MaxPayloadBytes <= 0 {
		opt.MaxPayloadBytes = DefaultMaxPayloadBytes
	}
	return opt
}

// Step applies an event to a run and returns the new run, the effects to perform after persisting
// it, and the transitions for the history. It never mutates its arguments. Its work is bounded by
// Options.Budget whatever the definition and input: a step that spends it yields a Continue
// effect, and an EventContinue goes on where it stopped.
func (m *Machine) Step(run Run, ev Event, opt Options) (Run, []Effect, []Transition) {
	if opt.tree != nil {
		return m.step(run, ev, opt)
	}
	opt = opt.withDefaults()
	opt.tree = &tree{mapItems: run.MapItems, executed: run.Executed}
	if ev.Kind == EventStart {
		opt.tree.mapItems, opt.tree.executed = 0, 0
	}
	next, eff, hist := m.step(run, ev, opt)
	next, eff, hist = settle(run, next, eff, hist, opt, ev.At)
	return next, eff, trimHistory(hist, opt, opt.MaxHistory)
}

// settle finishes a top-level step: the run's counts, the transition limit, when it stopped.
func settle(before, next Run, eff []Effect, hist []Transition, opt Options, at time.Time) (Run, []Effect, []Transition) {
	next.MapItems, next.Executed = opt.tree.mapItems, opt.tree.executed
	if opt.tree.exhausted && next.Status == Running {
		// Like Step Functions at 25,000 history events: the run ends, whatever catches its
		// states, and cannot be redriven.
		next = Run{Status: Failed, State: next.State, Execution: next.Execution, Transitions: next.Transitions,
			MapItems: next.MapItems, Executed: next.Executed, Error: ErrRuntime,
			Cause:         fmt.Sprintf("the run made %d transitions, the limit of a run", MaxTransitionsPerRun),
			NotRedrivable: fmt.Sprintf("the run reached the limit of %d transitions", MaxTransitionsPerRun)}
		eff = nil
		hist = append(hist, Transition{At: at, State: next.State, Kind: string(Failed), Info: ErrRuntime})
	}
	if next.Status != Running && (before.Status == Running || before.Status == "") {
		next.Stopped = at
	}
	return next, eff, hist
}

// trimHistory keeps the latest max transitions (max < 0: all), counting the others.
func trimHistory(hist []Transition, opt Options, max int) []Transition {
	if max < 0 || len(hist) <= max {
		return hist
	}
	opt.Budget.HistoryDropped += len(hist) - max
	return slices.Clone(hist[len(hist)-max:])
}

func (m *Machine) step(run Run, ev Event, opt Options) (Run, []Effect, []Transition) {
	if run.Remote {
		return stepRemote(run, ev, opt)
	}
	s := &stepper{m: m, run: run, opt: opt, now: ev.At}
	switch ev.Kind {
	case EventStart:
		s.run = Run{Status: Running, Execution: ev.Execution}
		if s.run.Execution.StartTime.IsZero() {
			s.run.Execution.StartTime = ev.At
		}
		s.run.Execution.Input = ev.Input
		s.enter(m.StartAt, ev.Input)
		if _, err := s.payload("the execution's input", ev.Input); err != nil {
			s.finish(Failed, nil, ErrDataLimitExceeded, err.Error())
		}
	case EventTimeout:
		if s.run.Status == Running {
			s.finish(TimedOut, nil, ErrTimeout, "the execution exceeded its TimeoutSeconds")
		}
		return s.run, nil, s.history
	case EventAbort:
		if s.run.Status == Running {
			s.finish(Aborted, nil, ErrAborted, ev.Cause)
		}
		return s.run, nil, s.history
	}
	if s.run.Status != Running {
		return s.run, nil, s.history
	}
	st := m.States[s.run.State]
	if len(ev.Path) > 0 {
		pos := childPos(s.run, ev.Path[0])
		if st == nil || (st.Type != "Parallel" && st.Type != "Map") || pos < 0 || s.run.Waiting != nil {
			return run, nil, nil // a child that no longer exists (or already finished): stale
		}
		s.run.Children = slices.Clone(s.run.Children)
		i := ev.Path[0]
		sub := ev
		sub.Path = ev.Path[1:]
		next, eff, hist := s.childMachine(st, i).Step(s.withExecution(s.run.Children[pos]), sub, s.childOptions(i))
		next.Execution = Execution{}
		s.run.Children[pos] = next
		s.adopt(i, eff, hist)
		s.childrenChanged(st)
		s.advance()
		return s.run, s.effects, s.history
	}
	switch ev.Kind {
	case EventContinue:
		s.resume(st)
		return s.run, s.effects, s.history
	case EventTaskSucceeded:
		if st == nil || st.Type != "Task" || s.run.Waiting != nil || ev.Attempt != s.run.Attempt {
			return run, nil, nil // stale or duplicate: harmless
		}
		s.taskDone(st, ev.Output)
	case EventTaskFailed:
		if st == nil || st.Type != "Task" || s.run.Waiting != nil || ev.Attempt != s.run.Attempt {
			return run, nil, nil
		}
		s.fail(st, ev.Error, ev.Cause)
	case EventTimer:
		if s.run.Waiting == nil {
			return run, nil, nil // stale
		}
		if ev.At.Before(*s.run.Waiting) {
			return run, []Effect{{Kind: EffectTimer, State: s.run.State, Until: waitingOr(s.run.Waiting, ev.At)}}, nil
		}
		retrying := s.run.Retrying
		s.run.Waiting, s.run.Retrying = nil, false
		switch {
		case retrying && st.Type == "Task":
			s.run.Attempt++
			s.startTask(st)
		case retrying:
			s.run.Attempt = 0 // Parallel or Map: run the whole state again
		default:
			s.leave(st, s.effectiveOutput(st, s.run.Input))
		}
	}
	s.advance()
	return s.run, s.effects, s.history
}

func waitingOr(t *time.Time, d time.Time) time.Time {
	if t != nil {
		return *t
	}
	return d
}

type stepper struct {
	m       *Machine
	run     Run
	opt     Options
	now     time.Time
	effects []Effect
	history []Transition
	// inputBytes is the JSON size of run.Input (0: not measured yet).
	inputBytes int
	// ctxVars is the context argument of the run's paths (see context).
	ctxVars *varContext
	// result is the current state's result, once it has one ($ of a JSONPath Assign).
	result    any
	hasResult bool
}

// charge takes from the budget the cost of evaluating paths or calls against the state's input.
func (s *stepper) charge(c cost) { _ = s.chargeWithin(c) }

// chargeWithin is charge, refusing an evaluation that alone would exceed a step's whole budget
// (a budget is checked between states: it cannot split one).
func (s *stepper) chargeWithin(c cost) error {
	if c.heavy > 0 && s.inputBytes == 0 {
		n, _ := jsonSize(s.run.Input, s.opt.MaxPayloadBytes)
		s.inputBytes = max(n, minEvalCost)
	}
	n := c.bytes(s.inputBytes)
	s.opt.Budget.Bytes -= n
	if n > DefaultStepBytes {
		return limitErrorf("the state's paths and intrinsic functions would read %d bytes of its %d-byte input (limit %d per state)", n, s.inputBytes, DefaultStepBytes)
	}
	return nil
}

func (s *stepper) record(state, kind, info string) {
	s.history = append(s.history, Transition{At: s.now, State: state, Kind: kind, Info: info})
	s.boundHistory()
}

// boundHistory keeps the history of a step from growing with its work: beyond twice the bound,
// it drops all but the latest (counted in the budget).
func (s *stepper) boundHistory() {
	if s.opt.MaxHistory >= 0 && len(s.history) > 2*s.opt.MaxHistory {
		s.history = trimHistory(s.history, s.opt, s.opt.MaxHistory)
	}
}

// payload checks a value a state produced against the payload limit, and charges its size to the
// step's budget.
func (s *stepper) payload(what string, v any) (any, error) {
	n, err := checkPayload(what, v, s.opt.MaxPayloadBytes)
	s.opt.Budget.Bytes -= n
	if err != nil {
		return nil, err
	}
	return v, nil
}

// resume goes on after a step that spent its budget: the children of a running Parallel or Map
// state first (then the items it may start), or the states not yet executed.
func (s *stepper) resume(st *State) {
	if s.run.Status != Running || s.run.Waiting != nil {
		return
	}
	if st != nil && (st.Type == "Parallel" || st.Type == "Map") && s.run.Attempt > 0 {
		s.run.Children = slices.Clone(s.run.Children)
		for pos, c := range s.run.Children {
			if s.opt.Budget.Spent() {
				s.effects = append(s.effects, Effect{Kind: EffectContinue, State: st.Name})
				return
			}
			next, eff, hist := s.childMachine(st, c.Item).Step(s.withExecution(c), Event{Kind: EventContinue, At: s.now}, s.childOptions(c.Item))
			next.Execution = Execution{}
			s.run.Children[pos] = next
			s.adopt(c.Item, eff, hist)
		}
		s.childrenChanged(st)
	}
	s.advance()
}

func (s *stepper) contextMap() any {
	exec := map[string]any{"Id": s.run.Execution.ID, "Name": s.run.Execution.Name,
		"Input": s.run.Execution.Input, "StartTime": s.run.Execution.StartTime.UTC().Format(time.RFC3339Nano),
		"RedriveCount": float64(s.run.Execution.RedriveCount)}
	if t := s.run.Execution.RedriveTime; t != nil {
		exec["RedriveTime"] = t.UTC().Format(time.RFC3339Nano)
	}
	return map[string]any{
		"Execution": exec,
		"State": map[string]any{"Name": s.run.State, "EnteredTime": s.run.Entered.UTC().Format(time.RFC3339Nano),
			"RetryCount": float64(max(s.run.Attempt-1, 0))},
		"StateMachine": map[string]any{"Id": s.run.Execution.ID, "Name": s.run.Execution.Name},
	}
}

func (s *stepper) enter(name string, input any) {
	s.run.State, s.run.Input, s.run.Entered = name, input, s.now
	s.inputBytes = 0
	s.run.Attempt, s.run.RetryCounts, s.run.Waiting, s.run.Retrying = 0, nil, nil, false
	s.run.TaskTimeout, s.run.TaskHeartbeat, s.run.MaxConcurrency = 0, 0, 0
	s.result, s.hasResult = nil, false
	s.run.Transitions++
	s.record(name, "Entered", "")
}

func (s *stepper) finish(status Status, output any, errName, cause string) {
	s.run.Status, s.run.Output, s.run.Error, s.run.Cause = status, output, errName, cause
	if status == Succeeded {
		s.run.Variables, s.run.VariableBytes = nil, 0 // out of scope
	} // an unsuccessful run keeps them: a redrive goes on with them
	s.record(s.run.State, string(status), errName)
}

// advance runs states until one blocks (Task, Wait in the future) or the run ends.
func (s *stepper) advance() {
	for s.run.Status == Running && s.run.Waiting == nil && s.run.Attempt == 0 {
		if s.opt.Budget.Spent() {
			s.effects = append(s.effects, Effect{Kind: EffectContinue, State: s.run.State})
			return
		}
		if !s.spend() {
			return
		}
		st := s.m.States[s.run.State]
		if st == nil {
			s.finish(Failed, nil, ErrRuntime, fmt.Sprintf("no state named %q", s.run.State))
			return
		}
		s.execute(st)
	}
}

// execute runs the current (non-started) state.
func (s *stepper) execute(st *State) {
	if st.QueryLanguage == QueryJSONata {
		s.executeJSONata(st)
		return
	}
	effective, err := s.inputOf(st)
	if err != nil {
		s.fail(st, errorName(err, ErrRuntime), err.Error())
		return
	}
	switch st.Type {
	case "Pass":
		result := effective
		if st.Parameters != nil {
			if result, err = s.resolve(st.Parameters, "Parameters", effective, s.context()); err != nil {
				s.fail(st, errorName(err, ErrParameterPathFailure), err.Error())
				return
			}
		}
		if st.HasResult {
			if result, err = s.payload("Result", st.Result); err != nil {
				s.fail(st, ErrDataLimitExceeded, err.Error())
				return
			}
		}
		s.complete(st, result)
	case "Succeed":
		out, err := s.outputOf(st, effective)
		if err != nil {
			s.fail(st, errorName(err, ErrRuntime), err.Error())
			return
		}
		s.record(st.Name, "Exited", "")
		s.finish(Succeeded, out, "", "")
	case "Fail":
		errName, cause := st.Error, st.Cause
		if st.ErrorPath != nil {
			s.charge(st.ErrorPath.cost())
			v, err := st.ErrorPath.Eval(s.run.Input, s.context())
			errName, _ = v.(string)
			if err != nil {
				errName, cause = errorName(err, ErrRuntime), err.Error()
			}
		}
		if st.CausePath != nil && errName != ErrRuntime {
			s.charge(st.CausePath.cost())
			v, err := st.CausePath.Eval(s.run.Input, s.context())
			cause, _ = v.(string)
			if err != nil {
				errName, cause = errorName(err, ErrRuntime), err.Error()
			}
		}
		s.finish(Failed, nil, errName, cause)
	case "Choice":
		var total cost
		for _, r := range st.Choices {
			total = total.plus(r.cost())
		}
		if err := s.chargeWithin(total); err != nil {
			s.fail(st, ErrDataLimitExceeded, err.Error())
			return
		}
		for _, r := range st.Choices {
			ok, err := r.Matches(effective, s.context())
			if err != nil {
				s.fail(st, ErrRuntime, err.Error())
				return
			}
			if ok {
				s.leaveTo(st, r.Next, effective, r.Assign)
				return
			}
		}
		if st.Default != "" {
			s.leaveTo(st, st.Default, effective, st.Assign)
			return
		}
		s.fail(st, ErrNoChoiceMatched, "no choice rule matched and there is no Default")
	case "Wait":
		until, err := s.waitUntil(st, effective)
		if err != nil {
			s.fail(st, errorName(err, ErrRuntime), err.Error())
			return
		}
		if !until.After(s.now) {
			s.leave(st, s.effectiveOutput(st, s.run.Input))
			return
		}
		s.run.Waiting = &until
		s.effects = append(s.effects, Effect{Kind: EffectTimer, State: st.Name, Until: until})
	case "Task":
		s.run.Attempt = 1
		s.startTask(st)
	case "Parallel":
		input := effective
		if st.Parameters != nil {
			if input, err = s.resolve(st.Parameters, "Parameters", effective, s.context()); err != nil {
				s.fail(st, errorName(err, ErrParameterPathFailure), err.Error())
				return
			}
		}
		s.startBranches(st, input)
	case "Map":
		list, cause := s.mapItems(st, effective)
		if cause != "" {
			s.fail(st, ErrRuntime, cause)
			return
		}
		if s.opt.tree.mapItems += len(list); s.opt.tree.mapItems > MaxMapItemsPerRun {
			s.fail(st, ErrDataLimitExceeded, fmt.Sprintf("the run's Map states would start %d iterations (limit %d per run)", s.opt.tree.mapItems, MaxMapItemsPerRun))
			return
		}
		total, mapRun, err := s.startMap(st, effective, list)
		if err != nil {
			s.fail(st, errorName(err, ErrRuntime), err.Error())
			return
		}
		s.run.Attempt = 1
		s.resetChildren(total)
		s.run.Map = mapRun
		s.childrenChanged(st)
	default:
		s.fail(st, ErrRuntime, fmt.Sprintf("%s states are not supported by this engine yet", st.Type))
	}
}

func (s *stepper) waitUntil(st *State, effective any) (time.Time, error) {
	switch {
	case st.Seconds != nil:
		return s.waitFor(*st.Seconds)
	case st.Timestamp != "":
		return s.waitTill(st.Timestamp)
	case st.SecondsPath != nil:
		s.charge(pathCost(st.SecondsPath))
		v, err := st.SecondsPath.Get(effective, s.context())
		f, ok := v.(float64)
		if err != nil || !ok || f < 0 || f != math.Trunc(f) {
			return time.Time{}, fmt.Errorf("SecondsPath %s must select a non-negative integer, got %s", st.SecondsPath, describeValue(v, err))
		}
		return s.waitFor(f)
	default:
		s.charge(pathCost(st.TimestampPath))
		v, err := st.TimestampPath.Get(effective, s.context())
		str, ok := v.(string)
		if err != nil || !ok {
			return time.Time{}, fmt.Errorf("TimestampPath %s must select an RFC3339 timestamp, got %s", st.TimestampPath, describeValue(v, err))
		}
		if _, err := parseTimestamp(str); err != nil {
			return time.Time{}, fmt.Errorf("TimestampPath %s must select an RFC3339 timestamp, got %q", st.TimestampPath, str)
		}
		return s.waitTill(str)
	}
}

// waitFor is the end of a wait of f seconds from the state's entry; beyond MaxWaitSeconds it is
// an error (the product with time.Second would overflow, and the wait end at once).
func (s *stepper) waitFor(f float64) (time.Time, error) {
	if _, err := waitSeconds(f); err != nil {
		return time.Time{}, fmt.Errorf("a Wait of %w", err)
	}
	return s.run.Entered.Add(time.Duration(f * float64(time.Second))), nil
}

// waitTill is a Wait's timestamp, at most MaxWaitSeconds after the state's entry.
func (s *stepper) waitTill(ts string) (time.Time, error) {
	t, err := parseTimestamp(ts)
	if err != nil {
		return t, err
	}
	if t.Sub(s.run.Entered) > MaxWaitSeconds*time.Second {
		return time.Time{}, fmt.Errorf("a Wait until %s is more than %d seconds (a year) away", ts, MaxWaitSeconds)
	}
	return t, nil
}

func (s *stepper) startTask(st *State) {
	if st.QueryLanguage == QueryJSONata {
		s.startTaskJSONata(st)
		return
	}
	effective, err := s.inputOf(st)
	if err != nil {
		s.fail(st, errorName(err, ErrRuntime), err.Error())
		return
	}
	input := effective
	if st.Parameters != nil {
		ctx := s.contextMap().(map[string]any)
		if s.opt.TaskToken != nil {
			ctx["Task"] = map[string]any{"Token": s.opt.TaskToken(st.Name, s.opt.path, s.run.Attempt, visitOf(s.opt.visit, s.run), s.run.Entered)}
		}
		if input, err = s.resolve(st.Parameters, "Parameters", effective, s.withVars(ctx)); err != nil {
			s.run.Attempt = 0
			s.fail(st, errorName(err, ErrParameterPathFailure), err.Error())
			return
		}
	}
	timeout, heartbeat, credentials, err := s.taskSettings(st, effective)
	if err != nil {
		s.run.Attempt = 0
		s.fail(st, errorName(err, ErrRuntime), err.Error())
		return
	}
	s.effects = append(s.effects, Effect{Kind: EffectRunTask, State: st.Name, Resource: st.Resource, Input: input,
		Attempt: s.run.Attempt, TimeoutSeconds: timeout, HeartbeatSeconds: heartbeat, Credentials: credentials})
}

func (s *stepper) taskDone(st *State, result any) {
	var err error
	if result, err = s.payload("the result", result); err != nil {
		s.fail(st, ErrDataLimitExceeded, err.Error())
		return
	}
	if st.QueryLanguage == QueryJSONata {
		s.resultJSONata(st, result)
		return
	}
	if st.ResultSelector != nil {
		if result, err = s.resolve(st.ResultSelector, "ResultSelector", result, s.context()); err != nil {
			s.fail(st, errorName(err, ErrRuntime), err.Error())
			return
		}
	}
	s.run.Attempt = 0
	s.complete(st, result)
}

// complete applies ResultPath and OutputPath and moves on.
func (s *stepper) complete(st *State, result any) {
	s.result, s.hasResult = result, true
	combined := result
	switch {
	case st.ResultPath.Null:
		combined = s.run.Input
	case st.ResultPath.Set:
		s.charge(cost{heavy: 1}) // Set copies the input
		var err error
		if combined, err = Set(s.run.Input, st.ResultPath.Path, result); err != nil {
			s.fail(st, ErrResultPathMatchFailed, err.Error())
			return
		}
		if combined, err = s.payload("the input with the result at ResultPath", combined); err != nil {
			s.fail(st, ErrDataLimitExceeded, err.Error())
			return
		}
	}
	s.leave(st, combined)
}

// leave applies OutputPath to a state's result-combined document and follows Next / End.
func (s *stepper) leave(st *State, combined any) {
	if st.QueryLanguage == QueryJSONata { // a Wait state
		s.exitJSONata(st, s.newEnv(nil), st.Next, st.JSONata.Output, st.Assign)
		return
	}
	out, err := s.outputOf(st, combined)
	if err != nil {
		s.fail(st, errorName(err, ErrRuntime), err.Error())
		return
	}
	doc := combined // a Wait state's effective input
	if s.hasResult {
		doc = s.result
	}
	if !s.assignOrFail(st, st.Assign, doc) {
		return
	}
	s.record(st.Name, "Exited", "")
	if st.End {
		s.finish(Succeeded, out, "", "")
		return
	}
	s.enter(st.Next, out)
}

func (s *stepper) leaveTo(st *State, next string, effective any, assign *Assign) {
	out, err := s.outputOf(st, effective)
	if err != nil {
		s.fail(st, errorName(err, ErrRuntime), err.Error())
		return
	}
	if !s.assignOrFail(st, assign, effective) {
		return
	}
	s.record(st.Name, "Exited", next)
	s.enter(next, out)
}

func (s *stepper) effectiveOutput(st *State, raw any) any {
	eff, err := s.inputOf(st)
	if err != nil {
		return raw
	}
	return eff
}

func (s *stepper) inputOf(st *State) (any, error) {
	switch {
	case st.InputPath.Null:
		return map[string]any{}, nil
	case st.InputPath.Set:
		s.charge(pathCost(&st.InputPath.Path))
		v, err := st.InputPath.Path.Get(s.run.Input, s.context())
		if err != nil || st.InputPath.Path.IsSingular() {
			return v, err // a node of the input, which was checked
		}
		return s.payload("InputPath", v)
	}
	return s.run.Input, nil
}

// outputOf applies OutputPath; the state's output is checked against the payload limit.
func (s *stepper) outputOf(st *State, doc any) (any, error) {
	out := doc
	switch {
	case st.OutputPath.Null:
		return map[string]any{}, nil
	case st.OutputPath.Set:
		s.charge(pathCost(&st.OutputPath.Path))
		var err error
		if out, err = st.OutputPath.Path.Get(doc, s.context()); err != nil {
			return nil, err
		}
	}
	return s.payload("the output of "+st.Name, out)
}

// resolve builds a payload template and checks the result.
func (s *stepper) resolve(t *Template, field string, input, context any) (any, error) {
	if err := s.chargeWithin(t.cost); err != nil {
		return nil, err
	}
	v, err := t.Resolve(input, context)
	if err != nil {
		return nil, err
	}
	return s.payload(field, v)
}

// fail handles an error in the current state: a matching retrier schedules another attempt, a
// matching catcher moves on with the error as result, otherwise the run fails.
func (s *stepper) fail(st *State, errName, cause string) {
	if errName == "" {
		errName = ErrTaskFailed
	}
	s.record(st.Name, "Failed", errName)
	if len(s.run.RetryCounts) != len(st.Retry) {
		s.run.RetryCounts = make([]int, len(st.Retry))
	}
	if st.Type == "Task" || st.Type == "Parallel" || st.Type == "Map" {
		for i, r := range st.Retry {
			if !matchesError(r.ErrorEquals, errName) {
				continue
			}
			if s.run.RetryCounts[i] >= r.MaxAttempts {
				break
			}
			delay := r.IntervalSeconds * math.Pow(r.BackoffRate, float64(s.run.RetryCounts[i]))
			if r.MaxDelaySeconds > 0 {
				delay = math.Min(delay, r.MaxDelaySeconds)
			}
			if r.JitterStrategy == "FULL" && s.opt.Jitter != nil {
				delay *= s.opt.Jitter()
			}
			delay = min(delay, MaxWaitSeconds) // BackoffRate to the power of the attempts grows without bound
			counts := slices.Clone(s.run.RetryCounts)
			counts[i]++
			s.run.RetryCounts = counts
			until := s.now.Add(time.Duration(delay * float64(time.Second)))
			s.run.Waiting, s.run.Retrying = &until, true
			s.record(st.Name, "Retrying", fmt.Sprintf("%s; attempt %d in %.3gs", errName, s.run.Attempt+1, delay))
			s.effects = append(s.effects, Effect{Kind: EffectTimer, State: st.Name, Until: until})
			return
		}
	}
	for _, c := range st.Catch {
		if !matchesError(c.ErrorEquals, errName) {
			continue
		}
		errOut := map[string]any{"Error": errName, "Cause": cause}
		combined := any(errOut)
		switch {
		case c.ResultPath.Null:
			combined = s.run.Input
		case c.ResultPath.Set:
			var err error
			if combined, err = Set(s.run.Input, c.ResultPath.Path, errOut); err != nil {
				s.finish(Failed, nil, ErrResultPathMatchFailed, err.Error())
				return
			}
		}
		if c.Assign != nil || c.Output != nil {
			var ok bool
			if combined, ok = s.caught(st, c, errOut, combined); !ok {
				return
			}
		}
		s.record(st.Name, "Caught", errName)
		s.run.Attempt = 0
		s.enter(c.Next, combined)
		return
	}
	s.run.Attempt = 0
	s.finish(Failed, nil, errName, cause)
}

// matchesError applies ErrorEquals: States.ALL matches every error but the terminal ones
// (States.Runtime, States.DataLimitExceeded), which only their own name catches;
// States.TaskFailed matches every error but States.Timeout (and the terminal ones).
func matchesError(names []string, err string) bool {
	terminal := err == ErrRuntime || err == ErrDataLimitExceeded
	for _, n := range names {
		switch {
		case n == err:
			return true
		case n == ErrAll && !terminal:
			return true
		case n == ErrTaskFailed && err != ErrTimeout && !terminal && err != ErrHeartbeatTimeout:
			return true
		}
	}
	return false
}

func errorName(err error, def string) string {
	if isLimit(err) {
		return ErrDataLimitExceeded
	}
	var ie *IntrinsicError
	if errors.As(err, &ie) {
		return ErrIntrinsicFailure
	}
	var qe *QueryError
	if errors.As(err, &qe) {
		return ErrQueryEvaluation
	}
	return def
}

func (s *stepper) childOptions(i int) Options {
	o := s.opt
	o.path = append(slices.Clone(s.opt.path), i)
	o.visit = childVisitPrefix(s.opt.visit, s.run)
	if len(s.run.Variables) > 0 {
		o.outer = append(slices.Clip(s.opt.outer), s.run.Variables)
		o.outerBytes += s.run.VariableBytes
	}
	return o
}

// childMachine is the machine of child i of a Parallel or Map state.
func (s *stepper) childMachine(st *State, i int) *Machine {
	if st.Type == "Parallel" {
		return st.Branches[i]
	}
	return st.ItemProcessor
}

// adopt takes a child's effects (prefixing their path) and history.
func (s *stepper) adopt(i int, eff []Effect, hist []Transition) {
	for _, e := range eff {
		e.Path = append([]int{i}, e.Path...)
		s.effects = append(s.effects, e)
	}
	for _, h := range hist {
		h.State = fmt.Sprintf("%s[%d].%s", s.run.State, i, h.State)
		s.history = append(s.history, h)
	}
	s.boundHistory()
}

// childPos is the position in run.Children of the child at item (or branch) i; -1 if there is
// none (not started, or finished).
func childPos(run Run, i int) int {
	for pos, c := range run.Children {
		if c.Item == i {
			return pos
		}
	}
	return -1
}

// withExecution lends a child its top run's execution (children do not keep a copy).
func (s *stepper) withExecution(child Run) Run {
	child.Execution = s.run.Execution
	return child
}

func (s *stepper) resetChildren(total int) {
	s.run.Children, s.run.Results, s.run.ResultBytes = nil, nil, 0
	s.run.ItemsTotal, s.run.NextItem, s.run.Map, s.run.Redo = total, 0, nil, nil
	if total > 0 {
		s.run.Epoch++
	}
}

// startChild starts branch or item i with the given input.
func (s *stepper) startChild(m *Machine, i int, input any) {
	s.opt.tree.executed++
	s.opt.Budget.Transitions--
	child, eff, hist := m.Step(Run{}, Event{Kind: EventStart, At: s.now, Input: input, Execution: s.run.Execution}, s.childOptions(i))
	child.Item, child.Execution = i, Execution{}
	s.run.Children = append(s.run.Children, child)
	s.adopt(i, eff, hist)
}

// mapItems returns the Map state's item array (ItemsPath applied to its effective input), or the
// cause of a States.Runtime failure.
func (s *stepper) mapItems(st *State, effective any) ([]any, string) {
	items := effective
	s.charge(pathCost(st.ItemsPath))
	if st.ItemsPath != nil {
		var err error
		if items, err = st.ItemsPath.Get(effective, s.context()); err != nil {
			return nil, err.Error()
		}
	}
	list, ok := items.([]any)
	if !ok {
		return nil, fmt.Sprintf("the Map state's items (ItemsPath %v) are not an array", st.ItemsPath)
	}
	return list, ""
}

// startItems starts Map items while fewer than the concurrency limit run: MaxConcurrency
// (0: no limit of its own) capped by Options.MaxMapConcurrency. Item inputs are computed as they
// start, from the state's input, so items not yet started take no room in the run.
func (s *stepper) startItems(st *State) {
	limit := runMapLimit(st, s.run, s.opt)
	if pendingItems(s.run) == 0 || len(s.run.Children) >= limit {
		return
	}
	effective, err := s.inputOf(st)
	if err != nil {
		s.failFanOut(st, errorName(err, ErrRuntime), err.Error(), nil)
		return
	}
	list, ok := s.items(st, effective)
	if !ok {
		return
	}
	for (len(s.run.Redo) > 0 || s.run.NextItem < min(s.run.ItemsTotal, len(list))) && len(s.run.Children) < limit {
		if s.opt.Budget.Spent() {
			s.effects = append(s.effects, Effect{Kind: EffectContinue, State: st.Name})
			return
		}
		if s.opt.tree.executed >= MaxTransitionsPerRun {
			s.opt.tree.exhausted = true
			return
		}
		i := s.run.NextItem
		if len(s.run.Redo) > 0 {
			i = s.run.Redo[0]
		}
		in, err := s.iterationInput(st, effective, list, i)
		if err != nil {
			// The state fails: its running iterations are abandoned.
			s.failFanOut(st, errorName(err, ErrParameterPathFailure), err.Error(), nil)
			return
		}
		if len(s.run.Redo) > 0 {
			s.run.Redo = s.run.Redo[1:]
		} else {
			s.run.NextItem++
		}
		if st.distributed(s.opt) {
			s.startRemote(i) // its input is computed again when its child run starts
			continue
		}
		s.startChild(st.ItemProcessor, i, in)
	}
}

// childrenChanged settles a Parallel or Map state's children: a finished child's output moves
// to Results; the first failure fails the state; when every child has succeeded, their outputs,
// in order, are the state's result.
func (s *stepper) childrenChanged(st *State) {
	s.run.Results = slices.Clone(s.run.Results) // Step never changes its argument's arrays
	for {
		var failed *Run
		var failedRuns []Run // the failed children, as they failed (a redrive goes on with them)
		s.run.Children = slices.DeleteFunc(s.run.Children, func(c Run) bool {
			switch c.Status {
			case Running:
				return false
			case Succeeded:
				for len(s.run.Results) <= c.Item {
					s.run.Results = append(s.run.Results, nil)
				}
				s.run.Results[c.Item] = c.Output
				if size, err := json.Marshal(c.Output); err == nil {
					s.run.ResultBytes += len(size)
				}
			default:
				tolerated, exceeded := s.tolerate(c)
				if tolerated {
					return true
				}
				failedRuns = append(failedRuns, c)
				if exceeded != nil {
					c = *exceeded
				}
				if failed == nil {
					failed = &c
				}
			}
			return true
		})
		if failed != nil {
			s.failFanOut(st, failed.Error, failed.Cause, failedRuns)
			return
		}
		if s.run.ResultBytes > s.opt.MaxPayloadBytes {
			s.failFanOut(st, ErrDataLimitExceeded, fmt.Sprintf("the %s state's results exceed %d bytes", st.Type, s.opt.MaxPayloadBytes), nil)
			return
		}
		if st.Type != "Map" || pendingItems(s.run) == 0 || s.run.Status != Running {
			break
		}
		before := pendingItems(s.run)
		s.startItems(st)
		if s.run.Status != Running || s.run.Waiting != nil || s.run.Attempt == 0 {
			return // the state failed (and was caught or retried) while starting items
		}
		if pendingItems(s.run) == before {
			break // at the concurrency limit
		}
		// Items that finished as they started (Pass-only iterations) free their slots: go on.
	}
	if len(s.run.Children) > 0 || pendingItems(s.run) > 0 {
		return
	}
	results := make([]any, s.run.ItemsTotal)
	copy(results, s.run.Results)
	s.keepForRedrive(func() {
		s.resetChildren(0)
		s.taskDone(st, any(results))
	})
}

// pendingItems counts a Map state's iterations not started yet (those a redrive starts again
// included).
func pendingItems(run Run) int { return run.ItemsTotal - run.NextItem + len(run.Redo) }

// failFanOut fails a Parallel or Map state whose children failed (failedRuns, as they ended) or
// whose results cannot be kept: its children are abandoned, and, if the failure ends the run,
// kept in it with the results so far, for a redrive to go on with.
func (s *stepper) failFanOut(st *State, errName, cause string, failedRuns []Run) {
	if len(failedRuns) > 0 {
		children := append(slices.Clone(s.run.Children), failedRuns...)
		slices.SortFunc(children, func(a, b Run) int { return a.Item - b.Item })
		s.run.Children = children
	}
	s.keepForRedrive(func() {
		s.resetChildren(0)
		s.fail(st, errName, cause)
	})
}

// keepForRedrive runs end, which abandons a Parallel or Map state's children (or uses their
// results); when that ends the run unsuccessfully (no Retry or Catch took over), the run keeps
// the state's children and results as they were, so that a redrive reruns only the branches and
// iterations that did not succeed.
func (s *stepper) keepForRedrive(end func()) {
	kept := s.run
	end()
	if s.run.Status != Failed {
		return
	}
	s.run.Attempt = max(kept.Attempt, 1)
	s.run.Children, s.run.Results, s.run.ResultBytes = kept.Children, kept.Results, kept.ResultBytes
	s.run.ItemsTotal, s.run.NextItem, s.run.Map, s.run.Redo = kept.ItemsTotal, kept.NextItem, kept.Map, kept.Redo
}

// mapLimit is how many iterations of a Map state run at once: its MaxConcurrency (0: no limit of
// its own) capped by Options.MaxMapConcurrency.
func mapLimit(st *State, run Run, opt Options) int {
	limit := opt.MaxMapConcurrency
	if limit <= 0 {
		limit = DefaultMaxMapConcurrency
	}
	if st.distributed(opt) {
		limit = opt.MaxChildRunConcurrency
		if limit <= 0 {
			limit = DefaultMaxChildRunConcurrency
		}
	}
	mc := st.MaxConcurrency
	if st.MaxConcurrencyPath != nil && run.Map != nil {
		mc = run.Map.MaxConcurrency // MaxConcurrencyPath, as evaluated when the state started
	}
	if mc > 0 {
		limit = min(limit, mc)
	}
	return limit
}

// startBranches starts a Parallel state's branches, each with input.
func (s *stepper) startBranches(st *State, input any) {
	s.run.Attempt = 1
	s.resetChildren(len(st.Branches))
	for i, b := range st.Branches {
		s.startChild(b, i, input)
	}
	s.run.NextItem = len(st.Branches)
	s.childrenChanged(st)
}

package asl

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Active is a state a run (or one of its Parallel/Map children) is executing.
type Active struct {
	Path    []int
	Label   string // "Fulfil[1].Ship" for nested states
	State   *State
	Attempt int
	// Visit identifies this visit of the state: the transition counts (and, inside Parallel and
	// Map states, the start count of their children) along the path. A state entered again (a
	// loop, a retried Parallel or Map) is a new visit, and its tasks new tasks.
	Visit   string
	Entered time.Time
	Waiting *time.Time
	// timeoutSeconds and heartbeatSeconds are a Task's TimeoutSecondsPath and
	// HeartbeatSecondsPath as evaluated (see TimeoutSeconds and HeartbeatSeconds).
	timeoutSeconds, heartbeatSeconds int
}

// Running reports whether an active Task is executing (as opposed to waiting for a retry).
func (a Active) Running() bool { return a.State.Type == "Task" && a.Attempt > 0 && a.Waiting == nil }

// Key identifies one attempt of one visit of one task of a run: "state/path/attempt/visit".
func (a Active) Key() string { return TaskKey(a.State.Name, a.Path, a.Attempt, a.Visit) }

// TaskKey is Active.Key for given coordinates.
func TaskKey(state string, path []int, attempt int, visit string) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = fmt.Sprint(p)
	}
	return fmt.Sprintf("%s/%s/%d/%s", state, strings.Join(parts, "."), attempt, visit)
}

// visitOf is the Visit of a (sub)run's current state, under the prefix of its ancestors.
func visitOf(prefix string, run Run) string { return prefix + strconv.Itoa(run.Transitions) }

// childVisitPrefix is the prefix of the visits inside a Parallel or Map state's children.
func childVisitPrefix(prefix string, run Run) string {
	return prefix + strconv.Itoa(run.Transitions) + "." + strconv.Itoa(run.Epoch) + "/"
}

// Active lists the leaf states the run is executing, depth first.
func (m *Machine) Active(run Run) []Active {
	var out []Active
	m.active(run, nil, "", "", &out)
	return out
}

func (m *Machine) active(run Run, path []int, prefix, visit string, out *[]Active) {
	if run.Status != Running {
		return
	}
	st := m.States[run.State]
	if st == nil {
		return
	}
	label := prefix + run.State
	if (st.Type == "Parallel" || st.Type == "Map") && len(run.Children) > 0 {
		for _, c := range run.Children {
			child := st.ItemProcessor
			if st.Type == "Parallel" {
				child = st.Branches[c.Item]
			}
			child.active(c, append(slices.Clone(path), c.Item), fmt.Sprintf("%s[%d].", label, c.Item), childVisitPrefix(visit, run), out)
		}
		if run.Waiting == nil {
			return
		}
	}
	*out = append(*out, Active{Path: slices.Clone(path), Label: label, State: st, Attempt: run.Attempt, Visit: visitOf(visit, run), Entered: run.Entered, Waiting: run.Waiting,
		timeoutSeconds: run.TaskTimeout, heartbeatSeconds: run.TaskHeartbeat})
}

// descent is where a path of child indexes leads in a run: the innermost child's machine and run
// (with the top run's Execution), its visit prefix, and the variables of the scopes around it.
type descent struct {
	mach       *Machine
	run        Run
	visit      string
	outer      []map[string]any
	outerBytes int
}

// descend walks path from the top run through Parallel branches and Map iterations; a child run
// (Remote) is no way down unless remoteOK.
func (m *Machine) descend(run Run, path []int, remoteOK bool) (descent, error) {
	d := descent{mach: m, run: run}
	for _, i := range path {
		st := d.mach.States[d.run.State]
		pos := childPos(d.run, i)
		if st == nil || pos < 0 || (!remoteOK && d.run.Children[pos].Remote) {
			return descent{}, fmt.Errorf("no child %d", i)
		}
		if st.Type == "Parallel" {
			d.mach = st.Branches[i]
		} else {
			d.mach = st.ItemProcessor
		}
		exec := d.run.Execution
		d.visit = childVisitPrefix(d.visit, d.run)
		if len(d.run.Variables) > 0 {
			d.outer = append(d.outer, d.run.Variables)
			d.outerBytes += d.run.VariableBytes
		}
		d.run = d.run.Children[pos]
		d.run.Execution = exec
	}
	return d, nil
}

// TaskInput recomputes the input of the running task at path (InputPath, then Parameters), for a
// controller that must send a task again after a restart.
func (m *Machine) TaskInput(run Run, path []int, opt Options) (any, error) {
	d, err := m.descend(run, path, true)
	if err != nil {
		return nil, err
	}
	mach, sub, visit, outer, outerBytes := d.mach, d.run, d.visit, d.outer, d.outerBytes
	st := mach.States[sub.State]
	if st == nil || st.Type != "Task" {
		return nil, fmt.Errorf("state %q is not a task", sub.State)
	}
	opt.path, opt.visit, opt.outer, opt.outerBytes = path, visit, outer, outerBytes
	opt = opt.withDefaults()
	s := &stepper{m: mach, run: sub, opt: opt, now: sub.Entered}
	if st.QueryLanguage == QueryJSONata {
		return s.argumentsJSONata(st, s.newEnv(s.taskContext(st)))
	}
	effective, err := s.inputOf(st)
	if err != nil || st.Parameters == nil {
		return effective, err
	}
	ctx := s.contextMap().(map[string]any)
	if opt.TaskToken != nil {
		ctx["Task"] = map[string]any{"Token": opt.TaskToken(st.Name, path, sub.Attempt, visitOf(visit, sub), sub.Entered)}
	}
	return st.Parameters.Resolve(effective, s.withVars(ctx))
}

// FanOut is the progress of a running Parallel or Map state: its children are summarized, not
// listed.
type FanOut struct {
	Label     string // "Process" or "Outer[3].Inner" for nested states
	State     *State
	Total     int
	Succeeded int // finished (a failure ends the state at once)
	Running   int
	Pending   int // not started yet (Map iterations beyond the concurrency limit)
}

// FanOuts lists the running Parallel and Map states of a run, outermost first.
func (m *Machine) FanOuts(run Run) []FanOut {
	var out []FanOut
	m.fanOuts(run, "", &out)
	return out
}

func (m *Machine) fanOuts(run Run, prefix string, out *[]FanOut) {
	if run.Status != Running {
		return
	}
	st := m.States[run.State]
	if st == nil || (st.Type != "Parallel" && st.Type != "Map") || run.Attempt == 0 {
		return
	}
	label := prefix + run.State
	*out = append(*out, FanOut{Label: label, State: st, Total: run.ItemsTotal,
		Succeeded: run.ItemsTotal - len(run.Children) - pendingItems(run), Running: len(run.Children), Pending: pendingItems(run)})
	for _, c := range run.Children {
		child := st.ItemProcessor
		if st.Type == "Parallel" {
			child = st.Branches[c.Item]
		}
		child.fanOuts(c, fmt.Sprintf("%s[%d].", label, c.Item), out)
	}
}

// NeedsContinue reports whether the run has work it can do without waiting for anything: a step
// that spent its budget leaves a state not yet executed, or a Map state with iterations it may
// start. An EventContinue goes on with it.
func (m *Machine) NeedsContinue(run Run, opt Options) bool {
	if run.Status != Running || run.Waiting != nil || run.Remote {
		return false
	}
	st := m.States[run.State]
	if st == nil {
		return true // the step fails the run
	}
	if run.Attempt == 0 {
		return true
	}
	if st.Type != "Parallel" && st.Type != "Map" {
		return false
	}
	if st.Type == "Map" && pendingItems(run) > 0 && len(run.Children) < runMapLimit(st, run, opt) {
		return true
	}
	for _, c := range run.Children {
		child := st.ItemProcessor
		if st.Type == "Parallel" {
			child = st.Branches[c.Item]
		}
		if child.NeedsContinue(c, opt) {
			return true
		}
	}
	return false
}

package asl

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Active is a state a run (or one of its Parallel/Map children) is executing.
type Active struct {
	Path    []int
	Label   string // "Fulfil[1].Ship" for nested states
	State   *State
	Attempt int
	Entered time.Time
	Waiting *time.Time
}

// Running reports whether an active Task is executing (as opposed to waiting for a retry).
func (a Active) Running() bool { return a.State.Type == "Task" && a.Attempt > 0 && a.Waiting == nil }

// Key identifies one attempt of one task of a run: "state/path/attempt".
func (a Active) Key() string { return TaskKey(a.State.Name, a.Path, a.Attempt) }

// TaskKey is Active.Key for given coordinates.
func TaskKey(state string, path []int, attempt int) string {
	parts := make([]string, len(path))
	for i, p := range path {
		parts[i] = fmt.Sprint(p)
	}
	return fmt.Sprintf("%s/%s/%d", state, strings.Join(parts, "."), attempt)
}

// Active lists the leaf states the run is executing, depth first.
func (m *Machine) Active(run Run) []Active {
	var out []Active
	m.active(run, nil, "", &out)
	return out
}

func (m *Machine) active(run Run, path []int, prefix string, out *[]Active) {
	if run.Status != Running {
		return
	}
	st := m.States[run.State]
	if st == nil {
		return
	}
	label := prefix + run.State
	if (st.Type == "Parallel" || st.Type == "Map") && len(run.Children) > 0 {
		for i, c := range run.Children {
			child := st.ItemProcessor
			if st.Type == "Parallel" {
				child = st.Branches[i]
			}
			child.active(c, append(slices.Clone(path), i), fmt.Sprintf("%s[%d].", label, i), out)
		}
		if run.Waiting == nil {
			return
		}
	}
	*out = append(*out, Active{Path: slices.Clone(path), Label: label, State: st, Attempt: run.Attempt, Entered: run.Entered, Waiting: run.Waiting})
}

// TaskInput recomputes the input of the running task at path (InputPath, then Parameters), for a
// controller that must send a task again after a restart.
func (m *Machine) TaskInput(run Run, path []int, opt Options) (any, error) {
	mach, sub := m, run
	for _, i := range path {
		st := mach.States[sub.State]
		if st == nil || i >= len(sub.Children) {
			return nil, fmt.Errorf("no child %d", i)
		}
		if st.Type == "Parallel" {
			mach = st.Branches[i]
		} else {
			mach = st.ItemProcessor
		}
		sub = sub.Children[i]
	}
	st := mach.States[sub.State]
	if st == nil || st.Type != "Task" {
		return nil, fmt.Errorf("state %q is not a task", sub.State)
	}
	opt.path = path
	s := &stepper{m: mach, run: sub, opt: opt}
	effective, err := s.inputOf(st)
	if err != nil || st.Parameters == nil {
		return effective, err
	}
	ctx := s.contextMap().(map[string]any)
	if opt.TaskToken != nil {
		ctx["Task"] = map[string]any{"Token": opt.TaskToken(st.Name, path, sub.Attempt)}
	}
	return st.Parameters.Resolve(effective, ctx)
}

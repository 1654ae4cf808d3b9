package asl

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// A DISTRIBUTED Map state (ItemProcessor.ProcessorConfig.Mode DISTRIBUTED) runs each iteration as
// a child run of its own when the driver says it can (Options.ChildRuns): the iteration is a
// remote child in the run (Run.Remote: its status only, no state), the driver starts a run of the
// state's ItemProcessor (ItemProcessorDefinition) with the iteration's input (ChildRunInput) for
// each remote child ChildRuns lists, and reports its end as EventTaskSucceeded (Output) or
// EventTaskFailed (Error, Cause) addressed to the child's Path. Everything else — concurrency,
// tolerated failures, results in item order, redrive — is the Map state's as for an inline one.
// Without Options.ChildRuns (the CLI, RunLocally) a DISTRIBUTED Map runs inline.

// DefaultMaxChildRunConcurrency caps the child runs one DISTRIBUTED Map state runs at once
// (Options.MaxChildRunConcurrency; Step Functions' own cap is 10,000).
const DefaultMaxChildRunConcurrency = 1000

// distributed reports whether the Map state's iterations run as child runs under opt.
func (st *State) distributed(opt Options) bool {
	return opt.ChildRuns && st.Type == "Map" && st.ProcessorMode == ModeDistributed
}

// startRemote starts iteration i of a DISTRIBUTED Map state as a remote child.
func (s *stepper) startRemote(i int) {
	s.opt.tree.executed++
	s.opt.Budget.Transitions--
	s.run.Children = append(s.run.Children, Run{Status: Running, Remote: true, Item: i, Entered: s.now})
	s.record(fmt.Sprintf("%s[%d]", s.run.State, i), "ChildRunStarted", "")
}

// stepRemote is a remote child's step: the end of its child run, or nothing.
func stepRemote(run Run, ev Event, opt Options) (Run, []Effect, []Transition) {
	if run.Status != Running {
		return run, nil, nil
	}
	switch ev.Kind {
	case EventTaskSucceeded:
		run.Status, run.Output = Succeeded, ev.Output
		if _, ok := jsonSize(ev.Output, opt.withDefaults().MaxPayloadBytes); !ok {
			run.Status, run.Output = Failed, nil
			run.Error, run.Cause = ErrDataLimitExceeded, fmt.Sprintf("the child run's output exceeds %d bytes", opt.withDefaults().MaxPayloadBytes)
		}
	case EventTaskFailed:
		run.Status, run.Error, run.Cause = Failed, ev.Error, ev.Cause
	}
	return run, nil, nil
}

// ChildRun is a running iteration of a DISTRIBUTED Map state, to be run as a child run.
type ChildRun struct {
	// Path addresses the iteration in events (the Map state's path, then the item).
	Path []int
	// Label is "Each[7]" ("Outer[2].Each[7]" when nested); Item the iteration's index.
	Label string
	Item  int
	// MapState is the Map state (its name identifies it in the definition: see
	// ItemProcessorDefinition).
	MapState *State
	// Visit tells this start of the iteration from an earlier one (a Retry or a redrive of the
	// Map state starts its iterations again: new child runs).
	Visit   string
	Entered time.Time
}

// Key identifies the child run: the same iteration of the same start of the Map state has the
// same key, in every step and after a restart.
func (c ChildRun) Key() string { return TaskKey(c.MapState.Name, c.Path, 0, c.Visit) }

// ChildRuns lists the iterations of DISTRIBUTED Map states that run as child runs, depth first.
func (m *Machine) ChildRuns(run Run) []ChildRun {
	var out []ChildRun
	m.childRuns(run, nil, "", "", &out)
	return out
}

func (m *Machine) childRuns(run Run, path []int, prefix, visit string, out *[]ChildRun) {
	if run.Status != Running || run.Remote {
		return
	}
	st := m.States[run.State]
	if st == nil || (st.Type != "Parallel" && st.Type != "Map") {
		return
	}
	label := prefix + run.State
	for _, c := range run.Children {
		p := append(slices.Clone(path), c.Item)
		if c.Remote {
			if c.Status == Running {
				*out = append(*out, ChildRun{Path: p, Label: fmt.Sprintf("%s[%d]", label, c.Item), Item: c.Item, MapState: st,
					Visit: childVisitPrefix(visit, run), Entered: c.Entered})
			}
			continue
		}
		child := st.ItemProcessor
		if st.Type == "Parallel" {
			child = st.Branches[c.Item]
		}
		child.childRuns(c, p, fmt.Sprintf("%s[%d].", label, c.Item), childVisitPrefix(visit, run), out)
	}
}

// ChildRunInput computes the input of the child run at path (the iteration's ItemSelector, or
// its item, or its batch), from the run's state: a driver that starts child runs again after a
// restart gets the same input.
func (m *Machine) ChildRunInput(run Run, path []int, opt Options) (any, error) {
	if len(path) == 0 {
		return nil, errors.New("no child run at the top")
	}
	d, err := m.descend(run, path[:len(path)-1], false)
	if err != nil {
		return nil, err
	}
	mach, sub, visit, outer, outerBytes := d.mach, d.run, d.visit, d.outer, d.outerBytes
	item := path[len(path)-1]
	st := mach.States[sub.State]
	if st == nil || st.Type != "Map" {
		return nil, fmt.Errorf("state %q is not a Map state", sub.State)
	}
	if pos := childPos(sub, item); pos < 0 || !sub.Children[pos].Remote {
		return nil, fmt.Errorf("item %d of %s is not a child run", item, st.Name)
	}
	opt.path, opt.visit, opt.outer, opt.outerBytes = path[:len(path)-1], visit, outer, outerBytes
	opt = opt.withDefaults()
	opt.tree = &tree{}
	s := &stepper{m: mach, run: sub, opt: opt, now: sub.Entered}
	effective, err := s.inputOf(st)
	if err != nil {
		return nil, err
	}
	list, ok := s.items(st, effective)
	if !ok {
		return nil, fmt.Errorf("%s: %s", s.run.Error, s.run.Cause)
	}
	return s.iterationInput(st, effective, list, item)
}

// ItemProcessorDefinition is the definition a child run of the DISTRIBUTED Map state named
// mapState runs (state names are unique across a machine, nested ones included): the state's
// ItemProcessor as a state machine of its own (with the query language it inherits, without its
// ProcessorConfig), as JSON.
func ItemProcessorDefinition(def []byte, mapState string) ([]byte, error) {
	var root map[string]any
	if err := json.Unmarshal(def, &root); err != nil {
		return nil, err
	}
	state := findState(root, mapState, 0)
	if state == nil || state["Type"] != "Map" {
		return nil, fmt.Errorf("the definition has no Map state %q", mapState)
	}
	proc, ok := state["ItemProcessor"].(map[string]any)
	if !ok {
		proc, ok = state["Iterator"].(map[string]any)
	}
	if !ok {
		return nil, fmt.Errorf("the Map state %q has no ItemProcessor", mapState)
	}
	out := make(map[string]any, len(proc)+1)
	for k, v := range proc {
		if k != "ProcessorConfig" {
			out[k] = v
		}
	}
	if ql, _ := root["QueryLanguage"].(string); ql != "" {
		out["QueryLanguage"] = ql
	}
	return json.Marshal(out)
}

// findState finds the state named name in a machine's JSON, nested machines included.
func findState(machine map[string]any, name string, depth int) map[string]any {
	states, _ := machine["States"].(map[string]any)
	if st, ok := states[name].(map[string]any); ok {
		return st
	}
	if depth > MaxNesting {
		return nil
	}
	for _, v := range states {
		st, _ := v.(map[string]any)
		var subs []any
		for _, k := range []string{"ItemProcessor", "Iterator"} {
			if sub, ok := st[k]; ok {
				subs = append(subs, sub)
			}
		}
		branches, _ := st["Branches"].([]any)
		for _, sub := range append(subs, branches...) {
			if m, ok := sub.(map[string]any); ok {
				if found := findState(m, name, depth+1); found != nil {
					return found
				}
			}
		}
	}
	return nil
}

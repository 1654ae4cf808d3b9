// Package graph draws a States Language machine — or a live run of it, its states colored by
// status — as SVG (laid out here, no Graphviz needed), Graphviz DOT, or Mermaid text.
package graph

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/millrace-io/millrace/internal/asl"
)

// Status is what a run did in a state.
type Status string

const (
	NotRun    Status = ""
	Running   Status = "running"
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	Caught    Status = "caught" // failed, and a Catch took over
)

// Node is a state, or the start and end markers.
type Node struct {
	// ID is unique in the whole drawing: the state's name, qualified inside Parallel branches
	// ("Fulfil[1].Ship") and Map processors ("Lines[*].Ship", one drawing for every item).
	ID     string
	Label  string
	Kind   string // the state's Type, or "Start" / "End"
	Detail string // the Task's resource, the Wait's duration, ...
	Status Status
	// Redrive is the run's latest redrive when that redrive ran the state (0: it did not, or the
	// run was not redriven).
	Redrive int
	// Inner are the branches of a Parallel state or the item processor of a Map state.
	Inner []*Graph
}

// Edge is a transition.
type Edge struct {
	From, To string
	Label    string // "", "Default", a Choice rule, "Catch <errors>"
}

// Graph is one machine: its states in a stable order (breadth first from the start) and edges.
type Graph struct {
	Title string
	Nodes []*Node
	Edges []Edge
}

// FromMachine builds the graph of a machine. status gives each state's status by ID (nil: none).
func FromMachine(title string, m *asl.Machine, status map[string]Status) *Graph {
	return build(title, m, "", status)
}

func build(title string, m *asl.Machine, prefix string, status map[string]Status) *Graph {
	g := &Graph{Title: title}
	start := &Node{ID: prefix + "(start)", Label: "Start", Kind: "Start"}
	g.Nodes = append(g.Nodes, start)
	g.Edges = append(g.Edges, Edge{From: start.ID, To: prefix + m.StartAt})
	var end *Node
	endNode := func() string {
		if end == nil {
			end = &Node{ID: prefix + "(end)", Label: "End", Kind: "End"}
		}
		return end.ID
	}
	seen := map[string]bool{}
	queue := []string{m.StartAt}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		st := m.States[name]
		if st == nil {
			continue
		}
		id := prefix + name
		n := &Node{ID: id, Label: name, Kind: st.Type, Detail: detail(st), Status: status[id]}
		switch st.Type {
		case "Parallel":
			for i, b := range st.Branches {
				n.Inner = append(n.Inner, build(fmt.Sprintf("branch %d", i+1), b, fmt.Sprintf("%s[%d].", id, i), status))
			}
		case "Map":
			n.Inner = append(n.Inner, build("each item", st.ItemProcessor, id+"[*].", status))
		}
		g.Nodes = append(g.Nodes, n)
		next := func(to, label string) {
			g.Edges = append(g.Edges, Edge{From: id, To: prefix + to, Label: label})
			queue = append(queue, to)
		}
		switch {
		case st.Type == "Choice":
			for i, r := range st.Choices {
				next(r.Next, withAssign(ruleLabel(r, i), r.Assign))
			}
			if st.Default != "" {
				next(st.Default, withAssign("Default", st.Assign))
			}
		case st.Type == "Succeed" || st.Type == "Fail" || st.End:
			g.Edges = append(g.Edges, Edge{From: id, To: endNode(), Label: withAssign("", st.Assign)})
		case st.Next != "":
			next(st.Next, withAssign("", st.Assign))
		}
		for _, c := range st.Catch {
			next(c.Next, withAssign("Catch "+strings.Join(c.ErrorEquals, ", "), c.Assign))
		}
	}
	if end != nil {
		g.Nodes = append(g.Nodes, end)
	}
	return g
}

// withAssign adds to an edge's label the variables its transition assigns.
func withAssign(label string, a *asl.Assign) string {
	if a == nil || len(a.Names) == 0 {
		return label
	}
	assign := "assign " + strings.Join(a.Names, ", ")
	if label == "" {
		return assign
	}
	return label + "; " + assign
}

// expression is a JSONata value's expression for a label ("" when it is a constant).
func expression(v *asl.Value) string {
	return strings.Join(strings.Fields(v.Expression()), " ")
}

func detail(st *asl.State) string {
	if j := st.JSONata; j != nil {
		switch {
		case st.Type == "Wait" && j.Seconds != nil:
			return expression(j.Seconds) + " s"
		case st.Type == "Wait" && j.Timestamp != nil:
			return "until " + expression(j.Timestamp)
		case st.Type == "Fail" && j.Error != nil:
			return expression(j.Error)
		case st.Type == "Map" && j.Items != nil && j.Items.Expression() != "":
			return "each of " + expression(j.Items)
		}
	}
	switch st.Type {
	case "Task":
		return strings.TrimPrefix(strings.TrimPrefix(st.Resource, "arn:aws:states:::"), "millrace:")
	case "Wait":
		switch {
		case st.Seconds != nil:
			return fmt.Sprintf("%gs", *st.Seconds)
		case st.SecondsPath != nil:
			return st.SecondsPath.String()
		case st.TimestampPath != nil:
			return "until " + st.TimestampPath.String()
		default:
			return "until " + st.Timestamp
		}
	case "Fail":
		return st.Error
	case "Map":
		if st.MaxConcurrency > 0 {
			return fmt.Sprintf("at most %d at once", st.MaxConcurrency)
		}
	}
	return ""
}

func ruleLabel(r *asl.ChoiceRule, i int) string {
	if r.Condition != nil { // JSONata
		if e := expression(r.Condition); e != "" {
			return e
		}
		return fmt.Sprint(r.Condition.Raw())
	}
	if r.Variable == nil || len(r.Rules) > 0 {
		return fmt.Sprintf("rule %d: %s", i+1, r.Op)
	}
	op := strings.TrimSuffix(r.Op, "Path")
	operand := fmt.Sprint(r.Value)
	if r.ValuePath != nil {
		operand = r.ValuePath.String()
	}
	if s, ok := r.Value.(string); ok && r.ValuePath == nil && !strings.HasPrefix(op, "Is") {
		operand = fmt.Sprintf("%q", s)
	}
	for _, kind := range []string{"String", "Numeric", "Boolean", "Timestamp"} {
		if rest, ok := strings.CutPrefix(op, kind); ok {
			if sym, ok := map[string]string{"Equals": "==", "LessThan": "<", "GreaterThan": ">", "LessThanEquals": "<=",
				"GreaterThanEquals": ">=", "Matches": "matches"}[rest]; ok {
				return fmt.Sprintf("%s %s %s", r.Variable, sym, operand)
			}
		}
	}
	return fmt.Sprintf("%s %s %s", r.Variable, op, operand)
}

// History is what a run recorded: its transitions (oldest first) and its active states, and its
// redrives (the engine's Execution.RedriveCount and RedriveTime; 0 and zero when never redriven).
type History struct {
	Transitions  []Transition
	Active       []string // labels of the states being executed
	RedriveCount int
	RedriveTime  time.Time
}

// Transition is one history event: a state label ("Fulfil[1].Ship"), its type (Entered, Exited,
// Failed, Retrying, Caught, Redriven, SUCCEEDED, FAILED, TIMED_OUT, ABORTED), its info ("redrive
// 2" for Redriven) and its time.
type Transition struct {
	State, Type, Info string
	At                time.Time
}

var itemIndex = regexp.MustCompile(`\[(\d+)\]`)

// Statuses derives each state's status from a run's history. Labels inside a Map's items collapse
// onto the Map's single processor drawing ("Lines[7].Ship" -> "Lines[*].Ship"): it shows failed if
// any item failed there, else running if any runs there, else succeeded.
func Statuses(m *asl.Machine, h History) map[string]Status {
	per := map[string]map[string]Status{} // drawing ID -> concrete label -> status
	set := func(label string, s Status) {
		id := drawingID(m, label)
		if per[id] == nil {
			per[id] = map[string]Status{}
		}
		per[id][label] = s
	}
	for _, t := range h.Transitions {
		switch t.Type {
		case "Entered", "Retrying", "Redriven":
			set(t.State, Running)
		case "Exited", "SUCCEEDED":
			set(t.State, Succeeded)
		case "Failed", "FAILED", "TIMED_OUT", "ABORTED", "Aborted":
			set(t.State, Failed)
		case "Caught":
			set(t.State, Caught)
		}
	}
	for _, a := range h.Active {
		set(a, Running)
	}
	out := map[string]Status{}
	rank := map[Status]int{Failed: 4, Caught: 3, Running: 2, Succeeded: 1}
	for id, labels := range per {
		best := NotRun
		for _, s := range labels {
			if rank[s] > rank[best] {
				best = s
			}
		}
		out[id] = best
	}
	return out
}

// Redriven gives the drawing IDs of the states the run's latest redrive ran, with its number: the
// states of the transitions from the first one the redrive recorded ("Redriven", Info "redrive
// <n>") on. When the history no longer holds that transition (only the latest are kept), the
// transitions at or after RedriveTime. Nil when the run was not redriven.
func Redriven(m *asl.Machine, h History) map[string]int {
	n := h.RedriveCount
	if n == 0 {
		for _, t := range h.Transitions {
			if t.Type == "Redriven" {
				fmt.Sscanf(t.Info, "redrive %d", &n)
			}
		}
	}
	if n == 0 {
		return nil
	}
	from := -1
	for i, t := range h.Transitions {
		if t.Type == "Redriven" && t.Info == fmt.Sprintf("redrive %d", n) {
			from = i
			break
		}
	}
	if from < 0 && !h.RedriveTime.IsZero() {
		for i, t := range h.Transitions {
			if !t.At.Before(h.RedriveTime) {
				from = i
				break
			}
		}
	}
	out := map[string]int{}
	if from >= 0 {
		for _, t := range h.Transitions[from:] {
			out[drawingID(m, t.State)] = n
		}
	}
	for _, a := range h.Active {
		out[drawingID(m, a)] = n // running now, so since the redrive
	}
	return out
}

// MarkRedriven sets Redrive on the nodes (inner ones too) whose IDs redriven lists.
func (g *Graph) MarkRedriven(redriven map[string]int) {
	for _, n := range g.Nodes {
		if r, ok := redriven[n.ID]; ok {
			n.Redrive = r
		}
		for _, in := range n.Inner {
			in.MarkRedriven(redriven)
		}
	}
}

// drawingID maps a run's state label to the ID of its node in the drawing.
func drawingID(m *asl.Machine, label string) string {
	var b strings.Builder
	mach := m
	rest := label
	for mach != nil {
		// The next segment: a state name, possibly followed by [n].
		name := rest
		idx := ""
		if loc := itemIndex.FindStringIndex(rest); loc != nil && (strings.Index(rest, ".") < 0 || loc[0] < strings.Index(rest, ".")) {
			name, idx, rest = rest[:loc[0]], rest[loc[0]+1:loc[1]-1], strings.TrimPrefix(rest[loc[1]:], ".")
		} else {
			rest = ""
		}
		b.WriteString(name)
		st := mach.States[name]
		if idx == "" || st == nil {
			break
		}
		switch st.Type {
		case "Map":
			b.WriteString("[*].")
			mach = st.ItemProcessor
		case "Parallel":
			b.WriteString("[" + idx + "].")
			var i int
			fmt.Sscan(idx, &i)
			if i < len(st.Branches) {
				mach = st.Branches[i]
			} else {
				mach = nil
			}
		default:
			mach = nil
		}
		if rest == "" {
			break
		}
	}
	return b.String()
}

package graph

import (
	"encoding/json"
	"encoding/xml"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/millrace-io/millrace/internal/asl"
)

const order = `{"StartAt":"Price","States":{
  "Price":{"Type":"Pass","Next":"Charge"},
  "Charge":{"Type":"Task","Resource":"millrace:consumer/payments","Next":"Fulfil",
    "Catch":[{"ErrorEquals":["States.ALL"],"Next":"Refund"}]},
  "Fulfil":{"Type":"Parallel","Next":"Big?","Branches":[
    {"StartAt":"Ship","States":{"Ship":{"Type":"Task","Resource":"millrace:consumer/shipping","End":true}}},
    {"StartAt":"Email","States":{"Email":{"Type":"Task","Resource":"millrace:http","End":true}}}]},
  "Big?":{"Type":"Choice","Choices":[{"Variable":"$.amount","NumericGreaterThan":100,"Next":"Lines"}],"Default":"Done"},
  "Lines":{"Type":"Map","ItemsPath":"$.lines","MaxConcurrency":5,"Next":"Pause",
    "ItemProcessor":{"StartAt":"Pick","States":{"Pick":{"Type":"Task","Resource":"millrace:consumer/pick","End":true}}}},
  "Pause":{"Type":"Wait","Seconds":30,"Next":"Big?"},
  "Done":{"Type":"Succeed"},
  "Refund":{"Type":"Fail","Error":"PaymentFailed"}}}`

func machine(t *testing.T) *asl.Machine {
	t.Helper()
	m, errs := asl.Parse([]byte(order))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return m
}

func TestFromMachine(t *testing.T) {
	g := FromMachine("order", machine(t), nil)
	var ids []string
	for _, n := range g.Nodes {
		ids = append(ids, n.ID)
	}
	want := []string{"(start)", "Price", "Charge", "Fulfil", "Refund", "Big?", "Lines", "Done", "Pause", "(end)"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("nodes %v, want %v", ids, want)
	}
	var edges []string
	for _, e := range g.Edges {
		edges = append(edges, e.From+">"+e.To+":"+e.Label)
	}
	for _, e := range []string{"(start)>Price:", "Charge>Refund:Catch States.ALL", "Big?>Lines:$.amount > 100",
		"Big?>Done:Default", "Pause>Big?:", "Refund>(end):", "Done>(end):"} {
		if !strings.Contains(strings.Join(edges, "|"), e) {
			t.Errorf("no edge %s in %v", e, edges)
		}
	}
	fulfil := g.Nodes[3]
	if len(fulfil.Inner) != 2 || fulfil.Inner[1].Nodes[1].ID != "Fulfil[1].Email" || fulfil.Inner[1].Nodes[1].Detail != "http" {
		t.Errorf("Parallel branches %+v", fulfil.Inner)
	}
	if lines := g.Nodes[6]; len(lines.Inner) != 1 || lines.Inner[0].Nodes[1].ID != "Lines[*].Pick" || lines.Detail != "at most 5 at once" {
		t.Errorf("Map %+v", lines)
	}
}

func TestStatusesFromARunsHistory(t *testing.T) {
	h := History{Transitions: []Transition{
		{State: "Price", Type: "Entered"}, {State: "Price", Type: "Exited"}, {State: "Charge", Type: "Entered"}, {State: "Charge", Type: "Exited"},
		{State: "Fulfil", Type: "Entered"}, {State: "Fulfil[0].Ship", Type: "Entered"}, {State: "Fulfil[0].Ship", Type: "Exited"},
		{State: "Fulfil[1].Email", Type: "Entered"}, {State: "Fulfil[1].Email", Type: "Failed"}, {State: "Fulfil[1].Email", Type: "Retrying"}, {State: "Fulfil[1].Email", Type: "Exited"},
		{State: "Fulfil", Type: "Exited"}, {State: "Big?", Type: "Entered"}, {State: "Big?", Type: "Exited"}, {State: "Lines", Type: "Entered"},
		{State: "Lines[0].Pick", Type: "Entered"}, {State: "Lines[0].Pick", Type: "Exited"}, {State: "Lines[1].Pick", Type: "Entered"}, {State: "Lines[1].Pick", Type: "Failed"},
		{State: "Lines[2].Pick", Type: "Entered"},
	}, Active: []string{"Lines[2].Pick"}}
	got := Statuses(machine(t), h)
	want := map[string]Status{"Price": Succeeded, "Charge": Succeeded, "Fulfil": Succeeded, "Fulfil[0].Ship": Succeeded,
		"Fulfil[1].Email": Succeeded, "Big?": Succeeded, "Lines": Running, "Lines[*].Pick": Failed}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("statuses\n got %v\nwant %v", got, want)
	}
	caught := Statuses(machine(t), History{Transitions: []Transition{{State: "Charge", Type: "Entered"}, {State: "Charge", Type: "Failed"}, {State: "Charge", Type: "Caught"}, {State: "Refund", Type: "Entered"}, {State: "Refund", Type: "FAILED"}}})
	if caught["Charge"] != Caught || caught["Refund"] != Failed {
		t.Errorf("caught: %v", caught)
	}
}

// wellFormed fails the test unless svg parses as XML 1.0.
func wellFormed(t *testing.T, svg string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := d.Token(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v", err)
		}
	}
}

// A tenant names states, branches and the run; none of it may make the picture unreadable.
func TestControlCharactersInStateNamesKeepTheSVGWellFormed(t *testing.T) {
	for _, tc := range []struct{ name, state string }{
		{"a C0 control character", "Charge\u0001now"},
		{"an escape sequence", "Charge\u001b[31m"},
		{"a NUL", "Charge\u0000"},
		{"markup", "<Charge & \"Refund\">"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			def, _ := json.Marshal(map[string]any{"Comment": tc.state, "StartAt": tc.state, "States": map[string]any{
				tc.state: map[string]any{"Type": "Pass", "Next": "Done"}, "Done": map[string]any{"Type": "Succeed"}}})
			m, errs := asl.Parse(def)
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			svg := SVG(FromMachine("run-"+tc.state, m, nil))
			wellFormed(t, svg)
			if !strings.Contains(svg, "Charge") {
				t.Errorf("the state's name is lost:\n%s", svg)
			}
		})
	}
	// Bytes that are not UTF-8 cannot come through JSON; a graph built by hand may hold them.
	wellFormed(t, SVG(&Graph{Title: "bad \xff\xfe bytes", Nodes: []*Node{{ID: "a\x00", Label: "a\x00\xc3\uffff", Kind: "Pass"}}}))
}

func TestRenderings(t *testing.T) {
	m := machine(t)
	g := FromMachine("order-1", m, Statuses(m, History{Transitions: []Transition{{State: "Price", Type: "Exited"}, {State: "Charge", Type: "Entered"}}}))

	svg := SVG(g)
	wellFormed(t, svg)
	for _, s := range []string{">Price<", ">Charge<", ">Fulfil (Parallel)<", ">Lines (Map)<", ">each item<", "consumer/payments", "30s",
		colors[Succeeded][0], colors[Running][0], "marker-end", ">Big?<"} {
		if !strings.Contains(svg, s) {
			t.Errorf("SVG lacks %q", s)
		}
	}

	dot := DOT(g)
	for _, s := range []string{`digraph "order-1" {`, `"Charge" -> "Refund" [label="Catch States.ALL"];`, `subgraph "cluster_Fulfil_1"`,
		`"Lines[*].Pick" [label="Pick\nconsumer/pick", fillcolor="#f4f4f5"`, `"Price" [label="Price", fillcolor="#dcfce7"`} {
		if !strings.Contains(dot, s) {
			t.Errorf("DOT lacks %s:\n%s", s, dot)
		}
	}
	if strings.Count(dot, "{") != strings.Count(dot, "}") {
		t.Error("DOT braces do not balance")
	}

	mm := Mermaid(g)
	for _, s := range []string{"flowchart TD", `(("Start"))`, `-->|"Default"|`, `["Fulfil (Parallel)"]`, "classDef succeeded fill:#dcfce7", "class n1 succeeded", "class n2 running"} {
		if !strings.Contains(mm, s) {
			t.Errorf("Mermaid lacks %s:\n%s", s, mm)
		}
	}
	if strings.Count(mm, "subgraph") != strings.Count(mm, "\n  end\n")+strings.Count(mm, "\n    end\n") {
		t.Errorf("unbalanced subgraphs:\n%s", mm)
	}
}

// The states a redrive ran are marked with its number, from the engine's own history: the
// failed Map iteration's task and the Map, not the states that succeeded before.
func TestRedrivenStatesAreMarked(t *testing.T) {
	m, errs := asl.Parse([]byte(`{"StartAt":"Prep","States":{"Prep":{"Type":"Pass","Next":"M"},
		"M":{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":1,"Next":"Done","ItemProcessor":{"StartAt":"W","States":{"W":{"Type":"Task","Resource":"test:w","End":true}}}},
		"Done":{"Type":"Succeed"}}}`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	var h History
	keep := func(ts []asl.Transition) {
		for _, tr := range ts {
			h.Transitions = append(h.Transitions, Transition{State: tr.State, Type: tr.Kind, Info: tr.Info, At: tr.At})
		}
	}
	run, effs, ts := m.Step(asl.Run{}, asl.Event{Kind: asl.EventStart, At: at, Input: map[string]any{"items": []any{1.0, 2.0}}}, asl.Options{})
	keep(ts)
	run, effs, ts = m.Step(run, asl.Event{Kind: asl.EventTaskSucceeded, At: at, Path: effs[0].Path, Attempt: 1, Output: "ok"}, asl.Options{})
	keep(ts)
	run, _, ts = m.Step(run, asl.Event{Kind: asl.EventTaskFailed, At: at, Path: effs[0].Path, Attempt: 1, Error: "Broken"}, asl.Options{})
	keep(ts)
	if run.Status != asl.Failed {
		t.Fatalf("run %s", run.Status)
	}
	redriveAt := at.Add(time.Hour)
	run, _, ts, err := m.Redrive(run, redriveAt, asl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keep(ts)
	h.Active = []string{m.Active(run)[0].Label}
	h.RedriveCount, h.RedriveTime = run.Execution.RedriveCount, *run.Execution.RedriveTime
	want := map[string]int{"M": 1, "M[*].W": 1}
	if got := Redriven(m, h); !reflect.DeepEqual(got, want) {
		t.Errorf("redriven %v, want %v", got, want)
	}
	// The history kept no "Redriven" transition: the time tells.
	var late History
	late.RedriveCount, late.RedriveTime = h.RedriveCount, h.RedriveTime
	for _, tr := range h.Transitions {
		if tr.Type != "Redriven" {
			late.Transitions = append(late.Transitions, tr)
		}
	}
	if got := Redriven(m, late); !reflect.DeepEqual(got, map[string]int{"M[*].W": 1}) {
		t.Errorf("redriven by time %v", got)
	}
	if got := Redriven(m, History{Transitions: h.Transitions[:4]}); got != nil {
		t.Errorf("a run never redriven: %v", got)
	}
	g := FromMachine("r", m, Statuses(m, h))
	g.MarkRedriven(Redriven(m, h))
	if g.Nodes[2].ID != "M" || g.Nodes[2].Status != Running || g.Nodes[2].Redrive != 1 || g.Nodes[1].Redrive != 0 {
		t.Errorf("nodes %+v %+v", g.Nodes[1], g.Nodes[2])
	}
	for name, out := range map[string]string{"svg": SVG(g), "dot": DOT(g), "mermaid": Mermaid(g)} {
		if !strings.Contains(out, "M (Map) · redrive 1") || !strings.Contains(out, "redrive 1") || strings.Count(out, "redrive 1") != 2 {
			t.Errorf("%s: %d marks of the redrive\n%s", name, strings.Count(out, "redrive 1"), out)
		}
	}
}

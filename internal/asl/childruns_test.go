package asl

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

const distributedMap = `{"StartAt":"Prep","States":{
	"Prep":{"Type":"Pass","Next":"Each"},
	"Each":{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":2,"ToleratedFailureCount":1,"ResultPath":"$.out","End":true,
		"ItemSelector":{"sku.$":"$$.Map.Item.Value","at.$":"$$.Map.Item.Index","order.$":"$.order"},
		"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},
			"StartAt":"Ship","States":{"Ship":{"Type":"Task","Resource":"test:ship","End":true}}}}}}`

// A DISTRIBUTED Map run by a driver of child runs: the iterations are remote children (no state
// of theirs in the run), at most MaxConcurrency at once, each with its input computed from the
// run's state; their ends come back as task events; a tolerated failure keeps its error in the
// results, and the results are in item order.
func TestADistributedMapRunsItsIterationsAsChildRuns(t *testing.T) {
	m := mustParse(t, distributedMap)
	opt := Options{ChildRuns: true}
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	run, effs, _ := m.Step(Run{}, Event{Kind: EventStart, At: at, Input: doc(t, `{"order":"o-1","items":["a","b","c","d","e"]}`)}, opt)
	if len(effs) != 0 || len(m.Active(run)) != 0 {
		t.Fatalf("a distributed Map runs no task itself: effects %+v, active %+v", effs, m.Active(run))
	}
	seen := map[string]bool{}
	for done := 0; run.Status == Running; done++ {
		if done > 10 {
			t.Fatal("the run does not end")
		}
		run = roundTrip(t, run)
		children := m.ChildRuns(run)
		if len(children) == 0 || len(children) > 2 {
			t.Fatalf("%d child runs at once", len(children))
		}
		c := children[0]
		if seen[c.Key()] {
			t.Fatalf("key %s listed again after its end", c.Key())
		}
		seen[c.Key()] = true
		in, err := m.ChildRunInput(run, c.Path, opt)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(`{"at":%d,"order":"o-1","sku":%q}`, c.Item, "abcde"[c.Item:c.Item+1])
		if got, _ := json.Marshal(in); string(got) != want || c.Label != fmt.Sprintf("Each[%d]", c.Item) {
			t.Fatalf("child %s input %s, want %s", c.Label, got, want)
		}
		ev := Event{Kind: EventTaskSucceeded, At: at, Path: c.Path, Output: map[string]any{"shipped": in.(map[string]any)["sku"]}}
		if c.Item == 2 {
			ev = Event{Kind: EventTaskFailed, At: at, Path: c.Path, Error: "Warehouse.Closed", Cause: "closed"}
		}
		run, _, _ = m.Step(run, ev, opt)
	}
	if run.Status != Succeeded {
		t.Fatalf("run %s %s %s", run.Status, run.Error, run.Cause)
	}
	out, _ := json.Marshal(run.Output.(map[string]any)["out"])
	want := `[{"shipped":"a"},{"shipped":"b"},{"Cause":"closed","Error":"Warehouse.Closed"},{"shipped":"d"},{"shipped":"e"}]`
	if string(out) != want {
		t.Errorf("results %s, want %s", out, want)
	}
}

// Without a driver of child runs (the CLI), the same Map runs inline: its task is the engine's.
func TestADistributedMapRunsInlineWithoutChildRuns(t *testing.T) {
	m := mustParse(t, distributedMap)
	run, effs, _ := m.Step(Run{}, Event{Kind: EventStart, At: redriveStart, Input: doc(t, `{"order":"o-1","items":["a","b","c"]}`)}, Options{})
	if len(effs) != 2 || effs[0].Kind != EffectRunTask || len(m.ChildRuns(run)) != 0 {
		t.Fatalf("effects %+v, child runs %+v", effs, m.ChildRuns(run))
	}
}

// A redrive of a run whose distributed Map failed starts new child runs (new keys) for the
// iterations that failed, and keeps the others' results.
func TestARedriveOfADistributedMapStartsNewChildRuns(t *testing.T) {
	m := mustParse(t, `{"StartAt":"Each","States":{"Each":{"Type":"Map","MaxConcurrency":1,"End":true,
		"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"EXPRESS"},"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}}}}`)
	opt := Options{ChildRuns: true}
	run, _, _ := m.Step(Run{}, Event{Kind: EventStart, At: redriveStart, Input: doc(t, `[1,2,3]`)}, opt)
	first := m.ChildRuns(run)[0]
	run, _, _ = m.Step(run, Event{Kind: EventTaskSucceeded, At: redriveStart, Path: first.Path, Output: 10.0}, opt)
	failed := m.ChildRuns(run)[0]
	run, _, _ = m.Step(roundTrip(t, run), Event{Kind: EventTaskFailed, At: redriveStart, Path: failed.Path, Error: "Boom"}, opt)
	if run.Status != Failed || run.Error != "Boom" {
		t.Fatalf("run %s %s", run.Status, run.Error)
	}
	run, _, _, err := m.Redrive(roundTrip(t, run), redriveStart.Add(time.Hour), opt)
	if err != nil {
		t.Fatal(err)
	}
	again := m.ChildRuns(run)
	if len(again) != 1 || again[0].Item != failed.Item || again[0].Key() == failed.Key() {
		t.Fatalf("after the redrive: %+v (failed %+v)", again, failed)
	}
	run, _, _ = m.Step(run, Event{Kind: EventTaskSucceeded, At: redriveStart, Path: again[0].Path, Output: 20.0}, opt)
	run, _, _ = m.Step(run, Event{Kind: EventTaskSucceeded, At: redriveStart, Path: m.ChildRuns(run)[0].Path, Output: 30.0}, opt)
	if run.Status != Succeeded || !reflect.DeepEqual(run.Output, []any{10.0, 20.0, 30.0}) {
		t.Fatalf("run %s %v", run.Status, run.Output)
	}
}

// The definition of a child run is the Map state's ItemProcessor as a machine of its own,
// wherever the Map state is nested, with the query language of its machine.
func TestItemProcessorDefinition(t *testing.T) {
	def := `{"QueryLanguage":"JSONata","StartAt":"Both","States":{"Both":{"Type":"Parallel","End":true,"Branches":[
		{"StartAt":"X","States":{"X":{"Type":"Pass","End":true}}},
		{"StartAt":"Each","States":{"Each":{"Type":"Map","End":true,
			"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},"StartAt":"P","States":{"P":{"Type":"Pass","Output":"{% $states.input * 2 %}","End":true}}}}}}]}}}`
	mustParse(t, def)
	got, err := ItemProcessorDefinition([]byte(def), "Each")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"QueryLanguage":"JSONata","StartAt":"P","States":{"P":{"End":true,"Output":"{% $states.input * 2 %}","Type":"Pass"}}}`
	if string(got) != want {
		t.Errorf("definition\n %s\nwant\n %s", got, want)
	}
	child := mustParse(t, string(got))
	run, _, _ := child.Step(Run{}, Event{Kind: EventStart, At: redriveStart, Input: 21.0}, Options{})
	if run.Status != Succeeded || run.Output != 42.0 {
		t.Errorf("the child machine: %s %v", run.Status, run.Output)
	}
	for _, name := range []string{"X", "Nope"} {
		if _, err := ItemProcessorDefinition([]byte(def), name); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

package asl

import (
	"os"
	"reflect"
	"testing"
	"time"
)

// BenchmarkJSONata10States is BenchmarkInterpreter's machine written in JSONata, with an Assign
// on each Pass state (testdata/bench-10-states-jsonata.json), against the same baseline:
// aws-local-stepfunctions running the JSONPath machine (it has no JSONata).
func BenchmarkJSONata10States(b *testing.B) {
	def, err := os.ReadFile("testdata/bench-10-states-jsonata.json")
	if err != nil {
		b.Fatal(err)
	}
	m, errs := Parse(def)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	const statesPerRun = 10
	input := map[string]any{"n": 0.0}
	want := map[string]any{"n": 5.0, "last": 4.0}
	run := func() {
		r, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: input}, Options{})
		if r.Status != Succeeded || r.Transitions != statesPerRun || !reflect.DeepEqual(r.Output, want) {
			b.Fatalf("run %+v", r)
		}
	}
	for i := 0; i < 200; i++ {
		run()
	}
	baselineOnce.Do(func() { baseline, haveBaseline = nodeBaseline(b, statesPerRun) })
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		run()
	}
	ours := float64(b.N*statesPerRun) / time.Since(start).Seconds()
	b.ReportMetric(ours, "transitions/s")
	if haveBaseline {
		b.ReportMetric(baseline, "baseline-transitions/s")
		b.ReportMetric(ours/baseline, "millrace/baseline")
	}
}

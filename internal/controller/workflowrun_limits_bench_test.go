package controller_test

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// BenchmarkTheLargestReconcile runs, one at a time, the runs that used to wedge or crash the
// manager, and reports the longest reconcile of the WorkflowRun controller (the upper bound of
// the histogram bucket it fell in: controller-runtime's reconcile_time_seconds) and the manager
// process's heap at its peak above what it held before the run (sampled every 5 ms). The API
// server runs in other processes; the manager's reconcile includes its API calls.
// `go test ./controllers -run '^$' -bench TheLargestReconcile -benchtime 1x`
func BenchmarkTheLargestReconcile(b *testing.B) {
	list := func(n int) string { return strings.TrimSuffix(strings.Repeat("0,", n), ",") }
	// A loop of 200 turns: the state under test, a count, a Choice.
	loop := func(state string) string {
		return `{"StartAt":"A","States":{"A":{` + state + `,"Next":"N"},
			"N":{"Type":"Pass","Parameters":{"n.$":"States.MathAdd($.n, 1)","s.$":"$.s","list.$":"$.list"},"Next":"B"},
			"B":{"Type":"Choice","Choices":[{"Variable":"$.n","NumericGreaterThan":200,"Next":"E"}],"Default":"A"},"E":{"Type":"Succeed"}}}`
	}
	big := fmt.Sprintf(`{"n":0,"s":%q,"list":[%s]}`, strings.Repeat("x", 100<<10), list(20000))
	cases := []struct{ name, def, input string }{
		{"nested Map 1000 x 1000", `{"StartAt":"Outer","States":{"Outer":{"Type":"Map","ItemsPath":"$.rows","End":true,
			"ItemSelector":{"cols.$":"$.cols"},
			"ItemProcessor":{"StartAt":"Inner","States":{"Inner":{"Type":"Map","ItemsPath":"$.cols","End":true,
				"ResultSelector":{"n.$":"States.ArrayLength($)"},
				"ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}}}}}}}`,
			fmt.Sprintf(`{"rows":[%s],"cols":[%s]}`, list(1000), list(1000))},
		{"loop copying 140 KiB", loop(`"Type":"Pass","Parameters":{"n.$":"$.n","s.$":"$.s","list.$":"$.list","copy.$":"$.list"}`), big},
		{"loop of intrinsics over 140 KiB", loop(`"Type":"Pass","ResultPath":"$.u","Parameters":{"a.$":"States.ArrayUnique($.list)","b.$":"States.StringSplit($.s, 'x')","c.$":"States.ArrayLength($..*)"}`), big},
	}
	for i := 0; i < b.N; i++ {
		ns := newNamespace(b)
		for j, c := range cases {
			create(b, newWorkflow(ns, fmt.Sprint("w", j), c.def))
			before := reconcileBuckets(b)
			peak := sampleHeap()
			create(b, newRun(ns, fmt.Sprint("r", j), fmt.Sprint("w", j), c.input))
			run := waitRunDone(b, ns, fmt.Sprint("r", j))
			heap := peak()
			longest := longestBucket(before, reconcileBuckets(b))
			b.Logf("%s: %s %s; longest reconcile under %.3g s; heap peak +%d MiB", c.name, run.Status.Phase, run.Status.Error, longest, heap>>20)
			b.ReportMetric(longest, fmt.Sprintf("case%d-max-reconcile-s", j))
			b.ReportMetric(float64(heap)/(1<<20), fmt.Sprintf("case%d-heap-peak-MiB", j))
		}
	}
}

// waitRunDone waits up to 2 minutes for a run to finish, whichever way.
func waitRunDone(b *testing.B, ns, name string) *millracev1.WorkflowRun {
	var run *millracev1.WorkflowRun
	eventually(b, 2*time.Minute, func() error {
		run = &millracev1.WorkflowRun{}
		if err := k8s.Get(b.Context(), client.ObjectKey{Namespace: ns, Name: name}, run); err != nil {
			return err
		}
		switch run.Status.Phase {
		case millracev1.RunSucceeded, millracev1.RunFailed, millracev1.RunTimedOut:
			return nil
		}
		return fmt.Errorf("phase %q", run.Status.Phase)
	})
	return run
}

// sampleHeap samples the process's heap every 5 ms from now; the function it returns stops and
// gives the peak above the heap at the start (after a collection).
func sampleHeap() func() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				if m.HeapAlloc > base && m.HeapAlloc-base > peak.Load() {
					peak.Store(m.HeapAlloc - base)
				}
			}
		}
	}()
	return func() uint64 { close(stop); <-done; return peak.Load() }
}

// reconcileBuckets reads the WorkflowRun controller's reconcile-time histogram: cumulative
// counts by upper bound.
func reconcileBuckets(b *testing.B) map[float64]uint64 {
	families, err := metrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	out := map[float64]uint64{}
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_time_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			if !hasLabel(m, "controller", "workflowrun") {
				continue
			}
			for _, bk := range m.GetHistogram().GetBucket() {
				out[bk.GetUpperBound()] = bk.GetCumulativeCount()
			}
			out[math.Inf(1)] = m.GetHistogram().GetSampleCount()
		}
	}
	return out
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// longestBucket is the smallest upper bound under which every reconcile between two readings fell.
func longestBucket(before, after map[float64]uint64) float64 {
	total := after[math.Inf(1)] - before[math.Inf(1)]
	best := math.Inf(1)
	for le, n := range after {
		if n-before[le] == total && le < best {
			best = le
		}
	}
	return best
}

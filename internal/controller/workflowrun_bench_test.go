package controller_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// tenStates is a 10-state machine whose runs block twice: on a Wait of 0 seconds and on a Task
// that a real Consumer's dispatcher delivers to a no-op handler.
const tenStates = `{"StartAt":"Price","States":{
  "Price":{"Type":"Pass","Parameters":{"n.$":"States.MathAdd($.n, 1)"},"Next":"Settle"},
  "Settle":{"Type":"Wait","Seconds":0,"Next":"Tag"},
  "Tag":{"Type":"Pass","Result":"t","ResultPath":"$.tag","Next":"Small?"},
  "Small?":{"Type":"Choice","Choices":[{"Variable":"$.n","NumericLessThan":0,"Next":"Odd"}],"Default":"Work"},
  "Work":{"Type":"Task","Resource":"millrace:consumer/work","ResultPath":"$.work","Next":"Count"},
  "Count":{"Type":"Pass","Parameters":{"n.$":"States.MathAdd($.n, 1)"},"Next":"Again"},
  "Again":{"Type":"Pass","Next":"Big?"},
  "Big?":{"Type":"Choice","Choices":[{"Variable":"$.n","NumericGreaterThan":1000000,"Next":"Odd"}],"Default":"Done"},
  "Odd":{"Type":"Fail","Error":"Odd"},
  "Done":{"Type":"Succeed"}}}`

// BenchmarkConcurrentRuns starts 1,000 runs of tenStates at once and waits for all to succeed. It
// reports the status writes per run and the run throughput, against the API server's own
// status-patch throughput: a bare client loop patching WorkflowRun status with as many workers as
// the controller has, in the same run. MILLRACE_BENCH_RUNS changes the number of runs.
func BenchmarkConcurrentRuns(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("MILLRACE_BENCH_RUNS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	ns := newNamespace(b)
	create(b, newQueue(ns, "work", millracev1.QueueSpec{}))
	q := waitReadyQueue(b, ns, "work")
	create(b, newConsumer(ns, "work", "work", fastScaling(0)))
	wf := newWorkflow(ns, "ten", tenStates)
	wf.Spec.HistoryLimit = ptr.To(int32(10000))
	create(b, wf)
	taskWorker(b, q.Status.QueueURL, func(map[string]any) (int, any) { return 200, map[string]any{"ok": true} })

	for i := 0; i < b.N; i++ {
		prefix := fmt.Sprintf("r%d-", i)
		writes := runs.StatusWrites()
		conflicts := testutil.ToFloat64(runs.Metrics.StatusWrites.WithLabelValues("conflict"))
		before := finished(ns, "ten")
		start := time.Now()
		parallel(b, n, 16, func(j int) error {
			return k8s.Create(ctx, newRun(ns, prefix+strconv.Itoa(j), "ten", `{"n":`+strconv.Itoa(j)+`}`))
		})
		created := time.Since(start)
		waitAll(b, ns, "ten", before, n, 10*time.Minute)
		elapsed := time.Since(start)
		writes = runs.StatusWrites() - writes
		conflicts = testutil.ToFloat64(runs.Metrics.StatusWrites.WithLabelValues("conflict")) - conflicts
		bare := bareStatusPatches(b, 8, 3000)

		rate := float64(n) / elapsed.Seconds()
		b.ReportMetric(rate, "runs/s")
		b.ReportMetric(float64(writes)/float64(n), "status-writes/run")
		b.ReportMetric(conflicts/float64(n), "conflicts/run")
		b.ReportMetric(bare, "bare-status-patches/s")
		b.ReportMetric(rate/bare, "runs/bare-patch")
		b.ReportMetric(float64(writes)/elapsed.Seconds()/bare, "writes/s÷bare-patches/s")
		b.ReportMetric(created.Seconds(), "create-s")
	}
}

// parallel runs f(0..n-1) on workers goroutines and fails on the first error.
func parallel(b *testing.B, n, workers int, f func(i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				if err := f(i); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		b.Fatal(err)
	}
}

// waitAll waits until n more runs of the Workflow have finished (counted by the controller's
// metric, so that polling adds no load to the API server), then checks that all succeeded.
func waitAll(b *testing.B, ns, workflow string, before finishedCounts, n int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for {
		now := finished(ns, workflow)
		if now.all-before.all >= n {
			if got := now.succeeded - before.succeeded; got != n {
				b.Fatalf("%d of %d runs succeeded", got, n)
			}
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d runs finished within %v", now.all-before.all, n, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type finishedCounts struct{ all, succeeded int }

func finished(ns, workflow string) finishedCounts {
	var c finishedCounts
	for _, phase := range []millracev1.RunPhase{millracev1.RunSucceeded, millracev1.RunFailed, millracev1.RunTimedOut, millracev1.RunAborted} {
		v := int(testutil.ToFloat64(runs.Metrics.Finished.WithLabelValues(ns, workflow, string(phase))))
		c.all += v
		if phase == millracev1.RunSucceeded {
			c.succeeded = v
		}
	}
	return c
}

// bareStatusPatches measures the API server's status-patch throughput for WorkflowRuns: workers
// goroutines send total merge patches to the status of 100 runs of a Workflow that does not
// exist (their controller leaves them Pending and does not react to status changes).
func bareStatusPatches(b *testing.B, workers, total int) float64 {
	ctx := context.Background()
	ns := newNamespace(b)
	const objects = 100
	parallel(b, objects, workers, func(i int) error { return k8s.Create(ctx, newRun(ns, "p-"+strconv.Itoa(i), "absent", `{}`)) })
	eventually(b, time.Minute, func() error {
		list := &millracev1.WorkflowRunList{}
		if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, r := range list.Items {
			if r.Status.Phase != millracev1.RunPending {
				return fmt.Errorf("%s is %q", r.Name, r.Status.Phase)
			}
		}
		return nil
	})
	start := time.Now()
	parallel(b, total, workers, func(i int) error {
		run := &millracev1.WorkflowRun{}
		run.Namespace, run.Name = ns, "p-"+strconv.Itoa(i%objects)
		patch := client.RawPatch(types.MergePatchType, []byte(`{"status":{"historyTotal":`+strconv.Itoa(i+1)+`}}`))
		return k8s.Status().Patch(ctx, run, patch)
	})
	return float64(total) / time.Since(start).Seconds()
}

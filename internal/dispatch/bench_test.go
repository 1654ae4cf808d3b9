package dispatch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/millrace-io/millrace/internal/dispatch"
	"github.com/millrace-io/millrace/internal/gctune"
	"github.com/millrace-io/millrace/internal/testenv"
)

const benchMessages = 12000

// BenchmarkDispatcherThroughput compares the dispatcher delivering to a no-op HTTP handler with a
// bare SDK loop (receive 10, delete the batch) on the same emulator, for concurrency 1 and 4, and
// for concurrency 4 with 5 ms added to every SQS call on both sides (a region's round trip; the
// emulator answers in well under a millisecond, which makes the other cases CPU-bound on a small
// machine). It reports both rates, their ratio, the p99 latency the HTTP delivery adds per batch,
// and the heap in use while the dispatcher runs.
func BenchmarkDispatcherThroughput(b *testing.B) {
	for _, tc := range []struct {
		conc    int
		latency time.Duration
	}{{1, 0}, {4, 0}, {4, 5 * time.Millisecond}} {
		conc, latency := tc.conc, tc.latency
		name := fmt.Sprintf("concurrency=%d", conc)
		if latency > 0 {
			name += ",sqs-latency=" + latency.String()
		}
		b.Run(name, func(b *testing.B) {
			// Warm up both sides, untimed: a cold emulator (its JIT) would count against whichever
			// side goes first.
			bareLoop(b, conc, latency)
			dispatcherRun(b, conc, latency)
			var bare, disp float64
			var bareCPU, dispCPU testenv.CPUUse
			var added []time.Duration
			var heap uint64
			var calls float64
			for i := 0; i < b.N; i++ {
				runBare := func() {
					rate, c := bareLoop(b, conc, latency)
					bare += rate
					bareCPU.Add(c)
				}
				if i%2 == 0 { // alternate the order, so neither side always runs on a fresher emulator
					runBare()
				}
				r := dispatcherRun(b, conc, latency)
				dispCPU.Add(r.cpu)
				disp += r.rate
				added = append(added, r.added...)
				heap = max(heap, r.heap)
				calls += r.callsPerMessage
				if i%2 == 1 {
					runBare()
				}
			}
			n := float64(b.N)
			b.ReportMetric(bare/n, "bare-msgs/s")
			b.ReportMetric(disp/n, "dispatcher-msgs/s")
			b.ReportMetric(disp/bare, "dispatcher/bare")
			slices.Sort(added)
			b.ReportMetric(float64(added[len(added)*99/100].Microseconds())/1000, "p99-added-ms/batch")
			b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
			b.ReportMetric(calls/n, "dispatcher-sqs-calls/msg")
			// CPU per 1,000 messages, in milliseconds, for the emulator and for this process
			// (which holds the loop or the dispatcher and its handler).
			perK := func(d time.Duration) float64 { return float64(d.Milliseconds()) * 1000 / (n * benchMessages) }
			b.ReportMetric(perK(bareCPU.Emulator), "bare-emulator-cpu-ms/1k")
			b.ReportMetric(perK(dispCPU.Emulator), "dispatcher-emulator-cpu-ms/1k")
			b.ReportMetric(perK(bareCPU.Self), "bare-self-cpu-ms/1k")
			b.ReportMetric(perK(dispCPU.Self), "dispatcher-self-cpu-ms/1k")
		})
	}
}

func fill(b *testing.B) string {
	url, _ := newQueue(b, false, 30)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * 10; i < benchMessages; i += 40 {
				entries := make([]types.SendMessageBatchRequestEntry, 10)
				for j := range entries {
					entries[j] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(j)), MessageBody: aws.String(`{"order":` + strconv.Itoa(i+j) + `}`)}
				}
				if _, err := sqsClient.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return url
}

func bareLoop(b *testing.B, conc int, latency time.Duration) (float64, testenv.CPUUse) {
	b.StopTimer()
	url := fill(b)
	b.StartTimer()
	client, err := emulator.SDKDefaultClient(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	bare := &countingAPI{SQSAPI: client, latency: latency}
	cpu := emulator.MeasureCPU(b)
	var deleted atomic.Int64
	var finished atomic.Int64 // unix nanos when the last message was deleted
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for deleted.Load() < benchMessages {
				// The same request the dispatcher makes: a Lambda event needs every attribute.
				out, err := bare.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 1,
					MessageAttributeNames: []string{"All"}, MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll}})
				if err != nil || len(out.Messages) == 0 {
					continue
				}
				entries := make([]types.DeleteMessageBatchRequestEntry, len(out.Messages))
				for i, m := range out.Messages {
					entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle}
				}
				if del, err := bare.DeleteMessageBatch(context.Background(), &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: entries}); err == nil {
					if deleted.Add(int64(len(del.Successful))) >= benchMessages {
						finished.CompareAndSwap(0, time.Now().UnixNano())
					}
				}
			}
		}()
	}
	wg.Wait()
	used := cpu()
	// Timed to the last deletion, not to the end of the receives still long-polling an empty queue.
	return benchMessages / time.Unix(0, finished.Load()).Sub(start).Seconds(), used
}

// timedInvoker records how long each delivery to the handler takes: the latency the dispatcher's
// HTTP hop adds per batch compared with the bare loop, which calls no handler.
type timedInvoker struct {
	inner dispatch.Invoker
	mu    sync.Mutex
	took  []time.Duration
}

func (t *timedInvoker) Invoke(ctx context.Context, e events.SQSEvent, keys []string) (dispatch.Outcome, error) {
	start := time.Now()
	o, err := t.inner.Invoke(ctx, e, keys)
	t.mu.Lock()
	t.took = append(t.took, time.Since(start))
	t.mu.Unlock()
	return o, err
}

type dispatcherResult struct {
	rate            float64
	added           []time.Duration
	heap            uint64
	cpu             testenv.CPUUse
	callsPerMessage float64
}

func dispatcherRun(b *testing.B, conc int, latency time.Duration) dispatcherResult {
	b.StopTimer()
	url := fill(b)
	noop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	defer noop.Close()
	inv := &timedInvoker{inner: &dispatch.HTTPInvoker{URL: noop.URL}}
	api := &countingAPI{SQSAPI: sqsClient, latency: latency}
	b.StartTimer()
	defer gctune.Apply(dispatch.GCPercent, dispatch.MemoryLimit)() // as cmd/dispatcher runs
	cpu := emulator.MeasureCPU(b)
	began := time.Now()
	r := start(b, dispatch.Config{QueueURL: url, BatchSize: 10, Concurrency: conc, VisibilityTimeout: 30 * time.Second}, api, inv)
	res := dispatcherResult{}
	for i := 0; testutil.ToFloat64(r.metrics.Deleted) < benchMessages; i++ {
		if i%40 == 0 { // every 200ms: ReadMemStats stops the world
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			res.heap = max(res.heap, ms.HeapInuse)
		}
		time.Sleep(5 * time.Millisecond)
	}
	res.rate = benchMessages / time.Since(began).Seconds()
	res.cpu = cpu()
	res.callsPerMessage = float64(api.calls.Load()) / benchMessages
	r.stop(b)
	res.added = inv.took
	return res
}

// countingAPI counts the SQS calls made through it and adds latency to each (a fake only in
// timing: a region's round trip, which the emulator on this host does not have).
type countingAPI struct {
	dispatch.SQSAPI
	latency time.Duration
	calls   atomic.Int64
}

func (c *countingAPI) call() {
	c.calls.Add(1)
	if c.latency > 0 {
		time.Sleep(c.latency)
	}
}

func (c *countingAPI) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	c.call()
	return c.SQSAPI.ReceiveMessage(ctx, in, opts...)
}

func (c *countingAPI) DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	c.call()
	return c.SQSAPI.DeleteMessageBatch(ctx, in, opts...)
}

func (c *countingAPI) ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	c.call()
	return c.SQSAPI.ChangeMessageVisibilityBatch(ctx, in, opts...)
}

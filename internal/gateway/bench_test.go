package gateway_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/gateway"
	"github.com/millrace-io/millrace/internal/gctune"
	"github.com/millrace-io/millrace/internal/httpserver"
	"github.com/millrace-io/millrace/internal/testenv"
)

const benchRequests = 4000

// loadResult is hack/loadgen's answer.
type loadResult struct {
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	FirstErr  string  `json:"firstError"`
	PerSecond float64 `json:"perSecond"`
	P50ms     float64 `json:"p50ms"`
	P99ms     float64 `json:"p99ms"`
}

// BenchmarkGatewayThroughput sends 4,000 messages of 1 KiB from a second process (hack/loadgen,
// concurrent senders over keep-alive connections on 127.0.0.1) through the gateway — with its
// real authorizer (a ServiceAccount token, answers cached) and an informer cache, as cmd/gateway
// runs, served with the same connection limits — and, as the baseline, the same messages as bare
// SDK SendMessage calls from the same generator to the same emulator. The two sides alternate.
// Reported: both rates, their ratio, both p50/p99 latencies, and CPU per 1,000 messages of the
// emulator and of the gateway; with 8 senders (each side bound by its round trip: the bare loop
// already keeps the emulator as busy as it gets) and with 16 (the bare loop saturated: its rate
// stays, its latency doubles; the gateway's group commit carries more messages per call).
func BenchmarkGatewayThroughput(b *testing.B) {
	e := setup(b, nil)
	e.queue(b, "bench", millracev1.QueueSpec{HTTP: &millracev1.QueueHTTP{Enabled: true}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := cache.New(restConfig, cache.Options{Scheme: k8s.Scheme()})
	must(b, err)
	if _, err := c.GetInformer(ctx, &millracev1.Queue{}); err != nil {
		b.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	c.WaitForCacheSync(ctx)
	metrics := gateway.NewMetrics(nil)
	// Served as cmd/gateway serves it: with its connection limits and handler deadline.
	srv := httptest.NewUnstartedServer(nil)
	srv.Config = httpserver.New("", (&gateway.Server{Reader: c, Writer: k8s, SQS: sqsClient, Auth: &gateway.KubernetesAuthorizer{Client: k8s}, Metrics: metrics}).Handler(), httpserver.Limits{})
	srv.Start()
	defer srv.Close()

	loadgen := filepath.Join(testenv.Build(b, "./hack/loadgen"), "loadgen")
	queueURL := e.queues["bench"]
	for _, senders := range []int{8, 16} {
		b.Run("senders="+strconv.Itoa(senders), func(b *testing.B) {
			args := []string{"-requests", strconv.Itoa(benchRequests), "-concurrency", strconv.Itoa(senders), "-size", "1024"}
			load := func(side ...string) (loadResult, testenv.CPUUse) {
				stop := emulator.MeasureCPU(b)
				out, err := exec.Command(loadgen, append(args, side...)...).Output()
				cpu := stop()
				var r loadResult
				if err != nil || json.Unmarshal(out, &r) != nil || r.Errors > 0 {
					b.Fatalf("loadgen %v: %v %s %+v", side, err, out, r)
				}
				if _, err := sqsClient.PurgeQueue(ctx, &sqs.PurgeQueueInput{QueueUrl: aws.String(queueURL)}); err != nil {
					b.Fatal(err)
				}
				return r, cpu
			}
			bare := func() (loadResult, testenv.CPUUse) {
				return load("-sqs-endpoint", emulator.Endpoint, "-queue-url", queueURL)
			}
			viaGateway := func() (loadResult, testenv.CPUUse) {
				defer gctune.Apply(gateway.GCPercent, gateway.MemoryLimit)() // as cmd/gateway runs
				return load("-url", srv.URL+"/v1/namespaces/"+e.ns+"/queues/bench/messages", "-header", "Authorization: Bearer "+e.allowed)
			}
			var bareSum, gwSum loadResult
			var bareCPU, gwCPU testenv.CPUUse
			add := func(to *loadResult, cpu *testenv.CPUUse, side func() (loadResult, testenv.CPUUse)) func() {
				return func() {
					r, c := side()
					to.PerSecond += r.PerSecond
					to.P50ms += r.P50ms
					to.P99ms += r.P99ms
					to.Requests += r.Requests
					cpu.Add(c)
				}
			}
			// Warm up both sides, untimed: the emulator's JIT and the gateway's caches (a cold
			// first run would count against whichever side goes first).
			bare()
			viaGateway()
			entriesBefore := callEntries(b, metrics)
			runBare, runGateway := add(&bareSum, &bareCPU, bare), add(&gwSum, &gwCPU, viaGateway)
			for i := 0; i < b.N; i++ {
				if i%2 == 0 { // alternate the order, so neither side always runs on a fresher emulator
					runBare()
					runGateway()
				} else {
					runGateway()
					runBare()
				}
			}
			n := float64(b.N)
			b.ReportMetric(bareSum.PerSecond/n, "bare-msgs/s")
			b.ReportMetric(gwSum.PerSecond/n, "gateway-msgs/s")
			b.ReportMetric(gwSum.PerSecond/bareSum.PerSecond, "gateway/bare")
			b.ReportMetric(bareSum.P50ms/n, "bare-p50-ms")
			b.ReportMetric(bareSum.P99ms/n, "bare-p99-ms")
			b.ReportMetric(gwSum.P50ms/n, "gateway-p50-ms")
			b.ReportMetric(gwSum.P99ms/n, "gateway-p99-ms")
			entriesAfter := callEntries(b, metrics)
			b.ReportMetric((entriesAfter.GetSampleSum()-entriesBefore.GetSampleSum())/float64(entriesAfter.GetSampleCount()-entriesBefore.GetSampleCount()), "gateway-msgs/sqs-call")
			perK := func(d time.Duration, requests int) float64 {
				return float64(d.Milliseconds()) * 1000 / float64(requests)
			}
			b.ReportMetric(perK(bareCPU.Emulator, bareSum.Requests), "bare-emulator-cpu-ms/1k")
			b.ReportMetric(perK(gwCPU.Emulator, gwSum.Requests), "gateway-emulator-cpu-ms/1k")
			b.ReportMetric(perK(gwCPU.Self, gwSum.Requests), "gateway-cpu-ms/1k")
		})
	}
}

// callEntries reads the messages-per-SQS-call histogram.
func callEntries(b *testing.B, metrics *gateway.Metrics) *dto.Histogram {
	var m dto.Metric
	must(b, metrics.CallEntries.Write(&m))
	return m.GetHistogram()
}

package dispatch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/millrace-io/millrace/internal/dispatch"
	"github.com/millrace-io/millrace/internal/testenv"
)

// The dispatcher runs against the real fauxqs emulator and real HTTP handlers on 127.0.0.1.
var (
	emulator  *testenv.Fauxqs
	sqsClient *sqs.Client
	queueSeq  atomic.Int32
)

func TestMain(m *testing.M) {
	testenv.ExitIfShort("the SQS emulator")
	var err error
	emulator, err = testenv.StartFauxqs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sqsClient, err = emulator.Client(context.Background(), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		emulator.Stop()
		os.Exit(1)
	}
	code := m.Run()
	emulator.Stop()
	os.Exit(code)
}

func newQueue(t testing.TB, fifo bool, visibility int) (url, arn string) {
	t.Helper()
	name := fmt.Sprintf("q%d", queueSeq.Add(1))
	attrs := map[string]string{"VisibilityTimeout": strconv.Itoa(visibility)}
	if fifo {
		name += ".fifo"
		attrs["FifoQueue"] = "true"
	}
	out, err := sqsClient.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		t.Fatal(err)
	}
	a, err := sqsClient.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: out.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn}})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl), a.Attributes["QueueArn"]
}

func sendBodies(t testing.TB, url string, group string, bodies ...string) {
	t.Helper()
	for chunk := range slices.Chunk(bodies, 10) {
		var entries []types.SendMessageBatchRequestEntry
		for i, b := range chunk {
			e := types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(b)}
			if group != "" {
				e.MessageGroupId = aws.String(group)
				e.MessageDeduplicationId = aws.String(b + group)
			}
			entries = append(entries, e)
		}
		out, err := sqsClient.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
		if err != nil || len(out.Failed) > 0 {
			t.Fatalf("send: %v %+v", err, out)
		}
	}
}

func counts(t testing.TB, url string) (visible, inFlight int) {
	t.Helper()
	out, err := sqsClient.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameApproximateNumberOfMessages, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible}})
	if err != nil {
		t.Fatal(err)
	}
	v, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessages"])
	f, _ := strconv.Atoi(out.Attributes["ApproximateNumberOfMessagesNotVisible"])
	return v, f
}

func eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	testenv.Eventually(t, timeout, check)
}

// handler is a real HTTP handler on 127.0.0.1 that records what it receives.
type handler struct {
	mu      sync.Mutex
	events  []events.SQSEvent
	keys    [][]string
	respond func(events.SQSEvent) (int, any, time.Duration)
	server  *httptest.Server
}

func newHandler(t testing.TB, respond func(events.SQSEvent) (int, any, time.Duration)) *handler {
	h := &handler{respond: respond}
	h.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var e events.SQSEvent
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &e); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		h.mu.Lock()
		h.events = append(h.events, e)
		h.keys = append(h.keys, r.Header.Values(dispatch.IdempotencyKeyHeader))
		h.mu.Unlock()
		status, resp, delay := 200, any(nil), time.Duration(0)
		if h.respond != nil {
			status, resp, delay = h.respond(e)
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(status)
		if resp != nil {
			_ = json.NewEncoder(w).Encode(resp)
		}
	}))
	t.Cleanup(h.server.Close)
	return h
}

func (h *handler) bodies() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, e := range h.events {
		for _, r := range e.Records {
			out = append(out, r.Body)
		}
	}
	return out
}

func (h *handler) snapshot() ([]events.SQSEvent, [][]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events), slices.Clone(h.keys)
}

type running struct {
	once    sync.Once
	cancel  context.CancelFunc
	done    chan error
	metrics *dispatch.Metrics
	d       *dispatch.Dispatcher
}

func start(t testing.TB, cfg dispatch.Config, api dispatch.SQSAPI, inv dispatch.Invoker) *running {
	t.Helper()
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if cfg.WaitTime == 0 {
		cfg.WaitTime = time.Second
	}
	if api == nil {
		api = sqsClient
	}
	m := dispatch.NewMetrics(prometheus.NewRegistry())
	d := dispatch.New(cfg, api, inv, nil, m, logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1), metrics: m, d: d}
	go func() { r.done <- d.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t testing.TB) {
	r.once.Do(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("dispatcher did not stop")
		}
	})
}

func httpInvoker(h *handler) dispatch.Invoker {
	return &dispatch.HTTPInvoker{URL: h.server.URL}
}

func waitEmpty(t testing.TB, url string) {
	t.Helper()
	eventually(t, 15*time.Second, func() error {
		if v, f := counts(t, url); v+f != 0 {
			return fmt.Errorf("%d visible, %d in flight", v, f)
		}
		return nil
	})
}

func numbered(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("m%02d", i)
	}
	return out
}

func TestAWholeBatchThatSucceedsIsDeleted(t *testing.T) {
	url, arn := newQueue(t, false, 30)
	h := newHandler(t, nil)
	sendBodies(t, url, "", numbered(25)...)
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 10, Concurrency: 2}, nil, httpInvoker(h))
	waitEmpty(t, url)
	got := h.bodies()
	slices.Sort(got)
	if !slices.Equal(got, numbered(25)) {
		t.Fatalf("handler saw %v", got)
	}
	evs, keys := h.snapshot()
	for i, e := range evs {
		if len(e.Records) > 10 || len(keys[i]) != len(e.Records) {
			t.Fatalf("batch of %d records with %d idempotency keys", len(e.Records), len(keys[i]))
		}
		for j, rec := range e.Records {
			if rec.EventSource != "aws:sqs" || rec.EventSourceARN != arn || rec.AWSRegion != "us-east-1" || rec.MessageId == "" ||
				rec.ReceiptHandle == "" || rec.Md5OfBody == "" || rec.Attributes["ApproximateReceiveCount"] != "1" || rec.Attributes["SentTimestamp"] == "" {
				t.Fatalf("record %+v", rec)
			}
			if keys[i][j] != rec.MessageId {
				t.Fatalf("idempotency key %q for message %q", keys[i][j], rec.MessageId)
			}
		}
	}
	if d := testutil.ToFloat64(r.metrics.Deleted); d != 25 {
		t.Fatalf("deleted metric %v", d)
	}
}

func TestAFailedBatchIsNotDeleted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		respond func(events.SQSEvent) (int, any, time.Duration)
		timeout time.Duration
	}{
		{"a 500 answer fails the whole batch", func(events.SQSEvent) (int, any, time.Duration) { return 500, nil, 0 }, 5 * time.Second},
		{"a handler slower than the timeout fails the whole batch", func(events.SQSEvent) (int, any, time.Duration) { return 200, nil, 3 * time.Second }, 500 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, arn := newQueue(t, false, 1)
			h := newHandler(t, tc.respond)
			sendBodies(t, url, "", "a", "b", "c")
			r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 10, HandlerTimeout: tc.timeout}, nil, httpInvoker(h))
			eventually(t, 10*time.Second, func() error {
				if n := len(h.bodies()); n < 6 {
					return fmt.Errorf("%d deliveries", n)
				}
				return nil
			})
			r.stop(t)
			if v, f := counts(t, url); v+f != 3 {
				t.Fatalf("%d visible + %d in flight, want all 3 kept", v, f)
			}
			if d := testutil.ToFloat64(r.metrics.Deleted); d != 0 {
				t.Fatalf("deleted %v", d)
			}
		})
	}
}

func TestPartialBatchFailureDeletesOnlyTheOthers(t *testing.T) {
	url, arn := newQueue(t, false, 2)
	h := newHandler(t, func(e events.SQSEvent) (int, any, time.Duration) {
		var failures []map[string]string
		for _, r := range e.Records {
			if r.Body == "bad" {
				failures = append(failures, map[string]string{"itemIdentifier": r.MessageId})
			}
		}
		return 200, map[string]any{"batchItemFailures": failures}, 0
	})
	sendBodies(t, url, "", "ok1", "bad", "ok2", "ok3")
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 10, BatchWindow: 300 * time.Millisecond, ReportBatchItemFailures: true}, nil, httpInvoker(h))
	eventually(t, 10*time.Second, func() error {
		if d := testutil.ToFloat64(r.metrics.Deleted); d != 3 {
			return fmt.Errorf("deleted %v", d)
		}
		if v, f := counts(t, url); v+f != 1 {
			return fmt.Errorf("%d visible + %d in flight", v, f)
		}
		return nil
	})
	// The failed message comes back after its visibility timeout and fails again.
	eventually(t, 10*time.Second, func() error {
		n := 0
		for _, b := range h.bodies() {
			if b == "bad" {
				n++
			}
		}
		if n < 2 {
			return fmt.Errorf("bad delivered %d times", n)
		}
		return nil
	})
}

func TestFIFOOrderHoldsAcrossAFailureInTheMiddleOfAGroup(t *testing.T) {
	url, arn := newQueue(t, true, 1)
	var mu sync.Mutex
	failedOnce := false
	var handled []string // successfully handled, in order
	h := newHandler(t, func(e events.SQSEvent) (int, any, time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		var failures []map[string]string
		for _, r := range e.Records {
			if r.Body == "a3" && !failedOnce {
				failedOnce = true
				failures = append(failures, map[string]string{"itemIdentifier": r.MessageId})
				continue
			}
			if len(failures) == 0 {
				handled = append(handled, r.Body)
			}
		}
		return 200, map[string]any{"batchItemFailures": failures}, 20 * time.Millisecond
	})
	sendBodies(t, url, "A", "a1", "a2", "a3", "a4", "a5")
	sendBodies(t, url, "B", "b1", "b2", "b3")
	start(t, dispatch.Config{QueueURL: url, QueueARN: arn, FIFO: true, BatchSize: 10, Concurrency: 2, ReportBatchItemFailures: true}, nil, httpInvoker(h))
	waitEmpty(t, url)
	mu.Lock()
	defer mu.Unlock()
	var a, b []string
	for _, body := range handled {
		if strings.HasPrefix(body, "a") {
			a = append(a, body)
		} else {
			b = append(b, body)
		}
	}
	if !slices.Equal(a, []string{"a1", "a2", "a3", "a4", "a5"}) || !slices.Equal(b, []string{"b1", "b2", "b3"}) {
		t.Fatalf("group order broken: A %v, B %v", a, b)
	}
	if !failedOnce {
		t.Fatal("the failure was never injected")
	}
}

func TestASlowHandlerKeepsItsMessagesInvisible(t *testing.T) {
	url, arn := newQueue(t, false, 2)
	h := newHandler(t, func(events.SQSEvent) (int, any, time.Duration) { return 200, nil, 5 * time.Second })
	sendBodies(t, url, "", "slow")
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 1, Concurrency: 2, HandlerTimeout: 10 * time.Second}, nil, httpInvoker(h))
	waitEmpty(t, url)
	if got := h.bodies(); len(got) != 1 {
		t.Fatalf("delivered %d times: the message became visible while its handler ran", len(got))
	}
	if e := testutil.ToFloat64(r.metrics.Extensions); e < 2 {
		t.Fatalf("%v visibility extensions for 5s at a 2s visibility timeout", e)
	}
}

func TestShutdownFinishesInFlightBatchesAndReleasesTheRestAtOnce(t *testing.T) {
	url, arn := newQueue(t, false, 300)
	started := make(chan struct{}, 1)
	h := newHandler(t, func(e events.SQSEvent) (int, any, time.Duration) {
		select {
		case started <- struct{}{}:
		default:
		}
		return 200, nil, 1500 * time.Millisecond
	})
	sendBodies(t, url, "", numbered(10)...)
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 10, BatchWindow: time.Minute, Concurrency: 1}, nil, httpInvoker(h))
	<-started
	sendBodies(t, url, "", "late1", "late2", "late3")
	eventually(t, 5*time.Second, func() error { // the late ones are received and waiting for the window
		if v, _ := counts(t, url); v != 0 {
			return fmt.Errorf("%d still visible", v)
		}
		return nil
	})
	begin := time.Now()
	r.stop(t)
	if v, f := counts(t, url); v != 3 || f != 0 {
		t.Fatalf("after shutdown: %d visible, %d in flight; want the 3 unstarted visible at once", v, f)
	}
	if d := testutil.ToFloat64(r.metrics.Deleted); d != 10 {
		t.Fatalf("in-flight batch not finished: deleted %v", d)
	}
	if took := time.Since(begin); took > 10*time.Second {
		t.Fatalf("drain took %v", took)
	}
}

// duplicatingSQS is a fake where no real part exists: standard SQS may deliver a message twice,
// fauxqs never does. It hands the first message it sees out once more in a later receive.
type duplicatingSQS struct {
	dispatch.SQSAPI
	mu   sync.Mutex
	dup  *types.Message
	done bool
}

func (d *duplicatingSQS) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	d.mu.Lock()
	if d.dup != nil && !d.done {
		d.done = true
		m := *d.dup
		d.mu.Unlock()
		return &sqs.ReceiveMessageOutput{Messages: []types.Message{m}}, nil
	}
	d.mu.Unlock()
	out, err := d.SQSAPI.ReceiveMessage(ctx, in, opts...)
	if err == nil && len(out.Messages) > 0 {
		d.mu.Lock()
		if d.dup == nil {
			m := out.Messages[0]
			d.dup = &m
		}
		d.mu.Unlock()
	}
	return out, err
}

func TestADuplicateDeliveryCarriesTheSameIdempotencyKey(t *testing.T) {
	url, arn := newQueue(t, false, 30)
	h := newHandler(t, nil)
	sendBodies(t, url, "", "once")
	start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 1}, &duplicatingSQS{SQSAPI: sqsClient}, httpInvoker(h))
	eventually(t, 10*time.Second, func() error {
		if _, keys := h.snapshot(); len(keys) < 2 {
			return fmt.Errorf("%d deliveries", len(keys))
		}
		return nil
	})
	_, keys := h.snapshot()
	if keys[0][0] == "" || keys[0][0] != keys[1][0] {
		t.Fatalf("idempotency keys %v", keys)
	}
}

func TestSQSErrorsFromAFaultyProxyRecoverWithoutLoss(t *testing.T) {
	url, arn := newQueue(t, false, 5)
	target, _ := urlParse(emulator.Endpoint)
	var faulty atomic.Bool
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if faulty.Load() {
			w.Header().Set("Content-Type", "application/x-amz-json-1.0")
			w.WriteHeader(500)
			_, _ = w.Write([]byte(`{"__type":"InternalError","message":"injected"}`))
			return
		}
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	defer proxy.Close()
	faultyClient, err := (&testenv.Fauxqs{Endpoint: proxy.URL}).Client(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	faulty.Store(true)
	h := newHandler(t, nil)
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 10, VisibilityTimeout: 5 * time.Second}, faultyClient, httpInvoker(h))
	sendBodies(t, url, "", numbered(20)...)
	eventually(t, 15*time.Second, func() error {
		if r.d.Ready() {
			return fmt.Errorf("still ready while SQS fails")
		}
		return nil
	})
	faulty.Store(false)
	waitEmpty(t, url)
	got := h.bodies()
	slices.Sort(got)
	got = slices.Compact(got)
	if !slices.Equal(got, numbered(20)) {
		t.Fatalf("handled %v", got)
	}
	eventually(t, 5*time.Second, func() error {
		if !r.d.Ready() {
			return fmt.Errorf("not ready after recovery")
		}
		return nil
	})
}

func urlParse(s string) (*url.URL, error) { return url.Parse(s) }

func TestLambdaRuntimeModeRunsAnAWSLambdaGoFunction(t *testing.T) {
	bin := filepath.Join(testenv.Build(t, "./internal/dispatch/testdata/lambdafn"), "lambdafn")
	api := &dispatch.RuntimeAPI{FunctionARN: "arn:aws:lambda:us-east-1:000000000000:function:test"}
	addr, err := api.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer api.Close()
	fn := exec.Command(bin)
	fn.Env = append(os.Environ(), "AWS_LAMBDA_RUNTIME_API="+addr, "AWS_LAMBDA_FUNCTION_NAME=test")
	var out strings.Builder
	var outMu sync.Mutex
	fn.Stdout = writerFunc(func(p []byte) (int, error) { outMu.Lock(); defer outMu.Unlock(); return out.Write(p) })
	fn.Stderr = os.Stderr
	if err := fn.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fn.Process.Kill(); _ = fn.Wait() }()

	url, arn := newQueue(t, false, 2)
	sendBodies(t, url, "", "one", "bad", "two")
	r := start(t, dispatch.Config{QueueURL: url, QueueARN: arn, BatchSize: 10, BatchWindow: 300 * time.Millisecond, ReportBatchItemFailures: true, HandlerTimeout: 5 * time.Second}, nil, api)
	eventually(t, 15*time.Second, func() error {
		if d := testutil.ToFloat64(r.metrics.Deleted); d != 2 {
			return fmt.Errorf("deleted %v", d)
		}
		return nil
	})
	if v, f := counts(t, url); v+f != 1 {
		t.Fatalf("%d visible + %d in flight, want the bad one kept", v, f)
	}
	outMu.Lock()
	defer outMu.Unlock()
	if !strings.Contains(out.String(), "handled one aws:sqs "+arn) || !strings.Contains(out.String(), "handled two") {
		t.Fatalf("function output: %q", out.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

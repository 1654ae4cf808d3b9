package depth_test

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/millrace-io/millrace/internal/depth"
	"github.com/millrace-io/millrace/internal/testenv"
)

// These tests run the monitor against the real fauxqs emulator.
var sqsClient *sqs.Client

func TestMain(m *testing.M) {
	testenv.ExitIfShort("the SQS emulator")
	f, err := testenv.StartFauxqs()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	sqsClient, err = f.Client(context.Background(), nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		f.Stop()
		os.Exit(1)
	}
	code := m.Run()
	f.Stop()
	os.Exit(code)
}

// countingAPI counts GetQueueAttributes calls on their way to SQS.
type countingAPI struct {
	calls atomic.Int64
	api   depth.API
}

func (c *countingAPI) GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	c.calls.Add(1)
	return c.api.GetQueueAttributes(ctx, in, opts...)
}

var queueSeq atomic.Int32

// newQueue creates a queue of its own for each call (tests may run more than once per process).
func newQueue(t testing.TB, name string) string {
	t.Helper()
	name = fmt.Sprintf("%s-%d", name, queueSeq.Add(1))
	out, err := sqsClient.CreateQueue(context.Background(), &sqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.QueueUrl)
}

type recorder struct {
	mu      sync.Mutex
	samples []depth.Sample
}

func (r *recorder) notify(s depth.Sample) {
	r.mu.Lock()
	r.samples = append(r.samples, s)
	r.mu.Unlock()
}
func (r *recorder) last() (depth.Sample, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.samples) == 0 {
		return depth.Sample{}, 0
	}
	return r.samples[len(r.samples)-1], len(r.samples)
}

func start(t testing.TB, api depth.API, maxInterval time.Duration) *depth.Monitor {
	t.Helper()
	m := depth.NewMonitor(api, depth.Options{MaxInterval: maxInterval, Registerer: prometheus.NewRegistry()})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = m.Start(ctx) }()
	return m
}

func TestSubscribersOfOneQueueShareOnePoller(t *testing.T) {
	url := newQueue(t, "shared")
	api := &countingAPI{api: sqsClient}
	m := start(t, api, 100*time.Millisecond)
	var a, b recorder
	m.Watch(url, "a", depth.Subscription{Interval: 100 * time.Millisecond, Notify: a.notify})
	m.Watch(url, "b", depth.Subscription{Interval: 100 * time.Millisecond, Notify: b.notify})
	for i := 0; i < 3; i++ {
		if _, err := sqsClient.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("m")}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	if m.Watched() != 1 {
		t.Fatalf("%d pollers for one queue", m.Watched())
	}
	calls := api.calls.Load()
	// One poller at 100 ms for ~1 s: about 10 calls; two independent pollers would make about 20.
	if calls < 5 || calls > 14 {
		t.Fatalf("%d GetQueueAttributes calls in 1s at a 100ms interval for two subscribers", calls)
	}
	for name, r := range map[string]*recorder{"a": &a, "b": &b} {
		s, n := r.last()
		if n == 0 || s.Visible != 3 || s.Err != nil {
			t.Fatalf("subscriber %s: %d samples, last %+v", name, n, s)
		}
	}
	m.Unwatch(url, "a")
	m.Unwatch(url, "b")
	if m.Watched() != 0 {
		t.Fatal("the poller outlived its last subscriber")
	}
	before := api.calls.Load()
	time.Sleep(300 * time.Millisecond)
	if after := api.calls.Load(); after > before+1 {
		t.Fatalf("a queue without subscribers is still polled: %d calls", after-before)
	}
}

func TestASteadyQueueIsPolledLessOften(t *testing.T) {
	url := newQueue(t, "steady")
	api := &countingAPI{api: sqsClient}
	m := depth.NewMonitor(api, depth.Options{MaxInterval: 800 * time.Millisecond, SteadyAfter: 2, Registerer: prometheus.NewRegistry()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Start(ctx) }()
	m.Watch(url, "slow", depth.Subscription{Interval: 50 * time.Millisecond})
	time.Sleep(2 * time.Second)
	steady := api.calls.Load()
	// Fixed 50 ms polling would make ~40 calls; the adaptive interval (50, 50, 100, 200, 400, 800, 800...)
	// makes under 12.
	if steady > 12 {
		t.Fatalf("%d calls in 2s on a steady queue", steady)
	}
	// A subscriber that needs speed keeps the base interval.
	m.Watch(url, "fast", depth.Subscription{Interval: 50 * time.Millisecond, Fast: true})
	time.Sleep(time.Second)
	if fast := api.calls.Load() - steady; fast < 10 {
		t.Fatalf("only %d calls in 1s with a fast subscriber at 50ms", fast)
	}
}

func TestAnIdleSubscriberIsPolledAtItsOwnIntervalNotTheFastestBase(t *testing.T) {
	url := newQueue(t, "idle")
	api := &countingAPI{api: sqsClient}
	m := depth.NewMonitor(api, depth.Options{MaxInterval: 2 * time.Second, SteadyAfter: 2, Registerer: prometheus.NewRegistry()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Start(ctx) }()
	// The Queue's status at 50 ms while it moves, and a Consumer idle at zero that needs a reading
	// every 300 ms (its idlePollInterval) whatever the queue does. The queue is steady: the
	// Queue's interval grows, and the idle Consumer's 300 ms bounds it, not the Queue's 50 ms.
	m.Watch(url, "queue", depth.Subscription{Interval: 50 * time.Millisecond})
	m.Watch(url, "consumer", depth.Subscription{Interval: 300 * time.Millisecond, Fast: true})
	time.Sleep(500 * time.Millisecond) // settle into the steady state
	before := api.calls.Load()
	time.Sleep(1500 * time.Millisecond)
	// 50 ms polling would make ~30 calls; 300 ms makes ~5.
	if calls := api.calls.Load() - before; calls < 3 || calls > 8 {
		t.Fatalf("%d calls in 1.5s, want about 5 (one per 300 ms)", calls)
	}
}

func TestReadErrorsReachSubscribers(t *testing.T) {
	m := start(t, sqsClient, time.Second)
	var r recorder
	m.Watch("http://127.0.0.1:1/000000000000/nowhere", "x", depth.Subscription{Interval: 50 * time.Millisecond, Notify: r.notify})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if s, n := r.last(); n > 0 {
			if s.Err == nil {
				t.Fatalf("reading an unreachable queue succeeded: %+v", s)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no sample")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A subscriber that turns fast (a Consumer that reached zero replicas) gets a read at once, not
// after the long interval the poller grew into on a steady queue.
func TestASubscriberTurningFastIsNotKeptWaiting(t *testing.T) {
	url := newQueue(t, "wake")
	m := depth.NewMonitor(sqsClient, depth.Options{MaxInterval: time.Minute, SteadyAfter: 1, Registerer: prometheus.NewRegistry()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Start(ctx) }()
	var r recorder
	m.Watch(url, "consumer", depth.Subscription{Interval: 50 * time.Millisecond, Notify: r.notify})
	time.Sleep(3500 * time.Millisecond) // 50, 100, 200, ..., 1600, 3200 ms: the next read is seconds away
	if _, err := sqsClient.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("m")}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // past the base interval: the last sample is stale
	start := time.Now()
	m.Watch(url, "consumer", depth.Subscription{Interval: 50 * time.Millisecond, Fast: true, Notify: r.notify})
	testenv.Eventually(t, 5*time.Second, func() error {
		if s, _ := r.last(); s.Visible != 1 {
			return fmt.Errorf("last sample %+v", s)
		}
		return nil
	})
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("the message was seen %v after the subscriber turned fast", d)
	}
}

// The same when the subscriber turns fast right after a read (the reconcile a sample triggered
// decides to scale to zero): the poller had already scheduled its next, slow read.
func TestASubscriberTurningFastJustAfterAReadIsNotKeptWaiting(t *testing.T) {
	url := newQueue(t, "wake-after-read")
	m := depth.NewMonitor(sqsClient, depth.Options{MaxInterval: time.Minute, SteadyAfter: 1, Registerer: prometheus.NewRegistry()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Start(ctx) }()
	var r recorder
	turned := make(chan time.Time, 1)
	var once sync.Once
	notify := func(s depth.Sample) {
		r.notify(s)
		if _, n := r.last(); n == 7 { // the 7th read: the next one is 3.2 s away
			once.Do(func() {
				go func() {
					m.Watch(url, "consumer", depth.Subscription{Interval: 50 * time.Millisecond, Fast: true, Notify: r.notify})
					turned <- time.Now()
				}()
			})
		}
	}
	m.Watch(url, "consumer", depth.Subscription{Interval: 50 * time.Millisecond, Notify: notify})
	at := <-turned
	if _, err := sqsClient.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("m")}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if s, _ := r.last(); s.Visible != 1 {
			return fmt.Errorf("last sample %+v", s)
		}
		return nil
	})
	if d := time.Since(at); d > time.Second {
		t.Errorf("the message was seen %v after the subscriber turned fast", d)
	}
}

// A subscriber joining a poller that other, slower subscribers keep on a long interval (a new
// Consumer at zero replicas on a Queue polled every 10 s) gets samples within its own interval,
// also when it joins right after a read.
func TestANewSubscriberIsNotKeptWaitingByASlowerOne(t *testing.T) {
	url := newQueue(t, "join")
	m := depth.NewMonitor(sqsClient, depth.Options{MaxInterval: time.Minute, SteadyAfter: 1, Registerer: prometheus.NewRegistry()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Start(ctx) }()
	var queue, consumer recorder
	joined := make(chan time.Time, 1)
	var once sync.Once
	notify := func(s depth.Sample) {
		queue.notify(s)
		if _, n := queue.last(); n == 2 { // right after a read (the start and the first Watch make two); the next is 10 s away
			once.Do(func() {
				go func() {
					m.Watch(url, "consumer", depth.Subscription{Interval: 50 * time.Millisecond, Fast: true, Notify: consumer.notify})
					joined <- time.Now()
				}()
			})
		}
	}
	m.Watch(url, "queue", depth.Subscription{Interval: 10 * time.Second, Notify: notify})
	at := <-joined
	if _, err := sqsClient.SendMessage(context.Background(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String("m")}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, func() error {
		if s, _ := consumer.last(); s.Visible != 1 {
			return fmt.Errorf("last sample %+v", s)
		}
		return nil
	})
	if d := time.Since(at); d > time.Second {
		t.Errorf("the message was seen %v after the subscriber joined", d)
	}
}

// failingAPI refuses every reading, as SQS does for a deleted queue or a role that cannot be assumed.
type failingAPI struct{ calls atomic.Int64 }

func (f *failingAPI) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	f.calls.Add(1)
	return nil, fmt.Errorf("AWS.SimpleQueueService.NonExistentQueue: the queue does not exist")
}

// A queue whose readings fail is read less and less often (doubling up to MaxInterval), not at
// the base interval; the first failure still reaches the subscribers at once, and every failed
// reading is notified.
func TestAQueueThatCannotBeReadIsPolledWithBackoff(t *testing.T) {
	api := &failingAPI{}
	m := depth.NewMonitor(api, depth.Options{MaxInterval: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = m.Start(ctx) }()
	rec := &recorder{}
	start := time.Now()
	m.Watch("http://sqs.example/000000000000/gone", "q", depth.Subscription{Interval: 20 * time.Millisecond, Fast: true, Notify: rec.notify})
	deadline := time.Now().Add(2 * time.Second)
	for {
		if s, n := rec.last(); n > 0 {
			if s.Err == nil {
				t.Fatal("a failed reading was notified without its error")
			}
			if d := time.Since(start); d > 500*time.Millisecond {
				t.Fatalf("the first failure reached the subscriber after %v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failure never reached the subscriber")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(600 * time.Millisecond)
	// At the base interval that is ~30 readings; backing off (20, 40, 80, 160, 320 ms) about 6.
	calls := api.calls.Load()
	if calls > 10 {
		t.Fatalf("%d readings of a failing queue in ~600 ms at a 20 ms base interval: no backoff", calls)
	}
	if _, n := rec.last(); int64(n) != calls {
		t.Fatalf("%d failed readings but %d notifications", calls, n)
	}
}

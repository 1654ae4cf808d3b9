package depth

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// Sample is one reading of a queue's approximate counts.
type Sample struct {
	Visible  int64
	InFlight int64
	Delayed  int64
	// At is when the reading was taken.
	At time.Time
	// Err is set when the counts could not be read; the counts are then zero and meaningless.
	Err error
}

// SameCounts reports whether two samples carry the same counts (and both succeeded).
func (s Sample) SameCounts(o Sample) bool {
	return s.Err == nil && o.Err == nil && s.Visible == o.Visible && s.InFlight == o.InFlight && s.Delayed == o.Delayed
}

// API is the part of the SQS client the monitor uses.
type API interface {
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// Subscription is what one subscriber wants from a queue's poller.
type Subscription struct {
	// Interval is the slowest acceptable interval while the queue moves; the poller uses the
	// smallest of its subscribers'.
	Interval time.Duration
	// Fast asks for a reading at least every Interval even while the queue is steady (a Consumer
	// idle at zero waiting for its first message). Without it the interval of a steady queue
	// doubles up to the monitor's MaxInterval.
	Fast bool
	// Notify receives every sample. It must not block.
	Notify func(Sample)
}

// Monitor owns one poller per queue URL.
type Monitor struct {
	api         API
	maxInterval time.Duration
	steadyAfter int
	log         logr.Logger
	gauge       *prometheus.GaugeVec
	polls       *prometheus.CounterVec

	mu      sync.Mutex
	ctx     context.Context
	pollers map[string]*poller
}

// Options configure a Monitor.
type Options struct {
	// MaxInterval is the ceiling of the adaptive interval (default 60s).
	MaxInterval time.Duration
	// SteadyAfter is how many unchanged samples make a queue steady (default 5).
	SteadyAfter int
	// Registerer receives the gauges; nil registers nothing.
	Registerer prometheus.Registerer
	Log        logr.Logger
}

// NewMonitor creates a monitor; pollers start when Start has been called and a queue is watched.
func NewMonitor(api API, opts Options) *Monitor {
	if opts.MaxInterval <= 0 {
		opts.MaxInterval = time.Minute
	}
	if opts.SteadyAfter <= 0 {
		opts.SteadyAfter = 5
	}
	m := &Monitor{
		api:         api,
		maxInterval: opts.MaxInterval,
		steadyAfter: opts.SteadyAfter,
		log:         opts.Log,
		pollers:     map[string]*poller{},
		gauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "millrace_queue_messages",
			Help: "Approximate messages in an SQS queue, by state (visible, in_flight, delayed).",
		}, []string{"queue", "state"}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "millrace_depth_polls_total",
			Help: "Queue depth readings taken by the shared monitor, by queue and result.",
		}, []string{"queue", "result"}),
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(m.gauge, m.polls)
	}
	return m
}

// Start runs the monitor until ctx ends (a controller-runtime Runnable).
func (m *Monitor) Start(ctx context.Context) error {
	m.mu.Lock()
	m.ctx = ctx
	for _, p := range m.pollers {
		p.start(ctx)
	}
	m.mu.Unlock()
	<-ctx.Done()
	return nil
}

// Watch subscribes id to the queue's samples, replacing an earlier subscription of the same id.
func (m *Monitor) Watch(queueURL, id string, sub Subscription) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pollers[queueURL]
	if !ok {
		p = &poller{monitor: m, url: queueURL, name: queueNameOf(queueURL), subs: map[string]Subscription{}, wake: make(chan struct{}, 1)}
		m.pollers[queueURL] = p
		if m.ctx != nil {
			p.start(m.ctx)
		}
	}
	p.mu.Lock()
	old, existed := p.subs[id]
	p.subs[id] = sub
	last := p.last
	p.mu.Unlock()
	if !existed || (sub.Fast && !old.Fast) || sub.Interval < old.Interval {
		// A subscriber that joins, or now needs samples sooner (a Consumer that just reached zero
		// replicas and must wake on the first message), must not wait out the slow interval the
		// poller grew into while the queue was steady, nor the slower interval of the subscribers
		// it joins: read within one of its intervals. Subscribers joining at once cost one read:
		// their pokes coalesce.
		if wait := sub.Interval - time.Since(last.At); last.At.IsZero() || wait <= 0 {
			p.poke()
		} else {
			time.AfterFunc(wait, p.poke)
		}
	}
	if !existed {
		// A new subscriber gets the newest sample at once.
		if !last.At.IsZero() && sub.Notify != nil {
			sub.Notify(last)
		}
	}
}

// Unwatch removes id's subscription; the poller stops when no subscriber is left.
func (m *Monitor) Unwatch(queueURL, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.pollers[queueURL]
	if !ok {
		return
	}
	p.mu.Lock()
	delete(p.subs, id)
	empty := len(p.subs) == 0
	p.mu.Unlock()
	if empty {
		delete(m.pollers, queueURL)
		p.stop()
		for _, state := range []string{"visible", "in_flight", "delayed"} {
			m.gauge.DeleteLabelValues(p.name, state)
		}
	}
}

// Poke makes the poller of queueURL, if any, read at once: the queue was just created again, and a
// poller backing off from the readings that said it was missing need not wait out its backoff.
func (m *Monitor) Poke(queueURL string) {
	m.mu.Lock()
	p, ok := m.pollers[queueURL]
	m.mu.Unlock()
	if ok {
		p.poke()
	}
}

// Subscribers returns how many subscribers the poller of queueURL has (0 without a poller).
func (m *Monitor) Subscribers(queueURL string) int {
	m.mu.Lock()
	p, ok := m.pollers[queueURL]
	m.mu.Unlock()
	if !ok {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.subs)
}

// Latest returns the newest sample of a queue, if it has been read.
func (m *Monitor) Latest(queueURL string) (Sample, bool) {
	m.mu.Lock()
	p, ok := m.pollers[queueURL]
	m.mu.Unlock()
	if !ok {
		return Sample{}, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last, !p.last.At.IsZero()
}

// Polls is the counter of depth readings, by queue name and result ("ok", "error").
func (m *Monitor) Polls() *prometheus.CounterVec { return m.polls }

// Watched returns how many queues have a poller.
func (m *Monitor) Watched() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.pollers)
}

type poller struct {
	monitor *Monitor
	url     string
	name    string
	wake    chan struct{}
	cancel  context.CancelFunc

	mu        sync.Mutex
	subs      map[string]Subscription
	last      Sample
	unchanged int
	// failures counts the failed readings in a row; the interval backs off while it grows.
	failures int
}

func (p *poller) start(ctx context.Context) {
	ctx, p.cancel = context.WithCancel(ctx)
	go p.run(ctx)
}

func (p *poller) stop() {
	if p.cancel != nil {
		p.cancel()
	}
}

// poke makes the poller read at once (a new subscriber should not wait a whole interval).
func (p *poller) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *poller) policy() IntervalPolicy {
	p.mu.Lock()
	defer p.mu.Unlock()
	var base, ceiling time.Duration
	for _, s := range p.subs {
		if s.Interval <= 0 {
			continue
		}
		if s.Fast && (ceiling == 0 || s.Interval < ceiling) {
			ceiling = s.Interval
		}
		if !s.Fast && (base == 0 || s.Interval < base) {
			base = s.Interval
		}
	}
	if base == 0 {
		base = ceiling
	}
	if base == 0 {
		base = 10 * time.Second
	}
	return IntervalPolicy{Base: base, Max: max(p.monitor.maxInterval, base), SteadyAfter: p.monitor.steadyAfter, Ceiling: ceiling}
}

func (p *poller) run(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	interval := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-p.wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		sample := p.read(ctx)
		if ctx.Err() != nil {
			return
		}
		policy := p.policy()
		p.mu.Lock()
		if sample.SameCounts(p.last) {
			p.unchanged++
		} else {
			p.unchanged = 0
		}
		if sample.Err != nil {
			p.failures++
		} else {
			p.failures = 0
		}
		failures := p.failures
		p.last = sample
		unchanged := p.unchanged
		subs := make([]Subscription, 0, len(p.subs))
		for _, s := range p.subs {
			subs = append(subs, s)
		}
		p.mu.Unlock()
		for _, s := range subs {
			if s.Notify != nil {
				s.Notify(sample)
			}
		}
		if failures > 0 {
			// Back off from a queue that cannot be read rather than fail at the base interval
			// forever (each failure may cost an STS or SQS call that is itself refused).
			interval = policy.AfterErrors(failures)
		} else {
			interval = policy.Next(interval, unchanged)
		}
		timer.Reset(interval)
	}
}

var countAttributes = []types.QueueAttributeName{
	types.QueueAttributeNameApproximateNumberOfMessages,
	types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
	types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
}

func (p *poller) read(ctx context.Context) Sample {
	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := p.monitor.api.GetQueueAttributes(callCtx, &sqs.GetQueueAttributesInput{
		QueueUrl:       &p.url,
		AttributeNames: countAttributes,
	})
	now := time.Now()
	if err != nil {
		p.monitor.polls.WithLabelValues(p.name, "error").Inc()
		if ctx.Err() == nil {
			p.monitor.log.V(1).Info("reading queue depth failed", "queue", p.name, "error", err.Error())
		}
		return Sample{At: now, Err: err}
	}
	p.monitor.polls.WithLabelValues(p.name, "ok").Inc()
	s := Sample{
		At:       now,
		Visible:  count(out.Attributes, types.QueueAttributeNameApproximateNumberOfMessages),
		InFlight: count(out.Attributes, types.QueueAttributeNameApproximateNumberOfMessagesNotVisible),
		Delayed:  count(out.Attributes, types.QueueAttributeNameApproximateNumberOfMessagesDelayed),
	}
	p.monitor.gauge.WithLabelValues(p.name, "visible").Set(float64(s.Visible))
	p.monitor.gauge.WithLabelValues(p.name, "in_flight").Set(float64(s.InFlight))
	p.monitor.gauge.WithLabelValues(p.name, "delayed").Set(float64(s.Delayed))
	return s
}

func count(attrs map[string]string, name types.QueueAttributeName) int64 {
	n, _ := strconv.ParseInt(attrs[string(name)], 10, 64)
	return n
}

func queueNameOf(url string) string {
	if i := strings.LastIndex(url, "/"); i >= 0 {
		return url[i+1:]
	}
	return url
}

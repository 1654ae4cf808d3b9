package dispatch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/go-logr/logr"
	"golang.org/x/sync/semaphore"

	"github.com/millrace-io/millrace/internal/callback"
)

// SQSAPI is the part of the SQS client the dispatcher uses.
type SQSAPI interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessageBatch(ctx context.Context, in *sqs.DeleteMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error)
	ChangeMessageVisibilityBatch(ctx context.Context, in *sqs.ChangeMessageVisibilityBatchInput, opts ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
}

// Config are the dispatcher's settings.
type Config struct {
	QueueURL string
	// QueueARN is sent as eventSourceARN; empty: read from the queue's attributes at start.
	QueueARN string
	FIFO     bool
	Region   string
	// FunctionName names the function in the invokedFunctionArn a Lambda runtime gets
	// (arn:aws:lambda:<region>:<account of the queue>:function:<FunctionName>); empty: the queue's
	// name.
	FunctionName string
	// BatchSize is the most messages per event (default 10).
	BatchSize int
	// BatchWindow gathers messages for up to this long before delivering a batch smaller than
	// BatchSize (Standard queues; 0 delivers each receive's messages at once).
	BatchWindow time.Duration
	// Concurrency is how many batches are handled at once (default 1).
	Concurrency int
	// HandlerTimeout bounds one delivery (default 30s).
	HandlerTimeout time.Duration
	// ReportBatchItemFailures honours batchItemFailures in the handler's answer; otherwise any 2xx
	// deletes the whole batch.
	ReportBatchItemFailures bool
	// FailureBackoff, when set, makes failed messages visible again after this long instead of
	// after the queue's visibility timeout.
	FailureBackoff time.Duration
	// VisibilityTimeout is the queue's; 0 reads it from SQS at start.
	VisibilityTimeout time.Duration
	// WaitTime is the long-poll wait of each receive (default 20s).
	WaitTime time.Duration
	// Pollers is how many receives run at once (default: enough to fill Concurrency batches).
	Pollers int
	// UnhealthyAfter consecutive failed receives make the dispatcher not ready (default 3).
	UnhealthyAfter int
	// ReportTimeout bounds the retries of one batch's workflow task reports (default 30s); a
	// report still not accepted keeps its message for another delivery.
	ReportTimeout time.Duration
}

func (c *Config) defaults() {
	if c.BatchSize <= 0 {
		c.BatchSize = 10
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 1
	}
	if c.HandlerTimeout <= 0 {
		c.HandlerTimeout = 30 * time.Second
	}
	if c.WaitTime <= 0 {
		c.WaitTime = 20 * time.Second
	}
	if c.Pollers <= 0 {
		c.Pollers = min(max(1, c.Concurrency*((c.BatchSize+9)/10)), 16)
	}
	if c.UnhealthyAfter <= 0 {
		c.UnhealthyAfter = 3
	}
	if c.ReportTimeout <= 0 {
		c.ReportTimeout = 30 * time.Second
	}
}

// Dispatcher moves messages from a queue to a handler.
type Dispatcher struct {
	cfg      Config
	sqs      SQSAPI
	invoker  Invoker
	callback *CallbackClient
	metrics  *Metrics
	log      logr.Logger

	capacity *semaphore.Weighted
	incoming chan []*message
	done     chan batchResult
	ready    atomic.Bool
	failures atomic.Int32
	settling sync.WaitGroup  // deliveries not yet settled (deleted, reported)
	running  context.Context // Run's context: ends when draining starts
}

// message is a received message while the dispatcher holds it.
type message struct {
	m        types.Message
	group    string
	deadline time.Time // when its visibility ends, as far as the dispatcher knows
	inFlight bool
	// stopAt (Unix nanoseconds) is the handler's deadline once the batch was handed over: its
	// visibility is not extended beyond it. 0: not handed over yet (waiting for a runtime).
	stopAt atomic.Int64
}

type batch struct {
	msgs  []*message
	group string
}

type batchResult struct {
	b       batch
	failed  map[string]bool // message ids not deleted
	whole   bool            // the whole batch failed
	elapsed time.Duration
}

// New creates a dispatcher. callback may be nil (no workflow task reporting).
func New(cfg Config, api SQSAPI, invoker Invoker, callback *CallbackClient, metrics *Metrics, log logr.Logger) *Dispatcher {
	cfg.defaults()
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	// Room for every running batch, as many being settled, and one being assembled, so receiving
	// and deleting overlap handling.
	capacity := int64((2*cfg.Concurrency + 1) * cfg.BatchSize)
	if cfg.FIFO {
		capacity = max(capacity, int64((cfg.Concurrency+1)*10))
	}
	return &Dispatcher{
		cfg: cfg, sqs: api, invoker: invoker, callback: callback, metrics: metrics, log: log,
		capacity: semaphore.NewWeighted(capacity),
		incoming: make(chan []*message, cfg.Pollers),
		done:     make(chan batchResult, cfg.Concurrency),
	}
}

// Ready reports whether the dispatcher can reach SQS (for the readiness probe).
func (d *Dispatcher) Ready() bool { return d.ready.Load() }

// Run dispatches until ctx ends, then drains: it stops receiving, makes every received but
// unstarted message visible again at once, and lets in-flight batches finish (their own deadline
// is the handler timeout). It returns when nothing is left in hand.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.resolve(ctx)
	if s, ok := d.invoker.(FunctionARNSetter); ok {
		s.SetFunctionARN(FunctionARN(d.cfg.QueueARN, d.cfg.Region, d.cfg.FunctionName))
	}
	d.running = ctx
	d.ready.Store(true)
	if s, ok := d.invoker.(Starter); ok {
		d.log.Info("waiting for the handler to ask for work before receiving")
		select {
		case <-s.Started():
		case <-ctx.Done():
			return nil
		}
	}
	var pollers sync.WaitGroup
	for i := 0; i < d.cfg.Pollers; i++ {
		pollers.Add(1)
		go func() {
			defer pollers.Done()
			d.poll(ctx)
		}()
	}
	pollersDone := make(chan struct{})
	go func() { pollers.Wait(); close(pollersDone) }()
	err := d.coordinate(ctx, pollersDone)
	d.settling.Wait()
	return err
}

// resolve reads what the configuration leaves out from the queue's attributes, in one call: its
// visibility timeout and its ARN (eventSourceARN, and the account of the function's ARN).
func (d *Dispatcher) resolve(ctx context.Context) {
	var names []types.QueueAttributeName
	if d.cfg.VisibilityTimeout <= 0 {
		names = append(names, types.QueueAttributeNameVisibilityTimeout)
	}
	if d.cfg.QueueARN == "" {
		names = append(names, types.QueueAttributeNameQueueArn)
	}
	if len(names) == 0 {
		return
	}
	out, err := d.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(d.cfg.QueueURL), AttributeNames: names})
	var attrs map[string]string
	if err == nil {
		attrs = out.Attributes
	}
	if d.cfg.QueueARN == "" {
		d.cfg.QueueARN = attrs[string(types.QueueAttributeNameQueueArn)]
		if d.cfg.QueueARN == "" {
			d.log.Info("could not read the queue's ARN; eventSourceARN will be empty", "error", err)
		}
	}
	if d.cfg.VisibilityTimeout <= 0 {
		if s, err := strconv.Atoi(attrs[string(types.QueueAttributeNameVisibilityTimeout)]); err == nil && s > 0 {
			d.cfg.VisibilityTimeout = time.Duration(s) * time.Second
		} else {
			d.log.Info("could not read the queue's visibility timeout; assuming 30s", "error", err)
			d.cfg.VisibilityTimeout = 30 * time.Second
		}
	}
}

// FunctionARN is the Lambda function ARN a handler sees as invokedFunctionArn for a consumer of the
// queue: arn:<partition>:lambda:<region>:<account>:function:<name>, with the partition, region and
// account of the queue's ARN (region, then 000000000000, when the ARN is unknown) and the queue's
// name when name is empty.
func FunctionARN(queueARN, region, name string) string {
	partition, account := "aws", "000000000000"
	// arn:partition:sqs:region:account:queue
	if parts := strings.SplitN(queueARN, ":", 6); len(parts) == 6 && parts[0] == "arn" {
		partition, account = parts[1], parts[4]
		if parts[3] != "" {
			region = parts[3]
		}
		if name == "" {
			name = strings.TrimSuffix(parts[5], ".fifo")
		}
	}
	return "arn:" + partition + ":lambda:" + region + ":" + account + ":function:" + name
}

// poll receives messages while there is room for them. A receive in progress when ctx ends is
// allowed to finish, and its messages are released at once.
func (d *Dispatcher) poll(ctx context.Context) {
	backoff := newBackoff()
	want := int64(min(10, d.cfg.BatchSize))
	if d.cfg.FIFO {
		want = 10
	}
	for ctx.Err() == nil {
		if err := d.capacity.Acquire(ctx, want); err != nil {
			return
		}
		out, err := d.sqs.ReceiveMessage(context.WithoutCancel(ctx), &sqs.ReceiveMessageInput{
			QueueUrl:                    aws.String(d.cfg.QueueURL),
			MaxNumberOfMessages:         int32(want),
			WaitTimeSeconds:             int32(d.cfg.WaitTime / time.Second),
			MessageAttributeNames:       []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameAll},
		})
		if err != nil {
			d.capacity.Release(want)
			d.metrics.SQSErrors.WithLabelValues("ReceiveMessage").Inc()
			if d.failures.Add(1) >= int32(d.cfg.UnhealthyAfter) {
				d.ready.Store(false)
			}
			d.log.V(1).Info("receive failed", "error", err.Error())
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff.next()):
			}
			continue
		}
		backoff.reset()
		d.failures.Store(0)
		d.ready.Store(true)
		got := int64(len(out.Messages))
		if got < want {
			d.capacity.Release(want - got)
		}
		if got == 0 {
			continue
		}
		d.metrics.Received.Add(float64(got))
		d.metrics.InHand.Add(float64(got))
		now := time.Now()
		msgs := make([]*message, 0, got)
		for _, m := range out.Messages {
			msgs = append(msgs, &message{m: m, group: m.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)],
				deadline: now.Add(d.cfg.VisibilityTimeout)})
		}
		d.incoming <- msgs
	}
}

// coordinate owns every message in hand: it forms batches, starts deliveries, keeps visibility
// leases, and on shutdown releases what was not started.
func (d *Dispatcher) coordinate(ctx context.Context, pollersDone <-chan struct{}) error {
	var (
		pending    []*message                // received, not started (Standard), in arrival order
		groups     = map[string][]*message{} // FIFO: pending per group, in order
		groupOrder []string
		busy       = map[string]bool{}
		inFlight   = map[*message]bool{}
		active     int
		oldest     time.Time
		stopping   bool
		pollersEnd = pollersDone
	)
	lease := time.NewTicker(leaseTick(d.cfg.VisibilityTimeout))
	defer lease.Stop()
	window := time.NewTimer(time.Hour)
	window.Stop()

	start := func(b batch) {
		active++
		busy[b.group] = d.cfg.FIFO
		var stopAt int64 // set at hand-over for a HandOverInvoker
		if !d.handsOver() {
			stopAt = time.Now().Add(d.cfg.HandlerTimeout).UnixNano()
		}
		for _, m := range b.msgs {
			m.inFlight = true
			m.stopAt.Store(stopAt)
			inFlight[m] = true
		}
		d.metrics.InFlight.Inc()
		d.settling.Add(1)
		go func() {
			defer d.settling.Done()
			d.deliver(b)
		}()
	}
	schedule := func(flush bool) {
		if stopping {
			return
		}
		if d.cfg.FIFO {
			for _, g := range groupOrder {
				if active >= d.cfg.Concurrency {
					return
				}
				if busy[g] || len(groups[g]) == 0 {
					continue
				}
				n := min(len(groups[g]), d.cfg.BatchSize)
				start(batch{msgs: slices.Clone(groups[g][:n]), group: g})
				groups[g] = groups[g][n:]
			}
			groupOrder = slices.DeleteFunc(groupOrder, func(g string) bool { return len(groups[g]) == 0 && !busy[g] })
			return
		}
		for active < d.cfg.Concurrency && len(pending) > 0 && (flush || len(pending) >= d.cfg.BatchSize || time.Since(oldest) >= d.cfg.BatchWindow) {
			n := min(len(pending), d.cfg.BatchSize)
			start(batch{msgs: slices.Clone(pending[:n])})
			pending = pending[n:]
			flush = false
			if len(pending) > 0 {
				oldest = time.Now()
			}
		}
		if len(pending) > 0 && d.cfg.BatchWindow > 0 {
			window.Reset(time.Until(oldest.Add(d.cfg.BatchWindow)))
		}
	}
	add := func(msgs []*message) {
		if stopping {
			d.release(msgs)
			return
		}
		if d.cfg.FIFO {
			for _, m := range msgs {
				if !slices.Contains(groupOrder, m.group) {
					groupOrder = append(groupOrder, m.group)
				}
				groups[m.group] = append(groups[m.group], m)
			}
			return
		}
		if len(pending) == 0 {
			oldest = time.Now()
		}
		pending = append(pending, msgs...)
	}
	unstarted := func() []*message {
		out := slices.Clone(pending)
		pending = nil
		for g, ms := range groups {
			out = append(out, ms...)
			delete(groups, g)
		}
		groupOrder = nil
		return out
	}

	for {
		if stopping && pollersEnd == nil && active == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			if !stopping {
				stopping = true
				window.Stop()
				d.log.Info("draining", "inFlightBatches", active)
				d.release(unstarted())
			}
			ctx = context.Background() // only once
		case <-pollersEnd:
			pollersEnd = nil
			if !stopping {
				// pollers only end when ctx ends; keep the loop honest anyway
				stopping = true
				d.release(unstarted())
			}
		case msgs := <-d.incoming:
			add(msgs)
			schedule(false)
		case <-window.C:
			schedule(true)
		case r := <-d.done:
			active--
			busy[r.b.group] = false
			for _, m := range r.b.msgs {
				delete(inFlight, m)
			}
			d.metrics.InFlight.Dec()
			if d.cfg.FIFO && len(r.failed) > 0 {
				// A failure stops the group: its later messages must not overtake the failed one.
				if later := groups[r.b.group]; len(later) > 0 {
					delete(groups, r.b.group)
					d.release(later)
				}
			}
			schedule(false)
		case <-lease.C:
			d.extend(pending, groups, inFlight)
		}
	}
}

func leaseTick(visibility time.Duration) time.Duration {
	return min(max(visibility/6, 200*time.Millisecond), 5*time.Second)
}

func (d *Dispatcher) handsOver() bool {
	_, ok := d.invoker.(HandOverInvoker)
	return ok
}

// extend renews the visibility of messages in hand whose lease has less than half of the visibility
// timeout left; in-flight messages are not extended past their handler deadline.
func (d *Dispatcher) extend(pending []*message, groups map[string][]*message, inFlight map[*message]bool) {
	now := time.Now()
	half := d.cfg.VisibilityTimeout / 2
	var due []*message
	consider := func(m *message) {
		if m.deadline.Sub(now) > half {
			return
		}
		if stop := m.stopAt.Load(); m.inFlight && stop != 0 && stop <= m.deadline.UnixNano() {
			return
		}
		due = append(due, m)
	}
	for _, m := range pending {
		consider(m)
	}
	for _, ms := range groups {
		for _, m := range ms {
			consider(m)
		}
	}
	for m := range inFlight {
		consider(m)
	}
	if len(due) == 0 {
		return
	}
	seconds := int32(d.cfg.VisibilityTimeout / time.Second)
	ok := d.changeVisibility(due, seconds)
	for _, m := range ok {
		m.deadline = now.Add(d.cfg.VisibilityTimeout)
	}
	d.metrics.Extensions.Add(float64(len(ok)))
}

// release makes messages visible again at once and gives their room back.
func (d *Dispatcher) release(msgs []*message) {
	if len(msgs) == 0 {
		return
	}
	d.changeVisibility(msgs, 0)
	d.metrics.Released.Add(float64(len(msgs)))
	d.letGo(len(msgs))
}

func (d *Dispatcher) letGo(n int) {
	d.capacity.Release(int64(n))
	d.metrics.InHand.Sub(float64(n))
}

// changeVisibility sets the visibility of messages in batches of ten, returning those that took it.
func (d *Dispatcher) changeVisibility(msgs []*message, seconds int32) []*message {
	var ok []*message
	for chunk := range slices.Chunk(msgs, 10) {
		entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.m.ReceiptHandle, VisibilityTimeout: seconds}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := d.sqs.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(d.cfg.QueueURL), Entries: entries})
		cancel()
		if err != nil {
			d.metrics.SQSErrors.WithLabelValues("ChangeMessageVisibilityBatch").Inc()
			d.log.V(1).Info("changing visibility failed", "error", err.Error())
			continue
		}
		for _, s := range out.Successful {
			i, _ := strconv.Atoi(aws.ToString(s.Id))
			ok = append(ok, chunk[i])
		}
	}
	return ok
}

// deliver hands one batch to the handler and settles it: deletes what succeeded, keeps (or backs
// off) what failed, reports workflow tasks, then tells the coordinator.
func (d *Dispatcher) deliver(b batch) {
	records := make([]events.SQSMessage, len(b.msgs))
	keys := make([]string, len(b.msgs))
	for i, m := range b.msgs {
		records[i] = toRecord(m.m, d.cfg.QueueARN, d.cfg.Region)
		keys[i] = idempotencyKey(m.m)
	}
	event := events.SQSEvent{Records: records}
	var (
		outcome   Outcome
		err       error
		started   time.Time
		stopBeats = func() {}
	)
	begin := func() {
		started = time.Now()
		d.metrics.Delivered.Add(float64(len(b.msgs)))
		d.metrics.BatchSize.Observe(float64(len(b.msgs)))
		for _, m := range b.msgs {
			if n, err := strconv.Atoi(m.m.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]); err == nil {
				d.metrics.ReceiveCount.Observe(float64(n))
			}
		}
		stopBeats = d.heartbeats(b)
	}
	if h, ok := d.invoker.(HandOverInvoker); ok {
		// A batch waits for a runtime until draining starts (or the invoker gives up: no runtime
		// connected for a while).
		outcome, err = h.HandOver(d.running, event, d.cfg.HandlerTimeout, func(deadline time.Time) {
			for _, m := range b.msgs {
				m.stopAt.Store(deadline.UnixNano())
			}
			begin()
		})
		if errors.Is(err, ErrNotHandedOver) {
			if d.running.Err() == nil {
				d.log.Info("no runtime took the batch; released it", "messages", len(b.msgs))
			}
			d.unstarted(b)
			return
		}
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), d.cfg.HandlerTimeout)
		begin()
		outcome, err = d.invoker.Invoke(ctx, event, keys)
		cancel()
	}
	stopBeats()
	elapsed := time.Since(started)
	d.metrics.HandlerTime.Observe(elapsed.Seconds())

	failed := map[string]bool{}
	var cause string
	failAll := func(why string) {
		cause = why
		for _, k := range keys {
			failed[k] = true
		}
	}
	if err != nil {
		failAll(err.Error())
		d.log.Info("batch failed", "messages", len(keys), "error", cause)
	} else if d.cfg.ReportBatchItemFailures {
		ids, perr := batchItemFailures(outcome.Output)
		if perr != nil {
			// As in Lambda: an answer that cannot be read fails the whole batch.
			failAll(perr.Error())
			d.log.Info("batch failed", "messages", len(keys), "error", cause)
		}
		known := map[string]bool{}
		for _, k := range keys {
			known[k] = true
		}
		for _, id := range ids {
			if !known[id] {
				// An identifier that is not in the batch makes Lambda treat the whole batch as failed.
				failAll(fmt.Sprintf("batchItemFailures names %q, which is not in the batch", truncate([]byte(id), 128)))
				break
			}
			// Only what the handler names fails, in FIFO groups too: Lambda deletes the messages
			// reported done even after a failed one of the same group (stopping at the first
			// failure is the function's job).
			failed[id] = true
			cause = "reported in batchItemFailures"
		}
	}
	var succeeded, failing []*message
	for _, m := range b.msgs {
		if failed[idempotencyKey(m.m)] {
			failing = append(failing, m)
		} else {
			succeeded = append(succeeded, m)
		}
	}
	d.metrics.Succeeded.Add(float64(len(succeeded)))
	d.metrics.Failed.Add(float64(len(failing)))
	result := batchResult{b: b, failed: failed, whole: err != nil, elapsed: elapsed}
	if len(failing) == 0 {
		result.failed = nil
	}
	if !d.cfg.FIFO {
		// The handler is free: its concurrency slot goes back now, and settling (deletes, reports)
		// overlaps the next delivery. The messages stay in hand (capacity) until settled.
		d.done <- result
	}
	// Report before deleting: a task whose result could not be reported is not deleted, so it comes
	// back after its visibility timeout and is handled (and reported) again.
	if lost := d.report(succeeded, failing, outcome.Output, cause); len(lost) > 0 {
		succeeded = slices.DeleteFunc(succeeded, func(m *message) bool { return lost[m] })
	}
	d.deleteAll(succeeded)
	if d.cfg.FailureBackoff > 0 && len(failing) > 0 {
		d.changeVisibility(failing, int32(d.cfg.FailureBackoff/time.Second))
	}
	d.letGo(len(b.msgs))
	if d.cfg.FIFO {
		// FIFO: a group's next batch starts only once this one is settled.
		d.done <- result
	}
}

// unstarted gives back a batch no runtime took (the dispatcher began draining, or none asked in
// time): its messages are released at once, like every other unstarted message.
func (d *Dispatcher) unstarted(b batch) {
	result := batchResult{b: b}
	if !d.cfg.FIFO {
		d.done <- result
	}
	d.release(b.msgs)
	if d.cfg.FIFO {
		d.done <- result
	}
}

// heartbeats reports heartbeats for the batch's workflow tasks that ask for them, until stopped.
func (d *Dispatcher) heartbeats(b batch) (stop func()) {
	if d.callback == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, m := range b.msgs {
		token, every := taskToken(m.m), heartbeatEvery(m.m)
		if token == "" || every <= 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if err := d.callback.TaskHeartbeat(ctx, token); err != nil {
						d.log.V(1).Info("heartbeat not accepted", "error", err.Error())
					}
				}
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}

// deleteAll deletes messages in batches of ten, retrying failed entries with backoff; a message
// that still cannot be deleted simply reappears after its visibility timeout (at-least-once).
func (d *Dispatcher) deleteAll(msgs []*message) {
	for chunk := range slices.Chunk(msgs, 10) {
		left := chunk
		backoff := newBackoff()
		for attempt := 0; attempt < 5 && len(left) > 0; attempt++ {
			if attempt > 0 {
				time.Sleep(backoff.next())
			}
			entries := make([]types.DeleteMessageBatchRequestEntry, len(left))
			for i, m := range left {
				entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.m.ReceiptHandle}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, err := d.sqs.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(d.cfg.QueueURL), Entries: entries})
			cancel()
			if err != nil {
				d.metrics.SQSErrors.WithLabelValues("DeleteMessageBatch").Inc()
				continue
			}
			d.metrics.Deleted.Add(float64(len(out.Successful)))
			var retry []*message
			for _, f := range out.Failed {
				i, _ := strconv.Atoi(aws.ToString(f.Id))
				if !f.SenderFault {
					retry = append(retry, left[i])
				}
			}
			left = retry
		}
	}
}

// report sends the results of workflow task messages to the manager, retrying with backoff for up
// to ReportTimeout. It returns the messages whose report could not be delivered (neither accepted
// nor finally refused): the caller keeps them in the queue, so they are received and handled
// again once their visibility timeout ends.
func (d *Dispatcher) report(succeeded, failing []*message, output []byte, cause string) map[*message]bool {
	if d.callback == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.cfg.ReportTimeout)
	defer cancel()
	lost := map[*message]bool{}
	for _, m := range succeeded {
		if t := taskToken(m.m); t != "" && !d.send(ctx, func() error { return d.reportSuccess(ctx, t, output) }) {
			lost[m] = true
		}
	}
	for _, m := range failing {
		if t := taskToken(m.m); t != "" && !d.send(ctx, func() error { return d.callback.TaskFailure(ctx, t, "Handler.Failed", cause) }) {
			lost[m] = true
		}
	}
	return lost
}

// reportSuccess reports a task's output, or, when the output is over the callback API's limit,
// the task's failure with States.DataLimitExceeded (Step Functions' error for a result too large),
// so the run moves on (a Catch may handle it) instead of waiting for a result that cannot come.
func (d *Dispatcher) reportSuccess(ctx context.Context, token string, output []byte) error {
	err := d.callback.TaskSuccess(ctx, token, output)
	var tooLarge *TooLargeError
	if !errors.As(err, &tooLarge) {
		return err
	}
	d.metrics.TaskReports.WithLabelValues("too_large").Inc()
	return d.callback.TaskFailure(ctx, token, "States.DataLimitExceeded",
		fmt.Sprintf("the task's output (%d bytes reported) is over the %d-byte limit of a task result", tooLarge.Size, callback.MaxBody))
}

// send makes one report, retrying until ctx ends; it reports whether the report was settled
// (accepted, or refused for good).
func (d *Dispatcher) send(ctx context.Context, call func() error) bool {
	backoff := newBackoff()
	for {
		err := call()
		var refused *RefusedError
		switch {
		case err == nil:
			d.metrics.TaskReports.WithLabelValues("accepted").Inc()
			return true
		case errors.As(err, &refused):
			d.metrics.TaskReports.WithLabelValues("refused").Inc()
			return true
		}
		d.log.V(1).Info("task report not accepted; retrying", "error", err.Error())
		select {
		case <-ctx.Done():
			d.metrics.TaskReports.WithLabelValues("lost").Inc()
			return false
		case <-time.After(backoff.next()):
		}
	}
}

// backoff is bounded exponential backoff with full jitter: 100ms doubling to 10s.
type backoff struct{ n int }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) next() time.Duration {
	ceiling := min(100*time.Millisecond<<b.n, 10*time.Second)
	if b.n < 10 {
		b.n++
	}
	return ceiling/2 + time.Duration(rand.Int64N(int64(ceiling/2)+1))
}

func (b *backoff) reset() { b.n = 0 }

package gateway

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/millrace-io/millrace/internal/sqsx"
)

// Single messages are sent by group commit: requests to one queue that arrive while SQS calls to
// it are in flight wait for the next call and go together in one SendMessageBatch (up to 10
// entries), each answered with its own entry's result. A request that finds the queue idle is sent
// at once, so a lone request waits for nothing; under load, one SQS call carries many requests,
// which costs fewer calls (SQS bills a batch as one request) and less CPU per message on both
// sides. Order: a request is answered only after its message is in SQS, so a caller that waits for
// each answer keeps its order, on FIFO queues too.

const (
	// maxBatchEntries is SQS's limit on entries per SendMessageBatch.
	maxBatchEntries = 10
	// coalesceBytes bounds the bodies and attributes of one coalesced call (SQS's limit on a
	// batch's payload was 256 KiB before 2025; staying under it suits every emulator). A message
	// larger than that goes alone.
	coalesceBytes = 256 << 10
	// partialCalls is how many calls may be in flight to one queue with less than a full batch;
	// beyond it a call starts only for a full batch. With one, requests arriving during a call
	// wait for it (at most one SQS round trip) and share the next: 3.5 messages per call at 8
	// concurrent senders in the benchmark, against 2.1 with two (and 0.73 of the bare SDK's
	// throughput instead of 0.83). Measured again with today's client: a second partial call
	// once 4 requests wait gained ~9% at 8 senders but, at 16, cut the batches from 6.5 to 4.6
	// messages and raised p99 from 3.3–3.7 ms to 5.5–6.0 ms: not taken.
	partialCalls = 1
	// maxCalls bounds the calls in flight to one queue.
	maxCalls = 64
	// callTimeout bounds one SQS call (it serves several requests, so no request's context).
	callTimeout = 30 * time.Second
)

// shouldCall says whether another SQS call starts, given the calls in flight and the entries
// waiting, of which full are enough for a full batch.
func shouldCall(inFlight, waiting int, full bool) bool {
	switch {
	case waiting == 0 || inFlight >= maxCalls:
		return false
	case inFlight < partialCalls:
		return true
	default:
		return full
	}
}

// takeBatch returns how many of the waiting entries (their sizes in order) the next call carries:
// at most maxBatchEntries and coalesceBytes together, and always at least one.
func takeBatch(sizes []int) int {
	n, total := 0, 0
	for _, size := range sizes {
		if n == maxBatchEntries || (n > 0 && total+size > coalesceBytes) {
			break
		}
		n++
		total += size
	}
	return n
}

// sendResult is one message's outcome.
type sendResult struct {
	out *sqs.SendMessageOutput
	err error
}

type waitingSend struct {
	ctx  context.Context // the request's: a request whose caller left is not sent
	in   *sqs.SendMessageInput
	size int
	done chan sendResult
}

// errNotSent answers a request whose caller left before its message was sent; errMaybeSent one
// whose caller left while its call was in flight.
var (
	errNotSent   = errors.New("the request ended before its message was sent; nothing was sent")
	errMaybeSent = errors.New("the request ended while its message was being sent; it may have been sent")
)

// coalescer sends single messages by group commit, per queue URL.
type coalescer struct {
	mu      sync.Mutex
	queues  map[string]*queueSends
	workers workers
}

// workerIdle is how long a worker waits for its next call before it ends.
const workerIdle = 10 * time.Second

// workers run the coalescer's calls on goroutines that stay parked between calls: a goroutine
// started per call grew its stack through the SQS call's path each time (4% of the gateway's CPU
// went to copying stacks). A call starts on a parked worker if there is one, else on a new one;
// workers end after workerIdle without a call, so they never outnumber the calls in flight at
// the busiest moment of the last workerIdle.
type workers struct {
	idle chan func()
	once sync.Once
}

func (w *workers) run(f func()) {
	w.once.Do(func() { w.idle = make(chan func()) })
	select {
	case w.idle <- f: // a parked worker takes it
	default:
		go w.loop(f)
	}
}

func (w *workers) loop(f func()) {
	timer := time.NewTimer(workerIdle)
	defer timer.Stop()
	for {
		f()
		timer.Reset(workerIdle)
		select {
		case f = <-w.idle:
		case <-timer.C:
			return
		}
	}
}

type queueSends struct {
	waiting  []*waitingSend
	inFlight int
}

// send puts one message on its queue and returns its result, or ctx's error if ctx ends first (the
// message may still be sent then, as with any call whose answer is lost).
func (c *coalescer) send(ctx context.Context, api SQSAPI, in *sqs.SendMessageInput, onCall func(entries int, err error)) (*sqs.SendMessageOutput, error) {
	w := &waitingSend{ctx: ctx, in: in, size: messageSize(in), done: make(chan sendResult, 1)}
	url := aws.ToString(in.QueueUrl)
	c.mu.Lock()
	if c.queues == nil {
		c.queues = map[string]*queueSends{}
	}
	q := c.queues[url]
	if q == nil {
		q = &queueSends{}
		c.queues[url] = q
	}
	q.waiting = append(q.waiting, w)
	c.startCalls(url, q, api, onCall)
	c.mu.Unlock()
	select {
	case r := <-w.done:
		return r.out, r.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(q.waiting, w); i >= 0 { // still waiting: it will not be sent
		q.waiting = slices.Delete(q.waiting, i, i+1)
		return nil, fmt.Errorf("%w (%w)", errNotSent, ctx.Err())
	}
	select {
	case r := <-w.done: // answered meanwhile
		return r.out, r.err
	default:
		return nil, fmt.Errorf("%w (%w)", errMaybeSent, ctx.Err())
	}
}

// startCalls starts the calls the waiting entries justify; c.mu is held. It costs time in the
// entries it sends, not in all that wait: every request calls it, and thousands may wait while
// maxCalls calls are in flight (scanning them all on each arrival was quadratic).
func (c *coalescer) startCalls(url string, q *queueSends, api SQSAPI, onCall func(int, error)) {
	for {
		// Callers that left before their turn are answered here, at the head; each also removes
		// itself when it sees its context end (send), so few are left for this.
		for len(q.waiting) > 0 && q.waiting[0].ctx.Err() != nil {
			q.waiting[0].done <- sendResult{err: fmt.Errorf("%w (%w)", errNotSent, q.waiting[0].ctx.Err())}
			q.waiting[0] = nil
			q.waiting = q.waiting[1:]
		}
		if !shouldCall(q.inFlight, len(q.waiting), len(q.waiting) >= maxBatchEntries) {
			return
		}
		sizes := make([]int, min(len(q.waiting), maxBatchEntries))
		for i := range sizes {
			sizes[i] = q.waiting[i].size
		}
		n := takeBatch(sizes)
		batch := slices.Clone(q.waiting[:n])
		clear(q.waiting[:n]) // the backing array's head no longer holds them
		q.waiting = q.waiting[n:]
		q.inFlight++
		c.workers.run(func() {
			results := c.call(api, url, batch, onCall)
			// The next call starts before this one's requests are answered: the answers go out
			// while SQS works on it.
			c.mu.Lock()
			q.inFlight--
			c.startCalls(url, q, api, onCall)
			if q.inFlight == 0 && len(q.waiting) == 0 {
				delete(c.queues, url)
			}
			c.mu.Unlock()
			for i, w := range batch {
				w.done <- results[i]
			}
		})
	}
}

// call sends a batch — one SendMessage for a single entry, else one SendMessageBatch — and returns
// each entry's result.
func (c *coalescer) call(api SQSAPI, url string, batch []*waitingSend, onCall func(int, error)) []sendResult {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	results := make([]sendResult, len(batch))
	if len(batch) == 1 {
		out, err := api.SendMessage(ctx, batch[0].in)
		onCall(1, err)
		results[0] = sendResult{out: out, err: err}
		return results
	}
	entries := make([]types.SendMessageBatchRequestEntry, len(batch))
	for i, w := range batch {
		entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: w.in.MessageBody,
			MessageAttributes: w.in.MessageAttributes, MessageGroupId: w.in.MessageGroupId, MessageDeduplicationId: w.in.MessageDeduplicationId}
	}
	out, err := api.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
	onCall(len(batch), err)
	if class, _ := sqsx.Classify(err); err != nil && class == sqsx.Refused {
		// SQS refused the call as a whole, possibly for one entry's sake: each request is
		// answered for its own message, sent alone.
		for i, w := range batch {
			out, err := api.SendMessage(ctx, w.in)
			onCall(1, err)
			results[i] = sendResult{out: out, err: err}
		}
		return results
	}
	answered := make([]bool, len(batch))
	answer := func(id *string, r sendResult) {
		if i, err := strconv.Atoi(aws.ToString(id)); err == nil && i >= 0 && i < len(batch) && !answered[i] {
			answered[i] = true
			results[i] = r
		}
	}
	if err == nil {
		for _, ok := range out.Successful {
			answer(ok.Id, sendResult{out: &sqs.SendMessageOutput{MessageId: ok.MessageId, SequenceNumber: ok.SequenceNumber, MD5OfMessageBody: ok.MD5OfMessageBody}})
		}
		for _, f := range out.Failed {
			fault := smithy.FaultServer
			if f.SenderFault {
				fault = smithy.FaultClient
			}
			answer(f.Id, sendResult{err: &smithy.GenericAPIError{Code: aws.ToString(f.Code), Message: aws.ToString(f.Message), Fault: fault}})
		}
		err = errNoAnswer
	}
	for i := range batch {
		if !answered[i] {
			results[i] = sendResult{err: err}
		}
	}
	return results
}

// errNoAnswer is an entry SQS's batch answer did not mention.
var errNoAnswer = &smithy.GenericAPIError{Code: "InternalError", Message: "SQS's batch answer did not mention this entry", Fault: smithy.FaultServer}

// messageSize is a message's size as SQS counts it: body, attribute names, types and values.
func messageSize(in *sqs.SendMessageInput) int {
	n := len(aws.ToString(in.MessageBody))
	for k, v := range in.MessageAttributes {
		n += len(k) + len(aws.ToString(v.DataType)) + len(aws.ToString(v.StringValue)) + len(v.BinaryValue)
	}
	return n
}

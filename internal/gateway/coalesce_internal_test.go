package gateway

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
)

func TestShouldCall(t *testing.T) {
	for _, tc := range []struct {
		inFlight, waiting int
		full, want        bool
	}{
		{0, 0, false, false},
		{0, 1, false, true},  // an idle queue: a lone request goes at once
		{1, 3, false, false}, // a call in flight: partial batches wait for it
		{1, 10, true, true},  // a full batch does not wait
		{5, 12, true, true},  // nor several
		{maxCalls, 30, true, false},
	} {
		if got := shouldCall(tc.inFlight, tc.waiting, tc.full); got != tc.want {
			t.Errorf("shouldCall(%d, %d, %v) = %v, want %v", tc.inFlight, tc.waiting, tc.full, got, tc.want)
		}
	}
}

func TestTakeBatch(t *testing.T) {
	repeat := func(size, n int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = size
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		sizes []int
		want  int
	}{
		{"one", []int{100}, 1},
		{"ten at most", repeat(100, 25), 10},
		{"bytes bound the batch", repeat(100<<10, 5), 2},
		{"a large message goes alone", []int{900 << 10, 10}, 1},
		{"a large message after small ones waits", []int{10, 10, 900 << 10}, 2},
		{"exactly the byte limit", repeat(coalesceBytes/4, 4), 4},
	} {
		if got := takeBatch(tc.sizes); got != tc.want {
			t.Errorf("%s: takeBatch = %d, want %d", tc.name, got, tc.want)
		}
	}
}

// batchSQS is a fake (SQS cannot be made to fail single entries on demand): it answers a batch
// with the results it is given, or fails the whole call.
type batchSQS struct {
	SQSAPI
	out *sqs.SendMessageBatchOutput
	err error
}

func (f *batchSQS) SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	return f.out, f.err
}

// Each request of a coalesced call gets its own entry's result: a message id, SQS's refusal (a
// 400), a transient failure (a 503), and a 503 for an entry the answer forgot.
func TestACoalescedCallAnswersEachRequest(t *testing.T) {
	batch := func() []*waitingSend {
		b := make([]*waitingSend, 4)
		for i := range b {
			b[i] = &waitingSend{ctx: context.Background(), in: &sqs.SendMessageInput{MessageBody: aws.String(strconv.Itoa(i))}}
		}
		return b
	}
	fake := &batchSQS{out: &sqs.SendMessageBatchOutput{
		Successful: []types.SendMessageBatchResultEntry{{Id: aws.String("0"), MessageId: aws.String("m-0")}},
		Failed: []types.BatchResultErrorEntry{
			{Id: aws.String("1"), Code: aws.String("InvalidParameterValue"), Message: aws.String("bad attribute"), SenderFault: true},
			{Id: aws.String("2"), Code: aws.String("InternalError"), Message: aws.String("try again")},
		},
	}}
	var calls []int
	results := (&coalescer{}).call(fake, "url", batch(), func(n int, _ error) { calls = append(calls, n) })
	want := []struct {
		id     string
		status int
	}{{"m-0", 0}, {"", http.StatusBadRequest}, {"", http.StatusServiceUnavailable}, {"", http.StatusServiceUnavailable}}
	for i, w := range want {
		r := results[i]
		if r.err == nil {
			if w.status != 0 || aws.ToString(r.out.MessageId) != w.id {
				t.Errorf("entry %d: %+v, want status %d", i, r.out, w.status)
			}
			continue
		}
		var e *apiError
		if !errors.As(sqsError(r.err), &e) || e.status != w.status {
			t.Errorf("entry %d: %v, want status %d", i, r.err, w.status)
		}
	}
	if len(calls) != 1 || calls[0] != 4 {
		t.Errorf("calls observed %v", calls)
	}
	// The whole call failing fails every request.
	results = (&coalescer{}).call(&batchSQS{err: errors.New("connection refused")}, "url", batch(), func(int, error) {})
	for i, r := range results {
		if r.err == nil {
			t.Errorf("entry %d succeeded in a failed call", i)
		}
	}
}

// refusingSQS is a fake (SQS cannot be made to refuse a batch on demand): it refuses every batch
// as SQS does when one entry is invalid, and sends single messages unless their body is "bad".
type refusingSQS struct {
	SQSAPI
	singles []string
}

func (f *refusingSQS) SendMessageBatch(context.Context, *sqs.SendMessageBatchInput, ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	return nil, &smithy.GenericAPIError{Code: "InvalidParameterValue", Message: "one entry is invalid", Fault: smithy.FaultClient}
}

func (f *refusingSQS) SendMessage(_ context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	body := aws.ToString(in.MessageBody)
	f.singles = append(f.singles, body)
	if body == "bad" {
		return nil, &smithy.GenericAPIError{Code: "InvalidParameterValue", Message: "bad", Fault: smithy.FaultClient}
	}
	return &sqs.SendMessageOutput{MessageId: aws.String("id-" + body)}, nil
}

// A batch SQS refuses as a whole is not the other requests' fault: each is sent alone and answered
// for its own message.
func TestARefusedBatchIsSentOneByOne(t *testing.T) {
	b := make([]*waitingSend, 3)
	for i, body := range []string{"a", "bad", "c"} {
		b[i] = &waitingSend{ctx: context.Background(), in: &sqs.SendMessageInput{MessageBody: aws.String(body)}}
	}
	fake := &refusingSQS{}
	results := (&coalescer{}).call(fake, "url", b, func(int, error) {})
	for i, want := range []string{"id-a", "", "id-c"} {
		r := results[i]
		if got := ""; r.err == nil {
			got = aws.ToString(r.out.MessageId)
			if got != want {
				t.Errorf("entry %d: %q, want %q", i, got, want)
			}
		} else if want != "" {
			t.Errorf("entry %d: %v", i, r.err)
		}
	}
	if len(fake.singles) != 3 {
		t.Errorf("sent alone: %v", fake.singles)
	}
}

// blockingSQS is a fake whose SendMessage waits until released, counting calls.
type blockingSQS struct {
	SQSAPI
	entered, release chan struct{}
	calls            atomic.Int32
}

func (f *blockingSQS) SendMessage(context.Context, *sqs.SendMessageInput, ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if f.calls.Add(1) == 1 {
		close(f.entered)
		<-f.release
	}
	return &sqs.SendMessageOutput{MessageId: aws.String("m")}, nil
}

// A request whose caller leaves while it waits behind a call in flight is not sent, and says so.
func TestACallerWhoLeavesIsNotSent(t *testing.T) {
	fake := &blockingSQS{entered: make(chan struct{}), release: make(chan struct{})}
	c := &coalescer{}
	first := make(chan error, 1)
	go func() {
		_, err := c.send(context.Background(), fake, &sqs.SendMessageInput{QueueUrl: aws.String("u"), MessageBody: aws.String("1")}, func(int, error) {})
		first <- err
	}()
	<-fake.entered
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := c.send(ctx, fake, &sqs.SendMessageInput{QueueUrl: aws.String("u"), MessageBody: aws.String("2")}, func(int, error) {})
	if !errors.Is(err, errNotSent) || !errors.Is(err, context.Canceled) {
		t.Errorf("the second request: %v, want errNotSent", err)
	}
	close(fake.release)
	if err := <-first; err != nil {
		t.Errorf("the first request: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := fake.calls.Load(); n != 1 {
		t.Errorf("%d SQS calls, want 1 (the second message must not be sent)", n)
	}
}

// countingContext counts how often the coalescer asks whether its caller left.
type countingContext struct {
	context.Context
	checks *atomic.Int64
}

func (c countingContext) Err() error {
	c.checks.Add(1)
	return c.Context.Err()
}

// stalledSQS is a fake (an SQS that stalls on demand): every call waits until released, then
// every entry succeeds.
type stalledSQS struct {
	SQSAPI
	release chan struct{}
	entries atomic.Int64
}

func (f *stalledSQS) SendMessage(ctx context.Context, in *sqs.SendMessageInput, _ ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	f.entries.Add(1)
	<-f.release
	return &sqs.SendMessageOutput{MessageId: aws.String("m")}, nil
}

func (f *stalledSQS) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	f.entries.Add(int64(len(in.Entries)))
	<-f.release
	out := &sqs.SendMessageBatchOutput{}
	for _, e := range in.Entries {
		out.Successful = append(out.Successful, types.SendMessageBatchResultEntry{Id: e.Id, MessageId: aws.String("m")})
	}
	return out, nil
}

// While SQS is slow, maxCalls calls are in flight and thousands of requests may wait: each arrival
// used to check every waiting request's context (3,000 requests made millions of checks, quadratic,
// on the gateway every tenant shares). An arrival now costs in the requests it sends.
func TestManyWaitingRequestsCostLinearWork(t *testing.T) {
	const n = 3000
	fake := &stalledSQS{release: make(chan struct{})}
	var checks atomic.Int64
	c := &coalescer{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx := countingContext{Context: context.Background(), checks: &checks}
			if _, err := c.send(ctx, fake, &sqs.SendMessageInput{QueueUrl: aws.String("u"), MessageBody: aws.String(strconv.Itoa(i))}, func(int, error) {}); err != nil {
				t.Error(err)
			}
		})
	}
	deadline := time.Now().Add(20 * time.Second)
	for { // every request in a stalled call or waiting
		c.mu.Lock()
		waiting := 0
		if q := c.queues["u"]; q != nil {
			waiting = len(q.waiting)
		}
		c.mu.Unlock()
		if int(fake.entries.Load())+waiting == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if inFlight := fake.entries.Load(); inFlight > maxCalls*maxBatchEntries || n-inFlight < 2000 {
		t.Fatalf("%d of %d requests in stalled calls: the premise (thousands waiting) does not hold", inFlight, n)
	}
	close(fake.release)
	wg.Wait()
	if got := checks.Load(); got > 10*n {
		t.Errorf("%d context checks for %d requests: more than linear", got, n)
	}
	t.Logf("%d context checks for %d requests", checks.Load(), n)
}

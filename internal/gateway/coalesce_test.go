package gateway_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/millrace-io/millrace/internal/testenv"
)

// heldSQS is the real client with its first call held until released (a fake only in timing),
// recording the messages of every call.
type heldSQS struct {
	*sqs.Client
	entered, release chan struct{}
	once             sync.Once
	mu               sync.Mutex
	calls            []int
}

func (h *heldSQS) record(n int) {
	h.mu.Lock()
	h.calls = append(h.calls, n)
	h.mu.Unlock()
}

func (h *heldSQS) SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	h.once.Do(func() { close(h.entered); <-h.release })
	h.record(1)
	return h.Client.SendMessage(ctx, in, opts...)
}

func (h *heldSQS) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	h.record(len(in.Entries))
	return h.Client.SendMessageBatch(ctx, in, opts...)
}

func (h *heldSQS) snapshot() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.calls)
}

// Requests that arrive while a SendMessage is in flight share SendMessageBatch calls: full batches
// of 10 go at once, the rest after the call in flight returns; every request is answered with its
// own message's id, and every message is in SQS with its own body and attributes.
func TestRequestsArrivingTogetherShareACall(t *testing.T) {
	held := &heldSQS{Client: sqsClient.Client, entered: make(chan struct{}), release: make(chan struct{})}
	e := setup(t, held)
	path := "/v1/namespaces/" + e.ns + "/queues/orders/messages"
	const n = 26
	ids := make([]string, n)
	var wg sync.WaitGroup
	send := func(i int) {
		defer wg.Done()
		code, answer, _ := e.post(t, call{path: path, token: e.allowed, body: fmt.Sprintf(`{"n":%d}`, i),
			headers: map[string]string{"X-Tenant": fmt.Sprint("t", i)}})
		if code != http.StatusAccepted {
			t.Errorf("request %d: %d %v", i, code, answer)
		}
		ids[i] = answer["messageId"]
	}
	wg.Add(1)
	go send(0)
	<-held.entered
	for i := 1; i < n; i++ {
		wg.Add(1)
		go send(i)
	}
	testenv.Eventually(t, 10*time.Second, func() error { // two full batches went while the first call was held
		if c := held.snapshot(); len(c) < 2 {
			return fmt.Errorf("calls so far %v", c)
		}
		return nil
	})
	close(held.release)
	wg.Wait()

	calls := held.snapshot()
	total := 0
	for _, c := range calls {
		total += c
	}
	if total != n || calls[0] != 10 || calls[1] != 10 || len(calls) >= n-20 {
		t.Errorf("messages per SQS call %v; want 10, 10 while the first was held, then fewer calls than messages (%d in all)", calls, n)
	}
	inSQS := map[string]string{}
	for len(inSQS) < n {
		msgs := receive(t, e.queues["orders"])
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			inSQS[aws.ToString(m.MessageId)] = aws.ToString(m.Body) + " " + aws.ToString(m.MessageAttributes["x-tenant"].StringValue)
		}
	}
	for i, id := range ids {
		if want := fmt.Sprintf(`{"n":%d} t%d`, i, i); inSQS[id] != want {
			t.Errorf("request %d answered id %q, which holds %q in SQS, want %q", i, id, inSQS[id], want)
		}
	}
}

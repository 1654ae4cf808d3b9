package dispatch_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/millrace-io/millrace/internal/dispatch"
)

// groupedFIFO is a FAKE FIFO queue, in memory, for what the emulator cannot do: fauxqs returns
// one message per message group per receive, SQS returns up to ten of one group at once (in
// order), which is what exercises the dispatcher's handling of several messages of a group in one
// batch. It serves one queue, no visibility timeouts (a received message stays hidden until
// deleted or released), and records deletions.
type groupedFIFO struct {
	mu      sync.Mutex
	msgs    []*fakeMessage // in send order
	deleted []string       // bodies
	seq     int
}

type fakeMessage struct {
	id, body, group, receipt string
	hidden                   bool
	receives                 int
}

func (q *groupedFIFO) send(group string, bodies ...string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, b := range bodies {
		q.seq++
		q.msgs = append(q.msgs, &fakeMessage{id: fmt.Sprintf("id-%d", q.seq), body: b, group: group})
	}
}

// ReceiveMessage returns the visible messages of the first group none of whose messages are in
// flight, in order, up to MaxNumberOfMessages; with none, it waits up to WaitTimeSeconds.
func (q *groupedFIFO) ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, _ ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error) {
	deadline := time.Now().Add(time.Duration(in.WaitTimeSeconds) * time.Second)
	for {
		if out := q.receive(int(in.MaxNumberOfMessages)); len(out) > 0 || !time.Now().Before(deadline) || ctx.Err() != nil {
			return &sqs.ReceiveMessageOutput{Messages: out}, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (q *groupedFIFO) receive(max int) []types.Message {
	q.mu.Lock()
	defer q.mu.Unlock()
	busy := map[string]bool{}
	for _, m := range q.msgs {
		if m.hidden {
			busy[m.group] = true
		}
	}
	var out []types.Message
	group := ""
	for _, m := range q.msgs {
		if busy[m.group] || (group != "" && m.group != group) || len(out) == max {
			continue
		}
		group = m.group
		m.hidden = true
		m.receives++
		q.seq++
		m.receipt = fmt.Sprintf("rh-%d", q.seq)
		out = append(out, types.Message{MessageId: aws.String(m.id), ReceiptHandle: aws.String(m.receipt), Body: aws.String(m.body),
			Attributes: map[string]string{"MessageGroupId": m.group, "ApproximateReceiveCount": strconv.Itoa(m.receives)}})
	}
	return out
}

func (q *groupedFIFO) DeleteMessageBatch(_ context.Context, in *sqs.DeleteMessageBatchInput, _ ...func(*sqs.Options)) (*sqs.DeleteMessageBatchOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := &sqs.DeleteMessageBatchOutput{}
	for _, e := range in.Entries {
		i := slices.IndexFunc(q.msgs, func(m *fakeMessage) bool { return m.receipt == aws.ToString(e.ReceiptHandle) })
		if i < 0 {
			out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: e.Id, Code: aws.String("ReceiptHandleIsInvalid"), SenderFault: true})
			continue
		}
		q.deleted = append(q.deleted, q.msgs[i].body)
		q.msgs = slices.Delete(q.msgs, i, i+1)
		out.Successful = append(out.Successful, types.DeleteMessageBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

// ChangeMessageVisibilityBatch makes messages visible again when the timeout is 0 (a release);
// other timeouts (extensions) change nothing here.
func (q *groupedFIFO) ChangeMessageVisibilityBatch(_ context.Context, in *sqs.ChangeMessageVisibilityBatchInput, _ ...func(*sqs.Options)) (*sqs.ChangeMessageVisibilityBatchOutput, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := &sqs.ChangeMessageVisibilityBatchOutput{}
	for _, e := range in.Entries {
		for _, m := range q.msgs {
			if m.receipt == aws.ToString(e.ReceiptHandle) && e.VisibilityTimeout == 0 {
				m.hidden = false
			}
		}
		out.Successful = append(out.Successful, types.ChangeMessageVisibilityBatchResultEntry{Id: e.Id})
	}
	return out, nil
}

func (q *groupedFIFO) GetQueueAttributes(context.Context, *sqs.GetQueueAttributesInput, ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	return &sqs.GetQueueAttributesOutput{Attributes: map[string]string{"VisibilityTimeout": "30", "QueueArn": "arn:aws:sqs:us-east-1:000000000000:fake.fifo"}}, nil
}

func (q *groupedFIFO) deletedBodies() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.deleted)
}

// Point 7: a handler that reports an earlier message of a FIFO group failed and later ones done
// gets the later ones deleted, as Lambda does (stopping at the first failure is the function's
// job); only the reported one stays.
func TestFIFOPartialFailureDeletesWhatTheHandlerReportedDone(t *testing.T) {
	q := &groupedFIFO{}
	q.send("A", "a1", "a2", "a3", "a4", "a5")
	var mu sync.Mutex
	var batches [][]string
	h := newHandler(t, func(e events.SQSEvent) (int, any, time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		var bodies []string
		var failures []map[string]string
		for _, r := range e.Records {
			bodies = append(bodies, r.Body)
			if r.Body == "a2" {
				failures = append(failures, map[string]string{"itemIdentifier": r.MessageId})
			}
		}
		batches = append(batches, bodies)
		return 200, map[string]any{"batchItemFailures": failures}, 0
	})
	r := start(t, dispatch.Config{QueueURL: "fake", QueueARN: "arn:aws:sqs:us-east-1:000000000000:fake.fifo", FIFO: true, BatchSize: 10, ReportBatchItemFailures: true}, q, httpInvoker(h))
	eventually(t, 10*time.Second, func() error {
		if d := q.deletedBodies(); len(d) < 4 {
			return fmt.Errorf("deleted %v", d)
		}
		return nil
	})
	r.stop(t)
	mu.Lock()
	defer mu.Unlock()
	if len(batches) != 1 || !slices.Equal(batches[0], []string{"a1", "a2", "a3", "a4", "a5"}) {
		t.Fatalf("batches %v: the fake should hand the whole group over in one batch, in order", batches)
	}
	if d := q.deletedBodies(); !slices.Equal(d, []string{"a1", "a3", "a4", "a5"}) {
		t.Fatalf("deleted %v, want all but the reported a2", d)
	}
}

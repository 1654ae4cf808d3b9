package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Outcome is what a handler said about a batch.
type Outcome struct {
	// Failed are the message ids the handler reported in batchItemFailures.
	Failed []string
	// Output is the handler's response body (reported as the output of workflow tasks).
	Output []byte
}

// Invoker delivers one event to the handler. An error fails the whole batch.
type Invoker interface {
	Invoke(ctx context.Context, event events.SQSEvent, keys []string) (Outcome, error)
}

// IdempotencyKeyHeader carries one message's idempotency key; it is repeated once per record, in
// record order.
const IdempotencyKeyHeader = "Millrace-Idempotency-Key"

// HTTPInvoker POSTs Lambda SQS events to a handler URL.
type HTTPInvoker struct {
	URL    string
	Client *http.Client
}

// batchResponse is the Lambda partial-batch response.
type batchResponse struct {
	BatchItemFailures []struct {
		ItemIdentifier string `json:"itemIdentifier"`
	} `json:"batchItemFailures"`
}

// Invoke posts the event; a non-2xx answer, a transport error or the context's deadline fail the batch.
func (h *HTTPInvoker) Invoke(ctx context.Context, event events.SQSEvent, keys []string) (Outcome, error) {
	body, err := json.Marshal(event)
	if err != nil {
		return Outcome{}, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return Outcome{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	for _, k := range keys {
		req.Header.Add(IdempotencyKeyHeader, k)
	}
	if deadline, ok := ctx.Deadline(); ok {
		req.Header.Set("Millrace-Deadline-Ms", fmt.Sprint(deadline.UnixMilli()))
	}
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Outcome{}, fmt.Errorf("handler timed out: %w", context.DeadlineExceeded)
		}
		return Outcome{}, fmt.Errorf("handler unreachable: %w", err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 6<<20))
	if err != nil {
		return Outcome{}, fmt.Errorf("reading the handler's response: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Outcome{Output: out}, fmt.Errorf("handler answered %s: %s", resp.Status, truncate(out, 256))
	}
	return parseOutcome(out), nil
}

// parseOutcome reads batchItemFailures from a response body; any other body means full success.
func parseOutcome(body []byte) Outcome {
	o := Outcome{Output: body}
	var br batchResponse
	if len(bytes.TrimSpace(body)) > 0 && json.Unmarshal(body, &br) == nil {
		for _, f := range br.BatchItemFailures {
			o.Failed = append(o.Failed, f.ItemIdentifier)
		}
	}
	return o
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// NewHandlerClient is a client for a handler on localhost: no proxy, keep-alive, generous idle pool.
func NewHandlerClient(concurrency int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        concurrency * 2,
		MaxIdleConnsPerHost: concurrency * 2,
		IdleConnTimeout:     90 * time.Second,
	}}
}

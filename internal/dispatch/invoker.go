package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// Outcome is what a handler said about a batch.
type Outcome struct {
	// Output is the handler's response body: with reportBatchItemFailures, its batchItemFailures
	// (see batchItemFailures); the output of workflow tasks.
	Output []byte
}

// Invoker delivers one event to the handler. An error fails the whole batch.
type Invoker interface {
	Invoke(ctx context.Context, event events.SQSEvent, keys []string) (Outcome, error)
}

// HandOverInvoker is an Invoker whose handler asks for work (the Lambda Runtime API: a runtime
// waiting on /next). The dispatcher uses HandOver instead of Invoke: a batch waits without a
// deadline until a runtime takes it, its timeout counts from then (as in Lambda, where an
// invocation's timeout starts when the runtime gets it), and a batch no runtime took before the
// dispatcher drains is released, not failed.
type HandOverInvoker interface {
	Invoker
	HandOver(wait context.Context, event events.SQSEvent, timeout time.Duration, handedOver func(deadline time.Time)) (Outcome, error)
}

// Starter is an Invoker whose handler has to show up first (a Lambda runtime asks for its first
// invocation once its init is done): the dispatcher receives nothing before Started is closed.
type Starter interface {
	Started() <-chan struct{}
}

// FunctionARNSetter is an Invoker that passes the function's ARN to the handler (the Runtime API's
// Lambda-Runtime-Invoked-Function-Arn); the dispatcher sets it once it knows the queue's ARN.
type FunctionARNSetter interface {
	SetFunctionARN(arn string)
}

// IdempotencyKeyHeader carries one message's idempotency key; it is repeated once per record, in
// record order.
const IdempotencyKeyHeader = "Millrace-Idempotency-Key"

// HTTPInvoker POSTs Lambda SQS events to a handler URL.
type HTTPInvoker struct {
	// URL is the handler's address, normally http://127.0.0.1:<port>/.
	URL string
	// Client, when set, sends the requests (for https or a proxy). Otherwise a plain-HTTP handler
	// is reached over the invoker's own keep-alive connections (see localHTTP).
	Client *http.Client

	once     sync.Once
	local    *localHTTP
	client   *http.Client // Client, or a default one for https handlers
	setupErr error
	sizeHint atomic.Int64 // the last event's size, to allocate the next one's buffer once
}

// handlerStartPoll is the first wait before trying a handler that refused the connection again.
const handlerStartPoll = 20 * time.Millisecond

// handlerResponseLimit bounds what is read of a handler's answer (Lambda's response payload limit).
const handlerResponseLimit = 6 << 20

// Invoke posts the event; a non-2xx answer, a transport error or the context's deadline fail the batch.
func (h *HTTPInvoker) Invoke(ctx context.Context, event events.SQSEvent, keys []string) (Outcome, error) {
	body := appendEvent(make([]byte, 0, h.sizeHint.Load()), event)
	h.sizeHint.Store(int64(len(body)) + 512)
	var (
		code   int
		status string
		out    []byte
		err    error
	)
	h.once.Do(h.setup)
	if h.setupErr != nil {
		return Outcome{}, h.setupErr
	}
	var header []byte
	if h.client == nil {
		header = make([]byte, 0, 64+len(keys)*(len(IdempotencyKeyHeader)+40))
		header = append(header, "Content-Type: application/json\r\n"...)
		for _, k := range keys {
			header = append(header, IdempotencyKeyHeader+": "...)
			header = append(header, k...)
			header = append(header, "\r\n"...)
		}
		if deadline, ok := ctx.Deadline(); ok {
			header = append(header, "Millrace-Deadline-Ms: "...)
			header = strconv.AppendInt(header, deadline.UnixMilli(), 10)
			header = append(header, "\r\n"...)
		}
	}
	// A refused connection never reached the handler: in a new pod the dispatcher (a native
	// sidecar, started first) is up before the handler listens. The batch waits for it within its
	// deadline, as a Lambda invocation waits for its function's init, instead of failing and
	// spending a receive of maxReceiveCount on every message.
	for wait := handlerStartPoll; ; wait = min(2*wait, 500*time.Millisecond) {
		if h.client != nil {
			code, status, out, err = h.viaClient(ctx, body, keys)
		} else {
			code, status, out, err = h.local.post(ctx, header, body, handlerResponseLimit)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
			continue
		}
		break
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return Outcome{}, fmt.Errorf("handler timed out: %w", context.DeadlineExceeded)
		}
		return Outcome{}, fmt.Errorf("handler unreachable: %w", err)
	}
	if code < 200 || code > 299 {
		return Outcome{Output: out}, fmt.Errorf("handler answered %s: %s", status, truncate(out, 256))
	}
	return Outcome{Output: out}, nil
}

func (h *HTTPInvoker) setup() {
	switch {
	case h.Client != nil:
		h.client = h.Client
	case strings.HasPrefix(h.URL, "https://"):
		h.client = NewHandlerClient(16)
	default:
		h.local, h.setupErr = newLocalHTTP(h.URL)
	}
}

// Close closes the invoker's idle connections.
func (h *HTTPInvoker) Close() {
	if h.local != nil {
		h.local.close()
	}
}

func (h *HTTPInvoker) viaClient(ctx context.Context, body []byte, keys []string) (int, string, []byte, error) {
	// A *bytes.Reader body (known to be in memory) lets the transport send headers and body in
	// one write.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return 0, "", nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header[IdempotencyKeyHeader] = keys
	if deadline, ok := ctx.Deadline(); ok {
		req.Header.Set("Millrace-Deadline-Ms", strconv.FormatInt(deadline.UnixMilli(), 10))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, "", nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, handlerResponseLimit+1))
	if err != nil {
		return 0, "", nil, fmt.Errorf("reading the handler's response: %w", err)
	}
	if len(out) > handlerResponseLimit {
		// A truncated answer could hide batchItemFailures: the batch fails instead.
		return 0, "", nil, fmt.Errorf("the handler's answer is larger than %d bytes", handlerResponseLimit)
	}
	return resp.StatusCode, resp.Status, out, nil
}

// batchItemFailures reads the message ids a handler reported in a Lambda partial batch response.
// As in Lambda, an empty answer, null, an object without batchItemFailures and an empty or null
// list mean full success; an answer that is not valid JSON, is not an object, or has a
// batchItemFailures that is not a list of objects each with a non-empty itemIdentifier string (key
// names are case-sensitive) is an error, which fails the whole batch.
func batchItemFailures(body []byte) ([]string, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || string(body) == "null" {
		return nil, nil
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("the handler's answer is not valid JSON: %s", truncate(body, 64))
	}
	var answer map[string]json.RawMessage
	if err := json.Unmarshal(body, &answer); err != nil {
		return nil, fmt.Errorf("the handler's answer is not a JSON object: %s", truncate(body, 64))
	}
	raw, ok := answer["batchItemFailures"]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("batchItemFailures is not a list of objects: %s", truncate(raw, 64))
	}
	ids := make([]string, 0, len(items))
	for i, item := range items {
		var id string
		if err := json.Unmarshal(item["itemIdentifier"], &id); err != nil || id == "" {
			return nil, fmt.Errorf("batchItemFailures[%d] has no itemIdentifier (a non-empty string)", i)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// NewHandlerClient is a net/http client for a handler: no proxy, keep-alive, generous idle pool.
func NewHandlerClient(concurrency int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        concurrency * 2,
		MaxIdleConnsPerHost: concurrency * 2,
		IdleConnTimeout:     90 * time.Second,
		// Room for the headers and a typical event, so a request goes out in one write.
		WriteBufferSize: 64 << 10,
	}}
}

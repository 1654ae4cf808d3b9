package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/google/uuid"

	"github.com/millrace-io/millrace/internal/httpserver"
)

// RuntimeAPI serves the AWS Lambda Runtime API (2018-06-01) on a local address, so that a Lambda
// container image (AWS base images, the runtime interface clients, aws-lambda-go) runs as the
// handler unchanged: the runtime asks for the next invocation, gets a Lambda SQS event, and posts
// its response or error. It implements Invoker.
type RuntimeAPI struct {
	// FunctionARN is sent as Lambda-Runtime-Invoked-Function-Arn.
	FunctionARN string
	// Limits bound the server's connections (httpserver's defaults for zero fields). /next is a
	// long poll and lifts them while it waits for an invocation.
	Limits httpserver.Limits

	mu      sync.Mutex
	queue   chan *invocation
	pending map[string]*invocation
	initErr error
	server  *http.Server
	ln      net.Listener
}

type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	result   chan invocationResult
}

type invocationResult struct {
	body []byte
	err  error
}

// FunctionError is an error the function reported through /error.
type FunctionError struct {
	Type, Message string
}

func (e *FunctionError) Error() string {
	return fmt.Sprintf("function error %s: %s", e.Type, e.Message)
}

// Listen starts serving on addr (e.g. 127.0.0.1:9001) and returns the bound address.
func (r *RuntimeAPI) Listen(addr string) (string, error) {
	r.queue = make(chan *invocation)
	r.pending = map[string]*invocation{}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	r.ln = ln
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", r.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", r.response)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", r.error)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", r.initError)
	// No handler deadline: /next waits for as long as no invocation comes, and the others answer
	// at once.
	limits := r.Limits
	limits.Handler = -1
	r.Limits = limits.WithDefaults()
	r.server = httpserver.New("", mux, r.Limits)
	go func() { _ = r.server.Serve(ln) }()
	return ln.Addr().String(), nil
}

// Close stops the server.
func (r *RuntimeAPI) Close() error {
	if r.server == nil {
		return nil
	}
	return r.server.Close()
}

// Invoke hands the event to the next runtime that asks for work and waits for its answer.
func (r *RuntimeAPI) Invoke(ctx context.Context, event events.SQSEvent, _ []string) (Outcome, error) {
	r.mu.Lock()
	initErr := r.initErr
	r.mu.Unlock()
	if initErr != nil {
		return Outcome{}, initErr
	}
	payload := appendEvent(nil, event)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(15 * time.Minute)
	}
	inv := &invocation{id: uuid.NewString(), payload: payload, deadline: deadline, result: make(chan invocationResult, 1)}
	r.mu.Lock()
	r.pending[inv.id] = inv
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.pending, inv.id)
		r.mu.Unlock()
	}()
	select {
	case r.queue <- inv:
	case <-ctx.Done():
		return Outcome{}, fmt.Errorf("no runtime asked for the invocation before the timeout: %w", ctx.Err())
	}
	select {
	case res := <-inv.result:
		if res.err != nil {
			return Outcome{Output: res.body}, res.err
		}
		return parseOutcome(res.body), nil
	case <-ctx.Done():
		return Outcome{}, fmt.Errorf("function timed out: %w", ctx.Err())
	}
}

func (r *RuntimeAPI) next(w http.ResponseWriter, req *http.Request) {
	answering := httpserver.LongPoll(w, r.Limits.Write)
	select {
	case inv := <-r.queue:
		answering()
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", r.FunctionARN)
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-"+strings.ReplaceAll(inv.id[:8], "-", "")+"-"+strings.ReplaceAll(inv.id, "-", "")[:24]+";Sampled=0")
		h.Set("Content-Type", "application/json")
		_, _ = w.Write(inv.payload)
	case <-req.Context().Done():
	}
}

func (r *RuntimeAPI) take(id string) *invocation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending[id]
}

func (r *RuntimeAPI) response(w http.ResponseWriter, req *http.Request) {
	inv := r.take(req.PathValue("id"))
	if inv == nil {
		http.Error(w, `{"errorMessage":"unknown or expired invocation","errorType":"InvalidRequestID"}`, http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(req.Body, 6<<20))
	settle(w, inv, invocationResult{body: body})
}

// settle hands an invocation its result; a second answer for the same invocation is refused
// rather than left waiting forever for a reader that already has one.
func settle(w http.ResponseWriter, inv *invocation, res invocationResult) {
	select {
	case inv.result <- res:
	default:
		http.Error(w, `{"errorMessage":"the invocation already has an answer","errorType":"InvalidStateTransition"}`, http.StatusForbidden)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status":"OK"}`))
}

func (r *RuntimeAPI) error(w http.ResponseWriter, req *http.Request) {
	inv := r.take(req.PathValue("id"))
	if inv == nil {
		http.Error(w, `{"errorMessage":"unknown or expired invocation","errorType":"InvalidRequestID"}`, http.StatusBadRequest)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	settle(w, inv, invocationResult{body: body, err: functionError(req, body)})
}

func (r *RuntimeAPI) initError(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	r.initErr = fmt.Errorf("the function failed to initialise: %w", functionError(req, body))
	r.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status":"OK"}`))
}

func functionError(req *http.Request, body []byte) error {
	var e struct {
		ErrorMessage string `json:"errorMessage"`
		ErrorType    string `json:"errorType"`
	}
	_ = json.Unmarshal(body, &e)
	if e.ErrorType == "" {
		e.ErrorType = req.Header.Get("Lambda-Runtime-Function-Error-Type")
	}
	if e.ErrorType == "" && e.ErrorMessage == "" {
		return errors.New("function error")
	}
	return &FunctionError{Type: e.ErrorType, Message: e.ErrorMessage}
}

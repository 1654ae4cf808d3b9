package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/go-logr/logr"
	"github.com/google/uuid"

	"github.com/millrace-io/millrace/internal/httpserver"
)

// RuntimeAPI serves the AWS Lambda Runtime API (2018-06-01) on a local address, so that a Lambda
// container image (AWS base images, the runtime interface clients, aws-lambda-go) runs as the
// handler unchanged: the runtime asks for the next invocation, gets a Lambda SQS event, and posts
// its response or error. It implements Invoker, Starter and HandOverInvoker: the dispatcher
// receives nothing before a runtime first asks for work (its init is done), a batch is handed to a
// runtime only when one waits on /next, and its timeout counts from that moment.
//
// After an invocation timed out, Lambda discards the execution environment; here the handler
// container is restarted instead: CheckHandler (the handler container's liveness probe) fails
// once, and a late answer to the timed-out invocation is accepted (202) and dropped, so that
// clients which exit on an error from the Runtime API (aws-lambda-go does) keep running until the
// restart.
type RuntimeAPI struct {
	// FunctionARN is sent as Lambda-Runtime-Invoked-Function-Arn until SetFunctionARN is called.
	FunctionARN string
	// Limits bound the server's connections (httpserver's defaults for zero fields). /next is a
	// long poll and lifts them while it waits for an invocation.
	Limits httpserver.Limits
	// Log receives timeouts, late answers and the warning about a runtime that takes fewer
	// invocations at once than the dispatcher's concurrency (default: discarded).
	Log logr.Logger
	// SlowRuntimeAfter is how long a batch may wait for a runtime, while every runtime is busy,
	// before the dispatcher warns that the runtime serves fewer invocations at once than its
	// concurrency (default 1s).
	SlowRuntimeAfter time.Duration
	// NoRuntimeAfter is how long a batch waits while no runtime is connected at all (none polling,
	// none running an invocation) before it is given back (ErrNotHandedOver), so that a pod whose
	// runtime crashed or is restarting does not keep messages from the others (default 30s). A
	// busy runtime is waited for.
	NoRuntimeAfter time.Duration
	// RestartWindow is how long after CheckHandler reported a timeout a drain request is taken as
	// the preStop hook of the restart it caused, not as the pod's termination (default 60s).
	RestartWindow time.Duration

	functionARN atomic.Pointer[string]
	startOnce   sync.Once
	started     chan struct{} // closed at the first /next

	mu       sync.Mutex
	queue    chan *invocation
	pending  map[string]*invocation
	expired  map[string]bool // timed-out invocations whose late answers are dropped
	expiries []string        // expired, oldest first (bounded)
	polling  int             // /next requests waiting
	running  int             // invocations handed over and not yet answered
	warned   bool
	stale    string    // why the handler needs a restart (an invocation timed out); "" if it does not
	restart  time.Time // when CheckHandler last reported stale
	initErr  error
	server   *http.Server
	ln       net.Listener
}

// maxExpired bounds the remembered timed-out invocation ids.
const maxExpired = 256

type invocation struct {
	id       string
	payload  []byte
	timeout  time.Duration
	deadline time.Time     // set by /next at hand-over
	taken    chan struct{} // closed by /next once deadline is set
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

// ErrNotHandedOver fails a HandOver whose wait ended before a runtime took the batch: the batch
// was never started, and its messages can be released at once.
var ErrNotHandedOver = errors.New("no runtime took the batch")

// Listen starts serving on addr (e.g. 127.0.0.1:9001) and returns the bound address.
func (r *RuntimeAPI) Listen(addr string) (string, error) {
	r.queue = make(chan *invocation)
	r.started = make(chan struct{})
	r.pending = map[string]*invocation{}
	r.expired = map[string]bool{}
	if r.Log.GetSink() == nil {
		r.Log = logr.Discard()
	}
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
	if limits.BodyBytes == 0 {
		// Only the pod's own handler sends bodies here (answers of up to 6 MB, as many at once as
		// its concurrency), and only its own pod would suffer: no server-wide bound.
		limits.BodyBytes = -1
	}
	r.Limits = limits.WithDefaults()
	r.server = httpserver.New("", mux, r.Limits)
	go func() { _ = r.server.Serve(ln) }()
	return ln.Addr().String(), nil
}

// Close stops the server. Runtimes waiting on /next see the connection close and exit (the AWS
// runtime clients exit with an error), which is expected when the dispatcher shuts down.
func (r *RuntimeAPI) Close() error {
	if r.server == nil {
		return nil
	}
	return r.server.Close()
}

// Polling is how many runtimes are waiting on /next.
func (r *RuntimeAPI) Polling() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.polling
}

// SetFunctionARN sets the Lambda-Runtime-Invoked-Function-Arn sent with each invocation.
func (r *RuntimeAPI) SetFunctionARN(arn string) { r.functionARN.Store(&arn) }

func (r *RuntimeAPI) invokedFunctionARN() string {
	if p := r.functionARN.Load(); p != nil {
		return *p
	}
	return r.FunctionARN
}

// CheckHandler answers the handler container's liveness probe: an error once after an invocation
// timed out (the kubelet then restarts the container, as Lambda starts a fresh environment after a
// timeout), nil otherwise.
func (r *RuntimeAPI) CheckHandler() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stale == "" {
		return nil
	}
	err := errors.New(r.stale)
	r.stale, r.restart = "", time.Now()
	return err
}

// DrainIsRestart reports whether a drain request now is the preStop hook of the handler restart
// CheckHandler asked for (the kubelet runs preStop hooks for liveness restarts too), so the
// dispatcher must go on instead of draining. It answers true once per restart.
func (r *RuntimeAPI) DrainIsRestart() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	window := r.RestartWindow
	if window <= 0 {
		window = time.Minute
	}
	if r.restart.IsZero() || time.Since(r.restart) > window {
		return false
	}
	r.restart = time.Time{}
	return true
}

// Invoke hands the event to the next runtime that asks for work and waits for its answer; ctx
// bounds both the wait for a runtime and the invocation.
func (r *RuntimeAPI) Invoke(ctx context.Context, event events.SQSEvent, _ []string) (Outcome, error) {
	timeout := 15 * time.Minute
	if deadline, ok := ctx.Deadline(); ok {
		timeout = time.Until(deadline)
	}
	out, err := r.HandOver(ctx, event, timeout, nil)
	if errors.Is(err, ErrNotHandedOver) {
		return out, fmt.Errorf("no runtime asked for the invocation before the timeout: %w", ctx.Err())
	}
	return out, err
}

// HandOver waits, for as long as wait lasts, for a runtime to ask for work, hands it the event
// (calling handedOver with the invocation's deadline), and waits up to timeout for its answer.
// When wait ends first it returns ErrNotHandedOver.
func (r *RuntimeAPI) HandOver(wait context.Context, event events.SQSEvent, timeout time.Duration, handedOver func(deadline time.Time)) (Outcome, error) {
	r.mu.Lock()
	initErr := r.initErr
	r.mu.Unlock()
	if initErr != nil {
		return Outcome{}, initErr
	}
	inv := &invocation{id: uuid.NewString(), payload: appendEvent(nil, event), timeout: timeout,
		taken: make(chan struct{}), result: make(chan invocationResult, 1)}
	r.mu.Lock()
	r.pending[inv.id] = inv
	r.mu.Unlock()
	if !r.handOver(wait, inv) {
		r.forget(inv, false)
		return Outcome{}, ErrNotHandedOver
	}
	<-inv.taken
	if handedOver != nil {
		handedOver(inv.deadline)
	}
	timer := time.NewTimer(time.Until(inv.deadline))
	defer timer.Stop()
	select {
	case res := <-inv.result:
		r.forget(inv, false)
		return Outcome{Output: res.body}, res.err
	case <-timer.C:
		r.forget(inv, true)
		return Outcome{}, fmt.Errorf("function timed out after %s: %w", timeout, context.DeadlineExceeded)
	}
}

// handOver waits until a runtime on /next takes inv, wait ends, or no runtime has been connected
// for NoRuntimeAfter. A batch that waits long while every runtime is busy means the runtime serves
// fewer invocations at once than the dispatcher's concurrency: that is logged once.
func (r *RuntimeAPI) handOver(wait context.Context, inv *invocation) bool {
	slowAfter := r.SlowRuntimeAfter
	if slowAfter <= 0 {
		slowAfter = time.Second
	}
	noRuntimeAfter := r.NoRuntimeAfter
	if noRuntimeAfter <= 0 {
		noRuntimeAfter = 30 * time.Second
	}
	slow := time.NewTimer(min(slowAfter, noRuntimeAfter))
	defer slow.Stop()
	waited := time.Now()
	var alone time.Time // since when no runtime is connected
	for {
		select {
		case r.queue <- inv:
			return true
		case <-wait.Done():
			return false
		case <-slow.C:
			r.mu.Lock()
			busy, polling, warn := r.running, r.polling, !r.warned
			if busy > 0 && polling == 0 && time.Since(waited) >= slowAfter {
				r.warned = true
			} else {
				warn = false
			}
			r.mu.Unlock()
			switch {
			case busy > 0 || polling > 0:
				alone = time.Time{}
			case alone.IsZero():
				alone = time.Now()
			case time.Since(alone) >= noRuntimeAfter:
				return false
			}
			slow.Reset(min(slowAfter, noRuntimeAfter))
			if warn {
				r.Log.Info("WARNING: a batch waited for the Lambda runtime while it was busy: the runtime takes fewer invocations at once than delivery.concurrency, so batches queue behind each other (their timeout counts from hand-over). Use a runtime that honours AWS_LAMBDA_MAX_CONCURRENCY, or lower delivery.concurrency",
					"waited", time.Since(waited).Round(time.Millisecond).String(), "runningInvocations", busy)
			}
		}
	}
}

// forget drops a finished invocation; a timed-out one is remembered so that its late answer is
// accepted and dropped, and the handler is marked for a restart.
func (r *RuntimeAPI) forget(inv *invocation, timedOut bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.pending, inv.id)
	if inv.deadline.IsZero() {
		return // never handed over
	}
	r.running--
	if !timedOut {
		return
	}
	r.expired[inv.id] = true
	r.expiries = append(r.expiries, inv.id)
	if len(r.expiries) > maxExpired {
		delete(r.expired, r.expiries[0])
		r.expiries = r.expiries[1:]
	}
	r.stale = fmt.Sprintf("invocation %s timed out after %s: the handler is restarted, as Lambda starts a fresh environment after a timeout", inv.id, inv.timeout)
	r.Log.Info("invocation timed out; the handler container's liveness probe fails once so that it is restarted", "requestId", inv.id, "timeout", inv.timeout.String())
}

// Started is closed when a runtime first asks for an invocation: its init is done.
func (r *RuntimeAPI) Started() <-chan struct{} { return r.started }

func (r *RuntimeAPI) next(w http.ResponseWriter, req *http.Request) {
	answering := httpserver.LongPoll(w, r.Limits.Write)
	r.startOnce.Do(func() { close(r.started) })
	r.mu.Lock()
	r.polling++
	r.initErr = nil // a runtime that asks for work has initialised (a restarted container's, say)
	r.mu.Unlock()
	select {
	case inv := <-r.queue:
		r.mu.Lock()
		r.polling--
		r.running++
		inv.deadline = time.Now().Add(inv.timeout)
		r.mu.Unlock()
		close(inv.taken)
		answering()
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(inv.deadline.UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", r.invokedFunctionARN())
		h.Set("Lambda-Runtime-Trace-Id", traceID(time.Now()))
		h.Set("Content-Type", "application/json")
		_, _ = w.Write(inv.payload)
	case <-req.Context().Done():
		r.mu.Lock()
		r.polling--
		r.mu.Unlock()
	}
}

// traceID is an X-Ray trace header as Lambda sends it: Root=1-<epoch seconds, 8 hex digits>-<96
// random bits, 24 hex digits>;Parent=<64 random bits>;Sampled=0 (nothing is traced).
func traceID(now time.Time) string {
	return fmt.Sprintf("Root=1-%08x-%08x%016x;Parent=%016x;Sampled=0", uint32(now.Unix()), rand.Uint32(), rand.Uint64(), rand.Uint64())
}

// take returns a pending invocation, or nil; late reports whether id is a timed-out invocation.
func (r *RuntimeAPI) take(id string) (inv *invocation, late bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.pending[id], r.expired[id]
}

// MaxResponse is Lambda's limit on a function's answer (6 MB).
const MaxResponse = 6 << 20

// response takes the runtime's answer. As Lambda: an answer over MaxResponse fails the invocation
// (Function.ResponseSizeTooLarge) and is answered 413, never cut to its first 6 MB (which would
// hide a batchItemFailures at its end and delete those messages); an answer that breaks off (the
// runtime died mid-answer, or was cut off at the read timeout) fails it too (Runtime.ExitError),
// rather than pass the part that arrived for a whole answer.
func (r *RuntimeAPI) response(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxResponse+1))
	switch {
	case err != nil:
		r.answer(w, req, invocationResult{err: &FunctionError{Type: "Runtime.ExitError", Message: "the runtime's answer broke off: " + err.Error()}})
	case len(body) > MaxResponse:
		r.answer(w, req, invocationResult{err: &FunctionError{Type: "Function.ResponseSizeTooLarge",
			Message: fmt.Sprintf("Response payload size exceeded maximum allowed payload size (%d bytes).", MaxResponse)}})
	default:
		r.answer(w, req, invocationResult{body: body})
	}
}

func (r *RuntimeAPI) error(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.answer(w, req, invocationResult{body: body, err: functionError(req, body)})
}

func (r *RuntimeAPI) answer(w http.ResponseWriter, req *http.Request, res invocationResult) {
	id := req.PathValue("id")
	inv, late := r.take(id)
	switch {
	case inv != nil:
		settle(w, inv, res)
	case late:
		// The batch already failed (and its messages come back); Lambda would have discarded the
		// environment. Accepting the answer keeps clients that exit on an error (aws-lambda-go)
		// alive until the liveness probe restarts them.
		r.Log.Info("late answer to a timed-out invocation dropped", "requestId", id)
		accepted(w)
	default:
		http.Error(w, `{"errorMessage":"unknown invocation","errorType":"InvalidRequestID"}`, http.StatusBadRequest)
	}
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
	var tooLarge *FunctionError
	if errors.As(res.err, &tooLarge) && tooLarge.Type == "Function.ResponseSizeTooLarge" {
		http.Error(w, fmt.Sprintf(`{"errorMessage":"Exceeded maximum allowed payload size (%d bytes).","errorType":"RequestEntityTooLarge"}`, MaxResponse), http.StatusRequestEntityTooLarge)
		return
	}
	accepted(w)
}

func accepted(w http.ResponseWriter) {
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"status":"OK"}`))
}

func (r *RuntimeAPI) initError(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	r.initErr = fmt.Errorf("the function failed to initialise: %w", functionError(req, body))
	r.mu.Unlock()
	accepted(w)
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

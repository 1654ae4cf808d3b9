// Package httpserver builds the HTTP servers of Millrace's processes (the manager's task callback
// API, the gateway, the dispatcher's Lambda Runtime API and health endpoints) with a bound on every
// phase of a connection. Go's http.Server waits forever by default: a client that sends its body
// one byte at a time, never reads the answer or keeps a connection idle holds a goroutine and a
// socket for as long as it likes, and enough of them exhaust the process.
package httpserver

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Limits bound one connection. A zero field takes its default.
type Limits struct {
	// ReadHeader bounds reading a request's line and headers (default 5s).
	ReadHeader time.Duration
	// Read bounds reading a whole request, headers and body (default 15s): a body trickled slower
	// than that is cut off.
	Read time.Duration
	// Write bounds the time from the end of the request's headers to the end of its answer, so it
	// covers reading the body, the handler's work and writing the answer (default 20s).
	Write time.Duration
	// Handler is the deadline of each request's context (default 3/4 of Write), so a handler
	// waiting on something slow gives up and answers (503) while the connection can still carry
	// the answer; negative: none, for servers whose handlers bound themselves (a long poll).
	Handler time.Duration
	// Idle bounds the wait for the next request on a kept-alive connection (default 90s: longer
	// than the 60s idle timeout of common load balancers, which must close first).
	Idle time.Duration
	// MaxHeaderBytes bounds the request line and headers (default 32 KiB: a Kubernetes token is
	// 1-2 KiB, an OIDC token rarely over 8 KiB); more is answered 431.
	MaxHeaderBytes int
	// BodyBytes bounds the request body bytes the server's handlers hold at once, whoever sends
	// them (default 16 MiB; negative: none): each request's limit alone leaves the total to the
	// number of connections. A read past it fails with ErrBusy, which handlers answer 503.
	BodyBytes int64
	// BodyBytesPerSource bounds the share of BodyBytes that the connections of one client address
	// hold at once (default a quarter of it), so that one pod stalling bodies cannot turn every
	// other caller away.
	BodyBytesPerSource int64
}

// ErrBusy is the error of a body read past the server's Limits.BodyBytes: the request was not
// taken, and may be sent again.
var ErrBusy = errors.New("the server holds as many request bodies as it may: try again")

// WithDefaults returns the limits with every zero field set to its default.
func (l Limits) WithDefaults() Limits {
	if l.ReadHeader <= 0 {
		l.ReadHeader = 5 * time.Second
	}
	if l.Read <= 0 {
		l.Read = 15 * time.Second
	}
	if l.Write <= 0 {
		l.Write = 20 * time.Second
	}
	if l.Handler == 0 {
		l.Handler = l.Write * 3 / 4
	}
	if l.Idle <= 0 {
		l.Idle = 90 * time.Second
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 32 << 10
	}
	if l.BodyBytes == 0 {
		l.BodyBytes = 16 << 20
	}
	if l.BodyBytesPerSource <= 0 || l.BodyBytesPerSource > l.BodyBytes {
		l.BodyBytesPerSource = l.BodyBytes / 4
	}
	return l
}

// New returns a server for h on addr with the limits (defaults for zero fields).
func New(addr string, h http.Handler, l Limits) *http.Server {
	l = l.WithDefaults()
	if l.Handler > 0 {
		h = withDeadline(h, l.Handler)
	}
	if l.BodyBytes > 0 {
		h = withBodyBudget(h, &bodyBudget{total: l.BodyBytes, perSource: l.BodyBytesPerSource, bySource: map[string]int64{}})
	}
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeader,
		ReadTimeout:       l.Read,
		WriteTimeout:      l.Write,
		IdleTimeout:       l.Idle,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}

func withDeadline(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// bodyBudget counts the request body bytes held, in all and per client address.
type bodyBudget struct {
	total, perSource int64
	mu               sync.Mutex
	held             int64
	bySource         map[string]int64
}

func (b *bodyBudget) take(source string, n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held+n > b.total || b.bySource[source]+n > b.perSource {
		return false
	}
	b.held += n
	b.bySource[source] += n
	return true
}

func (b *bodyBudget) give(source string, n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.held -= n
	if b.bySource[source] -= n; b.bySource[source] <= 0 {
		delete(b.bySource, source)
	}
}

// withBodyBudget makes each request's body draw from budget as it is read (a sender must really
// send to hold memory: an announced Content-Length costs nothing, and handlers must not allocate
// by it); what a request drew goes back when its handler returns (the handler no longer holds
// the bytes then). A request turned away is answered with "Connection: close": otherwise Go's
// server would wait for the rest of its body (to reuse the connection) before sending the answer,
// and the sender would learn nothing until the read timeout.
func withBodyBudget(h http.Handler, budget *bodyBudget) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			h.ServeHTTP(w, r)
			return
		}
		source, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			source = r.RemoteAddr
		}
		body := &budgetedBody{ReadCloser: r.Body, budget: budget, source: source, header: w.Header()}
		defer body.release()
		withBody := *r // handlers must not change the request they are given
		withBody.Body = body
		h.ServeHTTP(w, &withBody)
	})
}

type budgetedBody struct {
	io.ReadCloser
	budget *bodyBudget
	source string
	header http.Header
	mu     sync.Mutex
	held   int64
}

func (b *budgetedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		if !b.budget.take(b.source, int64(n)) {
			b.header.Set("Connection", "close")
			return 0, ErrBusy
		}
		b.mu.Lock()
		b.held += int64(n)
		b.mu.Unlock()
	}
	return n, err
}

func (b *budgetedBody) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.budget.give(b.source, b.held)
	b.held = 0
}

// LongPoll lifts the read and write deadlines of a request whose handler waits on purpose for as
// long as it takes (the Lambda Runtime API's /next): a read deadline would also cancel the
// request's context when it passes. It returns a function that sets a write deadline of d from
// then on, to call once the answer is ready, so a client that stops reading still cannot hold the
// connection. The connection's end (the client leaving) still cancels the request's context.
func LongPoll(w http.ResponseWriter, d time.Duration) (answering func()) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	return func() { _ = rc.SetWriteDeadline(time.Now().Add(d)) }
}

// Package directhttp sends HTTP/1.1 requests over keep-alive connections with no goroutines of
// its own: a request (headers and body) goes out in one write and its answer is read on the
// caller's goroutine. net/http's Transport hands every request to two goroutines per connection
// (a write loop and a read loop); at thousands of small requests per second on a small pod, that
// hand-off and the extra system calls cost as much CPU as the request itself (docs/benchmarks.md).
//
// It is used where Millrace makes many small requests to one origin: the dispatcher's deliveries
// to its handler (plain HTTP on the pod's loopback) and SQS API calls (HTTPS, through the AWS SDK,
// which takes a Client as its HTTP client). It speaks only HTTP/1.1, keeps no cookies, follows no
// redirects and uses no proxy; callers keep net/http where they need those.
package directhttp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Pool keeps the idle connections to one origin.
type Pool struct {
	addr string      // host:port to dial
	tls  *tls.Config // nil for plain HTTP
	// IdleAge is how long an idle connection is reused: 2 s for plain HTTP (local handlers and
	// emulators; Node.js closes idle connections after 5 s), 30 s for HTTPS (AWS endpoints keep
	// them longer, and a new connection costs a TLS handshake). An older connection is redialled
	// rather than risk a request racing the server's close; a request that races it anyway fails
	// before any answer and is sent again on a new connection.
	IdleAge time.Duration

	mu   sync.Mutex
	idle []*conn
}

type conn struct {
	net.Conn
	br       *bufio.Reader
	lastUsed time.Time
}

// maxIdle bounds the idle connections kept per origin.
const maxIdle = 64

// NewPool returns a pool for scheme ("http" or "https") and host (host or host:port); tlsConfig
// (https only) may be nil for the defaults with the host's name.
func NewPool(scheme, host string, tlsConfig *tls.Config) (*Pool, error) {
	hostname, port, err := net.SplitHostPort(host)
	if err != nil { // no port
		hostname, port = host, ""
	}
	p := &Pool{}
	switch scheme {
	case "http":
		if port == "" {
			port = "80"
		}
		p.IdleAge = 2 * time.Second
	case "https":
		if port == "" {
			port = "443"
		}
		p.IdleAge = 30 * time.Second
		if tlsConfig == nil {
			tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		p.tls = tlsConfig.Clone()
		if p.tls.ServerName == "" {
			p.tls.ServerName = hostname
		}
		p.tls.NextProtos = []string{"http/1.1"}
	default:
		return nil, fmt.Errorf("scheme %q: only http and https", scheme)
	}
	p.addr = net.JoinHostPort(hostname, port)
	return p, nil
}

// ErrTooLarge is an answer longer than the caller's limit.
var ErrTooLarge = errors.New("the answer is too large")

// aLongTimeAgo is a deadline in the past: setting it interrupts a blocked read or write.
var aLongTimeAgo = time.Unix(1, 0)

// Do sends req (a whole HTTP/1.1 request: request line, headers, blank line, body) and returns the
// answer with its body read (at most limit bytes; more is an error). A kept-alive connection the
// server closed in the meantime fails before any byte of answer (the write fails, or the
// connection ends): the request is sent again, once, on a new connection. That is also what a
// server that read the request and then died without answering looks like, so such a request can
// arrive twice; net/http tells the two apart for idle connections with a read loop per connection,
// which is the cost this package avoids. Every caller's requests may be repeated anyway (the SDK
// retries SQS calls; a batch that fails is delivered again), and the idle age keeps the race with a
// server's idle close rare. A partial answer is never retried.
func (p *Pool) Do(ctx context.Context, req []byte, limit int64) (*http.Response, []byte, error) {
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(ctx, attempt > 0)
		if err != nil {
			return nil, nil, err
		}
		resp, body, keep, unanswered, err := roundTrip(ctx, c, req, limit)
		if keep {
			p.put(c)
		} else {
			_ = c.Close()
		}
		if err != nil && reused && unanswered && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return resp, body, err
	}
}

// closedEarly reports an error of a connection the peer had already closed.
func closedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// roundTrip sends one request. unanswered reports a failure before any byte of the answer.
func roundTrip(ctx context.Context, c *conn, req []byte, limit int64) (resp *http.Response, body []byte, keep, unanswered bool, err error) {
	deadline, _ := ctx.Deadline() // zero: none
	if err := c.SetDeadline(deadline); err != nil {
		return nil, nil, false, false, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(aLongTimeAgo) })
	defer stop()
	if _, err := c.Write(req); err != nil {
		return nil, nil, false, closedEarly(err), ctxErr(ctx, err)
	}
	if _, err := c.br.Peek(1); err != nil {
		// Not one byte of answer: the connection was closed (or failed) before any.
		return nil, nil, false, closedEarly(err), ctxErr(ctx, err)
	}
	// The request's method tells ReadResponse whether a body follows (none for HEAD).
	method, _, _ := bytes.Cut(req, []byte(" "))
	for {
		resp, err = http.ReadResponse(c.br, &http.Request{Method: string(method)})
		if err != nil {
			return nil, nil, false, false, ctxErr(ctx, err)
		}
		// An informational answer (100 Continue, 103 Early Hints) precedes the real one.
		if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	defer resp.Body.Close()
	switch {
	case resp.Body == http.NoBody: // an answer to HEAD, a 204 or a 304: its length is not a body's
	case resp.ContentLength > limit:
		return nil, nil, false, false, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	case resp.ContentLength > 0: // read into a buffer of the announced size
		body = make([]byte, resp.ContentLength)
		if _, err = io.ReadFull(resp.Body, body); err != nil {
			return nil, nil, false, false, ctxErr(ctx, err)
		}
	case resp.ContentLength < 0: // chunked, or until the connection closes
		body, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return nil, nil, false, false, ctxErr(ctx, err)
		}
		if int64(len(body)) > limit {
			return nil, nil, false, false, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
		}
	}
	// Reusable only if the whole body was read, nothing more arrived, neither side asked to close
	// and the protocol was not switched.
	n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 1))
	keep = n == 0 && c.br.Buffered() == 0 && !resp.Close && resp.StatusCode != http.StatusSwitchingProtocols && stop()
	return resp, body, keep, false, nil
}

// ctxErr prefers the context's error (a deadline or cancellation interrupted the I/O). The
// connection's deadline is the context's, and may fire a moment before the context notices.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	if _, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w (%v)", context.DeadlineExceeded, err)
	}
	return err
}

// get returns an idle connection (reused) or a new one; fresh asks for a new one.
func (p *Pool) get(ctx context.Context, fresh bool) (*conn, bool, error) {
	p.mu.Lock()
	for !fresh && len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if time.Since(c.lastUsed) < p.IdleAge {
			p.mu.Unlock()
			return c, true, nil
		}
		_ = c.Close()
	}
	p.mu.Unlock()
	// As the AWS SDK's default client: a connection is given 30 s, a TLS handshake 10 s.
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	var nc net.Conn
	var err error
	if p.tls != nil {
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second+dialer.Timeout)
		defer cancel()
		nc, err = (&tls.Dialer{NetDialer: dialer, Config: p.tls}).DialContext(hctx, "tcp", p.addr)
	} else {
		nc, err = dialer.DialContext(ctx, "tcp", p.addr)
	}
	if err != nil {
		return nil, false, err
	}
	return &conn{Conn: nc, br: bufio.NewReaderSize(nc, 16<<10)}, false, nil
}

func (p *Pool) put(c *conn) {
	c.lastUsed = time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.idle) >= maxIdle {
		_ = c.Close()
		return
	}
	p.idle = append(p.idle, c)
}

// Close closes the idle connections.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.idle {
		_ = c.Close()
	}
	p.idle = nil
}

// Client is an HTTP client over Pools, one per origin, with the shape the AWS SDK takes as its
// HTTP client (Do). Request bodies are read whole before sending; answers are read whole (at most
// MaxResponse bytes, default 64 MiB) and returned with an in-memory body.
type Client struct {
	// TLS is the base configuration for https origins (nil: the defaults).
	TLS         *tls.Config
	MaxResponse int64

	mu    sync.Mutex
	pools map[string]*Pool
}

// framingHeaders are the headers Client.Do writes itself rather than from the request's Header.
var framingHeaders = map[string]bool{"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true}

// Do sends r and returns its answer.
func (c *Client) Do(r *http.Request) (*http.Response, error) {
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	pool, err := c.pool(r.URL.Scheme, r.URL.Host)
	if err != nil {
		return nil, err
	}
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	hasBody := r.Body != nil && r.Body != http.NoBody
	var body []byte // read ahead only when its length is not announced
	if hasBody && r.ContentLength <= 0 {
		body, err = io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		hasBody = false
	}
	length := len(body)
	if hasBody {
		length = int(r.ContentLength)
	}
	// The request is written into one pooled buffer, the body read straight into its place.
	pooled := requestBuffers.Get().(*[]byte)
	defer func() {
		if cap(*pooled) <= maxPooledRequest {
			requestBuffers.Put(pooled)
		}
	}()
	buf := bytes.NewBuffer((*pooled)[:0])
	buf.Grow(2048 + length) // the SDK's headers (signature, user agent) take about 1 KiB
	buf.WriteString(method)
	buf.WriteByte(' ')
	buf.WriteString(r.URL.RequestURI())
	buf.WriteString(" HTTP/1.1\r\nHost: ")
	buf.WriteString(host)
	buf.WriteString("\r\n")
	if err := r.Header.WriteSubset(buf, framingHeaders); err != nil {
		return nil, err
	}
	if length > 0 || (method != http.MethodGet && method != http.MethodHead) {
		buf.WriteString("Content-Length: ")
		buf.WriteString(strconv.Itoa(length))
		buf.WriteString("\r\n")
	}
	buf.WriteString("\r\n")
	if hasBody { // the SDK announces its bodies' length: read them into place
		buf.Grow(length)
		tail := buf.AvailableBuffer()[:length]
		_, err = io.ReadFull(r.Body, tail)
		_ = r.Body.Close()
		if err != nil {
			return nil, err
		}
		buf.Write(tail)
	} else {
		buf.Write(body)
	}
	*pooled = buf.Bytes()[:0]
	limit := c.MaxResponse
	if limit == 0 {
		limit = 64 << 20
	}
	resp, out, err := pool.Do(r.Context(), buf.Bytes(), limit) // buf is not kept past this call
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Request = r
	return resp, nil
}

// requestBuffers holds request buffers between calls; one grown past maxPooledRequest is dropped.
var requestBuffers = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledRequest = 1 << 20

func (c *Client) pool(scheme, host string) (*Pool, error) {
	key := scheme + "://" + host
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.pools[key]; p != nil {
		return p, nil
	}
	p, err := NewPool(scheme, host, c.TLS)
	if err != nil {
		return nil, err
	}
	if c.pools == nil {
		c.pools = map[string]*Pool{}
	}
	c.pools[key] = p
	return p, nil
}

// CloseIdleConnections closes every pool's idle connections.
func (c *Client) CloseIdleConnections() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pools {
		p.Close()
	}
}

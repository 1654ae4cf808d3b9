package dispatch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// localHTTP posts requests to one plain-HTTP handler on this host over keep-alive connections,
// with no goroutines of its own: the request (headers and body) goes out in one write and the
// answer is read on the caller's goroutine. net/http's Transport hands every request to two
// goroutines per connection; at thousands of batches per second on a small pod that hand-off
// costs as much CPU as the delivery itself (docs/benchmarks.md).
type localHTTP struct {
	addr, host, target string

	mu   sync.Mutex
	idle []*localConn
}

type localConn struct {
	net.Conn
	br       *bufio.Reader
	lastUsed time.Time
}

// maxIdleAge is how long an idle connection is reused. Servers close idle keep-alive connections
// on their own schedule (Node.js after 5 s); a connection older than this is redialled rather
// than risk a request racing the server's close.
const maxIdleAge = 2 * time.Second

func newLocalHTTP(rawURL string) (*localHTTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("handler URL: %w", err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("handler URL %q: scheme must be http", rawURL)
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &localHTTP{addr: addr, host: u.Host, target: u.RequestURI()}, nil
}

// aLongTimeAgo is a deadline in the past: setting it interrupts a blocked read or write.
var aLongTimeAgo = time.Unix(1, 0)

// post sends body with the given extra header lines (each "Name: value\r\n") and returns the
// status code, the status line and the response body (at most limit bytes).
func (t *localHTTP) post(ctx context.Context, header []byte, body []byte, limit int64) (int, string, []byte, error) {
	req := make([]byte, 0, len(t.target)+len(t.host)+len(header)+len(body)+96)
	req = append(req, "POST "...)
	req = append(req, t.target...)
	req = append(req, " HTTP/1.1\r\nHost: "...)
	req = append(req, t.host...)
	req = append(req, "\r\nContent-Length: "...)
	req = strconv.AppendInt(req, int64(len(body)), 10)
	req = append(req, "\r\n"...)
	req = append(req, header...)
	req = append(req, "\r\n"...)
	req = append(req, body...)
	for attempt := 0; ; attempt++ {
		c, reused, err := t.get(ctx, attempt > 0)
		if err != nil {
			return 0, "", nil, err
		}
		code, status, out, keep, unanswered, err := t.roundTrip(ctx, c, req, limit)
		if keep {
			t.put(c)
		} else {
			_ = c.Close()
		}
		// A kept-alive connection the server closed in the meantime fails before the handler has
		// read the request (the write fails, or the connection ends without a byte of answer):
		// send it again, once, on a new connection.
		if err != nil && reused && unanswered && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return code, status, out, err
	}
}

// closedEarly reports an error of a connection the peer had already closed.
func closedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// roundTrip sends one request. unanswered reports a failure before any byte of the answer: the
// write failed, or the connection was closed without one. A partial answer is not retried (the
// handler has seen the request).
func (t *localHTTP) roundTrip(ctx context.Context, c *localConn, req []byte, limit int64) (code int, status string, out []byte, keep, unanswered bool, err error) {
	deadline, _ := ctx.Deadline() // zero: none
	if err := c.SetDeadline(deadline); err != nil {
		return 0, "", nil, false, false, err
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(aLongTimeAgo) })
	defer stop()
	if _, err := c.Write(req); err != nil {
		return 0, "", nil, false, closedEarly(err), ctxErr(ctx, err)
	}
	if _, err := c.br.Peek(1); err != nil {
		// Not one byte of answer: the connection was closed (or failed) before any.
		return 0, "", nil, false, closedEarly(err), ctxErr(ctx, err)
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return 0, "", nil, false, false, ctxErr(ctx, err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != 0 {
		out, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return 0, "", nil, false, false, ctxErr(ctx, err)
		}
		if int64(len(out)) > limit {
			return 0, "", nil, false, false, fmt.Errorf("the handler's answer is larger than %d bytes", limit)
		}
	}
	// Reusable only if the whole body was read and neither side asked to close.
	n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, 1))
	keep = n == 0 && !resp.Close && stop()
	return resp.StatusCode, resp.Status, out, keep, false, nil
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
func (t *localHTTP) get(ctx context.Context, fresh bool) (*localConn, bool, error) {
	t.mu.Lock()
	for !fresh && len(t.idle) > 0 {
		c := t.idle[len(t.idle)-1]
		t.idle = t.idle[:len(t.idle)-1]
		if time.Since(c.lastUsed) < maxIdleAge {
			t.mu.Unlock()
			return c, true, nil
		}
		_ = c.Close()
	}
	t.mu.Unlock()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, false, err
	}
	return &localConn{Conn: conn, br: bufio.NewReaderSize(conn, 16<<10)}, false, nil
}

func (t *localHTTP) put(c *localConn) {
	c.lastUsed = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.idle) >= 64 {
		_ = c.Close()
		return
	}
	t.idle = append(t.idle, c)
}

// close closes the idle connections.
func (t *localHTTP) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.idle {
		_ = c.Close()
	}
	t.idle = nil
}

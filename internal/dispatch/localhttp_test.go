package dispatch

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The invoker's own keep-alive client against real net/http servers that close connections,
// stream their answers, stall, or hang up.
func TestLocalHTTP(t *testing.T) {
	post := func(t *testing.T, url string, timeout time.Duration) (int, string, error) {
		t.Helper()
		l, err := newLocalHTTP(url)
		if err != nil {
			t.Fatal(err)
		}
		defer l.close()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		code, _, out, err := l.post(ctx, []byte("X-Test: 1\r\n"), []byte(`{"a":1}`), 1<<20)
		return code, string(out), err
	}

	t.Run("reuses a connection and redials after the server closed it while idle", func(t *testing.T) {
		var conns atomic.Int32
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			if string(b) != `{"a":1}` || r.Header.Get("X-Test") != "1" || r.Method != http.MethodPost {
				w.WriteHeader(400)
				return
			}
			_, _ = w.Write([]byte("ok"))
		}))
		srv.Config.IdleTimeout = 100 * time.Millisecond
		srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				conns.Add(1)
			}
		}
		srv.Start()
		defer srv.Close()
		l, _ := newLocalHTTP(srv.URL + "/invoke?x=1")
		defer l.close()
		for i := 0; i < 3; i++ {
			code, _, out, err := l.post(context.Background(), []byte("X-Test: 1\r\n"), []byte(`{"a":1}`), 1<<20)
			if err != nil || code != 200 || string(out) != "ok" {
				t.Fatalf("request %d: %d %q %v", i, code, out, err)
			}
		}
		if n := conns.Load(); n != 1 {
			t.Errorf("3 requests in a row used %d connections, want 1 (keep-alive)", n)
		}
		time.Sleep(300 * time.Millisecond) // the server closes the idle connection
		// Defeat the client's own idle age so the stale connection is really tried.
		l.mu.Lock()
		for _, c := range l.idle {
			c.lastUsed = time.Now()
		}
		l.mu.Unlock()
		code, _, out, err := l.post(context.Background(), []byte("X-Test: 1\r\n"), []byte(`{"a":1}`), 1<<20)
		if err != nil || code != 200 || string(out) != "ok" {
			t.Fatalf("after idle close: %d %q %v", code, out, err)
		}
		if n := conns.Load(); n != 2 {
			t.Errorf("connections = %d, want 2 (one redial)", n)
		}
	})

	t.Run("chunked answer and Connection: close", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			_, _ = w.Write([]byte(`{"batchItemFailures":[`))
			w.(http.Flusher).Flush() // forces chunked encoding
			_, _ = w.Write([]byte(`{"itemIdentifier":"m2"}]}`))
		}))
		defer srv.Close()
		for i := 0; i < 2; i++ {
			code, out, err := post(t, srv.URL, 5*time.Second)
			if err != nil || code != 200 || out != `{"batchItemFailures":[{"itemIdentifier":"m2"}]}` {
				t.Fatalf("%d %q %v", code, out, err)
			}
			if o := parseOutcome([]byte(out)); len(o.Failed) != 1 || o.Failed[0] != "m2" {
				t.Errorf("outcome %+v", o)
			}
		}
	})

	t.Run("a stalled handler ends at the deadline", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
		defer srv.Close()
		defer close(release)
		start := time.Now()
		_, _, err := post(t, srv.URL, 200*time.Millisecond)
		if err == nil || !strings.Contains(err.Error(), "deadline exceeded") {
			t.Errorf("err = %v, want a deadline error", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
	})

	t.Run("a handler that hangs up on a new connection is not retried", func(t *testing.T) {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			c, _, _ := w.(http.Hijacker).Hijack()
			_ = c.Close()
		}))
		defer srv.Close()
		if _, _, err := post(t, srv.URL, 5*time.Second); err == nil {
			t.Error("no error")
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("handler saw %d requests, want 1", n)
		}
	})

	t.Run("bad URLs", func(t *testing.T) {
		for _, u := range []string{"ftp://x", "://", "unix:///tmp/s"} {
			if _, err := newLocalHTTP(u); err == nil {
				t.Errorf("%q accepted", u)
			}
		}
	})
}

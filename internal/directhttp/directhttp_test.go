package directhttp

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// request is a POST of {"a":1} with the header X-Test: 1.
func request(host string) []byte {
	return []byte("POST /invoke?x=1 HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 7\r\nX-Test: 1\r\n\r\n{\"a\":1}")
}

func newPool(t *testing.T, rawURL string) (*Pool, string) {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPool(u.Scheme, u.Host, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, u.Host
}

// Pools against real net/http servers that close connections, stream their answers, stall, or
// hang up.
func TestPool(t *testing.T) {
	post := func(t *testing.T, url string, timeout time.Duration) (int, string, error) {
		t.Helper()
		p, host := newPool(t, url)
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		resp, out, err := p.Do(ctx, request(host), 1<<20)
		if err != nil {
			return 0, "", err
		}
		return resp.StatusCode, string(out), nil
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
		l, host := newPool(t, srv.URL)
		defer l.Close()
		for i := 0; i < 3; i++ {
			code, out, err := post1(l, host)
			if err != nil || code != 200 || out != "ok" {
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
		code, out, err := post1(l, host)
		if err != nil || code != 200 || out != "ok" {
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

	t.Run("an answer over the limit is an error", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(make([]byte, 2048)) }))
		defer srv.Close()
		p, host := newPool(t, srv.URL)
		if _, _, err := p.Do(context.Background(), request(host), 1024); !errors.Is(err, ErrTooLarge) {
			t.Errorf("err = %v, want ErrTooLarge", err)
		}
	})

	t.Run("informational answers precede the answer", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Del("Link")
			_, _ = w.Write([]byte(r.URL.Query().Get("n")))
		}))
		defer srv.Close()
		p, host := newPool(t, srv.URL)
		defer p.Close()
		for _, n := range []string{"1", "2", "3"} { // on one connection: each gets its own answer
			resp, out, err := p.Do(context.Background(), []byte("GET /?n="+n+" HTTP/1.1\r\nHost: "+host+"\r\n\r\n"), 1<<20)
			if err != nil || resp.StatusCode != 200 || string(out) != n {
				t.Fatalf("request %s: %v %q %v", n, resp, out, err)
			}
		}
	})

	t.Run("a HEAD answer has no body", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
		}))
		defer srv.Close()
		p, host := newPool(t, srv.URL)
		defer p.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp, out, err := p.Do(ctx, []byte("HEAD / HTTP/1.1\r\nHost: "+host+"\r\n\r\n"), 1<<20)
		if err != nil || resp.StatusCode != 200 || len(out) != 0 || resp.ContentLength != 1000 {
			t.Fatalf("%v %q %v", resp, out, err)
		}
	})

	t.Run("bad schemes", func(t *testing.T) {
		for _, s := range []string{"ftp", "", "unix"} {
			if _, err := NewPool(s, "x", nil); err == nil {
				t.Errorf("%q accepted", s)
			}
		}
	})
}

func post1(p *Pool, host string) (int, string, error) {
	resp, out, err := p.Do(context.Background(), request(host), 1<<20)
	if err != nil {
		return 0, "", err
	}
	return resp.StatusCode, string(out), nil
}

// The Client sends what net/http would (method, path and query, Host, headers, body) over plain
// HTTP and TLS, reuses connections, and returns answers with their headers and an in-memory body.
func TestClient(t *testing.T) {
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen", r.Method+" "+r.URL.RequestURI()+" "+r.Host+" "+r.Header.Get("X-Amz-Target")+" "+string(b))
		w.WriteHeader(201)
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	plain := httptest.NewServer(handler)
	defer plain.Close()
	var conns atomic.Int32
	secure := httptest.NewUnstartedServer(handler)
	secure.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	secure.StartTLS()
	defer secure.Close()
	c := &Client{TLS: secure.Client().Transport.(*http.Transport).TLSClientConfig}
	defer c.CloseIdleConnections()
	for _, base := range []string{plain.URL, secure.URL, secure.URL} {
		req, _ := http.NewRequest(http.MethodPost, base+"/q/1?Action=x", strings.NewReader(`{"QueueUrl":"u"}`))
		req.Header.Set("X-Amz-Target", "AmazonSQS.SendMessage")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		body, _ := io.ReadAll(resp.Body)
		host := strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://")
		if resp.StatusCode != 201 || string(body) != `{"ok":true}` || resp.Header.Get("X-Seen") != `POST /q/1?Action=x `+host+` AmazonSQS.SendMessage {"QueueUrl":"u"}` {
			t.Errorf("%s: %d %q %q", base, resp.StatusCode, body, resp.Header.Get("X-Seen"))
		}
	}
	req, _ := http.NewRequest(http.MethodGet, plain.URL+"/ping", nil)
	if resp, err := c.Do(req); err != nil || resp.Header.Get("X-Seen") != "GET /ping "+strings.TrimPrefix(plain.URL, "http://") {
		t.Errorf("GET: %v %v", resp, err)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("two TLS requests used %d connections, want 1", n)
	}
}

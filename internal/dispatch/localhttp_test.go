package dispatch

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
)

// The invoker's client posts the body and header lines it is given, refuses URLs that are not
// plain HTTP, and fails an answer over its limit (a truncated one could hide batchItemFailures).
func TestLocalHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.RequestURI() != "/invoke?x=1" || r.Header.Get("X-Test") != "1" || string(b) != `{"a":1}` {
			w.WriteHeader(400)
			return
		}
		_, _ = w.Write([]byte(strings.Repeat("k", 100)))
	}))
	defer srv.Close()
	l, err := newLocalHTTP(srv.URL + "/invoke?x=1")
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	code, status, out, err := l.post(context.Background(), []byte("X-Test: 1\r\n"), []byte(`{"a":1}`), 1<<20)
	if err != nil || code != 200 || status != "200 OK" || len(out) != 100 {
		t.Fatalf("%d %q %q %v", code, status, out, err)
	}
	if _, _, _, err := l.post(context.Background(), []byte("X-Test: 1\r\n"), []byte(`{"a":1}`), 10); err == nil || !strings.Contains(err.Error(), "handler's answer is larger than 10 bytes") {
		t.Errorf("over the limit: %v", err)
	}
	for _, u := range []string{"ftp://x", "://", "unix:///tmp/s", "https://x"} {
		if _, err := newLocalHTTP(u); err == nil {
			t.Errorf("%q accepted", u)
		}
	}
}

// In a new pod the dispatcher starts before the handler listens: a batch waits for the handler
// within its deadline instead of failing (which would spend a receive of every message), and
// fails as unreachable once the deadline passes with nobody listening.
func TestABatchWaitsForAHandlerThatIsStillStarting(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nobody listens yet
	inv := &HTTPInvoker{URL: "http://" + addr + "/"}
	defer inv.Close()
	event := events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m1", Body: "{}"}}}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := inv.Invoke(ctx, event, []string{"k1"}); err == nil || !strings.Contains(err.Error(), "handler") || time.Since(start) < 250*time.Millisecond {
		t.Fatalf("nobody listening: %v after %v, want a failure at the deadline", err, time.Since(start))
	}

	started := make(chan struct{})
	go func() {
		time.Sleep(300 * time.Millisecond)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			close(started)
			return
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{}`)) }), ReadHeaderTimeout: time.Second}
		close(started)
		_ = srv.Serve(l)
	}()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := inv.Invoke(ctx, event, []string{"k1"}); err != nil {
		t.Fatalf("a handler listening 300ms late: %v", err)
	}
	<-started
}

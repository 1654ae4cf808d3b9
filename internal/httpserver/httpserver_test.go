package httpserver_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/millrace-io/millrace/internal/httpserver"
	"github.com/millrace-io/millrace/internal/httpserver/slowclient"
)

// short are limits a test can wait out; the bound a test waits is many times longer.
var short = httpserver.Limits{ReadHeader: 200 * time.Millisecond, Read: 300 * time.Millisecond, Write: 400 * time.Millisecond,
	Idle: 300 * time.Millisecond, MaxHeaderBytes: 4 << 10}

// serve starts s on a loopback port and returns its address.
func serve(t *testing.T, s *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return ln.Addr().String()
}

func TestSlowClientsAreDisconnectedAfterTheTimeouts(t *testing.T) {
	addr := serve(t, httpserver.New("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}), short))
	for _, tc := range []struct {
		name   string
		attack slowclient.Attack
	}{
		{"a body sent a byte at a time", slowclient.SlowBody("POST", "/")},
		{"headers sent a byte at a time", slowclient.SlowHeaders("/")},
		{"a kept-alive connection left idle", slowclient.Idle("/")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if held := slowclient.Held(addr, 20, tc.attack, 10*time.Second); held > 0 {
				t.Errorf("%d of 20 connections still open after 10s", held)
			}
		})
	}
}

func TestOversizedHeadersAreRefused(t *testing.T) {
	addr := serve(t, httpserver.New("", http.NotFoundHandler(), short))
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	req.Header.Set("Authorization", "Bearer "+strings.Repeat("x", 16<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
}

// The handler's context ends before the write timeout, so it can still answer.
func TestAHandlerIsToldToStopBeforeTheConnectionIsCut(t *testing.T) {
	addr := serve(t, httpserver.New("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		http.Error(w, "gave up", http.StatusServiceUnavailable)
	}), short))
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", resp.StatusCode)
	}
}

// A long poll outlives the read and write timeouts and still delivers its answer.
func TestALongPollOutlivesTheTimeouts(t *testing.T) {
	ready := make(chan struct{})
	l := short
	l.Handler = -1
	addr := serve(t, httpserver.New("", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answering := httpserver.LongPoll(w, time.Second)
		select {
		case <-ready:
		case <-r.Context().Done():
			return
		}
		answering()
		_, _ = w.Write([]byte("work"))
	}), l))
	go func() {
		time.Sleep(3 * short.Write) // the answer is ready long after every timeout
		close(ready)
	}()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "work" {
		t.Errorf("answer %q, want work", body)
	}
}

package dispatch

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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

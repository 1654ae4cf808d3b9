package dispatch

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"

	"github.com/millrace-io/millrace/internal/directhttp"
)

// localHTTP posts requests to one plain-HTTP handler on this host over the dispatcher's own
// keep-alive connections (internal/directhttp): the request goes out in one write and the answer
// is read on the delivering goroutine, with no transport goroutines in between.
type localHTTP struct {
	pool         *directhttp.Pool
	host, target string
}

func newLocalHTTP(rawURL string) (*localHTTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("handler URL: %w", err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("handler URL %q: scheme must be http", rawURL)
	}
	pool, err := directhttp.NewPool("http", u.Host, nil)
	if err != nil {
		return nil, fmt.Errorf("handler URL %q: %w", rawURL, err)
	}
	return &localHTTP{pool: pool, host: u.Host, target: u.RequestURI()}, nil
}

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
	resp, out, err := t.pool.Do(ctx, req, limit)
	if errors.Is(err, directhttp.ErrTooLarge) {
		// A truncated answer could hide batchItemFailures: the batch fails instead.
		return 0, "", nil, fmt.Errorf("the handler's answer is larger than %d bytes", limit)
	}
	if err != nil {
		return 0, "", nil, err
	}
	return resp.StatusCode, resp.Status, out, nil
}

// close closes the idle connections.
func (t *localHTTP) close() { t.pool.Close() }

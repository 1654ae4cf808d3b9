package callback_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/dispatch"
	"github.com/millrace-io/millrace/internal/tasktoken"
)

// memorySink stands in for the WorkflowRun controller: one run at attempt 2 of state "Charge".
type memorySink struct {
	mu      sync.Mutex
	current tasktoken.Claims
	got     []callback.Result
}

func (m *memorySink) Report(_ context.Context, c tasktoken.Claims, r callback.Result) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case c.Run != m.current.Run:
		return callback.ErrUnknownRun
	case !c.SameTask(m.current):
		return callback.ErrStale
	}
	m.got = append(m.got, r)
	return nil
}

// serveRun serves the callback API for one run at an attempt of a state, on 127.0.0.1.
func serveRun(t *testing.T, state string, attempt int) (*tasktoken.Signer, tasktoken.Claims, *memorySink, *httptest.Server) {
	t.Helper()
	signer, _ := tasktoken.NewSigner([]byte(strings.Repeat("s", 32)))
	current := tasktoken.Claims{Namespace: "shop", Run: "r1", RunUID: "u", State: state, Attempt: attempt, IssuedAt: time.Now()}
	sink := &memorySink{current: current}
	server := httptest.NewServer(callback.Handler(signer, sink))
	t.Cleanup(server.Close)
	return signer, current, sink, server
}

// refusedTokens are tokens for the run at current that the API must refuse: of an earlier attempt,
// past their age, signed with another key, and of a run that does not exist.
func refusedTokens(signer *tasktoken.Signer, current tasktoken.Claims) (stale, expired, forged, unknownRun string) {
	earlier := current
	earlier.Attempt--
	stale, _ = signer.Issue(earlier)
	leaked := current
	leaked.IssuedAt = time.Now().Add(-tasktoken.DefaultMaxAge - time.Hour)
	expired, _ = signer.Issue(leaked)
	other, _ := tasktoken.NewSigner([]byte(strings.Repeat("o", 32)))
	forged, _ = other.Issue(current)
	unknown := current
	unknown.Run = "r2"
	unknownRun, _ = signer.Issue(unknown)
	return stale, expired, forged, unknownRun
}

func TestTheDispatchersCallbackClientAndTheAPIAgree(t *testing.T) {
	signer, current, sink, server := serveRun(t, "Charge", 2)
	client := &dispatch.CallbackClient{BaseURL: server.URL}
	ctx := context.Background()

	token, _ := signer.Issue(current)
	if err := client.TaskSuccess(ctx, token, []byte(`{"charged":true}`)); err != nil {
		t.Fatalf("success: %v", err)
	}
	if err := client.TaskHeartbeat(ctx, token); err != nil {
		t.Fatalf("heartbeat: %v", err)
	}
	if err := client.TaskFailure(ctx, token, "Card.Declined", "no funds"); err != nil {
		t.Fatalf("failure: %v", err)
	}
	if len(sink.got) != 3 || string(sink.got[0].Output) != `{"charged":true}` || sink.got[2].Error != "Card.Declined" {
		t.Fatalf("recorded %+v", sink.got)
	}

	staleToken, leakedToken, forged, unknownToken := refusedTokens(signer, current)
	// Only 404 and 410 are final: the dispatcher gives up on the report and deletes the message.
	// Anything else may change (a key rotated back, a fixed request) and is retried.
	for name, tc := range map[string]struct {
		token  string
		status int
		final  bool
	}{
		"a stale token is refused with 410, for good":         {staleToken, http.StatusGone, true},
		"an expired token is refused with 410, for good":      {leakedToken, http.StatusGone, true},
		"an unknown run is refused with 404, for good":        {unknownToken, http.StatusNotFound, true},
		"a forged token is refused with 403, to try again":    {forged, http.StatusForbidden, false},
		"a malformed token is refused with 400, to try again": {"garbage", http.StatusBadRequest, false},
	} {
		t.Run(name, func(t *testing.T) {
			err := client.TaskSuccess(ctx, tc.token, []byte(`{}`))
			var refused *dispatch.RefusedError
			final := errors.As(err, &refused)
			if err == nil || final != tc.final || (final && refused.Status != tc.status) || (!final && !strings.Contains(err.Error(), fmt.Sprint(tc.status))) {
				t.Fatalf("error %v, want status %d, final %v", err, tc.status, tc.final)
			}
		})
	}
	var tooLarge *dispatch.TooLargeError
	if err := client.TaskSuccess(ctx, token, []byte(`"`+strings.Repeat("x", callback.MaxBody)+`"`)); !errors.As(err, &tooLarge) {
		t.Fatalf("an output over 256 KiB: %v, want TooLargeError", err)
	}
}

func TestBadRequests(t *testing.T) {
	signer, _ := tasktoken.NewSigner([]byte(strings.Repeat("s", 32)))
	server := httptest.NewServer(callback.Handler(signer, &memorySink{}))
	defer server.Close()
	for name, tc := range map[string]struct {
		body   string
		status int
	}{
		"a body that is not JSON": {"nope", 400},
		"a missing token":         {`{"output":{}}`, 400},
		"a body over 256 KiB":     {`{"taskToken":"` + strings.Repeat("x", 300<<10) + `"}`, 413},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := http.Post(server.URL+"/v1/tasks/success", "application/json", strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var msg map[string]string
			_ = json.NewDecoder(resp.Body).Decode(&msg)
			if resp.StatusCode != tc.status || msg["error"] == "" {
				t.Fatalf("status %d %v", resp.StatusCode, msg)
			}
		})
	}
}

package dispatch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/millrace-io/millrace/internal/dispatch"
	"github.com/millrace-io/millrace/internal/httpserver"
	"github.com/millrace-io/millrace/internal/httpserver/slowclient"
)

var shortLimits = httpserver.Limits{ReadHeader: 200 * time.Millisecond, Read: 300 * time.Millisecond, Write: 400 * time.Millisecond, Idle: 300 * time.Millisecond}

func listen(t *testing.T, api *dispatch.RuntimeAPI) string {
	t.Helper()
	addr, err := api.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Close() })
	return addr
}

// Anything in the pod can reach the Runtime API: a body sent a byte at a time is cut off.
func TestSlowBodiesCannotExhaustTheLambdaRuntimeAPI(t *testing.T) {
	addr := listen(t, &dispatch.RuntimeAPI{Limits: shortLimits})
	if held := slowclient.Held(addr, 40, slowclient.SlowBody("POST", "/2018-06-01/runtime/invocation/x/response"), 10*time.Second); held > 0 {
		t.Errorf("%d of 40 slow connections still open after 10s", held)
	}
}

// invokeOnce starts an invocation and returns its request id (read from /next) and its outcome.
func invokeOnce(t *testing.T, api *dispatch.RuntimeAPI, addr string, waitFirst time.Duration) (string, <-chan error) {
	t.Helper()
	next := make(chan *http.Response, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/2018-06-01/runtime/invocation/next")
		if err != nil {
			t.Error(err)
			close(next)
			return
		}
		next <- resp
	}()
	time.Sleep(waitFirst) // the runtime waits on /next before any work comes
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := api.Invoke(ctx, events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m1", Body: "{}"}}}, []string{"m1"})
		done <- err
	}()
	resp, ok := <-next
	if !ok {
		t.FailNow()
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("Lambda-Runtime-Aws-Request-Id")
	if resp.StatusCode != http.StatusOK || id == "" {
		t.Fatalf("/next answered %d with id %q", resp.StatusCode, id)
	}
	return id, done
}

// /next is a long poll: waiting longer than every timeout of the server still gets the work.
func TestTheRuntimeAPIsLongPollOutlivesItsTimeouts(t *testing.T) {
	api := &dispatch.RuntimeAPI{Limits: shortLimits}
	addr := listen(t, api)
	id, done := invokeOnce(t, api, addr, 3*shortLimits.Write)
	resp, err := http.Post("http://"+addr+"/2018-06-01/runtime/invocation/"+id+"/response", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := <-done; err != nil {
		t.Fatalf("the invocation failed: %v", err)
	}
}

// A runtime that answers one invocation twice gets an error for the second answer instead of a
// connection held forever.
func TestASecondAnswerToAnInvocationIsRefused(t *testing.T) {
	api := &dispatch.RuntimeAPI{}
	addr := listen(t, api)
	id, done := invokeOnce(t, api, addr, 0)
	client := &http.Client{Timeout: 10 * time.Second}
	url := "http://" + addr + "/2018-06-01/runtime/invocation/" + id
	first, err := client.Post(url+"/response", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	first.Body.Close()
	second, err := client.Post(url+"/error", "application/json", strings.NewReader(`{"errorType":"Late"}`))
	if err != nil {
		t.Fatalf("the second answer was not answered: %v", err)
	}
	second.Body.Close()
	// 403 while the invocation is still pending, 400 once it has gone.
	if second.StatusCode != http.StatusForbidden && second.StatusCode != http.StatusBadRequest {
		t.Errorf("second answer: %d, want 403 or 400", second.StatusCode)
	}
	if err := <-done; err != nil {
		t.Fatalf("the first answer was lost: %v", err)
	}
}

// A runtime that dies while posting its answer (OOM-killed, crashed) has not answered: on Lambda
// the invocation fails and the batch comes back. The part of the body that arrived used to be
// taken for a successful answer, and without reportBatchItemFailures the whole batch was deleted.
func TestARuntimeThatDiesMidAnswerHasNotSucceeded(t *testing.T) {
	api := &dispatch.RuntimeAPI{Limits: shortLimits}
	addr := listen(t, api)
	id, done := invokeOnce(t, api, addr, 0)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"partial\":", id)
	time.Sleep(50 * time.Millisecond)
	conn.Close() // the runtime is gone, 99,989 bytes short
	var fe *dispatch.FunctionError
	if err := <-done; !errors.As(err, &fe) || fe.Type != "Runtime.ExitError" {
		t.Fatalf("a runtime that died mid-answer: %v, want the invocation failed with Runtime.ExitError", err)
	}
}

// Lambda's limit on an answer is 6 MB: a bigger one fails the invocation
// (Function.ResponseSizeTooLarge, 413 to the runtime) and the batch comes back. It used to be cut
// to its first 6 MiB and taken for a success: a batchItemFailures after 6 MiB of whitespace was
// lost, and the message it named deleted.
func TestAnAnswerOverSixMBFailsTheInvocation(t *testing.T) {
	api := &dispatch.RuntimeAPI{}
	addr := listen(t, api)
	id, done := invokeOnce(t, api, addr, 0)
	body := append(bytes.Repeat([]byte(" "), dispatch.MaxResponse), []byte(`{"batchItemFailures":[{"itemIdentifier":"m1"}]}`)...)
	resp, err := http.Post("http://"+addr+"/2018-06-01/runtime/invocation/"+id+"/response", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var fe *dispatch.FunctionError
	if err := <-done; !errors.As(err, &fe) || fe.Type != "Function.ResponseSizeTooLarge" || resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("an answer of %d bytes: %v, runtime answered %d; want Function.ResponseSizeTooLarge and 413", len(body), err, resp.StatusCode)
	}
}

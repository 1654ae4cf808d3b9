package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/millrace-io/millrace/internal/callback"
)

// The callback contract (served by the manager, see the workflow docs):
//
//	POST {base}/v1/tasks/success    {"taskToken": "...", "output": <JSON>}
//	POST {base}/v1/tasks/failure    {"taskToken": "...", "error": "...", "cause": "..."}
//	POST {base}/v1/tasks/heartbeat  {"taskToken": "..."}
//
// 2xx means accepted. Only 404 (no such run) and 410 (the task has moved on or its token has
// expired) are final: the report can never be accepted. 413 means the report is over the API's
// 256 KiB limit: the caller reports the task failed with States.DataLimitExceeded instead. Any
// other answer (400, 403 after a key rotation, 5xx) may change, so the report is retried and, if
// it still fails, the message is kept for another delivery.

// CallbackClient reports workflow task results to the manager.
type CallbackClient struct {
	BaseURL string
	Client  *http.Client
}

// TaskSuccess reports a task's output (a JSON document; non-JSON output is sent as a JSON string).
func (c *CallbackClient) TaskSuccess(ctx context.Context, token string, output []byte) error {
	if !json.Valid(output) {
		quoted, _ := json.Marshal(string(output))
		output = quoted
	}
	if len(bytes.TrimSpace(output)) == 0 {
		output = []byte("{}")
	}
	return c.post(ctx, "success", map[string]any{"taskToken": token, "output": json.RawMessage(output)})
}

// TaskFailure reports a task's error name and cause.
func (c *CallbackClient) TaskFailure(ctx context.Context, token, errName, cause string) error {
	return c.post(ctx, "failure", map[string]any{"taskToken": token, "error": errName, "cause": cause})
}

// TaskHeartbeat tells the manager a task is still running.
func (c *CallbackClient) TaskHeartbeat(ctx context.Context, token string) error {
	return c.post(ctx, "heartbeat", map[string]any{"taskToken": token})
}

// RefusedError is a final answer (404, 410): the manager will never accept this report.
type RefusedError struct{ Status int }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("callback refused with status %d", e.Status)
}

// TooLargeError is a report over the callback API's size limit (413, or found so before sending).
type TooLargeError struct{ Size int }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the report is %d bytes, over the callback API's limit of %d", e.Size, callback.MaxBody)
}

func (c *CallbackClient) post(ctx context.Context, kind string, payload any) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	if len(body) > callback.MaxBody { // the API would read 256 KiB of it and refuse the rest
		return &TooLargeError{Size: len(body)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+"/v1/tasks/"+kind, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	client := c.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return &RefusedError{Status: resp.StatusCode}
	case resp.StatusCode == http.StatusRequestEntityTooLarge:
		return &TooLargeError{Size: len(body)}
	default:
		return fmt.Errorf("callback answered %d", resp.StatusCode)
	}
}

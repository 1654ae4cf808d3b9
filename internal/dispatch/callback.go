package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// The callback contract (served by the manager, see the workflow docs):
//
//	POST {base}/v1/tasks/success    {"taskToken": "...", "output": <JSON>}
//	POST {base}/v1/tasks/failure    {"taskToken": "...", "error": "...", "cause": "..."}
//	POST {base}/v1/tasks/heartbeat  {"taskToken": "..."}
//
// 2xx means accepted; 4xx means the token was refused (stale, forged, already completed) and is not
// retried; anything else is retried by the caller.

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

// RefusedError is a 4xx answer: the manager will never accept this report.
type RefusedError struct{ Status int }

func (e *RefusedError) Error() string {
	return fmt.Sprintf("callback refused with status %d", e.Status)
}

func (c *CallbackClient) post(ctx context.Context, kind string, payload any) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return err
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
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return &RefusedError{Status: resp.StatusCode}
	default:
		return fmt.Errorf("callback answered %d", resp.StatusCode)
	}
}

package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/millrace-io/millrace/internal/asl"
	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/egress"
)

// httpTask performs a millrace:http task for namespace ns: Parameters Method (default GET), Url,
// Headers (name -> string), Body (a string, or JSON sent as application/json). The result is
// {StatusCode, Headers, Body} with a JSON body parsed; a non-2xx answer fails with
// States.Http.StatusCode.<code>. The call goes through the egress client, to a destination the
// namespace's TenantPolicies grant, or fails with Millrace.Forbidden having sent nothing. It
// carries the task's request id as its Idempotency-Key header (unless Headers set one): the same
// on every performance of this attempt, after a restart too.
func (r *WorkflowRunReconciler) httpTask(ctx context.Context, ns string, params map[string]any, timeout time.Duration, requestID string) callback.Result {
	res := r.callHTTP(ctx, ns, params, timeout, requestID)
	r.Metrics.HTTPCalls.WithLabelValues(ns, httpResult(res)).Inc()
	return res
}

// httpResult names a call's outcome for the metric.
func httpResult(res callback.Result) string {
	switch {
	case res.Kind == callback.Success:
		return "ok"
	case res.Error == ErrForbidden:
		return "forbidden"
	case res.Error == asl.ErrTimeout:
		return "timeout"
	case res.Error == asl.ErrDataLimitExceeded:
		return "too_large"
	case strings.HasPrefix(res.Error, "States.Http.StatusCode."):
		return "status"
	}
	return "error"
}

func (r *WorkflowRunReconciler) callHTTP(ctx context.Context, ns string, params map[string]any, timeout time.Duration, requestID string) callback.Result {
	if r.HTTP == nil {
		return forbiddenResult("millrace:http tasks are disabled on this cluster (the manager runs without --http-tasks)")
	}
	req, problem := httpTaskRequest(params, requestID)
	if problem != nil {
		return *problem
	}
	grants, err := grantsFor(ctx, r.Client, ns)
	if err != nil {
		return callback.Result{Kind: callback.Failure, Error: asl.ErrRuntime, Cause: "reading TenantPolicies: " + err.Error()}
	}
	if len(grants.Destinations) == 0 {
		return forbiddenResult(fmt.Sprintf("namespace %s is granted no HTTP destinations (a TenantPolicy's http.destinations)", ns))
	}
	resp, err := r.HTTP.Do(ctx, grants, req, timeout)
	var refused *egress.ForbiddenError
	switch {
	case errors.As(err, &refused):
		return forbiddenResult(refused.Error())
	case errors.Is(err, egress.ErrBodyTooLarge):
		return callback.Result{Kind: callback.Failure, Error: asl.ErrDataLimitExceeded, Cause: err.Error()}
	case errors.Is(err, context.DeadlineExceeded):
		return callback.Result{Kind: callback.Failure, Error: asl.ErrTimeout, Cause: err.Error()}
	case err != nil:
		return callback.Result{Kind: callback.Failure, Error: "States.Http.Socket", Cause: err.Error()}
	}
	var parsed any = string(resp.Body)
	var js any
	if json.Unmarshal(resp.Body, &js) == nil {
		parsed = js
	}
	headers := map[string]any{}
	for k, v := range resp.Header {
		headers[k] = strings.Join(v, ",")
	}
	out, _ := json.Marshal(map[string]any{"StatusCode": resp.StatusCode, "Headers": headers, "Body": parsed})
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return callback.Result{Kind: callback.Failure, Error: fmt.Sprintf("States.Http.StatusCode.%d", resp.StatusCode), Cause: string(resp.Body)}
	}
	if len(out) > callback.MaxBody {
		return callback.Result{Kind: callback.Failure, Error: asl.ErrDataLimitExceeded, Cause: fmt.Sprintf("the task's result is %d bytes (limit %d)", len(out), callback.MaxBody)}
	}
	return callback.Result{Kind: callback.Success, Output: out}
}

// IdempotencyKeyHeader carries a millrace:http task's request id.
const IdempotencyKeyHeader = "Idempotency-Key"

// httpTaskRequest builds the request a task's Parameters describe, with requestID as its
// Idempotency-Key unless the Parameters' Headers give one.
func httpTaskRequest(params map[string]any, requestID string) (*http.Request, *callback.Result) {
	fail := func(cause string) (*http.Request, *callback.Result) {
		return nil, &callback.Result{Kind: callback.Failure, Error: asl.ErrRuntime, Cause: cause}
	}
	method, _ := params["Method"].(string)
	if method == "" {
		method = http.MethodGet
	}
	method = strings.ToUpper(method)
	if !slices.Contains(egress.Methods, method) {
		return fail(fmt.Sprintf("millrace:http Parameters.Method %q is not one of %s", method, strings.Join(egress.Methods, ", ")))
	}
	url, _ := params["Url"].(string)
	if url == "" {
		return fail("millrace:http needs Parameters.Url")
	}
	var body io.Reader
	contentType := ""
	switch b := params["Body"].(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		body, contentType = bytes.NewReader(raw), "application/json"
	}
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		return fail("millrace:http Parameters.Url: " + err.Error())
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if requestID != "" {
		req.Header.Set(IdempotencyKeyHeader, requestID)
	}
	if headers, ok := params["Headers"].(map[string]any); ok {
		for k, v := range headers {
			req.Header.Set(k, fmt.Sprint(v))
		}
	}
	return req, nil
}

func forbiddenResult(cause string) callback.Result {
	return callback.Result{Kind: callback.Failure, Error: ErrForbidden, Cause: cause}
}

// Package callback is the manager's task callback API, the counterpart of Step Functions'
// SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat:
//
//	POST /v1/tasks/success    {"taskToken": "...", "output": <JSON>}
//	POST /v1/tasks/failure    {"taskToken": "...", "error": "...", "cause": "..."}
//	POST /v1/tasks/heartbeat  {"taskToken": "..."}
//
// Answers: 200 accepted (also for a duplicate of an accepted result), 400 malformed request or
// token, 403 forged token, 404 unknown run, 410 stale or expired token (the run has moved past that
// attempt, the task's timeout has passed, or the token has no issue time), 413 body over 256 KiB,
// 503 when the result could not be recorded (retry). Only 404 and 410 are final for a caller.
package callback

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/millrace-io/millrace/internal/tasktoken"
)

// Kind of report.
type Kind string

const (
	Success   Kind = "success"
	Failure   Kind = "failure"
	Heartbeat Kind = "heartbeat"
)

// Result is one report.
type Result struct {
	Kind   Kind
	Output json.RawMessage
	Error  string
	Cause  string
}

// Errors a Sink returns.
var (
	ErrStale      = errors.New("the task token is stale: the run is no longer at that attempt")
	ErrUnknownRun = errors.New("no such run")
)

// Sink records reports (the WorkflowRun controller). It must be idempotent: a duplicate of an
// accepted report returns nil.
type Sink interface {
	Report(ctx context.Context, c tasktoken.Claims, r Result) error
}

// MaxBody is the largest request accepted (Step Functions' payload limit).
const MaxBody = 256 << 10

// Handler serves the callback API.
func Handler(signer *tasktoken.Signer, sink Sink) http.Handler {
	mux := http.NewServeMux()
	for _, k := range []Kind{Success, Failure, Heartbeat} {
		mux.HandleFunc("POST /v1/tasks/"+string(k), func(w http.ResponseWriter, r *http.Request) {
			serve(w, r, k, signer, sink)
		})
	}
	return mux
}

type request struct {
	TaskToken string          `json:"taskToken"`
	Output    json.RawMessage `json:"output"`
	Error     string          `json:"error"`
	Cause     string          `json:"cause"`
}

func serve(w http.ResponseWriter, r *http.Request, kind Kind, signer *tasktoken.Signer, sink Sink) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		answer(w, http.StatusRequestEntityTooLarge, "the request is larger than 256 KiB")
		return
	}
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		answer(w, http.StatusBadRequest, "the body is not a JSON object: "+err.Error())
		return
	}
	if req.TaskToken == "" {
		answer(w, http.StatusBadRequest, "taskToken is required")
		return
	}
	claims, err := signer.Verify(req.TaskToken)
	switch {
	case errors.Is(err, tasktoken.ErrForged):
		answer(w, http.StatusForbidden, err.Error())
		return
	case errors.Is(err, tasktoken.ErrExpired):
		answer(w, http.StatusGone, err.Error())
		return
	case err != nil:
		answer(w, http.StatusBadRequest, err.Error())
		return
	}
	res := Result{Kind: kind, Output: req.Output, Error: req.Error, Cause: req.Cause}
	if kind == Success {
		if len(res.Output) == 0 {
			res.Output = json.RawMessage("{}")
		}
		if !json.Valid(res.Output) {
			answer(w, http.StatusBadRequest, "output is not valid JSON")
			return
		}
	}
	switch err := sink.Report(r.Context(), claims, res); {
	case err == nil:
		answer(w, http.StatusOK, "accepted")
	case errors.Is(err, ErrStale):
		answer(w, http.StatusGone, err.Error())
	case errors.Is(err, ErrUnknownRun):
		answer(w, http.StatusNotFound, err.Error())
	default:
		answer(w, http.StatusServiceUnavailable, "could not record the result: "+err.Error())
	}
}

func answer(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	key := "status"
	if status >= 300 {
		key = "error"
	}
	_ = json.NewEncoder(w).Encode(map[string]string{key: msg})
}

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
//
// The same three operations are also served in Step Functions' own protocol, for its SDK clients
// (stepfunctions.go).
package callback

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/millrace-io/millrace/internal/httpserver"
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
	mux.HandleFunc("POST /{$}", func(w http.ResponseWriter, r *http.Request) { // stepfunctions.go
		serveStepFunctions(w, r, signer, sink)
	})
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
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		answer(w, http.StatusRequestEntityTooLarge, "the request is larger than 256 KiB")
		return
	case errors.Is(err, httpserver.ErrBusy):
		answer(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		answer(w, http.StatusBadRequest, "reading the request: "+err.Error())
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
	switch o, err := report(r.Context(), signer, sink, req.TaskToken, res); o {
	case accepted:
		answer(w, http.StatusOK, "accepted")
	case forged:
		answer(w, http.StatusForbidden, err.Error())
	case expired, stale:
		answer(w, http.StatusGone, err.Error())
	case unknownRun:
		answer(w, http.StatusNotFound, err.Error())
	case malformed:
		answer(w, http.StatusBadRequest, err.Error())
	default:
		answer(w, http.StatusServiceUnavailable, "could not record the result: "+err.Error())
	}
}

// outcome is what became of a report; each protocol answers it in its own words.
type outcome int

const (
	accepted   outcome = iota
	malformed          // the token is not one
	forged             // its signature does not verify
	expired            // it is past its age
	stale              // the run has moved past that attempt
	unknownRun         // no such run
	unrecorded         // the result could not be recorded: try again
)

// report verifies the token and hands the result to the sink.
func report(ctx context.Context, signer *tasktoken.Signer, sink Sink, token string, res Result) (outcome, error) {
	claims, err := signer.Verify(token)
	switch {
	case errors.Is(err, tasktoken.ErrForged):
		return forged, err
	case errors.Is(err, tasktoken.ErrExpired):
		return expired, err
	case err != nil:
		return malformed, err
	}
	switch err := sink.Report(ctx, claims, res); {
	case err == nil:
		return accepted, nil
	case errors.Is(err, ErrStale):
		return stale, err
	case errors.Is(err, ErrUnknownRun):
		return unknownRun, err
	default:
		return unrecorded, err
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

package callback

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/millrace-io/millrace/internal/httpserver"
	"github.com/millrace-io/millrace/internal/jsonenc"
	"github.com/millrace-io/millrace/internal/tasktoken"
)

// The callback API also speaks Step Functions' own protocol for SendTaskSuccess,
// SendTaskFailure and SendTaskHeartbeat (AWS JSON 1.0: POST / with X-Amz-Target
// "AWSStepFunctions.<operation>"), so that a worker written for Step Functions — with an AWS SDK's
// Step Functions client, the AWS CLI, or any tool built on them — reports to Millrace unchanged once
// its endpoint is the callback API's address. The request and the answers are Step Functions':
// output is a string holding JSON, a success answers 200 with {}, and errors are its error codes
// (InvalidToken, TaskTimedOut, TaskDoesNotExist, InvalidOutput, ValidationException), which the
// SDKs turn into their typed errors. The task token is the capability, as on the /v1 routes: the
// request's SigV4 signature is not checked (any credentials will do), because no AWS identity is
// behind it.

// sfnTargetPrefix starts every Step Functions operation's X-Amz-Target.
const sfnTargetPrefix = "AWSStepFunctions."

// Step Functions' limits on the operations' fields (their API reference).
const (
	sfnMaxOutput = 262144 // output, in bytes of UTF-8
	sfnMaxError  = 256    // error, in characters
	sfnMaxCause  = 32768  // cause, in characters
	// sfnMaxBody bounds a request: twice the output (every quote of a JSON document escaped) and
	// room for the rest. An output escaped further (control characters as \u00XX) is refused with
	// ValidationException: a request may not hold more of the shared body budget than that.
	sfnMaxBody = 2*sfnMaxOutput + 64<<10
)

// sfnRequest is the input of the three operations.
type sfnRequest struct {
	TaskToken *string `json:"taskToken"`
	Output    *string `json:"output"`
	Error     *string `json:"error"`
	Cause     *string `json:"cause"`
}

// sfnOperations are the operations served, by X-Amz-Target.
var sfnOperations = map[string]Kind{
	sfnTargetPrefix + "SendTaskSuccess":   Success,
	sfnTargetPrefix + "SendTaskFailure":   Failure,
	sfnTargetPrefix + "SendTaskHeartbeat": Heartbeat,
}

func serveStepFunctions(w http.ResponseWriter, r *http.Request, signer *tasktoken.Signer, sink Sink) {
	target := r.Header.Get("X-Amz-Target")
	kind, ok := sfnOperations[target]
	if !ok {
		sfnError(w, http.StatusBadRequest, "UnknownOperationException",
			fmt.Sprintf("operation %q is not served here: only SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat", target))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, sfnMaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		sfnError(w, http.StatusBadRequest, "ValidationException", fmt.Sprintf("the request is larger than %d bytes", sfnMaxBody))
		return
	case errors.Is(err, httpserver.ErrBusy): // the SDKs retry a 503
		sfnError(w, http.StatusServiceUnavailable, "ServiceUnavailable", err.Error())
		return
	case err != nil:
		sfnError(w, http.StatusBadRequest, "SerializationException", "reading the request: "+err.Error())
		return
	}
	var req sfnRequest
	if err := json.Unmarshal(body, &req); err != nil {
		sfnError(w, http.StatusBadRequest, "SerializationException", "the body is not a JSON object of the operation's input: "+err.Error())
		return
	}
	res, err := sfnResult(kind, req)
	if err != nil {
		sfnError(w, http.StatusBadRequest, "ValidationException", err.Error())
		return
	}
	if kind == Success && !jsonenc.Valid(res.Output) {
		sfnError(w, http.StatusBadRequest, "InvalidOutput", "The provided JSON output data is not valid: output must hold one JSON value")
		return
	}
	switch o, err := report(r.Context(), signer, sink, *req.TaskToken, res); o {
	case accepted:
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = io.WriteString(w, "{}")
	case malformed, forged:
		sfnError(w, http.StatusBadRequest, "InvalidToken", "Invalid Token: "+err.Error())
	case expired, stale:
		sfnError(w, http.StatusBadRequest, "TaskTimedOut", "Task Timed Out: the task token has expired or its task has already been closed ("+err.Error()+")")
	case unknownRun:
		sfnError(w, http.StatusBadRequest, "TaskDoesNotExist", "Task Does Not Exist: "+err.Error())
	default: // the SDKs retry a 503
		sfnError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "could not record the result: "+err.Error())
	}
}

// sfnResult checks the operation's fields against Step Functions' constraints, in its words, and
// returns the report.
func sfnResult(kind Kind, req sfnRequest) (Result, error) {
	var problems []string
	constraint := func(field, value, rule string) {
		problems = append(problems, fmt.Sprintf("Value %s at '%s' failed to satisfy constraint: %s", value, field, rule))
	}
	if req.TaskToken == nil {
		constraint("taskToken", "null", "Member must not be null")
	} else if *req.TaskToken == "" {
		constraint("taskToken", "''", "Member must have length greater than or equal to 1")
	}
	res := Result{Kind: kind}
	switch kind {
	case Success:
		switch {
		case req.Output == nil:
			constraint("output", "null", "Member must not be null")
		case len(*req.Output) > sfnMaxOutput:
			constraint("output", "of "+fmt.Sprint(len(*req.Output))+" bytes", fmt.Sprintf("Member must have length less than or equal to %d", sfnMaxOutput))
		default:
			res.Output = json.RawMessage(*req.Output)
		}
	case Failure:
		if req.Error != nil {
			if n := utf8.RuneCountInString(*req.Error); n > sfnMaxError {
				constraint("error", "of "+fmt.Sprint(n)+" characters", fmt.Sprintf("Member must have length less than or equal to %d", sfnMaxError))
			}
			res.Error = *req.Error
		}
		if req.Cause != nil {
			if n := utf8.RuneCountInString(*req.Cause); n > sfnMaxCause {
				constraint("cause", "of "+fmt.Sprint(n)+" characters", fmt.Sprintf("Member must have length less than or equal to %d", sfnMaxCause))
			}
			res.Cause = *req.Cause
		}
	}
	if len(problems) > 0 {
		plural := ""
		if len(problems) > 1 {
			plural = "s"
		}
		return Result{}, fmt.Errorf("%d validation error%s detected: %s", len(problems), plural, strings.Join(problems, "; "))
	}
	return res, nil
}

// sfnError answers as AWS JSON 1.0 services do: the code in __type and X-Amzn-ErrorType.
func sfnError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	b := jsonenc.AppendString([]byte(`{"__type":`), code)
	b = jsonenc.AppendString(append(b, `,"message":`...), msg)
	_, _ = w.Write(append(b, '}'))
}

package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
	"github.com/millrace-io/millrace/internal/httpserver"
)

// maxRunInput bounds a run's input: the engine's payload limit, Step Functions' 256 KiB.
const maxRunInput = asl.DefaultMaxPayloadBytes

// workflow returns an exposed Workflow: 404 if it does not exist or is not exposed.
func (s *Server) workflow(ctx context.Context, ns, name string) (*millracev1.Workflow, error) {
	wf := &millracev1.Workflow{}
	err := s.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, wf)
	if apierrors.IsNotFound(err) || (err == nil && (wf.Spec.HTTP == nil || !wf.Spec.HTTP.Enabled)) {
		return nil, fail(http.StatusNotFound, "no workflow %q exposed in namespace %q", name, ns)
	}
	return wf, err
}

func runsAccess(ns, workflow, verb string) Access {
	return Access{Namespace: ns, Name: workflow, Verb: verb, Group: millracev1.GroupVersion.Group, Resource: "workflows", Subresource: "runs"}
}

// startRun creates a WorkflowRun with the body as its input: 201 with the run's name.
func (s *Server) startRun(w http.ResponseWriter, r *http.Request) {
	ns, name := r.PathValue("ns"), r.PathValue("workflow")
	if err := s.authorize(r, runsAccess(ns, name, "create")); err != nil {
		writeError(w, err)
		return
	}
	wf, err := s.workflow(r.Context(), ns, name)
	if err != nil {
		writeError(w, err)
		return
	}
	if err := s.limit(r, "workflows", ns, name, wf.Spec.HTTP.RateLimit); err != nil {
		writeError(w, err)
		return
	}
	body, err := readBody(r, maxRunInput)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	if !json.Valid(body) {
		writeError(w, fail(http.StatusBadRequest, "the body is not valid JSON: it becomes the run's input"))
		return
	}
	run := &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: name + "-"},
		Spec: millracev1.WorkflowRunSpec{WorkflowRef: millracev1.WorkflowReference{Name: name}, Input: &apiextensionsv1.JSON{Raw: body}}}
	if key := r.Header.Get(HeaderIdempotencyKey); key != "" {
		// The same key starts the same run once: its name is derived from the key.
		run.GenerateName, run.Name = "", fmt.Sprintf("%s-%s", name, shortHash(key))
	}
	err = s.Writer.Create(r.Context(), run)
	if apierrors.IsAlreadyExists(err) && run.Name != "" {
		writeJSON(w, http.StatusOK, map[string]string{"name": run.Name, "namespace": ns, "existing": "true"})
		return
	}
	if err != nil {
		writeError(w, &apiError{status: http.StatusServiceUnavailable, msg: "creating the run failed: " + err.Error(), retryAfter: 2})
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/v1/namespaces/%s/workflows/%s/runs/%s", ns, name, run.Name))
	writeJSON(w, http.StatusCreated, map[string]string{"name": run.Name, "namespace": ns})
}

// getRun answers a run's phase, state, output and error.
func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	ns, name, runName := r.PathValue("ns"), r.PathValue("workflow"), r.PathValue("run")
	if err := s.authorize(r, runsAccess(ns, name, "get")); err != nil {
		writeError(w, err)
		return
	}
	if _, err := s.workflow(r.Context(), ns, name); err != nil {
		writeError(w, err)
		return
	}
	run := &millracev1.WorkflowRun{}
	err := s.Reader.Get(r.Context(), client.ObjectKey{Namespace: ns, Name: runName}, run)
	if apierrors.IsNotFound(err) || (err == nil && run.Spec.WorkflowRef.Name != name) {
		writeError(w, fail(http.StatusNotFound, "no run %q of workflow %q", runName, name))
		return
	}
	if err != nil {
		writeError(w, err)
		return
	}
	answer := map[string]any{"name": run.Name, "phase": run.Status.Phase, "state": run.Status.CurrentState}
	if run.Status.Output != nil {
		answer["output"] = json.RawMessage(run.Status.Output.Raw)
	}
	if run.Status.Error != "" {
		answer["error"], answer["cause"] = run.Status.Error, run.Status.Cause
	}
	if run.Status.StartTime != nil {
		answer["startTime"] = run.Status.StartTime
	}
	if run.Status.CompletionTime != nil {
		answer["completionTime"] = run.Status.CompletionTime
	}
	writeJSON(w, http.StatusOK, answer)
}

// readBody reads at most limit bytes (413 beyond). A declared Content-Length within the limit
// sizes the buffer once (the common case: no regrowth, no copy).
func readBody(r *http.Request, limit int64) ([]byte, error) {
	body := r.Body
	if body == nil {
		return nil, nil
	}
	size := int64(512)
	if n := r.ContentLength; n >= 0 && n <= limit {
		// One spare byte sees EOF without growing; but never more than preallocLimit on the
		// caller's word alone: a body is charged to the server's budget as it arrives, and a caller
		// announcing 1 MiB and sending a byte would otherwise hold 1 MiB.
		size = min(n+1, preallocLimit)
	}
	buf, err := readAll(http.MaxBytesReader(nil, body, limit), make([]byte, 0, size))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, fail(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", limit)
	}
	if errors.Is(err, httpserver.ErrBusy) {
		return nil, fail(http.StatusServiceUnavailable, "%v", err)
	}
	if err != nil {
		return nil, fail(http.StatusBadRequest, "reading the body: %v", err)
	}
	return buf, nil
}

// preallocLimit bounds the buffer readBody allocates before a body arrives (message bodies are
// mostly far smaller: those are read without growing).
const preallocLimit = 64 << 10

// readAll is io.ReadAll into buf, growing it only when full.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

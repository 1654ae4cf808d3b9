// Package gateway is Millrace's HTTP front door: a request is accepted into a Queue and answered
// with 202 before any work is done (the Kubernetes form of API Gateway in front of SQS).
//
//	POST /v1/namespaces/{ns}/queues/{queue}/messages
//	POST /v1/namespaces/{ns}/queues/{queue}/messages:batch
//	POST /v1/namespaces/{ns}/workflows/{workflow}/runs
//	GET  /v1/namespaces/{ns}/workflows/{workflow}/runs/{run}
//
// Only Queues with spec.http.enabled are reachable, and only by callers whose bearer token the
// API server authenticates and whose RBAC allows create on queues/messages (group millrace.io) for
// that queue.
package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/jsonenc"
	"github.com/millrace-io/millrace/internal/sqsx"
)

// The gateway process's garbage collector settings (internal/gctune), applied by cmd/gateway unless
// GOGC or GOMEMLIMIT are set; the soft limit is 3/4 of the container's memory limit (192 MiB of
// the chart's default 256 MiB), MemoryLimit outside a container.
const (
	GCPercent   = 400
	MemoryLimit = 200 << 20
)

// Headers the gateway reads.
const (
	HeaderGroupID        = "Message-Group-Id"
	HeaderIdempotencyKey = "Idempotency-Key"
	// AttributeContentType carries the request's content type when the body is not JSON.
	AttributeContentType = "content-type"
)

// SQSAPI is what the gateway calls.
type SQSAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, opts ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error)
}

// Server serves the gateway's API.
type Server struct {
	// Reader reads Queues, Workflows and WorkflowRuns (a cache); Writer creates WorkflowRuns.
	Reader client.Reader
	Writer client.Writer
	SQS    SQSAPI
	Auth   Authorizer
	// Metrics and Log are optional.
	Metrics *Metrics
	Log     logr.Logger
	// FailedAuth limits failed authentications per client address (defaults for zero fields).
	FailedAuth FailedAuthLimit

	limits       limiters
	sends        coalescer
	authFailures failedAuths
}

// Handler returns the gateway's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/namespaces/{ns}/queues/{queue}/messages", s.sendMessage)
	mux.HandleFunc("POST /v1/namespaces/{ns}/queues/{queue}/messages:batch", s.sendBatch)
	mux.HandleFunc("POST /v1/namespaces/{ns}/workflows/{workflow}/runs", s.startRun)
	mux.HandleFunc("GET /v1/namespaces/{ns}/workflows/{workflow}/runs/{run}", s.getRun)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
	return s.observe(mux)
}

// apiError is an answer other than success: a status and a message naming the problem.
type apiError struct {
	status     int
	msg        string
	retryAfter int // seconds, for 429 and 503
}

func (e *apiError) Error() string { return e.msg }

func fail(status int, format string, a ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, a...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		e = &apiError{status: http.StatusInternalServerError, msg: err.Error()}
	}
	switch e.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="millrace"`)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(max(e.retryAfter, 1)))
	}
	writeJSON(w, e.status, map[string]string{"error": e.msg})
}

// authorize maps the Authorizer's answer to 401 / 403 / 503, or 429 without asking it when the
// request's source has failed authentication too often.
func (s *Server) authorize(r *http.Request, a Access) error {
	if err := s.throttled(r); err != nil {
		return err
	}
	_, err := s.Auth.Authorize(r.Context(), credential(r), a)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrUnauthenticated):
		s.authFailures.failed(source(r))
		if err != ErrUnauthenticated { // a reason worth an operator's eye, e.g. a malformed key Secret
			s.log().Info("credential refused", "reason", err.Error(), "path", r.URL.Path)
		}
		return fail(http.StatusUnauthorized, "a valid bearer token (a Kubernetes ServiceAccount token) or API key is required")
	case errors.Is(err, ErrForbidden):
		return fail(http.StatusForbidden, "%s %s/%s %q in namespace %q is not allowed for this token", a.Verb, a.Resource, a.Subresource, a.Name, a.Namespace)
	default:
		return &apiError{status: http.StatusServiceUnavailable, msg: "checking the token failed: " + err.Error(), retryAfter: 2}
	}
}

// queue returns an exposed, ready Queue: 404 if it does not exist or is not exposed (the two are
// not told apart), 503 while it has no URL yet.
func (s *Server) queue(ctx context.Context, ns, name string) (*millracev1.Queue, error) {
	q := &millracev1.Queue{}
	// Read-only from here on: a cached Queue is not copied for each request (a direct client
	// ignores the option).
	err := s.Reader.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, q, client.UnsafeDisableDeepCopy)
	if apierrors.IsNotFound(err) || (err == nil && (q.Spec.HTTP == nil || !q.Spec.HTTP.Enabled)) {
		return nil, fail(http.StatusNotFound, "no queue %q exposed in namespace %q", name, ns)
	}
	if err != nil {
		return nil, err
	}
	if q.Status.QueueURL == "" {
		return nil, &apiError{status: http.StatusServiceUnavailable, msg: fmt.Sprintf("queue %s/%s is not ready", ns, name), retryAfter: 5}
	}
	return q, nil
}

// sendTarget authorizes a send to the request's queue and returns it, within its rate limit.
func (s *Server) sendTarget(r *http.Request) (*millracev1.Queue, error) {
	ns, name := r.PathValue("ns"), r.PathValue("queue")
	if err := s.authorize(r, Access{Namespace: ns, Name: name, Verb: "create", Group: millracev1.GroupVersion.Group, Resource: "queues", Subresource: "messages"}); err != nil {
		return nil, err
	}
	q, err := s.queue(r.Context(), ns, name)
	if err != nil {
		return nil, err
	}
	return q, s.limit(r, "queue", ns, name, q.Spec.HTTP.RateLimit)
}

func (s *Server) sendMessage(w http.ResponseWriter, r *http.Request) {
	q, err := s.sendTarget(r)
	if err != nil {
		writeError(w, err)
		return
	}
	ns, name := q.Namespace, q.Name
	in, err := messageInput(r, q)
	if err != nil {
		writeError(w, err)
		return
	}
	out, err := s.sends.send(r.Context(), s.SQS, in, s.observeCall)
	if errors.Is(err, errNotSent) || errors.Is(err, errMaybeSent) { // the caller left
		s.log().V(1).Info("request ended while sending", "queue", ns+"/"+name, "error", err.Error())
		writeError(w, &apiError{status: http.StatusServiceUnavailable, msg: err.Error(), retryAfter: 1})
		return
	}
	if err != nil {
		if s.Metrics != nil {
			s.Metrics.SQSErrors.Inc()
		}
		s.log().Info("SendMessage failed", "queue", ns+"/"+name, "error", err.Error())
		writeError(w, sqsError(err))
		return
	}
	// {"messageId":…[,"sequenceNumber":…]}, encoded by hand: this is the gateway's hottest path.
	answer := make([]byte, 0, 96)
	answer = jsonenc.AppendString(append(answer, `{"messageId":`...), aws.ToString(out.MessageId))
	if out.SequenceNumber != nil {
		answer = jsonenc.AppendString(append(answer, `,"sequenceNumber":`...), aws.ToString(out.SequenceNumber))
	}
	answer = append(answer, "}\n"...)
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(answer)
}

var jsonContentType = []string{"application/json"}

// maxMessageSize is the queue's maximum message size (SQS's default and ceiling: 1 MiB).
func maxMessageSize(q *millracev1.Queue) int64 {
	if n := q.Spec.MaximumMessageSize; n != nil && *n > 0 {
		return int64(*n)
	}
	return 1 << 20
}

// messageInput builds the SendMessage call of a request: the body as the message, the content
// type and forwarded headers as attributes, FIFO's group id and idempotency key from headers.
func messageInput(r *http.Request, q *millracev1.Queue) (*sqs.SendMessageInput, error) {
	limit := maxMessageSize(q)
	body, err := readBody(r, limit)
	if e := (*apiError)(nil); errors.As(err, &e) && e.status == http.StatusRequestEntityTooLarge {
		return nil, fail(http.StatusRequestEntityTooLarge, "the body is larger than the queue's maximum message size (%d bytes)", limit)
	}
	if err != nil {
		return nil, err
	}
	if len(body) == 0 {
		return nil, fail(http.StatusBadRequest, "the body is empty: it becomes the message")
	}
	ct := r.Header.Get("Content-Type")
	isJSON := ct == "" || strings.HasPrefix(ct, "application/json")
	switch {
	case isJSON && jsonenc.Valid(body): // JSON, and so UTF-8
	case !utf8.Valid(body):
		return nil, fail(http.StatusBadRequest, "the body is not UTF-8 text (SQS message bodies are text)")
	case isJSON:
		return nil, fail(http.StatusBadRequest, "the body is not valid JSON (send another Content-Type for other text)")
	}
	// The body's bytes become the message without a copy: nothing writes to them after this.
	in := &sqs.SendMessageInput{QueueUrl: &q.Status.QueueURL, MessageBody: aws.String(unsafe.String(unsafe.SliceData(body), len(body))),
		MessageAttributes: make(map[string]types.MessageAttributeValue, 1+len(q.Spec.HTTP.ForwardHeaders))}
	if ct != "" {
		in.MessageAttributes[AttributeContentType] = types.MessageAttributeValue{DataType: stringType, StringValue: aws.String(ct)}
	}
	for _, h := range q.Spec.HTTP.ForwardHeaders {
		if v := r.Header.Get(h); v != "" && !ReservedAttribute(h) {
			in.MessageAttributes[strings.ToLower(h)] = types.MessageAttributeValue{DataType: stringType, StringValue: aws.String(v)}
		}
	}
	if q.Spec.Type == millracev1.QueueTypeFIFO {
		group := r.Header.Get(HeaderGroupID)
		if group == "" {
			return nil, fail(http.StatusBadRequest, "header %s is required: %s/%s is a FIFO queue", HeaderGroupID, q.Namespace, q.Name)
		}
		if !validSQSID(group) {
			return nil, fail(http.StatusBadRequest, "header %s: %s", HeaderGroupID, sqsIDRule)
		}
		in.MessageGroupId = aws.String(group)
		key := r.Header.Get(HeaderIdempotencyKey)
		if key != "" && !validSQSID(key) {
			return nil, fail(http.StatusBadRequest, "header %s: %s", HeaderIdempotencyKey, sqsIDRule)
		}
		switch {
		case key != "":
			in.MessageDeduplicationId = aws.String(key)
		case q.Spec.ContentBasedDeduplication == nil || !*q.Spec.ContentBasedDeduplication:
			return nil, fail(http.StatusBadRequest, "header %s is required: FIFO queue %s/%s has no content-based deduplication", HeaderIdempotencyKey, q.Namespace, q.Name)
		}
	}
	return in, nil
}

// stringType is the data type of every attribute the gateway sets (shared: nothing writes to it).
var stringType = aws.String("String")

// sqsIDRule is SQS's rule for message group and deduplication ids.
const sqsIDRule = "1 to 128 characters: letters, digits and punctuation, no spaces"

// validSQSID checks a message group or deduplication id: SQS refuses others, and refused in a
// coalesced batch they would fail the other requests' call.
func validSQSID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '!' || id[i] > '~' {
			return false
		}
	}
	return true
}

// sqsError maps an SQS failure: the caller's mistake is 400, anything else 503 (retry).
func sqsError(err error) error {
	if class, _ := sqsx.Classify(err); class == sqsx.Refused {
		return fail(http.StatusBadRequest, "SQS refused the message: %s", sqsx.Message(err))
	}
	return &apiError{status: http.StatusServiceUnavailable, msg: "SQS is unavailable; nothing was sent: " + err.Error(), retryAfter: 2}
}

// ReservedAttribute says whether a message attribute name is Millrace's own (a task token, a
// heartbeat interval): the CRD refuses such forwardHeaders, and the gateway never sets them from a
// request even for a Queue stored before that rule existed.
func ReservedAttribute(name string) bool {
	return len(name) >= 9 && strings.EqualFold(name[:9], "millrace-")
}

package controller

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/dispatch"
	"github.com/millrace-io/millrace/internal/sqsx"
	"github.com/millrace-io/millrace/internal/tasktoken"
)

// ErrForbidden is the task error for a QueueUrl that is not a Queue of the run's namespace.
const ErrForbidden = "Millrace.Forbidden"

// sqsSendTimeout bounds one SendMessage of a task.
const sqsSendTimeout = 30 * time.Second

// requestID is the id of one attempt of one visit of a task of a run, the same in every process
// and after every restart: the SQS MessageDeduplicationId of its messages on FIFO queues and the
// Idempotency-Key of its HTTP call. Another visit or attempt has another id.
func requestID(run *millracev1.WorkflowRun, taskKey string) string {
	sum := sha256.Sum256([]byte(string(run.UID) + "/" + taskKey))
	return hex.EncodeToString(sum[:])
}

// localJobKey identifies a task attempt in the task executor.
func localJobKey(run *millracev1.WorkflowRun, taskKey string) string {
	return string(run.UID) + "/" + taskKey
}

// dispatch starts a running task through its backend. Sent is true when the task was handed over
// to a queue (a Consumer's, or the one an sqs:sendMessage.waitForTaskToken names): its result
// comes through the callback API. Tasks the manager performs itself (millrace:http,
// sqs:sendMessage), and failures of tasks that cannot be sent, go to the task executor, which
// reports their result. A Task's evaluated Credentials go with a Consumer's message (attribute
// millrace-credentials); the tasks the manager performs itself use none (Millrace assumes no
// role).
func (r *WorkflowRunReconciler) dispatch(ctx context.Context, run *millracev1.WorkflowRun, a asl.Active, res taskResource, input, credentials any) (sent bool, err error) {
	id := requestID(run, a.Key())
	params, _ := input.(map[string]any)
	switch res.backend {
	case backendConsumer:
		return true, r.sendToConsumer(ctx, run, a, res.consumer, input, credentials, id)
	case backendSQSWait:
		in, problem, err := r.sqsMessage(ctx, run.Namespace, params, id)
		if err != nil {
			return false, err
		}
		if problem != nil {
			return false, r.tasks.submit(r.localJob(run, a, res, constant(*problem)))
		}
		_, err = r.SQS.SendMessage(ctx, in)
		return err == nil, err
	case backendSQSSend:
		ns := run.Namespace
		return false, r.tasks.submit(r.localJob(run, a, res, func(ctx context.Context) (callback.Result, error) {
			return r.sqsSendTask(ctx, ns, params, id)
		}))
	case backendHTTP:
		timeout := 60 * time.Second
		if a.TimeoutSeconds() > 0 {
			timeout = time.Duration(a.TimeoutSeconds()) * time.Second
		}
		ns := run.Namespace
		return false, r.tasks.submit(r.localJob(run, a, res, func(ctx context.Context) (callback.Result, error) {
			return r.httpTask(ctx, ns, params, timeout, id), nil
		}))
	}
	// Unreachable for a definition parseWorkflow accepted.
	return false, r.tasks.submit(r.localJob(run, a, res, constant(callback.Result{Kind: callback.Failure, Error: asl.ErrRuntime,
		Cause: fmt.Sprintf("resource %q is not supported (%s)", a.State.Resource, supportedResources)})))
}

// localJob is the executor's job for a task attempt.
func (r *WorkflowRunReconciler) localJob(run *millracev1.WorkflowRun, a asl.Active, res taskResource, perform func(context.Context) (callback.Result, error)) *localJob {
	return &localJob{key: localJobKey(run, a.Key()), kind: res.kind(), perform: perform,
		claims: tasktoken.Claims{Namespace: run.Namespace, Run: run.Name, RunUID: string(run.UID), State: a.State.Name, Path: a.Path, Attempt: a.Attempt, Visit: a.Visit,
			// As the attempt's token: its report is refused once the attempt's TimeoutSeconds passed.
			IssuedAt: a.Entered.UTC().Truncate(time.Second)}}
}

func constant(res callback.Result) func(context.Context) (callback.Result, error) {
	return func(context.Context) (callback.Result, error) { return res, nil }
}

// sendToConsumer sends a task to a Consumer's queue, with its token (and heartbeat interval and
// credentials) as message attributes.
func (r *WorkflowRunReconciler) sendToConsumer(ctx context.Context, run *millracev1.WorkflowRun, a asl.Active, consumer string, input, credentials any, id string) error {
	url, fifo, err := r.consumerQueue(ctx, run.Namespace, consumer)
	if err != nil {
		return err
	}
	token := r.token(run, a.State.Name, a.Path, a.Attempt, a.Visit, a.Entered)
	body, _ := json.Marshal(input)
	attrs := map[string]sqstypes.MessageAttributeValue{dispatch.TaskTokenAttribute: {DataType: aws.String("String"), StringValue: aws.String(token)}}
	if hb := a.HeartbeatSeconds(); hb > 0 {
		attrs[dispatch.HeartbeatAttribute] = sqstypes.MessageAttributeValue{DataType: aws.String("Number"), StringValue: aws.String(fmt.Sprint(hb))}
	}
	if credentials != nil {
		c, _ := json.Marshal(credentials)
		attrs[dispatch.CredentialsAttribute] = sqstypes.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(string(c))}
	}
	in := &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(string(body)), MessageAttributes: attrs}
	if fifo {
		in.MessageGroupId, in.MessageDeduplicationId = aws.String(run.Name), aws.String(id)
	}
	_, err = r.SQS.SendMessage(ctx, in)
	return err
}

func (r *WorkflowRunReconciler) consumerQueue(ctx context.Context, ns, name string) (string, bool, error) {
	c := &millracev1.Consumer{}
	if err := r.Get(ctx, k8stypes.NamespacedName{Namespace: ns, Name: name}, c); err != nil {
		return "", false, fmt.Errorf("Consumer %q: %w", name, err)
	}
	q := &millracev1.Queue{}
	if err := r.Get(ctx, k8stypes.NamespacedName{Namespace: ns, Name: c.Spec.QueueRef.Name}, q); err != nil {
		return "", false, fmt.Errorf("Queue %q of Consumer %q: %w", c.Spec.QueueRef.Name, name, err)
	}
	if q.Status.QueueURL == "" {
		return "", false, fmt.Errorf("Queue %q has no URL yet", q.Name)
	}
	return q.Status.QueueURL, q.Spec.Type == millracev1.QueueTypeFIFO, nil
}

// sqsSendTask performs an sqs:sendMessage task: the result is {MessageId, MD5OfMessageBody}. A
// send that failed for now (network, throttling, SQS's 5xx) is an error (the executor tries
// again); SQS refusing the message (bad parameters, a queue gone, access denied) is the task's
// failure, named SQS.<code> — tried again, it would only hold one of the manager's shared workers.
func (r *WorkflowRunReconciler) sqsSendTask(ctx context.Context, ns string, params map[string]any, id string) (callback.Result, error) {
	in, problem, err := r.sqsMessage(ctx, ns, params, id)
	if err != nil {
		return callback.Result{}, err
	}
	if problem != nil {
		return *problem, nil
	}
	ctx, cancel := context.WithTimeout(ctx, sqsSendTimeout)
	defer cancel()
	out, err := r.SQS.SendMessage(ctx, in)
	if err != nil {
		if failure := sqsTaskFailure(err); failure != nil {
			return *failure, nil
		}
		return callback.Result{}, err
	}
	result, _ := json.Marshal(map[string]any{"MessageId": aws.ToString(out.MessageId), "MD5OfMessageBody": aws.ToString(out.MD5OfMessageBody)})
	return callback.Result{Kind: callback.Success, Output: result}, nil
}

// throttlingCodes are client-fault codes that clear with time.
var throttlingCodes = map[string]bool{"Throttling": true, "ThrottlingException": true, "RequestThrottled": true,
	"RequestThrottledException": true, "TooManyRequestsException": true, "KmsThrottled": true, "KMS.ThrottlingException": true,
	"RequestTimeout": true, "RequestTimeoutException": true}

// sqsTaskFailure is the task failure for an SQS error a retry cannot fix: SQS refused the request
// (Classify's Refused or NotFound, or any other client fault but throttling). Nil: try again.
func sqsTaskFailure(err error) *callback.Result {
	class, code := sqsx.Classify(err)
	var api smithy.APIError
	isAPI := errors.As(err, &api)
	short := strings.TrimPrefix(code, "AWS.SimpleQueueService.")
	switch {
	case class == sqsx.Refused || class == sqsx.NotFound:
	case isAPI && api.ErrorFault() == smithy.FaultClient && !throttlingCodes[short]:
	default:
		return nil
	}
	return &callback.Result{Kind: callback.Failure, Error: "SQS." + short, Cause: sqsx.Message(err)}
}

// sqsMessage builds the message of an sqs:sendMessage task from its Parameters. On a FIFO queue
// (a MessageGroupId) its deduplication id is the task's request id unless the Parameters give
// one. A problem is returned as the task's failure.
func (r *WorkflowRunReconciler) sqsMessage(ctx context.Context, ns string, params map[string]any, id string) (*sqs.SendMessageInput, *callback.Result, error) {
	url, problem, err := r.namespaceQueue(ctx, ns, params)
	if err != nil || problem != nil {
		return nil, problem, err
	}
	body, ok := params["MessageBody"].(string)
	if !ok {
		b, _ := json.Marshal(params["MessageBody"])
		body = string(b)
	}
	in := &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body)}
	if g, ok := params["MessageGroupId"].(string); ok {
		in.MessageGroupId = aws.String(g)
		in.MessageDeduplicationId = aws.String(id)
	}
	if d, ok := params["MessageDeduplicationId"].(string); ok {
		in.MessageDeduplicationId = aws.String(d)
	}
	if attrs, ok := params["MessageAttributes"].(map[string]any); ok {
		if in.MessageAttributes, err = messageAttributes(attrs); err != nil {
			return nil, &callback.Result{Kind: callback.Failure, Error: asl.ErrRuntime, Cause: "Parameters.MessageAttributes: " + err.Error()}, nil
		}
	}
	return in, nil, nil
}

// namespaceQueue resolves the queue of an sqs:sendMessage task: Parameters.Queue names a Queue of
// the run's namespace, or Parameters.QueueUrl must be the URL of one (a run never reaches another
// namespace's queues, nor queues Millrace does not manage). A problem is returned as the task's
// failure.
func (r *WorkflowRunReconciler) namespaceQueue(ctx context.Context, ns string, params map[string]any) (string, *callback.Result, error) {
	url, _ := params["QueueUrl"].(string)
	name, _ := params["Queue"].(string)
	var queues millracev1.QueueList
	if err := r.List(ctx, &queues, client.InNamespace(ns), client.UnsafeDisableDeepCopy); err != nil {
		return "", nil, err
	}
	for _, q := range queues.Items {
		if q.Status.QueueURL == "" {
			continue
		}
		if (url != "" && q.Status.QueueURL == url) || (url == "" && q.Name == name) {
			return q.Status.QueueURL, nil, nil
		}
	}
	switch {
	case url != "":
		return "", &callback.Result{Kind: callback.Failure, Error: ErrForbidden,
			Cause: fmt.Sprintf("QueueUrl %s is not the URL of a Queue of namespace %s", url, ns)}, nil
	case name != "":
		return "", &callback.Result{Kind: callback.Failure, Error: asl.ErrRuntime,
			Cause: fmt.Sprintf("Queue %q is not a ready Queue of namespace %s", name, ns)}, nil
	}
	return "", &callback.Result{Kind: callback.Failure, Error: asl.ErrRuntime, Cause: "Parameters need QueueUrl or Queue"}, nil
}

// messageAttributes converts Step Functions' MessageAttributes parameter
// ({"name": {"DataType": "String", "StringValue": "..."}} or BinaryValue in base64).
func messageAttributes(in map[string]any) (map[string]sqstypes.MessageAttributeValue, error) {
	out := make(map[string]sqstypes.MessageAttributeValue, len(in))
	for name, v := range in {
		m, _ := v.(map[string]any)
		dataType, _ := m["DataType"].(string)
		if dataType == "" {
			return nil, fmt.Errorf("%s: DataType is required", name)
		}
		attr := sqstypes.MessageAttributeValue{DataType: aws.String(dataType)}
		switch {
		case m["StringValue"] != nil:
			sv, ok := m["StringValue"].(string)
			if !ok {
				sv = fmt.Sprint(m["StringValue"])
			}
			attr.StringValue = aws.String(sv)
		case m["BinaryValue"] != nil:
			bv, _ := m["BinaryValue"].(string)
			raw, err := base64.StdEncoding.DecodeString(bv)
			if err != nil {
				return nil, fmt.Errorf("%s: BinaryValue is not base64: %v", name, err)
			}
			attr.BinaryValue = raw
		default:
			return nil, fmt.Errorf("%s: StringValue or BinaryValue is required", name)
		}
		out[name] = attr
	}
	return out, nil
}

package sqsx

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/millrace-io/millrace/internal/jsonenc"
)

// FastBatchClient is an SQS client whose SendMessageBatch skips the SDK's per-call middleware
// stack (endpoint resolution, serializers, checksum and timing middleware): the request is encoded
// by hand in the AWS JSON 1.0 protocol, signed with the SDK's SigV4 signer and credentials, sent
// over the same HTTP client, and retried like the SDK's standard retryer (3 attempts on
// throttling, 5xx and connection errors). The gateway's hot path calls it for every batch; every
// other operation is the SDK's.
type FastBatchClient struct {
	*sqs.Client
	endpoint string
	region   string
	creds    aws.CredentialsProvider
	signer   *v4.Signer
	http     aws.HTTPClient
	metrics  *Metrics
}

// NewFastBatch builds an SDK client as New does and the hand-encoded SendMessageBatch beside it.
func NewFastBatch(ctx context.Context, opts Options) (*FastBatchClient, error) {
	c, err := New(ctx, opts)
	if err != nil {
		return nil, err
	}
	o := c.Options()
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, sqs.EndpointParameters{Region: aws.String(o.Region), Endpoint: o.BaseEndpoint,
		UseFIPS: aws.Bool(false), UseDualStack: aws.Bool(false)})
	if err != nil {
		return nil, fmt.Errorf("resolving the SQS endpoint: %w", err)
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	return &FastBatchClient{Client: c, endpoint: ep.URI.String(), region: o.Region, creds: o.Credentials,
		signer: v4.NewSigner(), http: hc, metrics: opts.Metrics}, nil
}

type batchResultJSON struct {
	Successful []struct {
		ID                     string `json:"Id"`
		MessageID              string `json:"MessageId"`
		MD5OfMessageBody       string `json:"MD5OfMessageBody"`
		MD5OfMessageAttributes string `json:"MD5OfMessageAttributes"`
		SequenceNumber         string `json:"SequenceNumber"`
	} `json:"Successful"`
	Failed []struct {
		ID          string `json:"Id"`
		Code        string `json:"Code"`
		Message     string `json:"Message"`
		SenderFault bool   `json:"SenderFault"`
	} `json:"Failed"`
}

// SendMessage sends one message as a batch of one on the hand-encoded path (cheaper than the
// SDK's SendMessage), answering as SendMessage does: the entry's failure is the call's error.
func (f *FastBatchClient) SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	if len(optFns) > 0 {
		return f.Client.SendMessage(ctx, in, optFns...)
	}
	out, err := f.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: in.QueueUrl, Entries: []types.SendMessageBatchRequestEntry{{
		Id: aws.String("0"), MessageBody: in.MessageBody, MessageAttributes: in.MessageAttributes, MessageSystemAttributes: in.MessageSystemAttributes,
		DelaySeconds: in.DelaySeconds, MessageGroupId: in.MessageGroupId, MessageDeduplicationId: in.MessageDeduplicationId}}})
	switch {
	case err != nil:
		return nil, err
	case len(out.Failed) > 0:
		e := out.Failed[0]
		fault := smithy.FaultServer
		if e.SenderFault {
			fault = smithy.FaultClient
		}
		return nil, &smithy.GenericAPIError{Code: aws.ToString(e.Code), Message: aws.ToString(e.Message), Fault: fault}
	case len(out.Successful) == 0:
		return nil, &smithy.GenericAPIError{Code: "InternalError", Message: "SQS's batch answer did not mention the message", Fault: smithy.FaultServer}
	}
	ok := out.Successful[0]
	return &sqs.SendMessageOutput{MessageId: ok.MessageId, MD5OfMessageBody: ok.MD5OfMessageBody,
		MD5OfMessageAttributes: ok.MD5OfMessageAttributes, SequenceNumber: ok.SequenceNumber}, nil
}

// SendMessageBatch sends the entries in one call. optFns are not supported (the gateway passes
// none); with any, the SDK's call is used.
func (f *FastBatchClient) SendMessageBatch(ctx context.Context, in *sqs.SendMessageBatchInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageBatchOutput, error) {
	if len(optFns) > 0 {
		return f.Client.SendMessageBatch(ctx, in, optFns...)
	}
	start := time.Now()
	out, err := f.sendBatch(ctx, in)
	if f.metrics != nil {
		const op = "SendMessageBatch"
		f.metrics.Calls.WithLabelValues(op).Inc()
		f.metrics.Duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
		if err != nil {
			code := "Unknown"
			var api smithy.APIError
			if errors.As(err, &api) {
				code = api.ErrorCode()
			} else if errors.Is(err, context.Canceled) {
				code = "Canceled"
			}
			f.metrics.Errors.WithLabelValues(op, code).Inc()
		}
	}
	return out, err
}

func (f *FastBatchClient) sendBatch(ctx context.Context, in *sqs.SendMessageBatchInput) (*sqs.SendMessageBatchOutput, error) {
	body, err := encodeBatch(in)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(sum[:])
	const attempts = 3
	for attempt := 1; ; attempt++ {
		out, err := f.once(ctx, body, payloadHash, in)
		if err == nil || attempt == attempts || !retryable(err) || ctx.Err() != nil {
			return out, err
		}
		// The standard retryer's backoff: full jitter on an exponential base.
		wait := time.Duration(rand.Int64N(int64(50*time.Millisecond) << attempt))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (f *FastBatchClient) once(ctx context.Context, body []byte, payloadHash string, in *sqs.SendMessageBatchInput) (*sqs.SendMessageBatchOutput, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if req.URL.Path == "" {
		req.URL.Path = "/"
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	req.Header.Set("X-Amz-Target", "AmazonSQS.SendMessageBatch")
	req.Header.Set("X-Amzn-Query-Mode", "true")
	creds, err := f.creds.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("retrieving AWS credentials: %w", err)
	}
	if err := f.signer.SignHTTP(ctx, creds, req, payloadHash, "sqs", f.region, time.Now().UTC()); err != nil {
		return nil, err
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return nil, &connectionError{err}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, &connectionError{err}
	}
	if resp.StatusCode != http.StatusOK {
		return nil, apiError(resp, raw)
	}
	var res batchResultJSON
	if err := json.Unmarshal(raw, &res); err != nil {
		return nil, fmt.Errorf("decoding SendMessageBatch's answer: %w", err)
	}
	return decodeBatch(in, &res)
}

// encodeBatch writes the request's JSON by hand (the same document encoding/json makes of the
// request's shape, attribute names sorted), in one buffer sized from the bodies.
func encodeBatch(in *sqs.SendMessageBatchInput) ([]byte, error) {
	size := 64 + len(aws.ToString(in.QueueUrl))
	for _, e := range in.Entries {
		size += 160 + len(aws.ToString(e.MessageBody)) + 64*len(e.MessageAttributes)
	}
	b := make([]byte, 0, size)
	b = jsonenc.AppendString(append(b, `{"QueueUrl":`...), aws.ToString(in.QueueUrl))
	b = append(b, `,"Entries":[`...)
	for i, e := range in.Entries {
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(append(b, `{"Id":`...), aws.ToString(e.Id))
		b = jsonenc.AppendString(append(b, `,"MessageBody":`...), aws.ToString(e.MessageBody))
		if e.DelaySeconds != 0 {
			b = strconv.AppendInt(append(b, `,"DelaySeconds":`...), int64(e.DelaySeconds), 10)
		}
		b = appendAttributes(b, `,"MessageAttributes":`, e.MessageAttributes)
		if v := aws.ToString(e.MessageGroupId); v != "" {
			b = jsonenc.AppendString(append(b, `,"MessageGroupId":`...), v)
		}
		if v := aws.ToString(e.MessageDeduplicationId); v != "" {
			b = jsonenc.AppendString(append(b, `,"MessageDeduplicationId":`...), v)
		}
		if len(e.MessageSystemAttributes) > 0 {
			system := make(map[string]types.MessageAttributeValue, len(e.MessageSystemAttributes))
			for k, v := range e.MessageSystemAttributes {
				system[string(k)] = types.MessageAttributeValue{DataType: v.DataType, StringValue: v.StringValue, BinaryValue: v.BinaryValue}
			}
			b = appendAttributes(b, `,"MessageSystemAttributes":`, system)
		}
		b = append(b, '}')
	}
	return append(b, "]}"...), nil
}

// appendAttributes appends ,"<field>":{name:{DataType, StringValue, BinaryValue}...} (nothing
// when there are none), names sorted.
func appendAttributes(b []byte, field string, attrs map[string]types.MessageAttributeValue) []byte {
	if len(attrs) == 0 {
		return b
	}
	names := make([]string, 0, len(attrs))
	for k := range attrs {
		names = append(names, k)
	}
	slices.Sort(names)
	b = append(append(b, field...), '{')
	for i, k := range names {
		v := attrs[k]
		if i > 0 {
			b = append(b, ',')
		}
		b = jsonenc.AppendString(b, k)
		b = jsonenc.AppendString(append(b, `:{"DataType":`...), aws.ToString(v.DataType))
		if sv := aws.ToString(v.StringValue); sv != "" {
			b = jsonenc.AppendString(append(b, `,"StringValue":`...), sv)
		}
		if len(v.BinaryValue) > 0 {
			b = append(append(b, `,"BinaryValue":"`...), base64.StdEncoding.AppendEncode(nil, v.BinaryValue)...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// decodeBatch turns the answer into the SDK's output, checking each body's MD5 as the SDK does.
func decodeBatch(in *sqs.SendMessageBatchInput, res *batchResultJSON) (*sqs.SendMessageBatchOutput, error) {
	bodies := make(map[string]string, len(in.Entries))
	for _, e := range in.Entries {
		bodies[aws.ToString(e.Id)] = aws.ToString(e.MessageBody)
	}
	out := &sqs.SendMessageBatchOutput{}
	for _, s := range res.Successful {
		body := bodies[s.ID]
		sum := md5.Sum(unsafe.Slice(unsafe.StringData(body), len(body))) // read only: no copy
		if !strings.EqualFold(hex.EncodeToString(sum[:]), s.MD5OfMessageBody) {
			return nil, fmt.Errorf("SendMessageBatch: the MD5 of entry %s's body does not match SQS's %s", s.ID, s.MD5OfMessageBody)
		}
		e := types.SendMessageBatchResultEntry{Id: aws.String(s.ID), MessageId: aws.String(s.MessageID), MD5OfMessageBody: aws.String(s.MD5OfMessageBody)}
		if s.MD5OfMessageAttributes != "" {
			e.MD5OfMessageAttributes = aws.String(s.MD5OfMessageAttributes)
		}
		if s.SequenceNumber != "" {
			e.SequenceNumber = aws.String(s.SequenceNumber)
		}
		out.Successful = append(out.Successful, e)
	}
	for _, f := range res.Failed {
		out.Failed = append(out.Failed, types.BatchResultErrorEntry{Id: aws.String(f.ID), Code: aws.String(f.Code), Message: aws.String(f.Message), SenderFault: f.SenderFault})
	}
	return out, nil
}

// apiError reads SQS's error answer: the query-compatible code in x-amzn-query-error when present
// (AWS.SimpleQueueService.NonExistentQueue;Sender), else the __type's shape name.
func apiError(resp *http.Response, raw []byte) error {
	var body struct {
		Type     string `json:"__type"`
		Message  string `json:"message"`
		MessageU string `json:"Message"`
	}
	_ = json.Unmarshal(raw, &body)
	code := body.Type
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	fault := smithy.FaultServer
	if resp.StatusCode < 500 {
		fault = smithy.FaultClient
	}
	if q := resp.Header.Get("X-Amzn-Query-Error"); q != "" {
		qcode, qfault, _ := strings.Cut(q, ";")
		code = qcode
		if qfault == "Sender" {
			fault = smithy.FaultClient
		}
	}
	if code == "" {
		code = http.StatusText(resp.StatusCode)
	}
	msg := body.Message
	if msg == "" {
		msg = body.MessageU
	}
	return &statusError{GenericAPIError: smithy.GenericAPIError{Code: code, Message: msg, Fault: fault}, status: resp.StatusCode}
}

type statusError struct {
	smithy.GenericAPIError
	status int
}

type connectionError struct{ err error }

func (e *connectionError) Error() string { return "SendMessageBatch: " + e.err.Error() }
func (e *connectionError) Unwrap() error { return e.err }

// throttlingCodes are the codes the SDK's standard retryer retries besides 5xx answers.
var throttlingCodes = map[string]bool{"Throttling": true, "ThrottlingException": true, "ThrottledException": true,
	"RequestThrottledException": true, "TooManyRequestsException": true, "RequestThrottled": true,
	"AWS.SimpleQueueService.RequestThrottled": true, "SlowDown": true, "RequestLimitExceeded": true,
	"RequestTimeout": true, "RequestTimeoutException": true}

func retryable(err error) bool {
	var conn *connectionError
	if errors.As(err, &conn) {
		return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
	}
	var s *statusError
	if errors.As(err, &s) {
		return s.status >= 500 || throttlingCodes[s.Code]
	}
	return false
}

package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// batchRequest is the body of the batch form: up to 10 messages, sent in one SQS call.
type batchRequest struct {
	Messages []batchMessage `json:"messages"`
}

type batchMessage struct {
	// Body is the message: a JSON string is sent as its text, any other JSON value as its JSON.
	Body           json.RawMessage   `json:"body"`
	ContentType    string            `json:"contentType,omitempty"`
	GroupID        string            `json:"groupId,omitempty"`
	IdempotencyKey string            `json:"idempotencyKey,omitempty"`
	Attributes     map[string]string `json:"attributes,omitempty"`
}

// maxBatchPayload is SQS's limit on the sum of a batch's message sizes.
const maxBatchPayload = 1 << 20

// sendBatch puts up to 10 messages on the queue in one SendMessageBatch call; entries SQS fails for
// a transient reason are sent again (twice at most). 202 when all were sent; otherwise 503 with
// each entry's result, so that the caller retries only those without a messageId.
func (s *Server) sendBatch(w http.ResponseWriter, r *http.Request) {
	q, err := s.sendTarget(r)
	if err != nil {
		writeError(w, err)
		return
	}
	raw, err := readBody(r, maxBatchPayload+64<<10)
	if err != nil {
		writeError(w, err)
		return
	}
	var req batchRequest
	if err := json.Unmarshal(raw, &req); err != nil {
		writeError(w, fail(http.StatusBadRequest, "the body is not a batch ({\"messages\": [...]}): %v", err))
		return
	}
	entries, err := batchEntries(q, req)
	if err != nil {
		writeError(w, err)
		return
	}
	results := make([]map[string]string, len(entries))
	pending := entries
	for attempt := 0; attempt < 3 && len(pending) > 0; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
		}
		out, err := s.SQS.SendMessageBatch(r.Context(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.Status.QueueURL), Entries: pending})
		if err != nil {
			if s.Metrics != nil {
				s.Metrics.SQSErrors.Inc()
			}
			if attempt == 0 {
				writeError(w, sqsError(err))
				return
			}
			break
		}
		for _, ok := range out.Successful {
			i, _ := strconv.Atoi(aws.ToString(ok.Id))
			results[i] = map[string]string{"messageId": aws.ToString(ok.MessageId)}
			if ok.SequenceNumber != nil {
				results[i]["sequenceNumber"] = aws.ToString(ok.SequenceNumber)
			}
		}
		var retry []types.SendMessageBatchRequestEntry
		for _, f := range out.Failed {
			i, _ := strconv.Atoi(aws.ToString(f.Id))
			results[i] = map[string]string{"error": fmt.Sprintf("%s: %s", aws.ToString(f.Code), aws.ToString(f.Message))}
			if !f.SenderFault {
				retry = append(retry, entries[i])
			}
		}
		pending = retry
	}
	status := http.StatusAccepted
	for i, res := range results {
		switch {
		case res != nil && res["messageId"] != "":
		case slices.ContainsFunc(pending, func(e types.SendMessageBatchRequestEntry) bool { return aws.ToString(e.Id) == strconv.Itoa(i) }) || res == nil:
			status = http.StatusServiceUnavailable // transient: worth retrying
		case status == http.StatusAccepted:
			status = http.StatusBadRequest // SQS refused the entry itself
		}
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "2")
	}
	for i := range results {
		if results[i] == nil {
			results[i] = map[string]string{"error": "not sent"}
		}
	}
	writeJSON(w, status, map[string]any{"messages": results})
}

// batchEntries validates the batch at once, naming the entry and field of each problem.
func batchEntries(q *millracev1.Queue, req batchRequest) ([]types.SendMessageBatchRequestEntry, error) {
	if n := len(req.Messages); n == 0 || n > 10 {
		return nil, fail(http.StatusBadRequest, "messages: %d entries; a batch has 1 to 10", n)
	}
	limit := maxMessageSize(q)
	total := 0
	entries := make([]types.SendMessageBatchRequestEntry, len(req.Messages))
	for i, m := range req.Messages {
		at := fmt.Sprintf("messages[%d]", i)
		if len(m.Body) == 0 || string(m.Body) == "null" {
			return nil, fail(http.StatusBadRequest, "%s.body is required", at)
		}
		body := string(m.Body)
		var text string
		if json.Unmarshal(m.Body, &text) == nil {
			body = text
		}
		if !utf8.ValidString(body) || body == "" {
			return nil, fail(http.StatusBadRequest, "%s.body must be non-empty UTF-8 text", at)
		}
		if int64(len(body)) > limit {
			return nil, fail(http.StatusRequestEntityTooLarge, "%s.body is larger than the queue's maximum message size (%d bytes)", at, limit)
		}
		if total += len(body); total > maxBatchPayload {
			return nil, fail(http.StatusRequestEntityTooLarge, "the batch's bodies exceed %d bytes together", maxBatchPayload)
		}
		e := types.SendMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(body),
			MessageAttributes: map[string]types.MessageAttributeValue{}}
		if m.ContentType != "" {
			e.MessageAttributes[AttributeContentType] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(m.ContentType)}
		}
		for k, v := range m.Attributes {
			// Only the attributes the queue forwards from headers in the single form: a caller
			// must not set others (such as a workflow task token).
			name := strings.ToLower(k)
			if ReservedAttribute(name) || !slices.ContainsFunc(q.Spec.HTTP.ForwardHeaders, func(h string) bool { return strings.EqualFold(h, name) }) {
				return nil, fail(http.StatusBadRequest, "%s.attributes.%s: not one of the queue's forwardHeaders %v", at, k, q.Spec.HTTP.ForwardHeaders)
			}
			e.MessageAttributes[name] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(v)}
		}
		if q.Spec.Type == millracev1.QueueTypeFIFO {
			if m.GroupID == "" {
				return nil, fail(http.StatusBadRequest, "%s.groupId is required: %s/%s is a FIFO queue", at, q.Namespace, q.Name)
			}
			if !validSQSID(m.GroupID) {
				return nil, fail(http.StatusBadRequest, "%s.groupId: %s", at, sqsIDRule)
			}
			if m.IdempotencyKey != "" && !validSQSID(m.IdempotencyKey) {
				return nil, fail(http.StatusBadRequest, "%s.idempotencyKey: %s", at, sqsIDRule)
			}
			e.MessageGroupId = aws.String(m.GroupID)
			switch {
			case m.IdempotencyKey != "":
				e.MessageDeduplicationId = aws.String(m.IdempotencyKey)
			case q.Spec.ContentBasedDeduplication == nil || !*q.Spec.ContentBasedDeduplication:
				return nil, fail(http.StatusBadRequest, "%s.idempotencyKey is required: FIFO queue %s/%s has no content-based deduplication", at, q.Namespace, q.Name)
			}
		}
		entries[i] = e
	}
	return entries, nil
}

package sqsx_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/millrace-io/millrace/internal/sqsx"
	"github.com/millrace-io/millrace/internal/testenv"
)

func str(s string) types.MessageAttributeValue {
	return types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(s)}
}

// The hand-encoded SendMessageBatch puts exactly what the SDK's would on the queue (bodies,
// attributes, FIFO group and deduplication), answers in the SDK's shapes, and reports SQS's
// refusals as errors Classify understands.
func TestTheFastBatchSendsWhatTheSDKWould(t *testing.T) {
	emulator := testenv.FauxqsFor(t)
	testenv.UseLocalCredentials()
	ctx := context.Background()
	c, err := sqsx.NewFastBatch(ctx, sqsx.Options{Endpoint: emulator.Endpoint, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("fast-batch")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: q.QueueUrl, Entries: []types.SendMessageBatchRequestEntry{
		{Id: aws.String("0"), MessageBody: aws.String(`{"order":1,"note":"ünïcødé \"quoted\""}`), MessageAttributes: map[string]types.MessageAttributeValue{"x-tenant": str("a")}},
		{Id: aws.String("1"), MessageBody: aws.String("plain text\n"), MessageAttributes: map[string]types.MessageAttributeValue{
			"bin": {DataType: aws.String("Binary"), BinaryValue: []byte{0, 1, 2, 255}}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Successful) != 2 || len(out.Failed) != 0 || aws.ToString(out.Successful[0].MessageId) == "" {
		t.Fatalf("answer %+v", out)
	}
	got, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10, MessageAttributeNames: []string{"All"}})
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string]types.Message{}
	for _, m := range got.Messages {
		bodies[aws.ToString(m.Body)] = m
	}
	first, ok := bodies[`{"order":1,"note":"ünïcødé \"quoted\""}`]
	if !ok || aws.ToString(first.MessageAttributes["x-tenant"].StringValue) != "a" {
		t.Fatalf("received %+v", got.Messages)
	}
	if second, ok := bodies["plain text\n"]; !ok || string(second.MessageAttributes["bin"].BinaryValue) != string([]byte{0, 1, 2, 255}) {
		t.Fatalf("received %+v", got.Messages)
	}

	fifo, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("fast-batch.fifo"), Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	entry := types.SendMessageBatchRequestEntry{Id: aws.String("a"), MessageBody: aws.String("once"), MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("d")}
	for range 2 {
		if _, err := c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: fifo.QueueUrl, Entries: []types.SendMessageBatchRequestEntry{entry}}); err != nil {
			t.Fatal(err)
		}
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: fifo.QueueUrl, AttributeNames: []types.QueueAttributeName{"ApproximateNumberOfMessages"}})
	if err != nil || attrs.Attributes["ApproximateNumberOfMessages"] != "1" {
		t.Fatalf("a deduplicated FIFO batch left %v messages (%v)", attrs.Attributes, err)
	}

	_, err = c.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(emulator.Endpoint + "/000000000000/missing"),
		Entries: []types.SendMessageBatchRequestEntry{{Id: aws.String("0"), MessageBody: aws.String("x")}}})
	if class, code := sqsx.Classify(err); class != sqsx.NotFound {
		t.Fatalf("a missing queue: %v classified %v %q", err, class, code)
	}
}

// A throttled or failing SQS is tried again, three times at most, as the SDK's retryer does; a
// refusal of the request itself is not.
func TestTheFastBatchRetriesLikeTheSDK(t *testing.T) {
	testenv.UseLocalCredentials()
	for _, tc := range []struct {
		name        string
		status      int
		body        string
		wantCalls   int32
		wantAnError bool
	}{
		{"a 500 is tried three times", 500, `{"__type":"com.amazonaws.sqs#InternalError","message":"boom"}`, 3, true},
		{"throttling is tried three times", 400, `{"__type":"com.amazonaws.sqs#RequestThrottled","message":"slow down"}`, 3, true},
		{"an invalid request is not tried again", 400, `{"__type":"com.amazonaws.sqs#InvalidParameterValue","message":"no"}`, 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				if r.Header.Get("X-Amz-Target") != "AmazonSQS.SendMessageBatch" || r.Header.Get("Authorization") == "" {
					t.Errorf("headers %v", r.Header)
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			defer srv.Close()
			c, err := sqsx.NewFastBatch(context.Background(), sqsx.Options{Endpoint: srv.URL, Region: "us-east-1"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.SendMessageBatch(context.Background(), &sqs.SendMessageBatchInput{QueueUrl: aws.String(srv.URL + "/0/q"),
				Entries: []types.SendMessageBatchRequestEntry{{Id: aws.String("0"), MessageBody: aws.String("x")}}})
			if (err != nil) != tc.wantAnError || calls.Load() != tc.wantCalls {
				t.Fatalf("err %v after %d calls, want %d", err, calls.Load(), tc.wantCalls)
			}
		})
	}
}

// The request on the wire is the SDK's own: the same target, content type, query mode and path,
// and a body with the same JSON, so SQS reads it as it reads the SDK's.
func TestTheFastBatchRequestIsTheSDKs(t *testing.T) {
	testenv.UseLocalCredentials()
	type seen struct {
		target, contentType, queryMode, path, auth string
		body                                       any
	}
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var body any
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Errorf("body %q: %v", raw, err)
		}
		got = append(got, seen{r.Header.Get("X-Amz-Target"), r.Header.Get("Content-Type"), r.Header.Get("X-Amzn-Query-Mode"), r.URL.Path,
			r.Header.Get("Authorization"), body})
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		_, _ = w.Write([]byte(`{"Successful":[{"Id":"0","MessageId":"m","MD5OfMessageBody":"5d41402abc4b2a76b9719d911017c592"}]}`))
	}))
	defer srv.Close()
	ctx := context.Background()
	fast, err := sqsx.NewFastBatch(ctx, sqsx.Options{Endpoint: srv.URL, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	in := &sqs.SendMessageBatchInput{QueueUrl: aws.String(srv.URL + "/000000000000/q.fifo"), Entries: []types.SendMessageBatchRequestEntry{{
		Id: aws.String("0"), MessageBody: aws.String("hello"), DelaySeconds: 3, MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String("d"),
		MessageAttributes: map[string]types.MessageAttributeValue{"a": str("1"), "b": {DataType: aws.String("Binary"), BinaryValue: []byte("x")}}}}}
	if _, err := fast.Client.SendMessageBatch(ctx, in); err != nil {
		t.Fatal(err)
	}
	if _, err := fast.SendMessageBatch(ctx, in); err != nil {
		t.Fatal(err)
	}
	sdk, ours := got[0], got[1]
	if !strings.HasPrefix(ours.auth, "AWS4-HMAC-SHA256 Credential=") || !strings.Contains(ours.auth, "/us-east-1/sqs/aws4_request") {
		t.Errorf("authorization %q", ours.auth)
	}
	sdk.auth, ours.auth = "", ""
	if !reflect.DeepEqual(sdk, ours) {
		t.Fatalf("the SDK sent\n%+v\nthe fast path\n%+v", sdk, ours)
	}
}

// A single SendMessage goes as a batch of one and answers as SendMessage does: the message's id,
// or the entry's refusal as the call's error.
func TestTheFastSendMessageIsABatchOfOne(t *testing.T) {
	emulator := testenv.FauxqsFor(t)
	testenv.UseLocalCredentials()
	ctx := context.Background()
	c, err := sqsx.NewFastBatch(ctx, sqsx.Options{Endpoint: emulator.Endpoint, Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	q, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("fast-single")})
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("one"),
		MessageAttributes: map[string]types.MessageAttributeValue{"k": str("v")}})
	if err != nil || aws.ToString(out.MessageId) == "" {
		t.Fatalf("%+v %v", out, err)
	}
	got, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MessageAttributeNames: []string{"All"}})
	if err != nil || len(got.Messages) != 1 || aws.ToString(got.Messages[0].MessageId) != aws.ToString(out.MessageId) ||
		aws.ToString(got.Messages[0].MessageAttributes["k"].StringValue) != "v" {
		t.Fatalf("received %+v %v", got, err)
	}
	fifo, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("fast-single.fifo"), Attributes: map[string]string{"FifoQueue": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	// A FIFO message without a group is refused by SQS, for the entry or the call.
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: fifo.QueueUrl, MessageBody: aws.String("x")}); err == nil {
		t.Fatal("a FIFO message without a group was accepted")
	}
}

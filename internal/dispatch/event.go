package dispatch

import (
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// TaskTokenAttribute is the message attribute that carries a Millrace workflow task token.
const TaskTokenAttribute = "millrace-task-token"

// HeartbeatAttribute carries the task's HeartbeatSeconds: while the handler runs, the dispatcher
// reports a heartbeat three times per period.
const HeartbeatAttribute = "millrace-heartbeat-seconds"

// CredentialsAttribute carries a workflow Task's evaluated Credentials ({"RoleArn": "..."}, as
// JSON) to its handler, which sees it among the record's message attributes. Millrace assumes no
// role: using the credentials is the handler's business.
const CredentialsAttribute = "millrace-credentials"

// toRecord converts an SQS message to the record of a Lambda SQS event. The attribute map is
// shared with the message (neither is changed afterwards); a message without message attributes
// gets a nil map, which the event encoder writes as {} as Lambda does.
func toRecord(m types.Message, queueARN, region string) events.SQSMessage {
	r := events.SQSMessage{
		MessageId:              aws.ToString(m.MessageId),
		ReceiptHandle:          aws.ToString(m.ReceiptHandle),
		Body:                   aws.ToString(m.Body),
		Md5OfBody:              aws.ToString(m.MD5OfBody),
		Md5OfMessageAttributes: aws.ToString(m.MD5OfMessageAttributes),
		Attributes:             m.Attributes,
		EventSourceARN:         queueARN,
		EventSource:            "aws:sqs",
		AWSRegion:              region,
	}
	if len(m.MessageAttributes) > 0 {
		r.MessageAttributes = make(map[string]events.SQSMessageAttribute, len(m.MessageAttributes))
	}
	for k, v := range m.MessageAttributes {
		r.MessageAttributes[k] = events.SQSMessageAttribute{
			StringValue:      v.StringValue,
			BinaryValue:      v.BinaryValue,
			StringListValues: nonNil(v.StringListValues),
			BinaryListValues: nonNilBytes(v.BinaryListValues),
			DataType:         aws.ToString(v.DataType),
		}
	}
	return r
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilBytes(s [][]byte) [][]byte {
	if s == nil {
		return [][]byte{}
	}
	return s
}

// idempotencyKey is the stable identity of a message across redeliveries: its message id (kept by
// SQS across receives of the same message).
func idempotencyKey(m types.Message) string { return aws.ToString(m.MessageId) }

// taskToken returns the workflow task token of a message, if it carries one.
func taskToken(m types.Message) string {
	if a, ok := m.MessageAttributes[TaskTokenAttribute]; ok {
		return aws.ToString(a.StringValue)
	}
	return ""
}

// heartbeatEvery is how often to heartbeat a task message (0: it asks for none).
func heartbeatEvery(m types.Message) time.Duration {
	a, ok := m.MessageAttributes[HeartbeatAttribute]
	if !ok {
		return 0
	}
	s, err := strconv.Atoi(aws.ToString(a.StringValue))
	if err != nil || s <= 0 {
		return 0
	}
	return time.Duration(s) * time.Second / 3
}

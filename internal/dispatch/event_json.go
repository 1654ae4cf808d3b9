package dispatch

import (
	"encoding/base64"
	"slices"

	"github.com/aws/aws-lambda-go/events"

	"github.com/millrace-io/millrace/internal/jsonenc"
)

// appendEvent appends the JSON of a Lambda SQS event to buf. It writes what encoding/json writes
// for events.SQSEvent (same field names, omitempty rules and sorted map keys; strings escaped the
// same way, invalid UTF-8 replaced by U+FFFD) except where Lambda differs: a record's nil attribute
// maps are written as {} (Lambda never sends null there), and an empty md5OfMessageAttributes (a
// message without message attributes) as null, as Lambda does. It does so without reflection: the dispatcher encodes one
// event per batch, and on a busy consumer this is most of its CPU outside the SDK.
func appendEvent(buf []byte, e events.SQSEvent) []byte {
	if e.Records == nil {
		return append(buf, `{"Records":null}`...)
	}
	buf = append(buf, `{"Records":[`...)
	for i, r := range e.Records {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendRecord(buf, r)
	}
	return append(buf, "]}"...)
}

func appendRecord(buf []byte, r events.SQSMessage) []byte {
	buf = append(buf, `{"messageId":`...)
	buf = jsonenc.AppendString(buf, r.MessageId)
	buf = append(buf, `,"receiptHandle":`...)
	buf = jsonenc.AppendString(buf, r.ReceiptHandle)
	buf = append(buf, `,"body":`...)
	buf = jsonenc.AppendString(buf, r.Body)
	buf = append(buf, `,"md5OfBody":`...)
	buf = jsonenc.AppendString(buf, r.Md5OfBody)
	buf = append(buf, `,"md5OfMessageAttributes":`...)
	if r.Md5OfMessageAttributes == "" {
		buf = append(buf, "null"...) // Lambda's value for a message without attributes
	} else {
		buf = jsonenc.AppendString(buf, r.Md5OfMessageAttributes)
	}
	var scratch [16]string // map keys, sorted; on the stack for ordinary records
	buf = append(buf, `,"attributes":{`...)
	for i, k := range sortedKeys(scratch[:0], r.Attributes) {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = jsonenc.AppendString(buf, k)
		buf = append(buf, ':')
		buf = jsonenc.AppendString(buf, r.Attributes[k])
	}
	buf = append(buf, `},"messageAttributes":{`...)
	for i, k := range sortedKeys(scratch[:0], r.MessageAttributes) {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = jsonenc.AppendString(buf, k)
		buf = append(buf, ':')
		buf = appendAttribute(buf, r.MessageAttributes[k])
	}
	buf = append(buf, '}')
	buf = append(buf, `,"eventSourceARN":`...)
	buf = jsonenc.AppendString(buf, r.EventSourceARN)
	buf = append(buf, `,"eventSource":`...)
	buf = jsonenc.AppendString(buf, r.EventSource)
	buf = append(buf, `,"awsRegion":`...)
	buf = jsonenc.AppendString(buf, r.AWSRegion)
	return append(buf, '}')
}

func appendAttribute(buf []byte, a events.SQSMessageAttribute) []byte {
	buf = append(buf, '{')
	if a.StringValue != nil {
		buf = append(buf, `"stringValue":`...)
		buf = jsonenc.AppendString(buf, *a.StringValue)
		buf = append(buf, ',')
	}
	if len(a.BinaryValue) > 0 {
		buf = append(buf, `"binaryValue":"`...)
		buf = base64.StdEncoding.AppendEncode(buf, a.BinaryValue)
		buf = append(buf, `",`...)
	}
	buf = append(buf, `"stringListValues":`...)
	if a.StringListValues == nil {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, '[')
		for i, s := range a.StringListValues {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = jsonenc.AppendString(buf, s)
		}
		buf = append(buf, ']')
	}
	buf = append(buf, `,"binaryListValues":`...)
	if a.BinaryListValues == nil {
		buf = append(buf, "null"...)
	} else {
		buf = append(buf, '[')
		for i, b := range a.BinaryListValues {
			if i > 0 {
				buf = append(buf, ',')
			}
			if b == nil {
				buf = append(buf, "null"...)
				continue
			}
			buf = append(buf, '"')
			buf = base64.StdEncoding.AppendEncode(buf, b)
			buf = append(buf, '"')
		}
		buf = append(buf, ']')
	}
	buf = append(buf, `,"dataType":`...)
	buf = jsonenc.AppendString(buf, a.DataType)
	return append(buf, '}')
}

// sortedKeys appends m's keys to keys, sorted.
func sortedKeys[V any](keys []string, m map[string]V) []string {
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

package dispatch

import (
	"encoding/base64"
	"slices"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
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
	buf = appendString(buf, r.MessageId)
	buf = append(buf, `,"receiptHandle":`...)
	buf = appendString(buf, r.ReceiptHandle)
	buf = append(buf, `,"body":`...)
	buf = appendString(buf, r.Body)
	buf = append(buf, `,"md5OfBody":`...)
	buf = appendString(buf, r.Md5OfBody)
	buf = append(buf, `,"md5OfMessageAttributes":`...)
	if r.Md5OfMessageAttributes == "" {
		buf = append(buf, "null"...) // Lambda's value for a message without attributes
	} else {
		buf = appendString(buf, r.Md5OfMessageAttributes)
	}
	var scratch [16]string // map keys, sorted; on the stack for ordinary records
	buf = append(buf, `,"attributes":{`...)
	for i, k := range sortedKeys(scratch[:0], r.Attributes) {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, k)
		buf = append(buf, ':')
		buf = appendString(buf, r.Attributes[k])
	}
	buf = append(buf, `},"messageAttributes":{`...)
	for i, k := range sortedKeys(scratch[:0], r.MessageAttributes) {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, k)
		buf = append(buf, ':')
		buf = appendAttribute(buf, r.MessageAttributes[k])
	}
	buf = append(buf, '}')
	buf = append(buf, `,"eventSourceARN":`...)
	buf = appendString(buf, r.EventSourceARN)
	buf = append(buf, `,"eventSource":`...)
	buf = appendString(buf, r.EventSource)
	buf = append(buf, `,"awsRegion":`...)
	buf = appendString(buf, r.AWSRegion)
	return append(buf, '}')
}

func appendAttribute(buf []byte, a events.SQSMessageAttribute) []byte {
	buf = append(buf, '{')
	if a.StringValue != nil {
		buf = append(buf, `"stringValue":`...)
		buf = appendString(buf, *a.StringValue)
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
			buf = appendString(buf, s)
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
	buf = appendString(buf, a.DataType)
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

const hexDigits = "0123456789abcdef"

// plain marks the ASCII bytes a JSON string holds as they are (encoding/json also escapes <, >
// and &).
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// appendString appends s as a JSON string, escaping as encoding/json does (including <, > and &,
// and U+2028/U+2029), so the bytes match its output.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			case '\b':
				buf = append(buf, '\\', 'b')
			case '\f':
				buf = append(buf, '\\', 'f')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

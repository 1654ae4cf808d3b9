package dispatch

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/millrace-io/millrace/internal/jsonenc"
)

// The hand-written encoder must write exactly what encoding/json writes for the same event (with
// nil attribute maps written as {}).
func TestAppendEventMatchesEncodingJSON(t *testing.T) {
	for name, e := range map[string]events.SQSEvent{
		"nil records":   {},
		"empty records": {Records: []events.SQSMessage{}},
		"empty maps":    {Records: []events.SQSMessage{{MessageId: "m", Attributes: map[string]string{}, MessageAttributes: map[string]events.SQSMessageAttribute{}}}},
		"sample batch": {Records: func() []events.SQSMessage {
			var rs []events.SQSMessage
			for _, m := range sampleMessages(3) {
				rs = append(rs, toRecord(m, "arn:aws:sqs:us-east-1:000000000000:q", "us-east-1"))
			}
			return rs
		}()},
		"escapes and attributes": {Records: []events.SQSMessage{{
			MessageId:  "id",
			Body:       "quote \" backslash \\ nl \n cr \r tab \t bs \b ff \f nul \x00 esc \x1b <html>&amp; \u2028\u2029 é 日本 😀 bad \xff\xfe end",
			Attributes: map[string]string{"b": "2", "a": "1", "SentTimestamp": "1"},
			MessageAttributes: map[string]events.SQSMessageAttribute{
				"str":   {StringValue: aws.String("v<>"), StringListValues: []string{}, BinaryListValues: [][]byte{}, DataType: "String"},
				"bin":   {BinaryValue: []byte{0, 1, 2, 250, 251, 252}, StringListValues: []string{}, BinaryListValues: [][]byte{}, DataType: "Binary"},
				"lists": {StringListValues: []string{"a", "\"b\""}, BinaryListValues: [][]byte{{1}, nil, {}}, DataType: "String"},
				"nils":  {DataType: "Number"},
				"empty": {StringValue: aws.String(""), BinaryValue: []byte{}, DataType: "String"},
			},
			EventSourceARN: "arn", EventSource: "aws:sqs", AWSRegion: "eu-west-1",
		}}},
	} {
		t.Run(name, func(t *testing.T) {
			for i := range e.Records {
				// encoding/json writes null for nil maps; Lambda (and appendEvent) write {}.
				r := &e.Records[i]
				if r.Attributes == nil {
					r.Attributes = map[string]string{}
				}
				if r.MessageAttributes == nil {
					r.MessageAttributes = map[string]events.SQSMessageAttribute{}
				}
			}
			want, err := json.Marshal(e)
			if err != nil {
				t.Fatal(err)
			}
			// Lambda writes null for a message without message attributes; encoding/json "".
			want = bytes.ReplaceAll(want, []byte(`"md5OfMessageAttributes":""`), []byte(`"md5OfMessageAttributes":null`))
			if got := appendEvent(nil, stripEmptyMaps(e)); !bytes.Equal(got, want) {
				t.Errorf("appendEvent:\n got %s\nwant %s", got, want)
			}
		})
	}
}

// Lambda sends "md5OfMessageAttributes": null for a message without message attributes, and the
// digest for one with them.
func TestMd5OfMessageAttributesIsNullWithoutAttributes(t *testing.T) {
	plain := toRecord(sampleMessages(1)[0], "arn", "us-east-1")
	plain.MessageAttributes, plain.Md5OfMessageAttributes = nil, ""
	with := plain
	with.Md5OfMessageAttributes = "0123456789abcdef0123456789abcdef"
	var got struct {
		Records []map[string]any
	}
	if err := json.Unmarshal(appendEvent(nil, events.SQSEvent{Records: []events.SQSMessage{plain, with}}), &got); err != nil {
		t.Fatal(err)
	}
	if v, ok := got.Records[0]["md5OfMessageAttributes"]; !ok || v != nil {
		t.Errorf("without attributes: md5OfMessageAttributes = %#v (present %v), want null", v, ok)
	}
	if v := got.Records[1]["md5OfMessageAttributes"]; v != with.Md5OfMessageAttributes {
		t.Errorf("with attributes: md5OfMessageAttributes = %#v", v)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "\x00\x1f\x7f", "<>&", "\u2028", "\xff", "é\xc3", "😀"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := jsonenc.AppendString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

// stripEmptyMaps returns a copy of e whose empty attribute maps are nil.
func stripEmptyMaps(e events.SQSEvent) events.SQSEvent {
	if e.Records == nil {
		return e
	}
	out := events.SQSEvent{Records: make([]events.SQSMessage, len(e.Records))}
	for i, r := range e.Records {
		if len(r.Attributes) == 0 {
			r.Attributes = nil
		}
		if len(r.MessageAttributes) == 0 {
			r.MessageAttributes = nil
		}
		out.Records[i] = r
	}
	return out
}

func BenchmarkAppendEvent(b *testing.B) {
	var e events.SQSEvent
	for _, m := range sampleMessages(10) {
		e.Records = append(e.Records, toRecord(m, "arn:aws:sqs:us-east-1:000000000000:q", "us-east-1"))
	}
	b.Run("appendEvent", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			buf = appendEvent(buf[:0], e)
		}
	})
	b.Run("encoding/json (baseline)", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(e)
		}
	})
}

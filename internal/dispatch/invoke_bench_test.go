package dispatch

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func sampleMessages(n int) []types.Message {
	msgs := make([]types.Message, n)
	for i := range msgs {
		msgs[i] = types.Message{
			MessageId:     aws.String("0f5a3c2e-6d1b-4f7e-9a8c-" + strconv.Itoa(100000000000+i)),
			ReceiptHandle: aws.String("AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a7a9Qj3tYwA3Fv1rFgQOmvc2Jb8sV8yVG7xQ0m3F7wDq0nJp2TxqV4yRz8aZb1Hc5Wn6Kj9Lm2Op4Qr7St0Uv3Wx6Yz9" + strconv.Itoa(i)),
			Body:          aws.String(`{"order":` + strconv.Itoa(i) + `}`),
			MD5OfBody:     aws.String("d41d8cd98f00b204e9800998ecf8427e"),
			Attributes: map[string]string{
				"ApproximateReceiveCount":          "1",
				"SentTimestamp":                    "1764200000000",
				"SenderId":                         "000000000000",
				"ApproximateFirstReceiveTimestamp": "1764200000100",
			},
		}
	}
	return msgs
}

// BenchmarkInvokeBatch measures the CPU one batch of ten costs to encode and deliver to a no-op
// handler on loopback (client and server in this process).
func BenchmarkInvokeBatch(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(200)
	}))
	defer srv.Close()
	inv := &HTTPInvoker{URL: srv.URL}
	msgs := sampleMessages(10)
	b.ReportAllocs()
	cpu := func() int64 {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return ru.Utime.Nano() + ru.Stime.Nano()
	}
	before := cpu()
	defer func() { b.ReportMetric(float64(cpu()-before)/1000/float64(b.N), "cpu-µs/op") }()
	for b.Loop() {
		records := make([]events.SQSMessage, len(msgs))
		keys := make([]string, len(msgs))
		for i, m := range msgs {
			records[i] = toRecord(m, "arn:aws:sqs:us-east-1:000000000000:orders", "us-east-1")
			keys[i] = idempotencyKey(m)
		}
		if _, err := inv.Invoke(context.Background(), events.SQSEvent{Records: records}, keys); err != nil {
			b.Fatal(err)
		}
	}
}

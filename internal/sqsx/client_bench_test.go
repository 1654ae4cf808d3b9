package sqsx_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/millrace-io/millrace/internal/sqsx"
	"github.com/millrace-io/millrace/internal/testenv"
)

// BenchmarkSQSCall compares the SQS client Millrace uses (the SDK over internal/directhttp) with
// the SDK's default client (net/http's Transport) on the same fauxqs queue, in the same run:
// SendMessage of 1 KiB, then ReceiveMessage of up to 10 and DeleteMessageBatch, one after another.
// It reports the CPU of this process per call (the client's cost; the emulator's is the same for
// both) and the wall time per call.
func BenchmarkSQSCall(b *testing.B) {
	emulator := testenv.FauxqsFor(b)
	testenv.UseLocalCredentials()
	ctx := context.Background()
	body := strings.Repeat("x", 1024)
	for _, side := range []struct {
		name    string
		netHTTP bool
	}{{"sdk-default", true}, {"millrace", false}} {
		b.Run(side.name, func(b *testing.B) {
			c, err := sqsx.New(ctx, sqsx.Options{Endpoint: emulator.Endpoint, Region: "us-east-1", NetHTTP: side.netHTTP})
			if err != nil {
				b.Fatal(err)
			}
			out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(fmt.Sprintf("bench-%s-%d", side.name, time.Now().UnixNano()))})
			if err != nil {
				b.Fatal(err)
			}
			url := out.QueueUrl
			cpu := func() time.Duration {
				var ru syscall.Rusage
				_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
				return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			}
			calls := 0
			before := cpu()
			for b.Loop() {
				for range 10 {
					if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: url, MessageBody: aws.String(body)}); err != nil {
						b.Fatal(err)
					}
				}
				got, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: url, MaxNumberOfMessages: 10})
				if err != nil {
					b.Fatal(err)
				}
				calls += 11
				if len(got.Messages) > 0 {
					del := &sqs.DeleteMessageBatchInput{QueueUrl: url}
					for i, m := range got.Messages {
						del.Entries = append(del.Entries, types.DeleteMessageBatchRequestEntry{Id: aws.String(strconv.Itoa(i)), ReceiptHandle: m.ReceiptHandle})
					}
					if _, err := c.DeleteMessageBatch(ctx, del); err != nil {
						b.Fatal(err)
					}
					calls++
				}
			}
			b.ReportMetric(float64((cpu()-before).Microseconds())/float64(calls), "cpu-µs/call")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(calls), "µs/call")
		})
	}
}

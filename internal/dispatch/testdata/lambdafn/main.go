// A Lambda function built on aws-lambda-go, run by the tests against the dispatcher's Runtime API.
// What it does depends on each record's body:
//
//   - "bad": reported in batchItemFailures (partial batch response);
//   - "sleep:<duration>": sleeps that long (ignoring the deadline, like a stuck function), then
//     handles the record;
//   - "peer": waits (at most 10s) for another invocation handling "peer" to run at the same time,
//     and prints "overlapped" or "alone" (AWS_LAMBDA_MAX_CONCURRENCY);
//   - "notjson": the answer is the bytes `not json`;
//   - "emptyid": the answer names an empty itemIdentifier;
//   - "context": prints the invoked function ARN, the record's eventSourceARN and the trace id;
//   - anything else: handled.
//
// A handled record is echoed to stdout as "handled <body> <eventSource> <eventSourceARN>".
package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

var peers = make(chan struct{}, 1)

func handle(ctx context.Context, e events.SQSEvent) (any, error) {
	var resp events.SQSEventResponse
	for _, r := range e.Records {
		switch {
		case r.Body == "bad":
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			continue
		case r.Body == "notjson":
			return strings.NewReader("not json"), nil
		case r.Body == "emptyid":
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: ""})
			continue
		case strings.HasPrefix(r.Body, "sleep:"):
			d, _ := time.ParseDuration(strings.TrimPrefix(r.Body, "sleep:"))
			time.Sleep(d)
		case r.Body == "peer":
			select {
			case peers <- struct{}{}: // first: wait for the other to take the token
				deadline := time.After(10 * time.Second)
				for len(peers) > 0 {
					select {
					case <-deadline:
						<-peers
						fmt.Println("alone")
						return resp, nil
					case <-time.After(10 * time.Millisecond):
					}
				}
			default: // second: the first is waiting
				<-peers
			}
			fmt.Println("overlapped")
		case r.Body == "context":
			lc, _ := lambdacontext.FromContext(ctx)
			trace, _ := ctx.Value("x-amzn-trace-id").(string)
			fmt.Println("context", lc.InvokedFunctionArn, r.EventSourceARN, trace)
		}
		fmt.Println("handled", r.Body, r.EventSource, r.EventSourceARN)
	}
	return resp, nil
}

func main() { lambda.Start(handle) }

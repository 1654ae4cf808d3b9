// A Lambda function built on aws-lambda-go, run by the tests against the dispatcher's Runtime API:
// it fails the messages whose body is "bad" (partial batch response) and echoes the others to
// stdout.
package main

import (
	"context"
	"fmt"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
)

func handle(_ context.Context, e events.SQSEvent) (events.SQSEventResponse, error) {
	var resp events.SQSEventResponse
	for _, r := range e.Records {
		if r.Body == "bad" {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			continue
		}
		fmt.Println("handled", r.Body, r.EventSource, r.EventSourceARN)
	}
	return resp, nil
}

func main() { lambda.Start(handle) }

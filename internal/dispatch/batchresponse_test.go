package dispatch

import (
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

// Lambda's documented success and failure conditions of a partial batch response ("Handling errors
// for an SQS event source in Lambda"): an empty or null list, an empty or null response succeed;
// an answer that is not valid JSON, an empty, null or missing itemIdentifier (a bad key name) fail
// the whole batch.
func TestBatchItemFailuresFollowsLambdasRules(t *testing.T) {
	cases := []struct {
		name, body string
		want       []string
		fails      bool
	}{
		{"an empty answer is full success", ``, nil, false},
		{"null is full success", `null`, nil, false},
		{"an object without batchItemFailures is full success", `{"ok":true}`, nil, false},
		{"a null list is full success", `{"batchItemFailures":null}`, nil, false},
		{"an empty list is full success", `{"batchItemFailures":[]}`, nil, false},
		{"named items fail", ` {"batchItemFailures":[{"itemIdentifier":"a"},{"itemIdentifier":"b"}]} `, []string{"a", "b"}, false},
		{"an answer that is not JSON fails the batch", `not json`, nil, true},
		{"truncated JSON fails the batch", `{"batchItemFailures":[`, nil, true},
		{"a JSON value that is not an object fails the batch", `"done"`, nil, true},
		{"a list that is not a list fails the batch", `{"batchItemFailures":"a"}`, nil, true},
		{"an item that is not an object fails the batch", `{"batchItemFailures":["a"]}`, nil, true},
		{"a null item fails the batch", `{"batchItemFailures":[null]}`, nil, true},
		{"an empty itemIdentifier fails the batch", `{"batchItemFailures":[{"itemIdentifier":""}]}`, nil, true},
		{"a null itemIdentifier fails the batch", `{"batchItemFailures":[{"itemIdentifier":null}]}`, nil, true},
		{"a bad key name fails the batch", `{"batchItemFailures":[{"ItemIdentifier":"a"}]}`, nil, true},
		{"a numeric itemIdentifier fails the batch", `{"batchItemFailures":[{"itemIdentifier":7}]}`, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := batchItemFailures([]byte(tc.body))
			if (err != nil) != tc.fails || !slices.Equal(got, tc.want) {
				t.Fatalf("batchItemFailures(%s) = %v, %v; want %v, failure %v", tc.body, got, err, tc.want, tc.fails)
			}
		})
	}
}

func TestFunctionARNIsLambdaShapedInTheQueuesAccount(t *testing.T) {
	cases := []struct{ name, queueARN, region, fn, want string }{
		{"the queue's region and account", "arn:aws:sqs:eu-west-1:123456789012:orders", "us-east-1", "billing", "arn:aws:lambda:eu-west-1:123456789012:function:billing"},
		{"another partition", "arn:aws-cn:sqs:cn-north-1:123456789012:orders", "", "billing", "arn:aws-cn:lambda:cn-north-1:123456789012:function:billing"},
		{"no name: the queue's, without .fifo", "arn:aws:sqs:us-east-1:000000000000:orders.fifo", "", "", "arn:aws:lambda:us-east-1:000000000000:function:orders"},
		{"no queue ARN: the configured region", "", "us-west-2", "billing", "arn:aws:lambda:us-west-2:000000000000:function:billing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := FunctionARN(tc.queueARN, tc.region, tc.fn); got != tc.want {
				t.Fatalf("FunctionARN = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTheTraceIDCarriesEpochSeconds(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	id := traceID(at)
	m := regexp.MustCompile(`^Root=1-([0-9a-f]{8})-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0$`).FindStringSubmatch(id)
	if m == nil {
		t.Fatalf("trace id %q", id)
	}
	if s, _ := strconv.ParseInt(m[1], 16, 64); s != at.Unix() {
		t.Fatalf("time field %s = %d, want %d", m[1], s, at.Unix())
	}
	if traceID(at) == id {
		t.Fatal("two trace ids are the same")
	}
}

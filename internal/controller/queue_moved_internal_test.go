package controller

import (
	"context"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/depth"
)

// missingQueueSQS is an account where the queue does not exist yet: CreateQueue makes it at url.
type missingQueueSQS struct {
	SQSAPI
	url string
}

func (m missingQueueSQS) GetQueueUrl(context.Context, *sqs.GetQueueUrlInput, ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error) {
	return nil, &types.QueueDoesNotExist{Message: aws.String("The specified queue does not exist.")}
}

func (m missingQueueSQS) CreateQueue(context.Context, *sqs.CreateQueueInput, ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error) {
	return &sqs.CreateQueueOutput{QueueUrl: aws.String(m.url)}, nil
}

// A queue created at the URL it had was deleted outside Millrace (Recreating); one created at
// another URL moved with its namespace's account or region (QueueMoved, never Recreating).
func TestRecreatingIsReportedOnlyForTheSameURL(t *testing.T) {
	const (
		before = "https://sqs.us-east-1.amazonaws.com/111111111111/orders"
		after  = "https://sqs.eu-west-1.amazonaws.com/222222222222/orders"
	)
	cases := []struct {
		name, previous, created string
		want, never             string
	}{
		{"deleted outside Millrace", before, before, "Recreating", ReasonQueueMoved},
		{"the namespace moved to another account", before, after, ReasonQueueMoved, "Recreating"},
		{"a first creation", "", after, ReasonCreated, "Recreating"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recorder := events.NewFakeRecorder(10)
			r := &QueueReconciler{Recorder: recorder, Monitor: depth.NewMonitor(nil, depth.Options{})}
			q := &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "orders"}}
			q.Status.QueueURL = tc.previous
			s := &queueScope{queue: q, name: "orders", sqs: missingQueueSQS{url: tc.created}}
			if _, done, err := r.ensureQueue(context.Background(), s); done || err != nil {
				t.Fatalf("ensureQueue: done %v, err %v", done, err)
			}
			if s.url != tc.created {
				t.Fatalf("url %q, want %q", s.url, tc.created)
			}
			close(recorder.Events)
			var got []string
			for e := range recorder.Events {
				got = append(got, e)
			}
			all := strings.Join(got, "\n")
			if !strings.Contains(all, " "+tc.want+" ") {
				t.Errorf("no %s event among %q", tc.want, got)
			}
			if strings.Contains(all, " "+tc.never+" ") {
				t.Errorf("a %s event among %q", tc.never, got)
			}
		})
	}
}

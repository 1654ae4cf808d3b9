package dispatch_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/millrace-io/millrace/internal/dispatch"
)

// callbackServer stands in for the manager's callback API (built in the workflow issue); it
// records the reports it receives and refuses tokens that start with "stale".
type callbackServer struct {
	mu      sync.Mutex
	reports []map[string]any
	paths   []string
}

func (c *callbackServer) start(t *testing.T) string {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		if tok, _ := body["taskToken"].(string); strings.HasPrefix(tok, "stale") {
			http.Error(w, "stale token", http.StatusGone)
			return
		}
		c.mu.Lock()
		c.reports = append(c.reports, body)
		c.paths = append(c.paths, r.URL.Path)
		c.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

func sendTask(t *testing.T, url, body, token string) {
	t.Helper()
	_, err := sqsClient.SendMessage(t.Context(), &sqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: aws.String(body),
		MessageAttributes: map[string]types.MessageAttributeValue{dispatch.TaskTokenAttribute: {DataType: aws.String("String"), StringValue: aws.String(token)}}})
	if err != nil {
		t.Fatal(err)
	}
}

func TestWorkflowTaskResultsAreReportedToTheCallbackAPI(t *testing.T) {
	url, arn := newQueue(t, false, 2)
	cb := &callbackServer{}
	base := cb.start(t)
	h := newHandler(t, func(e events.SQSEvent) (int, any, time.Duration) {
		if e.Records[0].Body == "fail" {
			return 500, map[string]string{"error": "boom"}, 0
		}
		return 200, map[string]any{"total": 42}, 0
	})
	sendTask(t, url, "ok", "token-ok")
	sendTask(t, url, "fail", "token-fail")
	sendTask(t, url, "ok", "stale-token")
	m := dispatch.NewMetrics(prometheus.NewRegistry())
	d := dispatch.New(dispatch.Config{QueueURL: url, QueueARN: arn, Region: "us-east-1", BatchSize: 1, Concurrency: 2, WaitTime: time.Second},
		sqsClient, httpInvoker(h), &dispatch.CallbackClient{BaseURL: base}, m, logr.Discard())
	ctx, cancel := contextWithCancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	eventually(t, 10*time.Second, func() error {
		if testutil.ToFloat64(m.TaskReports.WithLabelValues("refused")) < 1 {
			return fmt.Errorf("the stale token was not refused yet")
		}
		cb.mu.Lock()
		defer cb.mu.Unlock()
		var ok, failed bool
		for i, r := range cb.reports {
			switch {
			case cb.paths[i] == "/v1/tasks/success" && r["taskToken"] == "token-ok":
				out, _ := json.Marshal(r["output"])
				ok = string(out) == `{"total":42}`
			case cb.paths[i] == "/v1/tasks/failure" && r["taskToken"] == "token-fail":
				failed = r["error"] == "Handler.Failed" && strings.Contains(fmt.Sprint(r["cause"]), "500")
			}
		}
		if !ok || !failed {
			return fmt.Errorf("reports %v at %v", cb.reports, cb.paths)
		}
		return nil
	})
}

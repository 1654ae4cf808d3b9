package controller_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/dispatch"
)

// taskWorker runs a real dispatcher on a Consumer's queue, delivering to an HTTP handler in the test
// and reporting task results to the manager's callback API — what a consumer pod does.
func taskWorker(t testing.TB, queueURL string, handle func(body map[string]any) (int, any)) {
	t.Helper()
	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var e events.SQSEvent
		_ = json.Unmarshal(raw, &e)
		var body map[string]any
		_ = json.Unmarshal([]byte(e.Records[0].Body), &body)
		status, out := handle(body)
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(out)
	}))
	t.Cleanup(h.Close)
	d := dispatch.New(dispatch.Config{QueueURL: queueURL, Region: "us-east-1", BatchSize: 1, Concurrency: 16, WaitTime: time.Second},
		sqsClient, &dispatch.HTTPInvoker{URL: h.URL}, &dispatch.CallbackClient{BaseURL: callbackURL}, nil, logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func newRun(ns, name, workflow, input string) *millracev1.WorkflowRun {
	run := &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: millracev1.WorkflowRunSpec{WorkflowRef: millracev1.WorkflowReference{Name: workflow}}}
	if input != "" {
		run.Spec.Input = &apiextensionsv1.JSON{Raw: []byte(input)}
	}
	return run
}

func waitRun(t *testing.T, ns, name string, phase millracev1.RunPhase) *millracev1.WorkflowRun {
	t.Helper()
	var run *millracev1.WorkflowRun
	eventually(t, 30*time.Second, func() error {
		run = &millracev1.WorkflowRun{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, run); err != nil {
			return err
		}
		if run.Status.Phase != phase {
			return fmt.Errorf("phase %q (state %q, error %q %q), want %s", run.Status.Phase, run.Status.CurrentState, run.Status.Error, run.Status.Cause, phase)
		}
		return nil
	})
	return run
}

const orderWorkflow = `{
  "StartAt": "Price",
  "States": {
    "Price": {"Type": "Pass", "Parameters": {"id.$": "$.id", "amount.$": "States.MathAdd($.amount, 5)"}, "Next": "Charge"},
    "Charge": {"Type": "Task", "Resource": "millrace:consumer/payments", "ResultPath": "$.charge",
      "Retry": [{"ErrorEquals": ["Handler.Failed"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 1}],
      "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Refund"}],
      "Next": "Pause"},
    "Pause": {"Type": "Wait", "Seconds": 1, "Next": "Big?"},
    "Big?": {"Type": "Choice", "Choices": [{"Variable": "$.amount", "NumericGreaterThan": 100, "Next": "Review"}], "Default": "Done"},
    "Review": {"Type": "Succeed"},
    "Done": {"Type": "Succeed"},
    "Refund": {"Type": "Fail", "Error": "PaymentFailed", "CausePath": "$.error.Cause"}
  }
}`

func setupPayments(t *testing.T, handle func(map[string]any) (int, any)) string {
	ns := newNamespace(t)
	create(t, newQueue(ns, "payments", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "payments")
	create(t, newConsumer(ns, "payments", "payments", fastScaling(0)))
	create(t, newWorkflow(ns, "order", orderWorkflow))
	taskWorker(t, q.Status.QueueURL, handle)
	return ns
}

func TestAWorkflowRunExecutesTasksThroughAConsumer(t *testing.T) {
	var calls atomic.Int32
	ns := setupPayments(t, func(body map[string]any) (int, any) {
		// The first attempt fails: the run retries after 1s.
		if calls.Add(1) == 1 {
			return 500, map[string]string{"error": "gateway busy"}
		}
		return 200, map[string]any{"charged": body["amount"], "for": body["id"]}
	})
	create(t, newRun(ns, "order-1", "order", `{"id":"o-1","amount":10}`))
	run := waitRun(t, ns, "order-1", millracev1.RunSucceeded)
	var out map[string]any
	_ = json.Unmarshal(run.Status.Output.Raw, &out)
	charge, _ := out["charge"].(map[string]any)
	if charge["charged"] != 15.0 || charge["for"] != "o-1" || out["amount"] != 15.0 {
		t.Fatalf("output %s", run.Status.Output.Raw)
	}
	if calls.Load() != 2 {
		t.Fatalf("handler called %d times, want a failure and a retry", calls.Load())
	}
	var seen []string
	for _, h := range run.Status.History {
		seen = append(seen, h.State+":"+h.Type)
	}
	joined := strings.Join(seen, " ")
	for _, want := range []string{"Charge:Retrying", "Pause:Entered", "Done:SUCCEEDED"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("history lacks %s: %s", want, joined)
		}
	}
	if run.Status.StartTime == nil || run.Status.CompletionTime == nil || run.Status.Definition == nil {
		t.Fatalf("status %+v", run.Status)
	}
}

func TestAFailingTaskIsCaughtAndTheRunFails(t *testing.T) {
	ns := setupPayments(t, func(map[string]any) (int, any) { return 500, map[string]string{"error": "declined"} })
	create(t, newRun(ns, "order-2", "order", `{"id":"o-2","amount":10}`))
	run := waitRun(t, ns, "order-2", millracev1.RunFailed)
	if run.Status.Error != "PaymentFailed" || !strings.Contains(run.Status.Cause, "500") {
		t.Fatalf("error %q cause %q", run.Status.Error, run.Status.Cause)
	}
}

func TestARunCanBeAborted(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "slow", `{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":3600,"End":true}}}`))
	create(t, newRun(ns, "long", "slow", ""))
	waitRun(t, ns, "long", millracev1.RunRunning)
	eventually(t, 10*time.Second, func() error {
		run := &millracev1.WorkflowRun{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "long"}, run); err != nil {
			return err
		}
		run.Spec.Abort = true
		return k8s.Update(context.Background(), run)
	})
	run := waitRun(t, ns, "long", millracev1.RunAborted)
	if run.Status.CompletionTime == nil {
		t.Fatal("no completion time")
	}
}

func TestARunOfAMissingWorkflowWaits(t *testing.T) {
	ns := newNamespace(t)
	create(t, newRun(ns, "early", "later", `{"x":1}`))
	waitRun(t, ns, "early", millracev1.RunPending)
	create(t, newWorkflow(ns, "later", `{"StartAt":"P","States":{"P":{"Type":"Pass","Result":{"ok":true},"ResultPath":"$.r","End":true}}}`))
	run := waitRun(t, ns, "early", millracev1.RunSucceeded)
	if string(run.Status.Output.Raw) != `{"r":{"ok":true},"x":1}` {
		t.Fatalf("output %s", run.Status.Output.Raw)
	}
}

func TestFinishedRunsBeyondTheHistoryLimitAreDeleted(t *testing.T) {
	ns := newNamespace(t)
	wf := newWorkflow(ns, "quick", `{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`)
	limit := int32(2)
	wf.Spec.HistoryLimit = &limit
	create(t, wf)
	for i := 0; i < 4; i++ {
		create(t, newRun(ns, fmt.Sprintf("r%d", i), "quick", ""))
		waitRun(t, ns, fmt.Sprintf("r%d", i), millracev1.RunSucceeded)
	}
	eventually(t, 15*time.Second, func() error {
		var list millracev1.WorkflowRunList
		if err := k8s.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		var names []string
		for _, r := range list.Items {
			if r.DeletionTimestamp.IsZero() {
				names = append(names, r.Name)
			}
		}
		if len(names) != 2 || !strings.Contains(strings.Join(names, ","), "r3") {
			return fmt.Errorf("runs kept: %v", names)
		}
		return nil
	})
}

func TestDispatcherHeartbeatsKeepASlowTaskAlive(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "slow", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "slow")
	create(t, newConsumer(ns, "slow", "slow", fastScaling(0)))
	create(t, newWorkflow(ns, "slow", `{"StartAt":"Work","States":{"Work":{"Type":"Task","Resource":"millrace:consumer/slow","HeartbeatSeconds":2,"TimeoutSeconds":60,"End":true}}}`))
	taskWorker(t, q.Status.QueueURL, func(map[string]any) (int, any) {
		time.Sleep(5 * time.Second) // longer than HeartbeatSeconds: only heartbeats keep it alive
		return 200, map[string]string{"done": "yes"}
	})
	create(t, newRun(ns, "slow-1", "slow", `{}`))
	run := waitRun(t, ns, "slow-1", millracev1.RunSucceeded)
	if string(run.Status.Output.Raw) != `{"done":"yes"}` {
		t.Fatalf("output %s", run.Status.Output.Raw)
	}
}

func TestATaskWithoutHeartbeatsTimesOut(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "inbox", millracev1.QueueSpec{}))
	waitReadyQueue(t, ns, "inbox")
	create(t, newWorkflow(ns, "silent", `{"StartAt":"Ask","States":{"Ask":{"Type":"Task",
		"Resource":"arn:aws:states:::sqs:sendMessage.waitForTaskToken","HeartbeatSeconds":1,
		"Parameters":{"Queue":"inbox","MessageBody":{"token.$":"$$.Task.Token"}},
		"Catch":[{"ErrorEquals":["States.HeartbeatTimeout"],"Next":"Gave up"}],"End":true},
		"Gave up":{"Type":"Fail","Error":"NoAnswer"}}}`))
	create(t, newRun(ns, "silent-1", "silent", `{}`))
	run := waitRun(t, ns, "silent-1", millracev1.RunFailed)
	if run.Status.Error != "NoAnswer" {
		t.Fatalf("error %q %q", run.Status.Error, run.Status.Cause)
	}
}

func TestHTTPTasks(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/missing" {
			http.Error(w, "nope", http.StatusNotFound)
			return
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"method":%q,"got":%s,"auth":%q,"key":%q}`, r.Method, body, r.Header.Get("Authorization"), r.Header.Get("Idempotency-Key"))
	}))
	defer api.Close()
	ns := newNamespace(t)
	grantHTTP(t, ns, millracev1.HTTPDestination{CIDR: "127.0.0.1", Ports: []int32{portOf(t, api.URL)}})
	create(t, newWorkflow(ns, "http", fmt.Sprintf(`{"StartAt":"Call","States":{
		"Call":{"Type":"Task","Resource":"millrace:http","TimeoutSeconds":30,"Parameters":{"Method":"POST","Url":"%[1]s/echo","Headers":{"Authorization":"Bearer x"},"Body":{"n.$":"$.n"}},
			"ResultSelector":{"status.$":"$.StatusCode","body.$":"$.Body"},"Next":"Missing"},
		"Missing":{"Type":"Task","Resource":"millrace:http","Parameters":{"Url":"%[1]s/missing"},"ResultPath":null,
			"Catch":[{"ErrorEquals":["States.Http.StatusCode.404"],"ResultPath":"$.notFound","Next":"Done"}],"End":true},
		"Done":{"Type":"Succeed"}}}`, api.URL)))
	create(t, newRun(ns, "call", "http", `{"n":7}`))
	run := waitRun(t, ns, "call", millracev1.RunSucceeded)
	var out map[string]any
	_ = json.Unmarshal(run.Status.Output.Raw, &out)
	body, _ := out["body"].(map[string]any)
	got, _ := body["got"].(map[string]any)
	key, _ := body["key"].(string)
	if out["status"] != 200.0 || body["method"] != "POST" || got["n"] != 7.0 || body["auth"] != "Bearer x" || out["notFound"] == nil || len(key) != 64 {
		t.Fatalf("output %s", run.Status.Output.Raw)
	}
}

const fanOutWorkflow = `{
  "StartAt": "Both",
  "States": {
    "Both": {"Type": "Parallel", "ResultPath": "$.both", "Next": "Each", "Branches": [
      {"StartAt": "Quote", "States": {"Quote": {"Type": "Task", "Resource": "millrace:consumer/payments",
        "Parameters": {"op": "quote", "id.$": "$.id"}, "End": true}}},
      {"StartAt": "Stamp", "States": {"Stamp": {"Type": "Pass", "Parameters": {"run.$": "$$.Execution.Name"}, "End": true}}}]},
    "Each": {"Type": "Map", "ItemsPath": "$.lines", "MaxConcurrency": 3, "ResultPath": "$.shipped", "End": true,
      "ItemSelector": {"op": "ship", "sku.$": "$$.Map.Item.Value"},
      "ItemProcessor": {"StartAt": "Ship", "States": {"Ship": {"Type": "Task", "Resource": "millrace:consumer/payments",
        "Retry": [{"ErrorEquals": ["States.TaskFailed"], "IntervalSeconds": 1, "MaxAttempts": 1}], "End": true}}}}
  }
}`

// Parallel branches and Map iterations whose tasks a real Consumer's handler executes: the Map
// runs at most MaxConcurrency iterations at once, its progress is summarized in status.fanOuts,
// a failed iteration is retried on its own, and the outputs come back in order.
func TestParallelAndMapTasksRunThroughAConsumer(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "payments", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "payments")
	create(t, newConsumer(ns, "payments", "payments", fastScaling(0)))
	create(t, newWorkflow(ns, "fan", fanOutWorkflow))
	var inFlight, most atomic.Int32
	var failedOnce atomic.Bool
	taskWorker(t, q.Status.QueueURL, func(body map[string]any) (int, any) {
		switch body["op"] {
		case "quote":
			return 200, map[string]any{"price": 42, "id": body["id"]}
		case "ship":
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(300 * time.Millisecond)
			if body["sku"] == "c" && failedOnce.CompareAndSwap(false, true) {
				return 500, map[string]any{"error": "warehouse busy"}
			}
			return 200, map[string]any{"sku": body["sku"]}
		}
		return 400, map[string]any{"error": "unknown op"}
	})
	create(t, newRun(ns, "fan-1", "fan", `{"id":"o-9","lines":["a","b","c","d","e","f","g","h"]}`))
	var seen millracev1.FanOutProgress
	eventually(t, 30*time.Second, func() error {
		run := &millracev1.WorkflowRun{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "fan-1"}, run); err != nil {
			return err
		}
		for _, f := range run.Status.FanOuts {
			if f.Name == "Each" && f.Running > 0 {
				seen = f
				return nil
			}
		}
		return fmt.Errorf("no Map progress yet (state %q, phase %q)", run.Status.CurrentState, run.Status.Phase)
	})
	if seen.Total != 8 || seen.Running > 3 || seen.Succeeded+seen.Running+seen.Pending != 8 {
		t.Errorf("Map progress %+v", seen)
	}
	run := waitRun(t, ns, "fan-1", millracev1.RunSucceeded)
	var out map[string]any
	_ = json.Unmarshal(run.Status.Output.Raw, &out)
	want := `{"both":[{"id":"o-9","price":42},{"run":"fan-1"}],"id":"o-9","lines":["a","b","c","d","e","f","g","h"],` +
		`"shipped":[{"sku":"a"},{"sku":"b"},{"sku":"c"},{"sku":"d"},{"sku":"e"},{"sku":"f"},{"sku":"g"},{"sku":"h"}]}`
	if got, _ := json.Marshal(out); string(got) != want {
		t.Errorf("output\n %s\nwant\n %s", got, want)
	}
	if m := most.Load(); m > 3 || m < 2 {
		t.Errorf("at most %d iterations ran at once; want 2 or 3 (MaxConcurrency 3)", m)
	}
	if !failedOnce.Load() || !strings.Contains(historyText(run), "Each[2].Ship:Retrying") {
		t.Errorf("the failed iteration was not retried: %s", historyText(run))
	}
	if len(run.Status.FanOuts) != 0 || len(run.Status.ActiveStates) != 0 {
		t.Errorf("a finished run lists fan-outs %+v / active states %+v", run.Status.FanOuts, run.Status.ActiveStates)
	}
}

func historyText(run *millracev1.WorkflowRun) string {
	var seen []string
	for _, h := range run.Status.History {
		seen = append(seen, h.State+":"+h.Type)
	}
	return strings.Join(seen, " ")
}

// A 10,000-item Map keeps the WorkflowRun object small (iterations are summarized, finished ones
// leave only their output), and results beyond 256 KiB fail the Map with States.DataLimitExceeded
// instead of growing the object past etcd's limit.
func TestATenThousandItemMapFitsInTheRunObject(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "big", `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.items","End":true,
		"ItemProcessor":{"StartAt":"Double","States":{"Double":{"Type":"Pass","Parameters":{"n.$":"States.MathAdd($.n, $.n)"},"End":true}}}}}}`))
	create(t, newWorkflow(ns, "too-big", `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.items","End":true,
		"ItemProcessor":{"StartAt":"Pad","States":{"Pad":{"Type":"Pass","Parameters":{"pad":"`+strings.Repeat("x", 100)+`","n.$":"$.n"},"End":true}}}}}}`))
	var b strings.Builder
	b.WriteString(`{"items":[`)
	for i := range 10000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"n":%d}`, i)
	}
	b.WriteString(`]}`)
	create(t, newRun(ns, "big-1", "big", b.String()))
	create(t, newRun(ns, "too-big-1", "too-big", b.String()))
	run := waitRun(t, ns, "big-1", millracev1.RunSucceeded)
	var out []map[string]float64
	if err := json.Unmarshal(run.Status.Output.Raw, &out); err != nil || len(out) != 10000 || out[9999]["n"] != 19998 {
		t.Fatalf("output of %d items (%v)", len(out), err)
	}
	size, _ := json.Marshal(run)
	t.Logf("a finished 10,000-item run object: %d bytes (input %d, output %d, engine %d)", len(size), len(run.Spec.Input.Raw), len(run.Status.Output.Raw), len(run.Status.Engine.Raw))
	if len(size) > 1<<20 {
		t.Errorf("the run object is %d bytes", len(size))
	}
	if run.Status.HistoryTotal < 20000 || len(run.Status.History) > 100 {
		t.Errorf("history: %d listed of %d", len(run.Status.History), run.Status.HistoryTotal)
	}
	failed := waitRun(t, ns, "too-big-1", millracev1.RunFailed)
	if failed.Status.Error != "States.DataLimitExceeded" || !strings.Contains(failed.Status.Cause, "262144") {
		t.Errorf("error %q: %q", failed.Status.Error, failed.Status.Cause)
	}
}

const sqsWorkflow = `{
  "StartAt": "Notify",
  "States": {
    "Notify": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage", "ResultPath": "$.sent", "Next": "Approve",
      "Parameters": {"Queue": "outbox", "MessageBody": {"order.$": "$.id"},
        "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "order"}}}},
    "Approve": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken", "ResultPath": "$.answer", "Next": "Elsewhere",
      "Parameters": {"QueueUrl.$": "$.outboxUrl", "MessageBody": {"token.$": "$$.Task.Token", "order.$": "$.id"}}},
    "Elsewhere": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage", "End": true,
      "Parameters": {"QueueUrl.$": "$.foreignUrl", "MessageBody": "should never be sent"},
      "Catch": [{"ErrorEquals": ["Millrace.Forbidden"], "ResultPath": "$.refused", "Next": "Done"}]},
    "Done": {"Type": "Succeed"}
  }
}`

// The Step Functions SQS integrations: sendMessage to a Queue named in the run's namespace (with
// message attributes), waitForTaskToken answered through the callback API by whoever reads the
// message, and a QueueUrl of another namespace refused without sending anything.
func TestSQSIntegrationTasks(t *testing.T) {
	ns, other := newNamespace(t), newNamespace(t)
	create(t, newQueue(ns, "outbox", millracev1.QueueSpec{}))
	create(t, newQueue(other, "foreign", millracev1.QueueSpec{}))
	outbox := waitReadyQueue(t, ns, "outbox").Status.QueueURL
	foreign := waitReadyQueue(t, other, "foreign").Status.QueueURL
	create(t, newWorkflow(ns, "notify", sqsWorkflow))
	create(t, newRun(ns, "n-1", "notify", fmt.Sprintf(`{"id":"o-7","outboxUrl":%q,"foreignUrl":%q}`, outbox, foreign)))

	var got []sqstypes.Message
	eventually(t, 30*time.Second, func() error {
		out, err := sqsClient.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(outbox),
			MaxNumberOfMessages: 10, WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"}})
		if err != nil {
			return err
		}
		got = append(got, out.Messages...)
		if len(got) < 2 {
			return fmt.Errorf("%d messages in the outbox", len(got))
		}
		return nil
	})
	// A Standard queue keeps no order: tell the two messages apart by their bodies.
	first, second := got[0], got[1]
	if strings.Contains(aws.ToString(first.Body), "token") {
		first, second = second, first
	}
	if aws.ToString(first.Body) != `{"order":"o-7"}` || aws.ToString(first.MessageAttributes["kind"].StringValue) != "order" {
		t.Errorf("first message %s %+v", aws.ToString(first.Body), first.MessageAttributes)
	}
	var approval struct{ Token, Order string }
	if err := json.Unmarshal([]byte(aws.ToString(second.Body)), &approval); err != nil || approval.Token == "" || approval.Order != "o-7" {
		t.Fatalf("second message %s (%v)", aws.ToString(second.Body), err)
	}
	// Answered as a worker written for Step Functions answers: AWS's SDK client, its endpoint the
	// callback API.
	stepFunctions := sfn.New(sfn.Options{BaseEndpoint: aws.String(callbackURL), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("any", "thing", "")})
	if _, err := stepFunctions.SendTaskHeartbeat(context.Background(), &sfn.SendTaskHeartbeatInput{TaskToken: aws.String(approval.Token)}); err != nil {
		t.Fatalf("SendTaskHeartbeat: %v", err)
	}
	if _, err := stepFunctions.SendTaskSuccess(context.Background(), &sfn.SendTaskSuccessInput{TaskToken: aws.String(approval.Token),
		Output: aws.String(`{"approved":true}`)}); err != nil {
		t.Fatalf("SendTaskSuccess: %v", err)
	}
	run := waitRun(t, ns, "n-1", millracev1.RunSucceeded)
	var closed *sfntypes.TaskTimedOut
	if _, err := stepFunctions.SendTaskFailure(context.Background(), &sfn.SendTaskFailureInput{TaskToken: aws.String(approval.Token),
		Error: aws.String("TooLate")}); !errors.As(err, &closed) {
		t.Errorf("SendTaskFailure for a task already closed: %v, want TaskTimedOut", err)
	}
	var out struct {
		Sent    struct{ MessageId string }
		Answer  map[string]any
		Refused struct{ Error, Cause string }
	}
	_ = json.Unmarshal(run.Status.Output.Raw, &out)
	if out.Sent.MessageId != aws.ToString(first.MessageId) || out.Answer["approved"] != true ||
		out.Refused.Error != "Millrace.Forbidden" || !strings.Contains(out.Refused.Cause, other) {
		t.Errorf("output %s", run.Status.Output.Raw)
	}
	attrs, err := sqsClient.GetQueueAttributes(context.Background(), &sqs.GetQueueAttributesInput{QueueUrl: aws.String(foreign),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameApproximateNumberOfMessages}})
	if err != nil || attrs.Attributes["ApproximateNumberOfMessages"] != "0" {
		t.Errorf("the other namespace's queue: %v %v", attrs, err)
	}
}

// A loop visits the same Task state again: each visit is a new task (new token), sent and
// reported, even when the earlier visit reported within the dispatched-record delay.
func TestALoopRunsItsTaskOnEveryVisit(t *testing.T) {
	ns := newNamespace(t)
	create(t, newQueue(ns, "payments", millracev1.QueueSpec{}))
	q := waitReadyQueue(t, ns, "payments")
	create(t, newConsumer(ns, "payments", "payments", fastScaling(0)))
	create(t, newWorkflow(ns, "poll", `{"StartAt":"Init","States":{
		"Init":{"Type":"Pass","Result":{"n":0},"ResultPath":"$.i","Next":"Poll"},
		"Poll":{"Type":"Task","Resource":"millrace:consumer/payments","ResultPath":"$.last","Next":"Inc"},
		"Inc":{"Type":"Pass","Parameters":{"n.$":"States.MathAdd($.i.n, 1)"},"ResultPath":"$.i","Next":"More?"},
		"More?":{"Type":"Choice","Choices":[{"Variable":"$.i.n","NumericLessThan":3,"Next":"Poll"}],"Default":"Done"},
		"Done":{"Type":"Succeed"}}}`))
	var calls atomic.Int32
	taskWorker(t, q.Status.QueueURL, func(map[string]any) (int, any) { return 200, map[string]any{"call": calls.Add(1)} })
	create(t, newRun(ns, "loop-1", "poll", `{}`))
	run := waitRun(t, ns, "loop-1", millracev1.RunSucceeded)
	if calls.Load() != 3 || !strings.Contains(string(run.Status.Output.Raw), `"n":3`) {
		t.Errorf("%d task calls, output %s; want 3 visits of Poll", calls.Load(), run.Status.Output.Raw)
	}
}

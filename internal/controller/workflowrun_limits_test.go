package controller_test

import (
	"context"
	"encoding/json"
	"fmt"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/controller"
	"github.com/millrace-io/millrace/internal/tasktoken"
)

// Attacks on the shared manager through a run's definition or input (issue 12, point 6): each run
// must end, with an error that says why, rather than wedge or crash the manager.

// The attack: a loop of Pass and Choice states stayed Running forever: the reconcile that ran out
// of its slices of work was never requeued (nor was start()). The Workflow is ready before the
// run starts, so that no event of the Workflow's wakes the run by chance.
func TestAPassChoiceLoopLongerThanOneReconcileFinishes(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "loop", `{"StartAt":"Count","States":{
		"Count":{"Type":"Pass","Parameters":{"i.$":"States.MathAdd($.i, 1)"},"Next":"Done?"},
		"Done?":{"Type":"Choice","Choices":[{"Variable":"$.i","NumericGreaterThanEquals":15000,"Next":"Done"}],"Default":"Count"},
		"Done":{"Type":"Succeed"}}}`))
	waitWorkflow(t, ns, "loop", func(wf *millracev1.Workflow) error {
		if !meta.IsStatusConditionTrue(wf.Status.Conditions, millracev1.ConditionReady) {
			return fmt.Errorf("not ready: %+v", wf.Status.Conditions)
		}
		return nil
	})
	create(t, newRun(ns, "loop-1", "loop", `{"i":0}`))
	run := waitRun(t, ns, "loop-1", millracev1.RunSucceeded)
	if string(run.Status.Output.Raw) != `{"i":15000}` || run.Status.HistoryTotal < 60000 || len(run.Status.History) > 100 {
		t.Fatalf("output %s, history %d listed of %d", run.Status.Output.Raw, len(run.Status.History), run.Status.HistoryTotal)
	}
}

// The attack: a Map of Maps of Pass states (1,000 × 1,000) ran inside one reconcile: 4.2 s, 3.7 GiB
// allocated, 298 MiB live against the chart's 256 MiB limit, and a manager killed for memory
// restarted into the same run. Now each reconcile does a budget's worth of work, and the run fails
// once its Map states would start more than 100,000 iterations.
func TestAMapOfMapsOfPassStatesFailsWithinTheItemLimit(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "maps", `{"StartAt":"Outer","States":{"Outer":{"Type":"Map","ItemsPath":"$.rows","End":true,
		"ItemSelector":{"cols.$":"$.cols"},
		"ItemProcessor":{"StartAt":"Inner","States":{"Inner":{"Type":"Map","ItemsPath":"$.cols","End":true,
			"ResultSelector":{"n.$":"States.ArrayLength($)"},
			"ItemProcessor":{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}}}}}}}`))
	list := func(n int) string { return strings.TrimSuffix(strings.Repeat("0,", n), ",") }
	create(t, newRun(ns, "maps-1", "maps", fmt.Sprintf(`{"rows":[%s],"cols":[%s]}`, list(400), list(400))))
	run := waitRun(t, ns, "maps-1", millracev1.RunFailed)
	if run.Status.Error != "States.DataLimitExceeded" || !strings.Contains(run.Status.Cause, "100000") {
		t.Fatalf("error %q %q", run.Status.Error, run.Status.Cause)
	}
}

// The attack: a run's output too large for its object could never be written: the run retried
// forever with an empty phase. Now the output counts in the run's size, and a state's output is
// bounded by the payload limit: such runs fail with States.DataLimitExceeded.
func TestARunWhoseOutputCannotBeWrittenFailsWithDataLimitExceeded(t *testing.T) {
	ns := newNamespace(t)
	copies := map[string]any{}
	for i := range 8 {
		copies[fmt.Sprintf("c%d.$", i)] = "$"
	}
	params, _ := json.Marshal(copies)
	create(t, newWorkflow(ns, "copies", `{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":`+string(params)+`,"End":true}}}`))
	// The definition (pinned in the run's status), the input and an output equal to the input
	// together exceed the run object's budget of 1.25 MiB, but not without the output.
	create(t, newWorkflow(ns, "echo", `{"Comment":"`+strings.Repeat("c", 900<<10)+`","StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`))
	input := fmt.Sprintf(`{"s":%q}`, strings.Repeat("x", 200<<10))
	create(t, newRun(ns, "copies-1", "copies", input))
	create(t, newRun(ns, "echo-1", "echo", input))
	for _, name := range []string{"copies-1", "echo-1"} {
		run := waitRun(t, ns, name, millracev1.RunFailed)
		if run.Status.Error != "States.DataLimitExceeded" || run.Status.Output != nil {
			t.Errorf("%s: error %q %q", name, run.Status.Error, run.Status.Cause)
		}
	}
}

// A spec.input beyond Step Functions' 256 KiB payload limit fails the run before any state runs.
// (The API server cannot check it at admission: CEL has no way to measure a schemaless
// document's JSON; the gateway refuses such inputs when it creates runs.)
func TestASpecInputOverThePayloadLimitFailsTheRunAtOnce(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "echo", `{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`))
	big := newRun(ns, "big-input", "echo", fmt.Sprintf(`{"s":%q}`, strings.Repeat("x", 300<<10)))
	// The admission webhook refuses it, naming the field.
	err := k8s.Create(context.Background(), big.DeepCopy())
	if err == nil || !strings.Contains(err.Error(), "spec.input") || !strings.Contains(err.Error(), "262144") {
		t.Fatalf("the webhook admitted a run input over 256 KiB: %v", err)
	}
	// A run admitted while the webhook was off fails when it starts.
	withoutWebhooks(t, func() { create(t, big) })
	run := waitRun(t, ns, "big-input", millracev1.RunFailed)
	if run.Status.Error != "States.DataLimitExceeded" || !strings.Contains(run.Status.Cause, "262144") {
		t.Fatalf("error %q %q", run.Status.Error, run.Status.Cause)
	}
}

// withoutWebhooks runs f with the suite's webhook configurations removed, then puts them back.
func withoutWebhooks(t *testing.T, f func()) {
	t.Helper()
	ctx := context.Background()
	var list admissionregistrationv1.ValidatingWebhookConfigurationList
	if err := k8s.List(ctx, &list); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if err := k8s.Delete(ctx, &list.Items[i]); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, cfg := range list.Items {
			cfg.ResourceVersion = ""
			if err := k8s.Create(ctx, &cfg); err != nil {
				t.Fatal(err)
			}
		}
	}()
	// The API server applies a configuration change within a moment; wait until a run that the
	// webhook would refuse is admitted (f retries nothing itself).
	probe := newRun(newNamespace(t), "probe", "none", fmt.Sprintf(`{"s":%q}`, strings.Repeat("x", 300<<10)))
	eventually(t, 10*time.Second, func() error { return k8s.Create(ctx, probe.DeepCopy()) })
	f()
}

// The attack: 16 tasks heartbeating every second made 175 status writes of one run in 4 s. Now
// heartbeats are kept in memory and written about twice per HeartbeatSeconds, all tasks at once.
func TestManyTasksHeartbeatingOftenCauseFewStatusWrites(t *testing.T) {
	const tasks = 16
	ns := newNamespace(t)
	create(t, newQueue(ns, "inbox", millracev1.QueueSpec{}))
	inbox := waitReadyQueue(t, ns, "inbox").Status.QueueURL
	create(t, newWorkflow(ns, "beats", `{"StartAt":"M","States":{"M":{"Type":"Map","End":true,
		"ItemProcessor":{"StartAt":"Ask","States":{"Ask":{"Type":"Task","Resource":"arn:aws:states:::sqs:sendMessage.waitForTaskToken",
			"HeartbeatSeconds":4,"Parameters":{"Queue":"inbox","MessageBody":{"token.$":"$$.Task.Token"}},"End":true}}}}}}`))
	create(t, newRun(ns, "beats-1", "beats", `[`+strings.TrimSuffix(strings.Repeat("0,", tasks), ",")+`]`))
	tokens := receiveTokens(t, inbox, tasks)
	eventually(t, 30*time.Second, func() error { // wait for the dispatch records: no write pending
		run := &millracev1.WorkflowRun{}
		if err := k8s.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "beats-1"}, run); err != nil {
			return err
		}
		if len(run.Status.Dispatched) != tasks {
			return fmt.Errorf("%d tasks recorded as dispatched", len(run.Status.Dispatched))
		}
		return nil
	})
	before := runs.StatusWrites()
	for round := 0; round < 12; round++ { // every 250 ms for 3 s
		callAll(t, tokens, "heartbeat", "")
		time.Sleep(250 * time.Millisecond)
	}
	writes := runs.StatusWrites() - before
	t.Logf("%d heartbeats made %d status writes", 12*tasks, writes)
	if writes > 4 {
		t.Errorf("%d heartbeats made %d status writes", 12*tasks, writes)
	}
	for _, tok := range tokens { // one at a time: results of one run conflict when sent at once
		callAll(t, []string{tok}, "success", `,"output":{"ok":true}`)
	}
	waitRun(t, ns, "beats-1", millracev1.RunSucceeded)
}

// receiveTokens reads n task tokens from the messages of a queue.
func receiveTokens(t *testing.T, url string, n int) []string {
	t.Helper()
	var tokens []string
	eventually(t, 30*time.Second, func() error {
		out, err := sqsClient.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: aws.String(url),
			MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			return err
		}
		for _, m := range out.Messages {
			var body struct{ Token string }
			_ = json.Unmarshal([]byte(aws.ToString(m.Body)), &body)
			tokens = append(tokens, body.Token)
		}
		if len(tokens) < n {
			return fmt.Errorf("%d tokens", len(tokens))
		}
		return nil
	})
	return tokens
}

// callAll calls the callback API for every token at once, as many task workers would.
func callAll(t *testing.T, tokens []string, kind, extra string) {
	t.Helper()
	var wg sync.WaitGroup
	for _, tok := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Post(callbackURL+"/v1/tasks/"+kind, "application/json", strings.NewReader(fmt.Sprintf(`{"taskToken":%q%s}`, tok, extra)))
			if err != nil {
				t.Errorf("%s: %v", kind, err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: %s", kind, resp.Status)
			}
		}()
	}
	wg.Wait()
}

// A run failing with a Cause over 32 KiB (a Fail state's CausePath, or a handler's failure report:
// up to 256 KiB each) rendered a Stalled condition quoting it whole; the API server refuses
// condition messages over 32,768 characters, so the run's end was never written and its reconcile
// failed forever. The condition now quotes it clipped; status.cause keeps it whole.
func TestARunFailingWithALongCauseIsRecordedAsFailed(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "boom", `{"StartAt":"Boom","States":{"Boom":{"Type":"Fail","Error":"Custom.Boom","CausePath":"$.why"}}}`))
	why := strings.Repeat("x", 40<<10)
	create(t, newRun(ns, "r1", "boom", `{"why":"`+why+`"}`))
	run := waitRun(t, ns, "r1", millracev1.RunFailed)
	stalled := meta.FindStatusCondition(run.Status.Conditions, millracev1.ConditionStalled)
	if run.Status.Error != "Custom.Boom" || run.Status.Cause != why || stalled == nil || len(stalled.Message) > 4096 {
		t.Fatalf("error %q, cause of %d bytes, Stalled %+v", run.Status.Error, len(run.Status.Cause), stalled)
	}
}

// countingClient counts the reads of a run that reach the API server.
type countingClient struct {
	client.Client
	gets atomic.Int64
}

func (c *countingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets.Add(1)
	return c.Client.Get(ctx, key, obj, opts...)
}

// A tenant keeps a task token of a run of its own (it is in every task message) and replays it
// after the run finished, or after deleting the run. Each replay is refused for good (410, 404),
// yet each cost the manager a read of the whole run from the API server, for as long as the token
// verifies (a year), with nothing to bound the rate. A refusal the API server gave is remembered.
func TestReplayedTokensOfFinishedOrDeletedRunsCostOneRead(t *testing.T) {
	ns := newNamespace(t)
	create(t, newWorkflow(ns, "quick", `{"StartAt":"A","States":{"A":{"Type":"Succeed"}}}`))
	create(t, newRun(ns, "done", "quick", `{}`))
	run := waitRun(t, ns, "done", millracev1.RunSucceeded)
	signer, _ := tasktoken.NewSigner([]byte(strings.Repeat("r", 32)))
	reads := &countingClient{Client: k8s}
	r := &controller.WorkflowRunReconciler{Client: reads, APIReader: reads, Signer: signer}
	api := callback.Handler(signer, r)
	for name, claims := range map[string]tasktoken.Claims{
		"a finished run": {Namespace: ns, Run: "done", RunUID: string(run.UID), State: "A"},
		"a deleted run":  {Namespace: ns, Run: "deleted", RunUID: "0000", State: "A"},
	} {
		token, _ := signer.Issue(claims)
		before := reads.gets.Load()
		for range 1000 {
			w := httptest.NewRecorder()
			api.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/tasks/heartbeat", strings.NewReader(`{"taskToken":"`+token+`"}`)))
			if w.Code != http.StatusGone && w.Code != http.StatusNotFound {
				t.Fatalf("%s: answered %d %s", name, w.Code, w.Body)
			}
		}
		if n := reads.gets.Load() - before; n > 2 {
			t.Errorf("%s: 1,000 replays of one refused token made %d reads of the run", name, n)
		}
	}
}

package controller

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
)

func TestRunsToDelete(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	run := func(name string, phase millracev1.RunPhase, done time.Duration) millracev1.WorkflowRun {
		r := millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: metav1.NewTime(t0)}}
		r.Status.Phase = phase
		if phase != millracev1.RunRunning && phase != millracev1.RunPending {
			c := metav1.NewTime(t0.Add(done))
			r.Status.CompletionTime = &c
		}
		return r
	}
	deleting := run("deleting", millracev1.RunSucceeded, 0)
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	redriving := run("redriving", millracev1.RunFailed, 0)
	redriving.Spec.Redrive = 1
	child := run("child", millracev1.RunSucceeded, 0)
	child.Spec.ParentRef = &millracev1.ParentRunReference{Name: "parent"}
	cases := []struct {
		name  string
		limit int
		runs  []millracev1.WorkflowRun
		want  []string
	}{
		{"runs within the limit are all kept", 3,
			[]millracev1.WorkflowRun{run("a", millracev1.RunSucceeded, 1), run("b", millracev1.RunFailed, 2)}, nil},
		{"the oldest finished runs beyond the limit are deleted, whatever their phase", 2,
			[]millracev1.WorkflowRun{run("new", millracev1.RunSucceeded, 9), run("old", millracev1.RunFailed, 1), run("mid", millracev1.RunAborted, 5), run("older", millracev1.RunTimedOut, 0)},
			[]string{"older", "old"}},
		{"running and pending runs are neither deleted nor counted", 1,
			[]millracev1.WorkflowRun{run("running", millracev1.RunRunning, 0), run("pending", millracev1.RunPending, 0), run("a", millracev1.RunSucceeded, 1), run("b", millracev1.RunSucceeded, 2)},
			[]string{"a"}},
		{"a finished run asked to be redriven is neither deleted nor counted", 1,
			[]millracev1.WorkflowRun{redriving, run("a", millracev1.RunSucceeded, 1), run("b", millracev1.RunSucceeded, 2)},
			[]string{"a"}},
		{"child runs of a DISTRIBUTED Map are left to their parent", 0,
			[]millracev1.WorkflowRun{child}, nil},
		{"runs already being deleted do not count", 1,
			[]millracev1.WorkflowRun{deleting, run("a", millracev1.RunSucceeded, 1)}, nil},
		{"runs that finished in the same second go by name", 1,
			[]millracev1.WorkflowRun{run("b", millracev1.RunSucceeded, 1), run("a", millracev1.RunSucceeded, 1), run("c", millracev1.RunSucceeded, 1)},
			[]string{"a", "b"}},
		{"a limit of zero deletes every finished run", 0,
			[]millracev1.WorkflowRun{run("a", millracev1.RunSucceeded, 1), run("running", millracev1.RunRunning, 0)}, []string{"a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, r := range runsToDelete(tc.limit, tc.runs) {
				got = append(got, r.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("deleted %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseWorkflowReadsEveryTaskResource(t *testing.T) {
	cases := []struct {
		name     string
		def      string
		wantErrs []string // path: part of the message
	}{
		{"every supported resource is accepted", `{"StartAt":"A","States":{
			"A":{"Type":"Task","Resource":"millrace:consumer/payments","Next":"B"},
			"B":{"Type":"Task","Resource":"millrace:http","Next":"C"},
			"C":{"Type":"Task","Resource":"arn:aws:states:::sqs:sendMessage","Next":"D"},
			"D":{"Type":"Task","Resource":"arn:aws:states:::sqs:sendMessage.waitForTaskToken","End":true}}}`, nil},
		{"a Lambda resource is refused at its field", `{"StartAt":"A","States":{
			"A":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:f","End":true}}}`,
			[]string{`$.States.A.Resource: resource "arn:aws:lambda:us-east-1:123456789012:function:f" is not supported`}},
		{"a consumer resource without a name is refused", `{"StartAt":"A","States":{
			"A":{"Type":"Task","Resource":"millrace:consumer/","End":true}}}`,
			[]string{"$.States.A.Resource: resource \"millrace:consumer/\" does not name a Consumer"}},
		{"resources in Parallel branches and Map item processors are read with their paths", `{"StartAt":"P","States":{
			"P":{"Type":"Parallel","Next":"M","Branches":[{"StartAt":"X","States":{"X":{"Type":"Task","Resource":"millrace:http","End":true}}},
				{"StartAt":"Y","States":{"Y":{"Type":"Task","Resource":"millrace:lambda","End":true}}}]},
			"M":{"Type":"Map","End":true,"ItemProcessor":{"StartAt":"Z","States":{"Z":{"Type":"Task","Resource":"arn:aws:states:::sqs:receiveMessage","End":true}}}}}}`,
			[]string{"$.States.M.ItemProcessor.States.Z.Resource: resource \"arn:aws:states:::sqs:receiveMessage\" is not supported",
				"$.States.P.Branches[1].States.Y.Resource: resource \"millrace:lambda\" is not supported"}},
		{"a definition the States Language refuses reports those errors first", `{"StartAt":"A","States":{}}`, []string{"$.States"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, errs := parseWorkflow([]byte(tc.def))
			if len(errs) != len(tc.wantErrs) {
				t.Fatalf("errors %v, want %d", errs, len(tc.wantErrs))
			}
			for i, e := range errs {
				if !strings.Contains(e.Error(), tc.wantErrs[i]) {
					t.Errorf("error %d is %q, want %q", i, e.Error(), tc.wantErrs[i])
				}
			}
			if len(errs) == 0 {
				for _, st := range m.States {
					if st.Type == "Task" && m.resource(st).backend == 0 {
						t.Errorf("state %s has no parsed resource", st.Name)
					}
				}
			}
		})
	}
}

func TestLocalAndSentResources(t *testing.T) {
	cases := []struct {
		resource string
		local    bool
		kind     string
	}{
		{"millrace:consumer/work", false, "consumer"},
		{"arn:aws:states:::sqs:sendMessage.waitForTaskToken", false, "sqs"},
		{"arn:aws:states:::sqs:sendMessage", true, "sqs"},
		{"millrace:http", true, "http"},
	}
	for _, tc := range cases {
		res, err := parseResource(tc.resource)
		if err != nil || res.local() != tc.local || res.kind() != tc.kind {
			t.Errorf("%s: local %v kind %s (%v), want %v %s", tc.resource, res.local(), res.kind(), err, tc.local, tc.kind)
		}
	}
}

func TestRunConditionsFollowThePhase(t *testing.T) {
	type want struct{ ready, reconciling, stalled metav1.ConditionStatus }
	cases := []struct {
		name  string
		phase millracev1.RunPhase
		p     pending
		want  want
	}{
		{"a running run is reconciling", millracev1.RunRunning, pending{}, want{ready: metav1.ConditionFalse, reconciling: metav1.ConditionTrue}},
		{"a succeeded run is ready", millracev1.RunSucceeded, pending{}, want{ready: metav1.ConditionTrue}},
		{"a failed run is stalled", millracev1.RunFailed, pending{}, want{ready: metav1.ConditionFalse, stalled: metav1.ConditionTrue}},
		{"a timed out run is stalled", millracev1.RunTimedOut, pending{}, want{ready: metav1.ConditionFalse, stalled: metav1.ConditionTrue}},
		{"an aborted run is stalled", millracev1.RunAborted, pending{}, want{ready: metav1.ConditionFalse, stalled: metav1.ConditionTrue}},
		{"a run waiting for its Workflow is reconciling", millracev1.RunPending, pending{reason: ReasonWaitingWF}, want{ready: metav1.ConditionFalse, reconciling: metav1.ConditionTrue}},
		{"a run of an invalid Workflow is stalled", millracev1.RunPending, pending{stalled: true, reason: ReasonInvalidDefinition}, want{ready: metav1.ConditionFalse, stalled: metav1.ConditionTrue}},
	}
	status := func(c []metav1.Condition, kind string) metav1.ConditionStatus {
		if cond := meta.FindStatusCondition(c, kind); cond != nil {
			return cond.Status
		}
		return ""
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := &millracev1.WorkflowRun{}
			// Start from the opposite: the conditions must not depend on what was there.
			run.Status.Phase = millracev1.RunSucceeded
			setRunConditions(run, pending{})
			run.Status.Phase = tc.phase
			setRunConditions(run, tc.p)
			c := run.Status.Conditions
			got := want{status(c, millracev1.ConditionReady), status(c, millracev1.ConditionReconciling), status(c, millracev1.ConditionStalled)}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestDeadlinesListWhatTheRunWaitsFor(t *testing.T) {
	m, errs := parseWorkflow([]byte(`{"StartAt":"Both","TimeoutSeconds":600,"States":{"Both":{"Type":"Parallel","End":true,"Branches":[
		{"StartAt":"Pause","States":{"Pause":{"Type":"Wait","Seconds":30,"End":true}}},
		{"StartAt":"Call","States":{"Call":{"Type":"Task","Resource":"millrace:http","TimeoutSeconds":60,"HeartbeatSeconds":10,"End":true}}},
		{"StartAt":"Free","States":{"Free":{"Type":"Task","Resource":"millrace:http","End":true}}}]}}}`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	engine, _, _ := m.Step(asl.Run{}, asl.Event{Kind: asl.EventStart, At: t0, Input: map[string]any{}}, asl.Options{})
	run := &millracev1.WorkflowRun{}
	start := metav1.NewTime(t0)
	run.Status.StartTime = &start
	r := &WorkflowRunReconciler{}
	got := map[string]time.Time{}
	for _, d := range r.deadlines(run, m, engine) {
		got[string(d.event.Kind)+" "+d.event.Error] = d.at
	}
	want := map[string]time.Time{
		"ExecutionTimedOut ":                    t0.Add(600 * time.Second),
		"TimerFired ":                           t0.Add(30 * time.Second),
		"TaskFailed " + asl.ErrTimeout:          t0.Add(60 * time.Second),
		"TaskFailed " + asl.ErrHeartbeatTimeout: t0.Add(15 * time.Second), // half a HeartbeatSeconds late at most (workflowrun_heartbeats.go)
	}
	if len(got) != len(want) {
		t.Fatalf("deadlines %v, want %v", got, want)
	}
	for k, at := range want {
		if !got[k].Equal(at) {
			t.Errorf("%s at %v, want %v", k, got[k].Sub(t0), at.Sub(t0))
		}
	}
	ended := engine
	ended.Status = asl.Succeeded
	if d := r.deadlines(run, m, ended); len(d) != 0 {
		t.Errorf("a finished run has deadlines %v", d)
	}
}

func TestHTTPTaskRequestsCarryTheTasksRequestID(t *testing.T) {
	cases := []struct {
		name    string
		headers map[string]any
		want    string
	}{
		{"the request id is the Idempotency-Key", nil, "id-1"},
		{"an Idempotency-Key the Parameters give wins", map[string]any{"Idempotency-Key": "mine"}, "mine"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			params := map[string]any{"Url": "https://api.example.com/x"}
			if tc.headers != nil {
				params["Headers"] = tc.headers
			}
			req, problem := httpTaskRequest(params, "id-1")
			if problem != nil {
				t.Fatal(problem)
			}
			if got := req.Header.Get(IdempotencyKeyHeader); got != tc.want {
				t.Fatalf("Idempotency-Key %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRequestIDsDifferByRunAndTaskAttempt(t *testing.T) {
	a := &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{UID: "uid-a"}}
	b := &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{UID: "uid-b"}}
	ids := map[string]bool{}
	for _, id := range []string{requestID(a, asl.TaskKey("Call", nil, 1, "3")), requestID(a, asl.TaskKey("Call", nil, 2, "3")),
		requestID(a, asl.TaskKey("Call", nil, 1, "7")), requestID(b, asl.TaskKey("Call", nil, 1, "3"))} {
		ids[id] = true
	}
	if len(ids) != 4 {
		t.Fatal("two task attempts share a request id")
	}
	if requestID(a, asl.TaskKey("Call", nil, 1, "3")) != requestID(a.DeepCopy(), asl.TaskKey("Call", nil, 1, "3")) {
		t.Fatal("a request id changed between two computations")
	}
}

func TestAbortStopsARunOncePerRedrive(t *testing.T) {
	at := func(n int32) *int32 { return &n }
	cases := []struct {
		name    string
		abort   bool
		abortAt *int32
		redrive int
		want    bool
	}{
		{"a run without spec.abort is not aborted", false, nil, 0, false},
		{"spec.abort aborts a run never aborted", true, nil, 0, true},
		{"spec.abort aborts a redriven run it never aborted", true, nil, 2, true},
		{"a run redriven after its abort is not aborted again by the same spec.abort", true, at(0), 1, false},
		{"a run aborted after its redrive stays aborted", true, at(1), 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := &millracev1.WorkflowRun{Spec: millracev1.WorkflowRunSpec{Abort: tc.abort}}
			run.Status.AbortedAtRedrive = tc.abortAt
			engine := asl.Run{Status: asl.Running, Execution: asl.Execution{RedriveCount: tc.redrive}}
			if got := abortAsked(run, engine); got != tc.want {
				t.Fatalf("abortAsked = %v, want %v", got, tc.want)
			}
		})
	}
}

// The status of a redriven run is rendered from its engine alone: running again, without the
// error, cause and completion time of its end, with its redrive count and time.
func TestARedrivenRunIsRenderedRunning(t *testing.T) {
	m, errs := parseWorkflow([]byte(`{"StartAt":"Call","States":{"Call":{"Type":"Task","Resource":"millrace:http","End":true}}}`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	engine, _, _ := m.Step(asl.Run{}, asl.Event{Kind: asl.EventStart, At: t0, Input: map[string]any{"x": 1.0}}, asl.Options{})
	engine, _, _ = m.Step(engine, asl.Event{Kind: asl.EventTaskFailed, At: t0.Add(time.Second), Attempt: 1, Error: "Boom", Cause: "it broke"}, asl.Options{})
	run := &millracev1.WorkflowRun{}
	if _, err := renderStatus(run, m, engine, nil, 0, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	var stored asl.Run
	if err := json.Unmarshal(run.Status.Engine.Raw, &stored); err != nil {
		t.Fatal(err)
	}
	if run.Status.Phase != millracev1.RunFailed || run.Status.CompletionTime == nil || stored.Execution.Input == nil || stored.Input == nil {
		t.Fatalf("a failed run must keep what a redrive needs: phase %s, engine %s", run.Status.Phase, run.Status.Engine.Raw)
	}
	at := t0.Add(time.Hour)
	next, _, hist, err := m.Redrive(stored, at, asl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := renderStatus(run, m, next, hist, 0, at); err != nil {
		t.Fatal(err)
	}
	s := run.Status
	if s.Phase != millracev1.RunRunning || s.Error != "" || s.Cause != "" || s.CompletionTime != nil ||
		s.RedriveCount != 1 || s.RedriveDate == nil || !s.RedriveDate.Time.Equal(at) || len(s.ActiveStates) != 1 {
		t.Fatalf("redriven status %+v", s)
	}
	if !meta.IsStatusConditionTrue(s.Conditions, millracev1.ConditionReconciling) {
		t.Errorf("a redriven run is not reconciling: %+v", s.Conditions)
	}
}

// Child run names are the same for the same iteration of the same start of a Map state (so a
// create after a restart finds the child already there), differ otherwise, and stay valid names
// whatever the parent's.
func TestChildRunNames(t *testing.T) {
	m, errs := parseWorkflow([]byte(`{"StartAt":"Each","States":{"Each":{"Type":"Map","End":true,
		"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"EXPRESS"},"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}}}}`))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	engine, _, _ := m.Step(asl.Run{}, asl.Event{Kind: asl.EventStart, At: t0, Input: []any{1.0, 2.0}}, asl.Options{ChildRuns: true})
	children := m.ChildRuns(engine)
	if len(children) != 2 {
		t.Fatalf("child runs %+v", children)
	}
	parent := &millracev1.WorkflowRun{ObjectMeta: metav1.ObjectMeta{Name: strings.Repeat("a", 252) + ".", UID: "u-1"}}
	a, b := childRunName(parent, children[0]), childRunName(parent, children[1])
	if a == b || a != childRunName(parent, m.ChildRuns(engine)[0]) {
		t.Errorf("names %s %s", a, b)
	}
	if len(a) > 253 || strings.Contains(a, ".-") || !strings.HasSuffix(a, "-0") {
		t.Errorf("name %q (%d characters)", a, len(a))
	}
	other := parent.DeepCopy()
	other.UID = "u-2"
	if childRunName(other, children[0]) == a {
		t.Error("another parent of the same name has the same child names")
	}
}

package asl

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mapDef(fields, processor string) string {
	if processor == "" {
		processor = `{"StartAt":"Work","States":{"Work":{"Type":"Task","Resource":"test:work","End":true}}}`
	}
	return `{"StartAt":"M","States":{"M":{"Type":"Map",` + fields + `"ItemProcessor":` + processor + `,"End":true}}}`
}

func TestNewerTaskAndMapFieldsAreValidated(t *testing.T) {
	task := func(extra string) string {
		return `{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"test:r",` + extra + `"End":true}}}`
	}
	cases := []struct{ name, def, path, msg string }{
		{"TimeoutSeconds and TimeoutSecondsPath are exclusive", task(`"TimeoutSeconds":5,"TimeoutSecondsPath":"$.t",`), "$.States.A", "exclusive"},
		{"HeartbeatSeconds and HeartbeatSecondsPath are exclusive", task(`"HeartbeatSeconds":5,"HeartbeatSecondsPath":"$.t",`), "$.States.A", "exclusive"},
		{"TimeoutSecondsPath must be a path", task(`"TimeoutSecondsPath":5,`), "$.States.A.TimeoutSecondsPath", "path string"},
		{"HeartbeatSecondsPath must be a valid path", task(`"HeartbeatSecondsPath":"t",`), "$.States.A.HeartbeatSecondsPath", "must start with $"},
		{"Credentials must be an object", task(`"Credentials":"arn:aws:iam::1:role/r",`), "$.States.A.Credentials", "JSON object"},
		{"Credentials need RoleArn", task(`"Credentials":{},`), "$.States.A.Credentials", "needs RoleArn"},
		{"Credentials take RoleArn only", task(`"Credentials":{"RoleArn":"r","ExternalId":"x"},`), "$.States.A.Credentials.ExternalId", "unknown field"},
		{"a constant RoleArn is a string", task(`"Credentials":{"RoleArn":1},`), "$.States.A.Credentials.RoleArn", "must be a string"},
		{"RoleArn.$ is a valid path", task(`"Credentials":{"RoleArn.$":"role"},`), "$.States.A.Credentials.RoleArn.$", "must start with $"},
		{"RoleArn and RoleArn.$ collide", task(`"Credentials":{"RoleArn":"r","RoleArn.$":"$.r"},`), "$.States.A.Credentials.RoleArn.$", "same name"},
		{"Credentials are for Tasks", `{"StartAt":"A","States":{"A":{"Type":"Pass","Credentials":{"RoleArn":"r"},"End":true}}}`, "$.States.A.Credentials", "not allowed in a Pass state"},

		{"MaxConcurrency and MaxConcurrencyPath are exclusive", mapDef(`"MaxConcurrency":2,"MaxConcurrencyPath":"$.c",`, ""), "$.States.M", "exclusive"},
		{"ItemReader is refused", mapDef(`"ItemReader":{"Resource":"arn:aws:states:::s3:getObject"},`, ""), "$.States.M.ItemReader", "not supported yet"},
		{"ResultWriter is refused", mapDef(`"ResultWriter":{"Resource":"arn:aws:states:::s3:putObject"},`, ""), "$.States.M.ResultWriter", "not supported yet"},
		{"ItemBatcher must be an object", mapDef(`"ItemBatcher":5,`, ""), "$.States.M.ItemBatcher", "JSON object"},
		{"ItemBatcher needs a maximum", mapDef(`"ItemBatcher":{"BatchInput":{"a":1}},`, ""), "$.States.M.ItemBatcher", "needs MaxItemsPerBatch"},
		{"MaxItemsPerBatch is positive", mapDef(`"ItemBatcher":{"MaxItemsPerBatch":0},`, ""), "$.States.M.ItemBatcher.MaxItemsPerBatch", "integer from 1"},
		{"MaxInputBytesPerBatch is at most 256 KiB", mapDef(`"ItemBatcher":{"MaxInputBytesPerBatch":262145},`, ""), "$.States.M.ItemBatcher.MaxInputBytesPerBatch", "from 1 to 262144"},
		{"MaxItemsPerBatch and its Path are exclusive", mapDef(`"ItemBatcher":{"MaxItemsPerBatch":2,"MaxItemsPerBatchPath":"$.n"},`, ""), "$.States.M.ItemBatcher", "exclusive"},
		{"an unknown ItemBatcher field is refused", mapDef(`"ItemBatcher":{"MaxItemsPerBatch":2,"MaxBatches":3},`, ""), "$.States.M.ItemBatcher.MaxBatches", "unknown field"},
		{"BatchInput is a payload template", mapDef(`"ItemBatcher":{"MaxItemsPerBatch":2,"BatchInput":{"a":1,"a.$":"$.x"}},`, ""), "$.States.M.ItemBatcher.BatchInput.a.$", "same name"},
		{"ToleratedFailurePercentage is at most 100", mapDef(`"ToleratedFailurePercentage":101,`, ""), "$.States.M.ToleratedFailurePercentage", "from 0 to 100"},
		{"ToleratedFailureCount is a non-negative integer", mapDef(`"ToleratedFailureCount":-1,`, ""), "$.States.M.ToleratedFailureCount", "non-negative integer"},
		{"ToleratedFailureCount and its Path are exclusive", mapDef(`"ToleratedFailureCount":1,"ToleratedFailureCountPath":"$.n",`, ""), "$.States.M", "exclusive"},
		{"a Label is at most 40 characters", mapDef(`"Label":"`+strings.Repeat("x", 41)+`",`, ""), "$.States.M.Label", "at most 40"},
		{"a Label has no white space", mapDef(`"Label":"my label",`, ""), "$.States.M.Label", "must not contain"},
		{"a Label has no colon", mapDef(`"Label":"a:b",`, ""), "$.States.M.Label", "must not contain"},
		{"a Label is a string", mapDef(`"Label":5,`, ""), "$.States.M.Label", "non-empty string"},
		{"a processor Mode is INLINE or DISTRIBUTED", mapDef("", `{"ProcessorConfig":{"Mode":"PARALLEL"},"StartAt":"X","States":{"X":{"Type":"Pass","End":true}}}`), "$.States.M.ItemProcessor.ProcessorConfig.Mode", "INLINE or DISTRIBUTED"},
		{"a DISTRIBUTED Map needs an ExecutionType", mapDef("", `{"ProcessorConfig":{"Mode":"DISTRIBUTED"},"StartAt":"X","States":{"X":{"Type":"Pass","End":true}}}`), "$.States.M.ItemProcessor.ProcessorConfig.ExecutionType", "needs an ExecutionType"},
		{"an INLINE Map has no ExecutionType", mapDef("", `{"ProcessorConfig":{"Mode":"INLINE","ExecutionType":"EXPRESS"},"StartAt":"X","States":{"X":{"Type":"Pass","End":true}}}`), "$.States.M.ItemProcessor.ProcessorConfig.ExecutionType", "DISTRIBUTED Map only"},
		{"ProcessorConfig is not for Parallel branches", `{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[{"ProcessorConfig":{"Mode":"INLINE"},"StartAt":"X","States":{"X":{"Type":"Pass","End":true}}}]}}}`, "$.States.P.Branches[0].ProcessorConfig", "not to a Parallel branch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Parse([]byte(tc.def))
			for _, e := range errs {
				if e.Path == tc.path && strings.Contains(e.Message, tc.msg) {
					return
				}
			}
			t.Fatalf("no error at %s containing %q; got %v", tc.path, tc.msg, errs)
		})
	}
	m := mustParse(t, mapDef(`"Label":"Orders-2026_v1","MaxConcurrencyPath":"$.c","ToleratedFailurePercentagePath":"$.p","ToleratedFailureCount":3,
		"ItemBatcher":{"MaxItemsPerBatchPath":"$.n","MaxInputBytesPerBatch":1024,"BatchInput":{"run.$":"$$.Execution.Name"}},`,
		`{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},"StartAt":"X","States":{"X":{"Type":"Pass","End":true}}}`))
	if st := m.States["M"]; st.ProcessorMode != ModeDistributed || st.ExecutionType != "STANDARD" || st.Label != "Orders-2026_v1" || st.ItemBatcher == nil || !st.Tolerance.Set() {
		t.Fatalf("state %+v", st)
	}
}

// TimeoutSecondsPath and HeartbeatSecondsPath select positive integers when an attempt starts;
// the task's effect and the active state carry them (the controller times the task by them).
func TestTaskTimeoutAndHeartbeatPaths(t *testing.T) {
	m := mustParse(t, `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:r","InputPath":"$.cfg","TimeoutSecondsPath":"$.timeout","HeartbeatSecondsPath":"$.beat","End":true}}}`)
	cases := []struct {
		input              string
		timeout, heartbeat int // 0: the run fails with States.Runtime
	}{
		{`{"cfg":{"timeout":60,"beat":10}}`, 60, 10},
		{`{"cfg":{"timeout":0,"beat":10}}`, 0, 0},
		{`{"cfg":{"timeout":1.5,"beat":1}}`, 0, 0},
		{`{"cfg":{"timeout":"60","beat":10}}`, 0, 0},
		{`{"cfg":{"beat":10}}`, 0, 0},
		{`{"cfg":{"timeout":60,"beat":-1}}`, 0, 0},
		{`{"cfg":{"timeout":60,"beat":60}}`, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.input, func(t *testing.T) {
			run, eff, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, tc.input)}, Options{})
			if tc.timeout == 0 {
				if run.Status != Failed || run.Error != ErrRuntime {
					t.Fatalf("run %s %s (%s), want FAILED States.Runtime", run.Status, run.Error, run.Cause)
				}
				return
			}
			if len(eff) != 1 || eff[0].TimeoutSeconds != tc.timeout || eff[0].HeartbeatSeconds != tc.heartbeat {
				t.Fatalf("effects %+v", eff)
			}
			a := m.Active(run)
			if len(a) != 1 || a[0].TimeoutSeconds() != tc.timeout || a[0].HeartbeatSeconds() != tc.heartbeat {
				t.Fatalf("active %+v", a)
			}
			// Persisted: a run read back from JSON (the controller's status) keeps them.
			b, _ := json.Marshal(run)
			var back Run
			if err := json.Unmarshal(b, &back); err != nil || m.Active(back)[0].TimeoutSeconds() != tc.timeout {
				t.Fatalf("after a round trip: %s", b)
			}
		})
	}
	// Without the Path forms, the state's own values.
	static := mustParse(t, `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:r","TimeoutSeconds":30,"HeartbeatSeconds":5,"End":true}}}`)
	run, _, _ := static.Step(Run{}, Event{Kind: EventStart, Input: doc(t, `{}`)}, Options{})
	if a := static.Active(run)[0]; a.TimeoutSeconds() != 30 || a.HeartbeatSeconds() != 5 || run.TaskTimeout != 0 {
		t.Fatalf("active %+v, run %+v", a, run)
	}
}

// Credentials are evaluated when the attempt starts and carried to the task (its effect, and
// TaskCredentials for a controller that sends it again); Millrace assumes no role.
func TestTaskCredentialsAreEvaluatedAndCarried(t *testing.T) {
	m := mustParse(t, `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.accounts","End":true,"ItemProcessor":{"StartAt":"T","States":{
		"T":{"Type":"Task","Resource":"millrace:consumer/audit","Credentials":{"RoleArn.$":"States.Format('arn:aws:iam::{}:role/audit', $.id)"},"End":true}}}}}}`)
	run, eff, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, `{"accounts":[{"id":"111"},{"id":"222"}]}`)}, Options{})
	if len(eff) != 2 || !reflect.DeepEqual(eff[1].Credentials, doc(t, `{"RoleArn":"arn:aws:iam::222:role/audit"}`)) {
		t.Fatalf("effects %+v", eff)
	}
	creds, err := m.TaskCredentials(run, []int{1}, Options{})
	if err != nil || !reflect.DeepEqual(creds, eff[1].Credentials) {
		t.Fatalf("TaskCredentials: %v %v", creds, err)
	}
	plain := mustParse(t, `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:r","End":true}}}`)
	run, _, _ = plain.Step(Run{}, Event{Kind: EventStart, Input: doc(t, `{}`)}, Options{})
	if creds, err := plain.TaskCredentials(run, nil, Options{}); creds != nil || err != nil {
		t.Fatalf("a task without Credentials: %v %v", creds, err)
	}
	bad := mustParse(t, `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:r","Credentials":{"RoleArn.$":"$.role"},"End":true}}}`)
	run, _, _ = bad.Step(Run{}, Event{Kind: EventStart, Input: doc(t, `{}`)}, Options{})
	if run.Status != Failed || run.Error != ErrRuntime {
		t.Fatalf("a RoleArn.$ that selects nothing: %s %s", run.Status, run.Error)
	}
}

// runMap runs a Map definition to its end with a task that fails for the items whose "fail" is
// true, and returns the run and the inputs of the tasks in order.
func runMap(t *testing.T, def string, input string) (Run, []any) {
	t.Helper()
	m := mustParse(t, def)
	var inputs []any
	task := func(_ context.Context, e Effect) (any, string, string) {
		inputs = append(inputs, e.Input)
		if in, ok := e.Input.(map[string]any); ok && in["fail"] == true {
			return nil, "Item.Failed", "item " + in["id"].(string)
		}
		return e.Input, "", ""
	}
	clock := time.Unix(0, 0)
	run := m.RunLocally(context.Background(), doc(t, input), "t", task, func() time.Time { return clock },
		func(_ context.Context, d time.Duration) error { clock = clock.Add(d); return nil })
	return run, inputs
}

func TestMapToleratedFailureThreshold(t *testing.T) {
	items := `{"items":[{"id":"a"},{"id":"b","fail":true},{"id":"c"},{"id":"d","fail":true}],"n":1,"p":50}`
	cases := []struct {
		name, fields string
		want         Status
		err          string
	}{
		{"no threshold: the first failure fails the Map with its own error", ``, Failed, "Item.Failed"},
		{"a count of 2 tolerates 2 failures", `"ToleratedFailureCount":2,`, Succeeded, ""},
		{"a count of 1 does not tolerate 2", `"ToleratedFailureCount":1,`, Failed, ErrExceedToleratedFailureThreshold},
		{"a count of 0 tolerates none", `"ToleratedFailureCount":0,`, Failed, ErrExceedToleratedFailureThreshold},
		{"50% of 4 tolerates 2", `"ToleratedFailurePercentage":50,`, Succeeded, ""},
		{"49.9% of 4 does not tolerate 2", `"ToleratedFailurePercentage":49.9,`, Failed, ErrExceedToleratedFailureThreshold},
		{"with both, exceeding either fails", `"ToleratedFailurePercentage":100,"ToleratedFailureCount":1,`, Failed, ErrExceedToleratedFailureThreshold},
		{"a count path", `"ToleratedFailureCountPath":"$.n",`, Failed, ErrExceedToleratedFailureThreshold},
		{"a percentage path", `"ToleratedFailurePercentagePath":"$.p",`, Succeeded, ""},
		{"a path that selects no integer fails with States.Runtime", `"ToleratedFailureCountPath":"$.items",`, Failed, ErrRuntime},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run, _ := runMap(t, mapDef(`"ItemsPath":"$.items",`+tc.fields, ""), items)
			if run.Status != tc.want || run.Error != tc.err {
				t.Fatalf("run %s %s (%s), want %s %s", run.Status, run.Error, run.Cause, tc.want, tc.err)
			}
			if tc.want == Succeeded {
				want := doc(t, `[{"id":"a"},{"Error":"Item.Failed","Cause":"item b"},{"id":"c"},{"Error":"Item.Failed","Cause":"item d"}]`)
				if !reflect.DeepEqual(run.Output, want) {
					got, _ := json.Marshal(run.Output)
					t.Fatalf("output %s", got)
				}
			}
		})
	}
	// Caught by name like any error.
	def := `{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.items","ToleratedFailureCount":0,"Next":"Ok",
		"Catch":[{"ErrorEquals":["States.ExceedToleratedFailureThreshold"],"ResultPath":"$.error","Next":"Handled"}],
		"ItemProcessor":{"StartAt":"Work","States":{"Work":{"Type":"Task","Resource":"test:work","End":true}}}},
		"Ok":{"Type":"Succeed"},"Handled":{"Type":"Pass","OutputPath":"$.error.Error","End":true}}}`
	if run, _ := runMap(t, def, items); run.Status != Succeeded || run.Output != ErrExceedToleratedFailureThreshold {
		t.Fatalf("caught: %s %v", run.Status, run.Output)
	}
}

func TestMapItemBatcher(t *testing.T) {
	items := `{"tag":"t","n":2,"items":[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d"},{"id":"e"}]}`
	cases := []struct {
		name, fields string
		inputs       string // the batches, in order
		err          string
	}{
		{"MaxItemsPerBatch", `"ItemBatcher":{"MaxItemsPerBatch":2},`,
			`[{"Items":[{"id":"a"},{"id":"b"}]},{"Items":[{"id":"c"},{"id":"d"}]},{"Items":[{"id":"e"}]}]`, ""},
		{"MaxItemsPerBatchPath and BatchInput", `"ItemBatcher":{"MaxItemsPerBatchPath":"$.n","BatchInput":{"tag.$":"$.tag","fixed":1}},`,
			`[{"Items":[{"id":"a"},{"id":"b"}],"tag":"t","fixed":1},{"Items":[{"id":"c"},{"id":"d"}],"tag":"t","fixed":1},{"Items":[{"id":"e"}],"tag":"t","fixed":1}]`, ""},
		{"ItemSelector applies to each item, with its own index", `"ItemSelector":{"i.$":"$$.Map.Item.Index","v.$":"$$.Map.Item.Value.id"},"ItemBatcher":{"MaxItemsPerBatch":3},`,
			`[{"Items":[{"i":0,"v":"a"},{"i":1,"v":"b"},{"i":2,"v":"c"}]},{"Items":[{"i":3,"v":"d"},{"i":4,"v":"e"}]}]`, ""},
		// {"Items":[{"id":"a"},{"id":"b"}]} is 33 bytes; a third item would make it 44.
		{"MaxInputBytesPerBatch", `"ItemBatcher":{"MaxInputBytesPerBatch":40},`,
			`[{"Items":[{"id":"a"},{"id":"b"}]},{"Items":[{"id":"c"},{"id":"d"}]},{"Items":[{"id":"e"}]}]`, ""},
		{"MaxInputBytesPerBatch counts BatchInput", `"ItemBatcher":{"MaxInputBytesPerBatch":40,"BatchInput":{"k":"v"}},`,
			`[{"Items":[{"id":"a"}],"k":"v"},{"Items":[{"id":"b"}],"k":"v"},{"Items":[{"id":"c"}],"k":"v"},{"Items":[{"id":"d"}],"k":"v"},{"Items":[{"id":"e"}],"k":"v"}]`, ""},
		{"both maximums", `"ItemBatcher":{"MaxInputBytesPerBatch":100,"MaxItemsPerBatch":4},`,
			`[{"Items":[{"id":"a"},{"id":"b"},{"id":"c"},{"id":"d"}]},{"Items":[{"id":"e"}]}]`, ""},
		{"an item larger than a batch fails the Map", `"ItemBatcher":{"MaxInputBytesPerBatch":20},`, `null`, ErrDataLimitExceeded},
		{"a MaxItemsPerBatchPath that selects no positive integer fails the Map", `"ItemBatcher":{"MaxItemsPerBatchPath":"$.tag"},`, `null`, ErrRuntime},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run, inputs := runMap(t, mapDef(`"ItemsPath":"$.items","MaxConcurrency":1,`+tc.fields, ""), items)
			if tc.err != "" {
				if run.Status != Failed || run.Error != tc.err {
					t.Fatalf("run %s %s (%s), want %s", run.Status, run.Error, run.Cause, tc.err)
				}
				return
			}
			if run.Status != Succeeded {
				t.Fatalf("run %s %s (%s)", run.Status, run.Error, run.Cause)
			}
			if want := doc(t, tc.inputs); !reflect.DeepEqual(any(inputs), want) || !reflect.DeepEqual(run.Output, want) {
				got, _ := json.Marshal(inputs)
				t.Fatalf("batches %s\nwant %s", got, tc.inputs)
			}
		})
	}
}

// MaxConcurrencyPath bounds the iterations that run at once, as evaluated when the Map starts.
func TestMapMaxConcurrencyPath(t *testing.T) {
	m := mustParse(t, mapDef(`"ItemsPath":"$.items","MaxConcurrencyPath":"$.c",`, ""))
	for _, tc := range []struct {
		input   string
		started int // -1: the run fails with States.Runtime
	}{
		{`{"c":2,"items":[1,2,3,4]}`, 2},
		{`{"c":0,"items":[1,2,3,4]}`, 4}, // 0: no limit of its own
		{`{"c":-1,"items":[1,2,3,4]}`, -1},
		{`{"c":"2","items":[1,2,3,4]}`, -1},
	} {
		t.Run(tc.input, func(t *testing.T) {
			run, eff, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, tc.input)}, Options{})
			if tc.started < 0 {
				if run.Status != Failed || run.Error != ErrRuntime {
					t.Fatalf("run %s %s", run.Status, run.Error)
				}
				return
			}
			if len(eff) != tc.started || m.NeedsContinue(run, Options{}) {
				t.Fatalf("%d started, want %d", len(eff), tc.started)
			}
			if tc.started == 2 {
				run, eff, _ = m.Step(run, Event{Kind: EventTaskSucceeded, Path: []int{0}, Attempt: 1, Output: 1.0}, Options{})
				if len(eff) != 1 || !reflect.DeepEqual(eff[0].Path, []int{2}) {
					t.Fatalf("after one finished: %+v", eff)
				}
			}
		})
	}
}

// A DISTRIBUTED Map without ItemReader runs its items like an INLINE one (child runs as
// WorkflowRuns of their own are not there yet).
func TestADistributedMapRunsLikeAnInlineOne(t *testing.T) {
	def := mapDef(`"ItemsPath":"$.items","Label":"Orders",`, `{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"EXPRESS"},
		"StartAt":"Work","States":{"Work":{"Type":"Task","Resource":"test:work","End":true}}}`)
	run, inputs := runMap(t, def, `{"items":[{"id":"a"},{"id":"b"}]}`)
	if run.Status != Succeeded || len(inputs) != 2 || !reflect.DeepEqual(run.Output, doc(t, `[{"id":"a"},{"id":"b"}]`)) {
		t.Fatalf("run %s %v", run.Status, run.Output)
	}
}

package asl

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// taskAnswer is what a test's task does: a result, or an error (and cause).
type taskAnswer struct {
	out          any
	err, cause   string
	sawInput     any
	sawTimeout   int
	sawHeartbeat int
}

// driveTasks runs a machine to its end, answering tasks with answer (by state name) and firing
// timers. With persist, the run goes through JSON between every two steps, as the controller
// writes it to status and reads it back (after a restart too).
func driveTasks(t *testing.T, m *Machine, input string, answer func(state string, input any) taskAnswer, persist bool) (Run, []Effect) {
	t.Helper()
	at := time.Date(2024, 11, 22, 10, 0, 0, 0, time.UTC)
	run, effs, _ := m.Step(Run{}, Event{Kind: EventStart, At: at, Input: doc(t, input),
		Execution: Execution{ID: "arn:exec:1", Name: "exec-1"}}, Options{})
	var seen []Effect
	for i := 0; i < 10000 && run.Status == Running; i++ {
		if persist {
			raw, err := json.Marshal(run)
			if err != nil {
				t.Fatal(err)
			}
			run = Run{}
			if err := json.Unmarshal(raw, &run); err != nil {
				t.Fatal(err)
			}
		}
		if len(effs) == 0 {
			t.Fatalf("the run waits for nothing: %+v", run)
		}
		e := effs[0]
		effs = effs[1:]
		seen = append(seen, e)
		var ev Event
		switch e.Kind {
		case EffectRunTask:
			a := answer(e.State, e.Input)
			ev = Event{Kind: EventTaskSucceeded, Output: a.out, Attempt: e.Attempt, Path: e.Path}
			if a.err != "" {
				ev = Event{Kind: EventTaskFailed, Error: a.err, Cause: a.cause, Attempt: e.Attempt, Path: e.Path}
			}
		case EffectTimer:
			if e.Until.After(at) {
				at = e.Until
			}
			ev = Event{Kind: EventTimer, Path: e.Path}
		case EffectContinue:
			ev = Event{Kind: EventContinue}
		}
		ev.At = at
		var more []Effect
		run, more, _ = m.Step(run, ev, Options{})
		effs = append(effs, more...)
	}
	return run, seen
}

func noTasks(t *testing.T) func(string, any) taskAnswer {
	return func(state string, _ any) taskAnswer {
		t.Fatalf("unexpected task %s", state)
		return taskAnswer{}
	}
}

// nullTasks answers every task with null; echo with its input.
func nullTasks(string, any) taskAnswer { return taskAnswer{} }

func echo(_ string, in any) taskAnswer { return taskAnswer{out: in} }

// TestDeveloperGuideExamples runs the examples of the Step Functions developer guide and of the
// States Language specification on JSONata and variables (definitions written from their
// descriptions), with the outputs they state.
func TestDeveloperGuideExamples(t *testing.T) {
	cases := []struct {
		name, def, input string
		tasks            map[string]any // state -> result (the input is echoed when absent)
		want             string         // the run's output
		wantTaskInput    map[string]string
	}{
		{
			name: "variables are referenced as $name in a later JSONata state",
			def: `{"StartAt":"FirstState","States":{
				"FirstState":{"Type":"Pass","Assign":{"make":"Infiniti","model":"G35","year":2006},"Next":"SecondState"},
				"SecondState":{"Type":"Pass","QueryLanguage":"JSONata","Output":"{% $year & ' ' & $make & ' ' & $model %}","End":true}}}`,
			input: `{}`, want: `"2006 Infiniti G35"`,
		},
		{
			name: "Assign sees the values at state entry: x becomes 42, newOrOld the old 5",
			def: `{"QueryLanguage":"JSONata","StartAt":"Init","States":{
				"Init":{"Type":"Pass","Assign":{"x":5},"Next":"Assigning"},
				"Assigning":{"Type":"Pass","Assign":{"x":42,"newOrOld":"{% $x %}"},"Next":"Referencing"},
				"Referencing":{"Type":"Pass","Output":{"x":"{% $x %}","newOrOld":"{% $newOrOld %}"},"End":true}}}`,
			input: `{}`, want: `{"x":42,"newOrOld":5}`,
		},
		{
			name: "a swap in one Assign works because every value is computed before any is set",
			def: `{"QueryLanguage":"JSONata","StartAt":"Init","States":{
				"Init":{"Type":"Pass","Assign":{"x":3,"y":6},"Next":"Swap"},
				"Swap":{"Type":"Pass","Assign":{"x":"{% $y %}","y":"{% $x %}"},"Next":"After"},
				"After":{"Type":"Pass","Output":"{% [$x, $y] %}","End":true}}}`,
			input: `{}`, want: `[6,3]`,
		},
		{
			name: "Output sees the variables as they were on entry, not the state's own Assign",
			def: `{"QueryLanguage":"JSONata","StartAt":"Init","States":{
				"Init":{"Type":"Pass","Assign":{"x":1},"Next":"Both"},
				"Both":{"Type":"Pass","Assign":{"x":2},"Output":{"during":"{% $x %}"},"Next":"After"},
				"After":{"Type":"Pass","Output":{"during":"{% $states.input.during %}","after":"{% $x %}"},"End":true}}}`,
			input: `{}`, want: `{"during":1,"after":2}`,
		},
		{
			name: "scopes: a Map iteration reads the outer variable; the outer scope assigns it again",
			def: `{"QueryLanguage":"JSONata","StartAt":"Get Greeting","States":{
				"Get Greeting":{"Type":"Pass","Assign":{"outer":"hello"},"Next":"Greet Everyone"},
				"Greet Everyone":{"Type":"Map","ItemProcessor":{"StartAt":"Begin","States":{
					"Begin":{"Type":"Pass","Assign":{"inner":"world","hi":"{% $outer %}"},"Next":"End"},
					"End":{"Type":"Succeed","Output":"{% $hi %}"}}},
				 "Assign":{"outer":2},"Output":{"items":"{% $states.result %}"},"Next":"Goodbye"},
				"Goodbye":{"Type":"Succeed","Output":{"outer":"{% $outer %}","greetings":"{% $states.input.items %}"}}}}`,
			input: `[1,2]`, want: `{"outer":2,"greetings":["hello","hello"]}`,
		},
		{
			name: "JSONPath Parameters read a variable with .$; the JSONata twin gives the same",
			def: `{"StartAt":"Set","States":{
				"Set":{"Type":"Pass","Assign":{"customerName":"María"},"Next":"JSONPath"},
				"JSONPath":{"Type":"Task","Resource":"test:r","Parameters":{"static":"Hello","title.$":"$.title","name.$":"$customerName","not-evaluated":"$customerName"},
					"ResultPath":null,"Next":"JSONata"},
				"JSONata":{"Type":"Task","QueryLanguage":"JSONata","Resource":"test:r","Arguments":{"static":"Hello","title":"{% $states.input.title %}","name":"{% $customerName %}","not-evaluated":"$customerName"},"End":true}}}`,
			input: `{"title":"Doctor"}`,
			want:  `{"static":"Hello","title":"Doctor","name":"María","not-evaluated":"$customerName"}`,
			wantTaskInput: map[string]string{
				"JSONPath": `{"static":"Hello","title":"Doctor","name":"María","not-evaluated":"$customerName"}`,
				"JSONata":  `{"static":"Hello","title":"Doctor","name":"María","not-evaluated":"$customerName"}`,
			},
		},
		{
			name: "JSONata evaluation inside Arguments objects and arrays, and a whole-value Output",
			def: `{"StartAt":"GetSampleData","States":{
				"GetSampleData":{"Type":"Pass","Assign":{"student":{"name":"Scotland","course":[{"grade":34},{"grade":99},{"grade":76},{"grade":96}]},"class":{"teacher":"Bert"},"two":"the number 2"},"Next":"A Task"},
				"A Task":{"Type":"Task","QueryLanguage":"JSONata","Resource":"arn:aws:lambda:us-east-1:123456789012:function:DoTheTask",
					"Arguments":{"student":"{% $student.name %}","classInfo":{"teacher":"{% $class.teacher %}"},"values":[1,"{% $two %}","three"]},
					"Output":"{% { 'avg': $average($student.course.grade), 'num': $count($student.course) }  %}","End":true}}}`,
			input:         `{}`,
			tasks:         map[string]any{"A Task": "done"},
			want:          `{"avg":76.25,"num":4}`,
			wantTaskInput: map[string]string{"A Task": `{"student":"Scotland","classInfo":{"teacher":"Bert"},"values":[1,"the number 2","three"]}`},
		},
		{
			name: "a JSONata Task's Output combines input, result and context",
			def: `{"QueryLanguage":"JSONata","StartAt":"My Task","States":{
				"My Task":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:HelloWorld",
					"Output":{"customer":"{% $states.input.customer %}","resultStatus":"{% $states.result.status %}","state":"{% $states.context.State.Name %}","execution":"{% $states.context.Execution.Name %}"},"End":true}}}`,
			input: `{"customer":"c-1"}`,
			tasks: map[string]any{"My Task": map[string]any{"status": "OK"}},
			want:  `{"customer":"c-1","resultStatus":"OK","state":"My Task","execution":"exec-1"}`,
		},
		{
			name: "without Output a JSONata Task's output is its result, a Pass state's its input",
			def: `{"QueryLanguage":"JSONata","StartAt":"P","States":{
				"P":{"Type":"Pass","Next":"T"},
				"T":{"Type":"Task","Resource":"test:r","End":true}}}`,
			input: `{"a":1}`, tasks: map[string]any{"T": map[string]any{"b": 2.0}}, want: `{"b":2}`,
		},
		{
			name: "a JSONata Pass state assigns fixed data and an expression with a default",
			def: `{"StartAt":"ProvideTestData","States":{
				"ProvideTestData":{"Type":"Pass","QueryLanguage":"JSONata","Assign":{"coords":{"x-datum":0.381018,"y-datum":622.2269926397355,"additional":"{% $exists($states.input.moreData) ? $states.input.moreData : {} %}"}},"Next":"End"},
				"End":{"Type":"Pass","QueryLanguage":"JSONata","Output":"{% $coords %}","End":true}}}`,
			input: `{"georefOf":"Home"}`, want: `{"x-datum":0.381018,"y-datum":622.2269926397355,"additional":{}}`,
		},
		{
			name: "Choice: the second rule matches, assigns range and passes the input through",
			def:  dispatchEvent,
			// The first rule's Condition compares type to 'Private'; $value comes from an Assign.
			input: `{"type":"Private","value":23,"rating":1,"auditThreshold":5}`,
			want:  `{"went":"ValueInTwenties","range":"twenties","input":{"type":"Private","value":23,"rating":1,"auditThreshold":5}}`,
		},
		{
			name:  "Choice: the third rule's Output is the state output, and assigns nothing",
			def:   dispatchEvent,
			input: `{"type":"Private","value":5,"rating":9,"auditThreshold":5}`,
			want:  `{"went":"StartAudit","range":"unset","input":{"excess":4}}`,
		},
		{
			name:  "Choice: no rule matches, the state's Assign and the Default apply",
			def:   dispatchEvent,
			input: `{"type":"Private","value":5,"rating":1,"auditThreshold":5}`,
			want:  `{"went":"RecordEvent","range":"default","input":{"type":"Private","value":5,"rating":1,"auditThreshold":5}}`,
		},
		{
			name: "JSONPath Choice: the And rule's Assign applies when it is chosen",
			def: `{"StartAt":"Init","States":{
				"Init":{"Type":"Pass","Assign":{"range":"unset"},"Next":"DispatchEvent"},
				"DispatchEvent":{"Type":"Choice","Choices":[
					{"Not":{"Variable":"$.type","StringEquals":"Private"},"Next":"Public"},
					{"And":[{"Variable":"$.value","IsPresent":true},{"Variable":"$.value","IsNumeric":true},{"Variable":"$.value","NumericGreaterThanEquals":20},{"Variable":"$.value","NumericLessThan":30}],
					 "Assign":{"range":"twenties"},"Next":"ValueInTwenties"},
					{"Variable":"$.rating","NumericGreaterThanPath":"$.auditThreshold","Next":"StartAudit"}],
				 "Default":"RecordEvent","Assign":{"range":"default"}},
				"Public":{"Type":"Pass","Parameters":{"range.$":"$range"},"End":true},
				"ValueInTwenties":{"Type":"Pass","Parameters":{"range.$":"$range"},"End":true},
				"StartAudit":{"Type":"Pass","Parameters":{"range.$":"$range"},"End":true},
				"RecordEvent":{"Type":"Pass","Parameters":{"range.$":"$range"},"End":true}}}`,
			input: `{"type":"Private","value":22}`, want: `{"range":"twenties"}`,
		},
		{
			name: "a JSONata Map with Items, ItemSelector, Assign of the result and Output",
			def: `{"StartAt":"Validate-All","States":{"Validate-All":{"Type":"Map","QueryLanguage":"JSONata",
				"Items":"{% $states.input.detail.shipped %}","MaxConcurrency":0,
				"ItemSelector":{"parcel":"{% $states.context.Map.Item.Value %}","courier":"{% $states.input.detail.` + "`delivery-partner`" + ` %}","index":"{% $states.context.Map.Item.Index %}"},
				"ItemProcessor":{"StartAt":"Validate","States":{"Validate":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:ship-val","End":true}}},
				"Assign":{"shipped":"{% $states.result %}"},
				"Output":{"numItemsProcessed":"{% $count($states.input.detail.shipped) %}"},"Next":"Report"},
				"Report":{"Type":"Pass","QueryLanguage":"JSONata","Output":{"n":"{% $states.input.numItemsProcessed %}","first":"{% $shipped[0] %}"},"End":true}}}`,
			input: `{"ship-date":"2016-03-14T01:59:00Z","detail":{"delivery-partner":"UQS","shipped":[{"prod":"R31","dest-code":9511,"quantity":1344},{"prod":"S39","dest-code":9511,"quantity":40},{"prod":"R31","dest-code":9833,"quantity":12},{"prod":"R40","dest-code":9860,"quantity":887},{"prod":"R40","dest-code":9511,"quantity":1220}]}}`,
			want:  `{"n":5,"first":{"parcel":{"prod":"R31","dest-code":9511,"quantity":1344},"courier":"UQS","index":0}}`,
		},
		{
			name: "Map Items may be a literal array",
			def: `{"QueryLanguage":"JSONata","StartAt":"M","States":{"M":{"Type":"Map","Items":[1,2,3],
				"ItemProcessor":{"StartAt":"Double","States":{"Double":{"Type":"Pass","Output":"{% $states.input * 2 %}","End":true}}},"End":true}}}`,
			input: `{}`, want: `[2,4,6]`,
		},
		{
			name: "a Parallel state's Arguments go to every branch; its result is Output's $states.result",
			def: `{"QueryLanguage":"JSONata","StartAt":"FunWithMath","States":{"FunWithMath":{"Type":"Parallel","Arguments":"{% $states.input.numbers %}",
				"Branches":[
					{"StartAt":"Add","States":{"Add":{"Type":"Pass","Output":"{% $states.input[0] + $states.input[1] %}","End":true}}},
					{"StartAt":"Subtract","States":{"Subtract":{"Type":"Pass","Output":"{% $states.input[0] - $states.input[1] %}","End":true}}}],
				"Output":{"sum":"{% $states.result[0] %}","difference":"{% $states.result[1] %}"},"End":true}}}`,
			input: `{"numbers":[3,2]}`, want: `{"sum":5,"difference":1}`,
		},
		{
			name: "the Step Functions functions: $partition, $range, $hash, $random with a seed, $parse",
			def: `{"QueryLanguage":"JSONata","StartAt":"F","States":{"F":{"Type":"Pass","Output":{
				"partition":"{% $partition([1, 2, 3, 4, 5, 6, 7, 8, 9], 3) %}",
				"range":"{% $range(0, 10, 2) %}",
				"down":"{% $range(5, 1, -2) %}",
				"md5":"{% $hash('abc', 'MD5') %}",
				"seeded":"{% $random(7) = $random(7) and $random(7) >= 0 and $random(7) < 1 %}",
				"parsed":"{% $parse($states.input.json) %}"},"End":true}}}`,
			input: `{"json":"{\"a\":[1,true,null]}"}`,
			want: `{"partition":[[1,2,3],[4,5,6],[7,8,9]],"range":[0,2,4,6,8,10],"down":[5,3,1],
				"md5":"900150983cd24fb0d6963f7d28e17f72","seeded":true,"parsed":{"a":[1,true,null]}}`,
		},
		{
			name:  "a JSONata Fail state takes Error and Cause from expressions",
			def:   `{"QueryLanguage":"JSONata","StartAt":"FailState","States":{"FailState":{"Type":"Fail","Error":"{% $states.input.Error %}","Cause":"{% $states.input.Cause %}"}}}`,
			input: `{"Error":"Kaiju","Cause":"attack"}`, want: `null`,
		},
		{
			name: "a JSONata Wait waits until a timestamp from the input, then Output and Assign apply",
			def: `{"QueryLanguage":"JSONata","StartAt":"wait_until","States":{
				"wait_until":{"Type":"Wait","Timestamp":"{% $states.input.expirydate %}","Assign":{"waited":true},"Next":"After"},
				"After":{"Type":"Pass","Output":{"waited":"{% $waited %}","entered":"{% $states.context.State.EnteredTime %}"},"End":true}}}`,
			input: `{"expirydate":"2024-11-22T10:05:00Z"}`, want: `{"waited":true,"entered":"2024-11-22T10:05:00Z"}`,
		},
		{
			name: "a JSONata Wait of Seconds from a variable",
			def: `{"QueryLanguage":"JSONata","StartAt":"Set","States":{
				"Set":{"Type":"Pass","Assign":{"delay":90},"Next":"W"},
				"W":{"Type":"Wait","Seconds":"{% $delay %}","Next":"After"},
				"After":{"Type":"Pass","Output":"{% $states.context.State.EnteredTime %}","End":true}}}`,
			input: `{}`, want: `"2024-11-22T10:01:30Z"`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, tc.def)
			inputs := map[string]any{}
			for _, persist := range []bool{false, true} {
				run, _ := driveTasks(t, m, tc.input, func(state string, in any) taskAnswer {
					inputs[state] = in
					if out, ok := tc.tasks[state]; ok {
						return taskAnswer{out: out}
					}
					return taskAnswer{out: in}
				}, persist)
				if strings.Contains(tc.name, "Fail state") {
					if run.Status != Failed || run.Error != "Kaiju" || run.Cause != "attack" {
						t.Fatalf("run %+v", run)
					}
					continue
				}
				if run.Status != Succeeded {
					t.Fatalf("persist=%v: run %s: %s %s", persist, run.Status, run.Error, run.Cause)
				}
				if !reflect.DeepEqual(run.Output, doc(t, tc.want)) {
					got, _ := json.Marshal(run.Output)
					t.Fatalf("persist=%v: output %s, want %s", persist, got, tc.want)
				}
				for state, want := range tc.wantTaskInput {
					if !reflect.DeepEqual(inputs[state], doc(t, want)) {
						got, _ := json.Marshal(inputs[state])
						t.Errorf("task %s got %s, want %s", state, got, want)
					}
				}
				if run.Variables != nil {
					t.Errorf("a finished run keeps its variables: %v", run.Variables)
				}
			}
		})
	}
}

// dispatchEvent is the specification's JSONata Choice example, with states after it that report
// where the run went and what range holds.
const dispatchEvent = `{"QueryLanguage":"JSONata","StartAt":"Init","States":{
	"Init":{"Type":"Pass","Assign":{"range":"unset","value":"{% $states.input.value %}"},"Next":"DispatchEvent"},
	"DispatchEvent":{"Type":"Choice","Choices":[
		{"Condition":"{% $states.input.type != 'Private' %}","Next":"Public"},
		{"Condition":"{% $exists($value) and $type($value)='number' and $value>=20 and $value<30 %}","Assign":{"range":"twenties"},"Next":"ValueInTwenties"},
		{"Condition":"{% $states.input.rating >= $states.input.auditThreshold %}","Output":{"excess":"{% $states.input.rating - $states.input.auditThreshold %}"},"Next":"StartAudit"}],
	 "Default":"RecordEvent","Assign":{"range":"default"}},
	"Public":{"Type":"Pass","Output":{"went":"Public","range":"{% $range %}","input":"{% $states.input %}"},"End":true},
	"ValueInTwenties":{"Type":"Pass","Output":{"went":"ValueInTwenties","range":"{% $range %}","input":"{% $states.input %}"},"End":true},
	"StartAudit":{"Type":"Pass","Output":{"went":"StartAudit","range":"{% $range %}","input":"{% $states.input %}"},"End":true},
	"RecordEvent":{"Type":"Pass","Output":{"went":"RecordEvent","range":"{% $range %}","input":"{% $states.input %}"},"End":true}}}`

func TestHashMatchesKnownDigests(t *testing.T) {
	m := mustParse(t, `{"QueryLanguage":"JSONata","StartAt":"F","States":{"F":{"Type":"Pass","Output":"{% [$hash('abc', 'SHA-1'), $hash('abc', 'SHA-256'), $hash('', 'SHA-384'), $hash('', 'SHA-512')] %}","End":true}}}`)
	run, _ := driveTasks(t, m, `{}`, noTasks(t), false)
	want := []any{"a9993e364706816aba3e25717850c26c9cd0d89d", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"38b060a751ac96384cd9327eb1b1e36a21fdb71114be07434c0cc7bf63f6e1da274edebfe76f65fbd51ad2f14898b95b",
		"cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"}
	if !reflect.DeepEqual(run.Output, want) {
		t.Fatalf("got %v", run.Output)
	}
}

func TestUUIDAndRandomWithoutSeed(t *testing.T) {
	m := mustParse(t, `{"QueryLanguage":"JSONata","StartAt":"F","States":{"F":{"Type":"Pass","Output":{"id":"{% $uuid() %}","r":"{% $random() %}","other":"{% $uuid() %}"},"End":true}}}`)
	run, _ := driveTasks(t, m, `{}`, noTasks(t), false)
	out := run.Output.(map[string]any)
	v4 := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	if !v4.MatchString(out["id"].(string)) || out["id"] == out["other"] {
		t.Fatalf("uuids %v %v", out["id"], out["other"])
	}
	if r := out["r"].(float64); r < 0 || r >= 1 {
		t.Fatalf("random %v", r)
	}
}

// TestQueryEvaluationErrors: every way a JSONata expression can fail raises
// States.QueryEvaluationError, which Retry and Catch see like any error.
func TestQueryEvaluationErrors(t *testing.T) {
	cases := []struct{ name, state, cause string }{
		{"an undefined result", `"Type":"Pass","Output":{"x":"{% $states.input.missing %}"},"End":true`, "specified for the field 'Output/x' returned nothing (undefined)"},
		{"$ has no input document", `"Type":"Pass","Output":"{% $ %}","End":true`, "returned nothing (undefined)"},
		{"a type error", `"Type":"Pass","Output":"{% 1 + 'a' %}","End":true`, "An error occurred while evaluating the JSONata expression ' 1 + 'a' ' specified for the field 'Output'"},
		{"a variable that has no value", `"Type":"Pass","Output":"{% $nope %}","End":true`, "returned nothing"},
		{"a TimeoutSeconds that is not a number", `"Type":"Task","Resource":"test:r","TimeoutSeconds":"{% 'ten' %}","End":true`, "not an integer from 1 to"},
		{"a HeartbeatSeconds not below TimeoutSeconds", `"Type":"Task","Resource":"test:r","TimeoutSeconds":"{% 5 %}","HeartbeatSeconds":"{% 5 %}","End":true`, "must be smaller than TimeoutSeconds"},
		{"a Condition that is not a boolean", `"Type":"Choice","Choices":[{"Condition":"{% 'yes' %}","Next":"B"}],"Default":"B"},"B":{"Type":"Succeed"`, "not a boolean"},
		{"Items that are not an array", `"Type":"Map","Items":"{% $states.input %}","ItemProcessor":{"StartAt":"I","States":{"I":{"Type":"Succeed"}}},"End":true`, "not an array"},
		{"a negative Wait", `"Type":"Wait","Seconds":"{% -1 %}","End":true`, "not an integer from 0 to"},
		{"a Timestamp that is not one", `"Type":"Wait","Timestamp":"{% 'tomorrow' %}","End":true`, "not an RFC3339 timestamp"},
		{"a Fail Error that is not a string", `"Type":"Fail","Error":"{% 42 %}"`, "not a string"},
		{"$eval is not offered", `"Type":"Pass","Output":"{% $eval('1') %}","End":true`, "use $parse"},
		{"a host function's bad argument", `"Type":"Pass","Output":"{% $hash('a', 'CRC32') %}","End":true`, "unknown algorithm"},
		{"an expression over its step budget", `"Type":"Pass","Output":"{% $reduce([1..250000], function($a, $b) { $a + $b }) %}","End":true`, "exceeded its budget"},
		{"an expression building more than the size budget", `"Type":"Pass","Output":"{% $count([1..300000]) %}","End":true`, "exceeded its budget"},
		{"a runaway recursion", `"Type":"Pass","Output":"{% ($f := function($n) { 1 + $f($n + 1) }; $f(0)) %}","End":true`, "exceeded its budget"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, `{"QueryLanguage":"JSONata","StartAt":"A","States":{"A":{`+tc.state+`}}}`)
			run, _ := driveTasks(t, m, `{"a":1}`, nullTasks, false)
			if run.Status != Failed || run.Error != ErrQueryEvaluation || !strings.Contains(run.Cause, tc.cause) {
				t.Fatalf("run %s %s: %s, want a cause with %q", run.Status, run.Error, run.Cause, tc.cause)
			}
		})
	}
}

func TestAQueryEvaluationErrorIsRetriedAndCaught(t *testing.T) {
	m := mustParse(t, `{"QueryLanguage":"JSONata","StartAt":"T","States":{
		"T":{"Type":"Task","Resource":"test:r","Output":"{% $states.result.missing %}","Assign":{"never":1},
			"Retry":[{"ErrorEquals":["States.QueryEvaluationError"],"MaxAttempts":1,"IntervalSeconds":1}],
			"Catch":[{"ErrorEquals":["States.QueryEvaluationError"],"Assign":{"caught":"{% $states.errorOutput.Error %}"},"Output":{"from":"{% $states.input.from %}","error":"{% $states.errorOutput.Error %}"},"Next":"After"}],"End":true},
		"After":{"Type":"Pass","Output":{"caught":"{% $caught %}","never":"{% $exists($never) %}","in":"{% $states.input %}"},"End":true}}}`)
	calls := 0
	run, _ := driveTasks(t, m, `{"from":"input"}`, func(string, any) taskAnswer { calls++; return taskAnswer{out: map[string]any{}} }, true)
	if calls != 2 {
		t.Errorf("the task ran %d times, want 2 (one retry)", calls)
	}
	want := doc(t, `{"caught":"States.QueryEvaluationError","never":false,"in":{"from":"input","error":"States.QueryEvaluationError"}}`)
	if run.Status != Succeeded || !reflect.DeepEqual(run.Output, want) {
		t.Fatalf("run %s %s %s: %v", run.Status, run.Error, run.Cause, run.Output)
	}
}

// TestCatchAssignReplacesTheStatesAssign: a taken Catch applies its own Assign (against the Error
// Output) and skips the state's; in JSONPath, with ResultPath placing the error.
func TestCatchAssignReplacesTheStatesAssign(t *testing.T) {
	for _, def := range []string{
		`{"StartAt":"T","States":{
			"T":{"Type":"Task","Resource":"test:r","Assign":{"ok":true},"Catch":[
				{"ErrorEquals":["java.lang.Exception"],"ResultPath":"$.error-info","Next":"RecoveryState"},
				{"ErrorEquals":["States.ALL"],"Assign":{"hasError":true,"error.$":"$.Error"},"Next":"EndMachine"}],"End":true},
			"RecoveryState":{"Type":"Pass","End":true},
			"EndMachine":{"Type":"Pass","Parameters":{"hasError.$":"$hasError","error.$":"$error","input.$":"$"},"End":true}}}`,
		`{"QueryLanguage":"JSONata","StartAt":"T","States":{
			"T":{"Type":"Task","Resource":"test:r","Assign":{"ok":true},"Catch":[
				{"ErrorEquals":["java.lang.Exception"],"Output":"{% $merge([ $states.input, {'error-info': $states.errorOutput} ]) %}","Next":"RecoveryState"},
				{"ErrorEquals":["States.ALL"],"Assign":{"hasError":true,"error":"{% $states.errorOutput.Error %}","isCritical":"{% $contains($lowercase($states.errorOutput.Error), /.*fatal.*/) %}"},"Next":"EndMachine"}],"End":true},
			"RecoveryState":{"Type":"Pass","End":true},
			"EndMachine":{"Type":"Pass","Output":{"hasError":"{% $hasError %}","error":"{% $error %}","input":"{% $states.input %}","ok":"{% $exists($ok) %}","isCritical":"{% $isCritical %}"},"End":true}}}`,
	} {
		m := mustParse(t, def)
		jsonata := strings.Contains(def, "JSONata")
		run, _ := driveTasks(t, m, `{"order":1}`, func(string, any) taskAnswer {
			return taskAnswer{err: "java.lang.Exception", cause: "boom"}
		}, false)
		if want := doc(t, `{"order":1,"error-info":{"Error":"java.lang.Exception","Cause":"boom"}}`); run.Status != Succeeded || !reflect.DeepEqual(run.Output, want) {
			t.Fatalf("jsonata=%v: recovery %s %v", jsonata, run.Status, run.Output)
		}
		run, _ = driveTasks(t, m, `{"order":1}`, func(string, any) taskAnswer {
			return taskAnswer{err: "Fatal.Error", cause: "disk"}
		}, true)
		want := `{"hasError":true,"error":"Fatal.Error","input":{"Error":"Fatal.Error","Cause":"disk"}}`
		if jsonata {
			want = `{"hasError":true,"error":"Fatal.Error","input":{"Error":"Fatal.Error","Cause":"disk"},"ok":false,"isCritical":true}`
		}
		if run.Status != Succeeded || !reflect.DeepEqual(run.Output, doc(t, want)) {
			got, _ := json.Marshal(run.Output)
			t.Fatalf("jsonata=%v: end machine %s %s %s: %s", jsonata, run.Status, run.Error, run.Cause, got)
		}
	}
}

// TestJSONPathAssignSeesWhatTheSpecSays: "$" in Assign is the result in Task, Map, Parallel and
// Pass states (after ResultSelector), the effective input in Choice and Wait states, and the
// variables reach paths, templates, intrinsics and Choice rules.
func TestJSONPathAssignSeesWhatTheSpecSays(t *testing.T) {
	m := mustParse(t, `{"StartAt":"Task","States":{
		"Task":{"Type":"Task","Resource":"test:r","ResultSelector":{"price.$":"$.Payload.price"},"ResultPath":"$.task",
			"Assign":{"price.$":"$.price","state.$":"$$.State.Name"},"Next":"Pass"},
		"Pass":{"Type":"Pass","Result":{"n":2},"Assign":{"n.$":"$.n"},"ResultPath":null,"Next":"Wait"},
		"Wait":{"Type":"Wait","Seconds":0,"InputPath":"$.task","Assign":{"fromWait.$":"$.price"},"Next":"Choice"},
		"Choice":{"Type":"Choice","Choices":[{"Variable":"$price","NumericGreaterThanPath":"$n","Assign":{"chose.$":"States.Format('{} > {}', $price, $n)"},"Next":"Use"}],"Default":"Use"},
		"Use":{"Type":"Pass","InputPath":"$price","Parameters":{"fromInputPath.$":"$","n.$":"$n","sum.$":"States.MathAdd($n, $price)","state.$":"$state","wait.$":"$fromWait","chose.$":"$chose"},"End":true}}}`)
	for _, persist := range []bool{false, true} {
		run, _ := driveTasks(t, m, `{"x":1}`, func(string, any) taskAnswer {
			return taskAnswer{out: doc(t, `{"Payload":{"price":10}}`)}
		}, persist)
		want := doc(t, `{"fromInputPath":10,"n":2,"sum":12,"state":"Task","wait":10,"chose":"10 > 2"}`)
		if run.Status != Succeeded || !reflect.DeepEqual(run.Output, want) {
			t.Fatalf("run %s %s %s: %v", run.Status, run.Error, run.Cause, run.Output)
		}
	}
}

func TestAJSONPathAssignPathFailureFailsTheState(t *testing.T) {
	m := mustParse(t, `{"StartAt":"A","States":{"A":{"Type":"Pass","Assign":{"x.$":"$.missing"},"End":true}}}`)
	run, _ := driveTasks(t, m, `{}`, noTasks(t), false)
	if run.Status != Failed || run.Error != ErrRuntime || !strings.Contains(run.Cause, "Assign") {
		t.Fatalf("run %+v", run)
	}
}

// TestScopes: Parallel branches and Map iterations read the outer variables, keep their own, and
// their assignments stay inside.
func TestScopes(t *testing.T) {
	m := mustParse(t, `{"QueryLanguage":"JSONata","StartAt":"Set","States":{
		"Set":{"Type":"Pass","Assign":{"base":10},"Next":"P"},
		"P":{"Type":"Parallel","Branches":[
			{"StartAt":"A1","States":{"A1":{"Type":"Pass","Assign":{"mine":"a"},"Next":"A2"},
				"A2":{"Type":"Task","Resource":"test:r","Arguments":{"mine":"{% $mine %}","base":"{% $base %}"},"Output":{"mine":"{% $mine %}","base":"{% $base %}"},"End":true}}},
			{"StartAt":"B1","States":{"B1":{"Type":"Pass","Assign":{"other":"b"},"Next":"B2"},
				"B2":{"Type":"Task","Resource":"test:r","Output":{"seesA":"{% $exists($mine) %}","other":"{% $other %}"},"End":true}}}],
		 "Next":"M"},
		"M":{"Type":"Map","Items":"{% [1, 2, 3] %}","MaxConcurrency":2,"ItemProcessor":{"StartAt":"I1","States":{
			"I1":{"Type":"Pass","Assign":{"item":"{% $states.input %}"},"Next":"I2"},
			"I2":{"Type":"Task","Resource":"test:r","Output":"{% $item * $base %}","End":true}}},
		 "Assign":{"products":"{% $states.result %}","branches":"{% $states.input %}"},"Next":"After"},
		"After":{"Type":"Pass","Output":{"products":"{% $products %}","branches":"{% $branches %}","leaked":"{% $exists($item) or $exists($mine) or $exists($other) %}"},"End":true}}}`)
	for _, persist := range []bool{false, true} {
		run, effs := driveTasks(t, m, `{}`, nullTasks, persist)
		want := doc(t, `{"products":[10,20,30],"branches":[{"mine":"a","base":10},{"seesA":false,"other":"b"}],"leaked":false}`)
		if run.Status != Succeeded || !reflect.DeepEqual(run.Output, want) {
			got, _ := json.Marshal(run.Output)
			t.Fatalf("persist=%v: run %s %s %s: %s", persist, run.Status, run.Error, run.Cause, got)
		}
		if !reflect.DeepEqual(effs[0].Input, doc(t, `{"mine":"a","base":10}`)) && !reflect.DeepEqual(effs[1].Input, doc(t, `{"mine":"a","base":10}`)) {
			t.Errorf("branch A's task input: %v / %v", effs[0].Input, effs[1].Input)
		}
	}
}

// TestVariablesSurviveARestart: a run waiting on tasks inside a Map iteration is written out
// and read back (as the controller does after a manager restart); the task inputs it would send
// again and the rest of the run read the variables of every scope.
func TestVariablesSurviveARestart(t *testing.T) {
	m := mustParse(t, `{"StartAt":"Set","States":{
		"Set":{"Type":"Pass","Assign":{"tenant":"t-1","limit":3},"Next":"M"},
		"M":{"Type":"Map","QueryLanguage":"JSONata","Items":"{% $states.input.ids %}","ItemProcessor":{"StartAt":"Name","States":{
			"Name":{"Type":"Pass","QueryLanguage":"JSONata","Assign":{"id":"{% $states.input %}"},"Next":"Call"},
			"Call":{"Type":"Task","Resource":"test:r","Parameters":{"tenant.$":"$tenant","id.$":"$id","limit.$":"$limit"},"End":true}}},
		 "Assign":{"count":"{% $count($states.result) %}"},"Next":"Done"},
		"Done":{"Type":"Pass","Parameters":{"count.$":"$count","tenant.$":"$tenant","results.$":"$"},"End":true}}}`)
	at := time.Date(2024, 11, 22, 10, 0, 0, 0, time.UTC)
	run, effs, _ := m.Step(Run{}, Event{Kind: EventStart, At: at, Input: doc(t, `{"ids":["a","b"]}`)}, Options{})
	if len(effs) != 2 {
		t.Fatalf("effects %+v", effs)
	}
	raw, err := json.Marshal(run)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(raw), `"variables":{"limit":3,"tenant":"t-1"}`) || !strings.Contains(string(raw), `"variables":{"id":"b"}`) {
		t.Fatalf("the persisted run lacks its variables: %s", raw)
	}
	var restored Run
	if err := json.Unmarshal(raw, &restored); err != nil {
		t.Fatal(err)
	}
	for _, a := range m.Active(restored) {
		in, err := m.TaskInput(restored, a.Path, Options{})
		want := doc(t, fmt.Sprintf(`{"tenant":"t-1","id":%q,"limit":3}`, []string{"a", "b"}[a.Path[0]]))
		if err != nil || !reflect.DeepEqual(in, want) {
			t.Fatalf("task input after a restart: %v %v", in, err)
		}
	}
	for _, e := range effs {
		restored, _, _ = m.Step(restored, Event{Kind: EventTaskSucceeded, At: at, Output: e.Input, Attempt: e.Attempt, Path: e.Path}, Options{})
	}
	want := doc(t, `{"count":2,"tenant":"t-1","results":[{"tenant":"t-1","id":"a","limit":3},{"tenant":"t-1","id":"b","limit":3}]}`)
	if restored.Status != Succeeded || !reflect.DeepEqual(restored.Output, want) {
		t.Fatalf("run %s %s %s: %v", restored.Status, restored.Error, restored.Cause, restored.Output)
	}
}

func TestJSONataTimeoutsAreKeptForTheController(t *testing.T) {
	m := mustParse(t, `{"QueryLanguage":"JSONata","StartAt":"Set","States":{
		"Set":{"Type":"Pass","Assign":{"t":30},"Next":"T"},
		"T":{"Type":"Task","Resource":"test:r","TimeoutSeconds":"{% $t %}","HeartbeatSeconds":"{% $t / 3 %}","Arguments":{"token":"{% $states.context.Task.Token %}"},"End":true}}}`)
	run, effs, _ := m.Step(Run{}, Event{Kind: EventStart, At: time.Unix(0, 0), Input: map[string]any{}}, Options{
		TaskToken: func(state string, _ []int, attempt int, _ string, _ time.Time) string {
			return fmt.Sprintf("%s-%d", state, attempt)
		}})
	if len(effs) != 1 || effs[0].TimeoutSeconds != 30 || effs[0].HeartbeatSeconds != 10 || !reflect.DeepEqual(effs[0].Input, map[string]any{"token": "T-1"}) {
		t.Fatalf("effects %+v", effs)
	}
	raw, _ := json.Marshal(run)
	var restored Run
	_ = json.Unmarshal(raw, &restored)
	active := m.Active(restored)
	if len(active) != 1 || active[0].TimeoutSeconds() != 30 || active[0].HeartbeatSeconds() != 10 {
		t.Fatalf("active %+v", active)
	}
	if m.States["T"].TimeoutSeconds != 0 {
		t.Fatal("Active changed the definition's state")
	}
}

func TestVariableSizeLimits(t *testing.T) {
	big := strings.Repeat("x", 200<<10)
	t.Run("one Assign over 256 KiB", func(t *testing.T) {
		m := mustParse(t, `{"QueryLanguage":"JSONata","StartAt":"A","States":{"A":{"Type":"Pass","Assign":{"a":"{% $states.input.s %}","b":"{% $states.input.s %}"},"End":true}}}`)
		run, _ := driveTasks(t, m, fmt.Sprintf(`{"s":%q}`, big), noTasks(t), false)
		if run.Status != Failed || run.Error != ErrDataLimitExceeded || !strings.Contains(run.Cause, "Assign") {
			t.Fatalf("run %s %s %s", run.Status, run.Error, run.Cause)
		}
	})
	t.Run("more than 10 MiB of variables in a run", func(t *testing.T) {
		var states []string
		for i := 0; i < 52; i++ {
			states = append(states, fmt.Sprintf(`"S%d":{"Type":"Pass","Assign":{"v%d":"{%% $states.input.s %%}"},"Next":"S%d"}`, i, i, i+1))
		}
		states = append(states, `"S52":{"Type":"Succeed"}`)
		m := mustParse(t, `{"QueryLanguage":"JSONata","StartAt":"S0","States":{`+strings.Join(states, ",")+`}}`)
		run, _ := driveTasks(t, m, fmt.Sprintf(`{"s":%q}`, big), noTasks(t), false)
		if run.Status != Failed || run.Error != ErrDataLimitExceeded || !strings.Contains(run.Cause, "limit 10485760 per execution") || run.State != "S51" {
			t.Fatalf("run %s in %s: %s %s", run.Status, run.State, run.Error, run.Cause)
		}
	})
	t.Run("assigning a variable again replaces its size", func(t *testing.T) {
		m := mustParse(t, `{"QueryLanguage":"JSONata","StartAt":"A","States":{"A":{"Type":"Pass","Assign":{"v":"{% $states.input.s %}"},"Next":"B"},"B":{"Type":"Pass","Assign":{"v":"small"},"Next":"C"},"C":{"Type":"Pass","End":true}}}`)
		run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: doc(t, fmt.Sprintf(`{"s":%q}`, big))}, Options{MaxTransitionsPerStep: 2})
		if run.VariableBytes != len(`"small"`)+len(`"v"`) {
			t.Fatalf("variable bytes %d", run.VariableBytes)
		}
	})
}

func TestJSONataStepsAreChargedToTheStepBudget(t *testing.T) {
	m := mustParse(t, `{"QueryLanguage":"JSONata","StartAt":"A","States":{"A":{"Type":"Pass","Output":"{% $sum([1..1000]) %}","Next":"C"},
		"C":{"Type":"Choice","Choices":[{"Condition":"{% $states.input < 0 %}","Next":"Done"}],"Default":"A"},"Done":{"Type":"Succeed"}}}`)
	budget := NewBudget()
	run, effs, _ := m.Step(Run{}, Event{Kind: EventStart, Input: map[string]any{}}, Options{Budget: budget})
	if run.Status != Running || len(effs) != 1 || effs[0].Kind != EffectContinue {
		t.Fatalf("run %s effects %+v", run.Status, effs)
	}
	if run.Transitions >= DefaultStepTransitions {
		t.Fatalf("the expressions' steps were not charged: %d transitions in one step", run.Transitions)
	}
}

// TestPlainPathsReadAsTheEvaluatorWould: expressions read without the evaluator ($states.input.a,
// $name.a.b) give what the evaluator gives, undefined included.
func TestPlainPathsReadAsTheEvaluatorWould(t *testing.T) {
	input := doc(t, `{"a":{"b":[1,{"c":2}],"n":null,"s":"x","o":{"d":{"e":true}}},"list":[{"c":1},{"c":2}]}`)
	vars := map[string]any{"v": doc(t, `{"k":{"deep":[1]}}`), "arr": doc(t, `[{"c":1},{"c":2}]`), "num": 4.0}
	s := &stepper{run: Run{Input: input, Variables: vars}, opt: Options{}.withDefaults()}
	for _, src := range []string{"$states.input", "$states.input.a", "$states.input.a.b", "$states.input.a.o.d.e",
		"$states.input.a.n", "$states.input.a.n.x", "$states.input.a.s.x", "$states.input.missing", "$states.input.list.c",
		"$v", "$v.k.deep", "$v.nope", "$arr.c", "$num", "$num.x", "$nope", "$states.result", "$states.context.State.Name"} {
		x, err := compileExpr(src)
		if err != nil {
			t.Fatal(err)
		}
		if x.root == "" && !strings.HasPrefix(src, "$states.result") {
			t.Errorf("%s is not read as a plain path", src)
		}
		fast, fastErr := s.newEnv(nil).run(x, "f")
		slow := *x
		slow.root, slow.path = "", nil
		full, fullErr := s.newEnv(nil).run(&slow, "f")
		if !reflect.DeepEqual(fast, full) || (fastErr == nil) != (fullErr == nil) {
			t.Errorf("%s: plain %v (%v), evaluated %v (%v)", src, fast, fastErr, full, fullErr)
		}
	}
}

func TestAJSONataMaxConcurrencyExpressionBoundsTheIterations(t *testing.T) {
	m := mustParse(t, `{"QueryLanguage":"JSONata","StartAt":"Set","States":{
		"Set":{"Type":"Pass","Assign":{"width":2},"Next":"M"},
		"M":{"Type":"Map","Items":[1,2,3,4,5],"MaxConcurrency":"{% $width %}","ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:r","End":true}}},"End":true}}}`)
	run, effs, _ := m.Step(Run{}, Event{Kind: EventStart, Input: map[string]any{}}, Options{})
	if len(effs) != 2 || len(run.Children) != 2 || run.MaxConcurrency != 2 {
		t.Fatalf("%d tasks, %d children, MaxConcurrency %d", len(effs), len(run.Children), run.MaxConcurrency)
	}
	out, _ := driveTasks(t, m, `{}`, echo, true)
	if out.Status != Succeeded || !reflect.DeepEqual(out.Output, []any{1.0, 2.0, 3.0, 4.0, 5.0}) {
		t.Fatalf("run %s %s %v", out.Status, out.Cause, out.Output)
	}
	bad := mustParse(t, `{"QueryLanguage":"JSONata","StartAt":"M","States":{"M":{"Type":"Map","Items":[1],"MaxConcurrency":"{% -1 %}","ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Succeed"}}},"End":true}}}`)
	if out, _ := driveTasks(t, bad, `{}`, nullTasks, false); out.Error != ErrQueryEvaluation {
		t.Fatalf("run %s %s", out.Error, out.Cause)
	}
}

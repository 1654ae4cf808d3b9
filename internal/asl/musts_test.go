package asl

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The specification's MUSTs that peers' test suites found unchecked: each definition is refused
// at validation, with the JSON path of the offending field.
func TestSpecificationMUSTsAreEnforcedAtValidation(t *testing.T) {
	task := func(extra string) string {
		return `{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"test:r",` + extra + `"End":true}}}`
	}
	cases := []struct {
		name, def, path, msg string
	}{
		// Payload templates: field names must stay distinct once ".$" is dropped.
		{"a duplicate field in Parameters is rejected", task(`"Parameters":{"a":1,"a.$":"$.x"},`), "$.States.A.Parameters.a.$", "same name"},
		{"a duplicate field in ResultSelector is rejected", task(`"ResultSelector":{"a.$":"$.x","a":1},`), "$.States.A.ResultSelector.a.$", "same name"},
		{"a duplicate field in a nested object is rejected", task(`"Parameters":{"o":{"b":[{"c":1,"c.$":"$.y"}]}},`), "$.States.A.Parameters.o.b[0].c.$", "same name"},
		{"a duplicate field in ItemSelector is rejected", `{"StartAt":"M","States":{"M":{"Type":"Map","ItemSelector":{"v":1,"v.$":"$$.Map.Item.Value"},"ItemProcessor":{"StartAt":"X","States":{"X":{"Type":"Pass","End":true}}},"End":true}}}`, "$.States.M.ItemSelector.v.$", "same name"},
		{"a duplicate field in a Map's Parameters is rejected", `{"StartAt":"M","States":{"M":{"Type":"Map","Parameters":{"v":1,"v.$":"$"},"Iterator":{"StartAt":"X","States":{"X":{"Type":"Pass","End":true}}},"End":true}}}`, "$.States.M.Parameters.v.$", "same name"},
		{"a duplicate field in a Parallel's Parameters is rejected", `{"StartAt":"P","States":{"P":{"Type":"Parallel","Parameters":{"v":1,"v.$":"$"},"Branches":[{"StartAt":"X","States":{"X":{"Type":"Pass","End":true}}}],"End":true}}}`, "$.States.P.Parameters.v.$", "same name"},
		{"a duplicate field in a Pass's Parameters is rejected", `{"StartAt":"A","States":{"A":{"Type":"Pass","Parameters":{"v":1,"v.$":"$"},"End":true}}}`, "$.States.A.Parameters.v.$", "same name"},

		// State names are unique across the whole machine.
		{"a branch state named like a top state is rejected", `{"StartAt":"A","States":{"A":{"Type":"Parallel","Branches":[{"StartAt":"B","States":{"B":{"Type":"Pass","End":true}}}],"Next":"B"},"B":{"Type":"Succeed"}}}`, "$.States.B", "already used at $.States.A.Branches[0].States.B"},
		{"two branches with the same state name are rejected", `{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[{"StartAt":"X","States":{"X":{"Type":"Pass","End":true}}},{"StartAt":"X","States":{"X":{"Type":"Pass","End":true}}}]}}}`, "$.States.P.Branches[1].States.X", "already used at $.States.P.Branches[0].States.X"},
		{"a Map processor state named like its Map is rejected", `{"StartAt":"M","States":{"M":{"Type":"Map","ItemProcessor":{"StartAt":"M","States":{"M":{"Type":"Pass","End":true}}},"End":true}}}`, "$.States.M.ItemProcessor.States.M", "already used at $.States.M"},

		// A path to a terminal state.
		{"a loop with no terminal state is rejected", `{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},"B":{"Type":"Pass","Next":"A"}}}`, "$.States.A", "no path leads"},
		{"a loop a Choice enters and never leaves is rejected", `{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.x","IsPresent":true,"Next":"L1"}],"Default":"Done"},"L1":{"Type":"Pass","Next":"L2"},"L2":{"Type":"Pass","Next":"L1"},"Done":{"Type":"Succeed"}}}`, "$.States.L2", "no path leads"},
		{"a Task loop without a way out is rejected", `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:r","Next":"W"},"W":{"Type":"Wait","Seconds":1,"Next":"T"}}}`, "$.States.T", "no path leads"},
		{"a loop inside a branch is rejected at the branch", `{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[{"StartAt":"X","States":{"X":{"Type":"Pass","Next":"Y"},"Y":{"Type":"Pass","Next":"X"}}}]}}}`, "$.States.P.Branches[0].States.X", "no path leads"},
		{"a loop inside a Map processor is rejected at the processor", `{"StartAt":"M","States":{"M":{"Type":"Map","End":true,"ItemProcessor":{"StartAt":"X","States":{"X":{"Type":"Pass","Next":"X"}}}}}}`, "$.States.M.ItemProcessor.States.X", "no path leads"},

		// ErrorEquals: a non-empty array of non-empty strings; States.ALL alone and last.
		{"an error name that is not a string is rejected", task(`"Retry":[{"ErrorEquals":[true]}],`), "$.States.A.Retry[0].ErrorEquals[0]", "non-empty string"},
		{"an empty error name is rejected", task(`"Catch":[{"ErrorEquals":[""],"Next":"A"}],`), "$.States.A.Catch[0].ErrorEquals[0]", "non-empty string"},
		{"an empty ErrorEquals is rejected", task(`"Retry":[{"ErrorEquals":[]}],`), "$.States.A.Retry[0].ErrorEquals", "non-empty array"},
		{"ErrorEquals that is not an array is rejected", task(`"Retry":[{"ErrorEquals":"States.ALL"}],`), "$.States.A.Retry[0].ErrorEquals", "non-empty array"},
		{"States.ALL with another name is rejected in a catcher", task(`"Catch":[{"ErrorEquals":["X","States.ALL"],"Next":"A"}],`), "$.States.A.Catch[0].ErrorEquals", "alone"},
		{"a States.ALL catcher that is not last is rejected", task(`"Catch":[{"ErrorEquals":["States.ALL"],"Next":"A"},{"ErrorEquals":["X"],"Next":"A"}],`), "$.States.A.Catch[0].ErrorEquals", "must be the last"},

		// Resource is a URI; payload templates are objects.
		{"a Resource that is not a URI is rejected", `{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"lambda","End":true}}}`, "$.States.A.Resource", "must be a URI"},
		{"a Resource with white space is rejected", `{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"arn:aws:lambda my function","End":true}}}`, "$.States.A.Resource", "must be a URI"},
		{"Parameters that are not an object are rejected", task(`"Parameters":[1,2],`), "$.States.A.Parameters", "JSON object"},
		{"a string ResultSelector is rejected", task(`"ResultSelector":"$.x",`), "$.States.A.ResultSelector", "JSON object"},
		{"a Pass state's scalar Parameters are rejected", `{"StartAt":"A","States":{"A":{"Type":"Pass","Parameters":1,"End":true}}}`, "$.States.A.Parameters", "JSON object"},

		// Constant intrinsic arguments of the wrong type.
		{"States.MathAdd with a string is rejected", task(`"Parameters":{"x.$":"States.MathAdd(1,'-1')"},`), "$.States.A.Parameters.x.$", "argument 2 must be an integer, got the string '-1'"},
		{"States.MathAdd with a fraction is rejected", task(`"Parameters":{"x.$":"States.MathAdd(1.5, $.n)"},`), "$.States.A.Parameters.x.$", "argument 1 must be an integer"},
		{"States.ArrayLength of a literal is rejected", task(`"Parameters":{"x.$":"States.ArrayLength('abc')"},`), "$.States.A.Parameters.x.$", "must be an array"},
		{"States.ArrayGetItem with a string index is rejected", task(`"Parameters":{"x.$":"States.ArrayGetItem($.a, '1')"},`), "$.States.A.Parameters.x.$", "argument 2 must be an integer"},
		{"States.ArrayRange with a boolean is rejected", task(`"Parameters":{"x.$":"States.ArrayRange(1, true, 1)"},`), "$.States.A.Parameters.x.$", "argument 2 must be an integer"},
		{"States.ArrayPartition of a number is rejected", task(`"Parameters":{"x.$":"States.ArrayPartition(1, 2)"},`), "$.States.A.Parameters.x.$", "argument 1 must be an array"},
		{"States.ArrayContains of a string is rejected", task(`"Parameters":{"x.$":"States.ArrayContains('a', 'a')"},`), "$.States.A.Parameters.x.$", "argument 1 must be an array"},
		{"States.ArrayUnique of null is rejected", task(`"Parameters":{"x.$":"States.ArrayUnique(null)"},`), "$.States.A.Parameters.x.$", "must be an array"},
		{"States.StringToJson of a number is rejected", task(`"Parameters":{"x.$":"States.StringToJson(12)"},`), "$.States.A.Parameters.x.$", "must be a string"},
		{"States.Format with a number template is rejected", task(`"Parameters":{"x.$":"States.Format(1, 'a')"},`), "$.States.A.Parameters.x.$", "argument 1 must be a string"},
		{"States.Base64Encode of a number is rejected", task(`"Parameters":{"x.$":"States.Base64Encode(1)"},`), "$.States.A.Parameters.x.$", "must be a string"},
		{"States.Base64Decode of a boolean is rejected", task(`"Parameters":{"x.$":"States.Base64Decode(false)"},`), "$.States.A.Parameters.x.$", "must be a string"},
		{"States.Hash with an unknown algorithm is rejected", task(`"Parameters":{"x.$":"States.Hash($.d, 'CRC32')"},`), "$.States.A.Parameters.x.$", "unknown algorithm"},
		{"States.Hash with a number algorithm is rejected", task(`"Parameters":{"x.$":"States.Hash($.d, 256)"},`), "$.States.A.Parameters.x.$", "argument 2 must be a string"},
		{"States.JsonMerge of literals is rejected", task(`"Parameters":{"x.$":"States.JsonMerge('a', $.b, false)"},`), "$.States.A.Parameters.x.$", "argument 1 must be an object"},
		{"a deep States.JsonMerge is rejected", task(`"Parameters":{"x.$":"States.JsonMerge($.a, $.b, true)"},`), "$.States.A.Parameters.x.$", "shallow merge"},
		{"States.JsonMerge with a string flag is rejected", task(`"Parameters":{"x.$":"States.JsonMerge($.a, $.b, 'false')"},`), "$.States.A.Parameters.x.$", "argument 3 must be a boolean"},
		{"States.MathRandom with a string seed is rejected", task(`"Parameters":{"x.$":"States.MathRandom(1, 10, 'seed')"},`), "$.States.A.Parameters.x.$", "argument 3 must be an integer"},
		{"States.StringSplit with a number separator is rejected", task(`"Parameters":{"x.$":"States.StringSplit($.s, 1)"},`), "$.States.A.Parameters.x.$", "argument 2 must be a string"},
		{"a nested call of the wrong result type is rejected", task(`"Parameters":{"x.$":"States.MathAdd(States.Format('1'), 1)"},`), "$.States.A.Parameters.x.$", "the result of States.Format"},
		{"a constant over the 10,000-character limit is rejected", task(`"Parameters":{"x.$":"States.Base64Encode('` + strings.Repeat("a", 10001) + `')"},`), "$.States.A.Parameters.x.$", "at most 10000"},
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
}

// What the MUSTs leave alone: definitions Step Functions accepts stay valid.
func TestSpecificationMUSTsAcceptValidDefinitions(t *testing.T) {
	for name, def := range map[string]string{
		"a polling loop with a way out": `{"StartAt":"Check","States":{"Check":{"Type":"Task","Resource":"millrace:http","Next":"Done?"},
			"Done?":{"Type":"Choice","Choices":[{"Variable":"$.done","BooleanEquals":true,"Next":"End"}],"Default":"Wait"},
			"Wait":{"Type":"Wait","Seconds":5,"Next":"Check"},"End":{"Type":"Succeed"}}}`,
		"a loop left only by a Catch":              `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::sqs:sendMessage","Next":"T","Catch":[{"ErrorEquals":["States.ALL"],"Next":"F"}]},"F":{"Type":"Fail","Error":"E"}}}`,
		"the same field name in different objects": `{"StartAt":"A","States":{"A":{"Type":"Pass","Parameters":{"a":1,"o":{"a.$":"$.x"}},"End":true}}}`,
		"intrinsic arguments of the right types": `{"StartAt":"A","States":{"A":{"Type":"Pass","Parameters":{
			"a.$":"States.MathAdd(States.ArrayLength($.l), -1)","b.$":"States.Format('{} {} {}', 1, true, null)",
			"c.$":"States.Hash(States.Format('x'), 'SHA-256')","d.$":"States.ArrayGetItem(States.Array(1, 2), 0)",
			"e.$":"States.JsonMerge($.a, States.StringToJson('{}'), false)"},"End":true}}}`,
		"resources of several schemes": `{"StartAt":"A","States":{"A":{"Type":"Task","Resource":"millrace:consumer/x","Next":"B"},"B":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:123456789012:function:f","End":true}}}`,
	} {
		t.Run(name, func(t *testing.T) { mustParse(t, def) })
	}
}

// SecondsPath and TimestampPath select what their state waits for; anything else fails the run
// with States.Runtime (a Wait state has no Retry or Catch) instead of waiting a fraction of a
// second or until a time read some other way.
func TestWaitPathsMustSelectAnIntegerOrATimestamp(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cases := []struct {
		field, input string
		wait         time.Duration // < 0: the run fails with States.Runtime
	}{
		{"SecondsPath", `{"v":30}`, 30 * time.Second},
		{"SecondsPath", `{"v":0}`, 0},
		{"SecondsPath", `{"v":1.5}`, -1},
		{"SecondsPath", `{"v":-1}`, -1},
		{"SecondsPath", `{"v":"30"}`, -1},
		{"SecondsPath", `{}`, -1},
		{"TimestampPath", `{"v":"2026-01-01T00:01:00Z"}`, time.Minute},
		{"TimestampPath", `{"v":"2026-01-01T00:01:00+01:00"}`, 0},
		{"TimestampPath", `{"v":"2026-01-01 00:01:00"}`, -1},
		{"TimestampPath", `{"v":"2026-01-01T00:01:00"}`, -1},
		{"TimestampPath", `{"v":1767225660}`, -1},
	}
	for _, tc := range cases {
		t.Run(tc.field+" "+tc.input, func(t *testing.T) {
			m := mustParse(t, `{"StartAt":"W","States":{"W":{"Type":"Wait","`+tc.field+`":"$.v","End":true}}}`)
			run, eff, _ := m.Step(Run{}, Event{Kind: EventStart, At: t0, Input: doc(t, tc.input)}, Options{})
			switch {
			case tc.wait < 0:
				if run.Status != Failed || run.Error != ErrRuntime {
					t.Fatalf("run %s %s (%s), want FAILED States.Runtime", run.Status, run.Error, run.Cause)
				}
			case tc.wait == 0:
				if run.Status != Succeeded {
					t.Fatalf("run %s %s (%s), want SUCCEEDED at once", run.Status, run.Error, run.Cause)
				}
			default:
				if run.Status != Running || len(eff) != 1 || !eff[0].Until.Equal(t0.Add(tc.wait)) {
					t.Fatalf("run %s (%s), effects %+v; want a wait of %s", run.Status, run.Cause, eff, tc.wait)
				}
			}
		})
	}
}

// States.Base64Encode, States.Base64Decode and States.Hash take at most 10,000 characters (counted
// as characters, not bytes); beyond, States.IntrinsicFailure, which a Catch can handle.
func TestIntrinsicInputLimitsFailWithIntrinsicFailure(t *testing.T) {
	long := strings.Repeat("é", MaxIntrinsicInputChars) // 10,000 characters, 20,000 bytes
	b64 := strings.Repeat("QUJD", MaxIntrinsicInputChars/4)
	cases := []struct {
		expr, input string
		ok          bool
	}{
		{"States.Base64Encode($.s)", long, true},
		{"States.Base64Encode($.s)", long + "e", false},
		{"States.Base64Decode($.s)", b64, true},
		{"States.Base64Decode($.s)", b64 + "QUJD", false},
		{"States.Hash($.s, 'SHA-256')", long, true},
		{"States.Hash($.s, 'MD5')", long + "e", false},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s of %d characters", tc.expr, utf8.RuneCountInString(tc.input)), func(t *testing.T) {
			m := mustParse(t, `{"StartAt":"A","States":{"A":{"Type":"Pass","Parameters":{"r.$":"`+tc.expr+`"},"End":true}}}`)
			run, _, _ := m.Step(Run{}, Event{Kind: EventStart, Input: map[string]any{"s": tc.input}}, Options{})
			if tc.ok && run.Status != Succeeded {
				t.Fatalf("run %s %s (%s), want SUCCEEDED", run.Status, run.Error, run.Cause)
			}
			if !tc.ok && (run.Status != Failed || run.Error != ErrIntrinsicFailure) {
				t.Fatalf("run %s %s (%s), want FAILED States.IntrinsicFailure", run.Status, run.Error, run.Cause)
			}
		})
	}
}

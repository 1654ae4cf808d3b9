package asl

import (
	"strings"
	"testing"
)

// TestJSONataAndVariablesValidation: every definition error of the query languages and of
// variables is reported when the definition is parsed, at the offending field's path.
func TestJSONataAndVariablesValidation(t *testing.T) {
	jsonata := func(states string) string {
		return `{"QueryLanguage":"JSONata","StartAt":"A","States":{` + states + `}}`
	}
	jsonpath := func(states string) string { return `{"StartAt":"A","States":{` + states + `}}` }
	cases := []struct{ name, def, path, msg string }{
		{"an unknown query language", `{"QueryLanguage":"XPath","StartAt":"A","States":{"A":{"Type":"Succeed"}}}`, "$.QueryLanguage", "JSONPath or JSONata"},
		{"an unknown state query language", jsonpath(`"A":{"Type":"Succeed","QueryLanguage":"jsonata"}`), "$.States.A.QueryLanguage", "JSONPath or JSONata"},
		{"a JSONPath state in a JSONata machine", jsonata(`"A":{"Type":"Pass","QueryLanguage":"JSONPath","End":true}`), "$.States.A.QueryLanguage", "cannot have JSONPath states"},
		{"a JSONPath state nested in a JSONata machine", jsonata(`"A":{"Type":"Map","ItemProcessor":{"StartAt":"I","States":{"I":{"Type":"Pass","QueryLanguage":"JSONPath","End":true}}},"End":true}`), "$.States.A.ItemProcessor.States.I.QueryLanguage", "cannot have JSONPath states"},
		{"InputPath in a JSONata state", jsonata(`"A":{"Type":"Pass","InputPath":"$.a","End":true}`), "$.States.A.InputPath", "only allowed in JSONPath states"},
		{"Parameters in a JSONata state", jsonata(`"A":{"Type":"Task","Resource":"test:r","Parameters":{"a":1},"End":true}`), "$.States.A.Parameters", "only allowed in JSONPath states"},
		{"ResultSelector in a JSONata state", jsonata(`"A":{"Type":"Task","Resource":"test:r","ResultSelector":{"a":1},"End":true}`), "$.States.A.ResultSelector", "only allowed in JSONPath states"},
		{"ResultPath in a JSONata state", jsonata(`"A":{"Type":"Pass","ResultPath":"$.a","End":true}`), "$.States.A.ResultPath", "only allowed in JSONPath states"},
		{"OutputPath in a JSONata state", jsonata(`"A":{"Type":"Succeed","OutputPath":"$.a"}`), "$.States.A.OutputPath", "only allowed in JSONPath states"},
		{"Result in a JSONata state", jsonata(`"A":{"Type":"Pass","Result":1,"End":true}`), "$.States.A.Result", "only allowed in JSONPath states"},
		{"SecondsPath in a JSONata state", jsonata(`"A":{"Type":"Wait","SecondsPath":"$.s","End":true}`), "$.States.A.SecondsPath", "only allowed in JSONPath states"},
		{"TimestampPath in a JSONata state", jsonata(`"A":{"Type":"Wait","TimestampPath":"$.s","End":true}`), "$.States.A.TimestampPath", "only allowed in JSONPath states"},
		{"ItemsPath in a JSONata state", jsonata(`"A":{"Type":"Map","ItemsPath":"$.s","ItemProcessor":{"StartAt":"I","States":{"I":{"Type":"Succeed"}}},"End":true}`), "$.States.A.ItemsPath", "only allowed in JSONPath states"},
		{"ErrorPath in a JSONata state", jsonata(`"A":{"Type":"Fail","ErrorPath":"$.e"}`), "$.States.A.ErrorPath", "only allowed in JSONPath states"},
		{"a .$ key in Arguments", jsonata(`"A":{"Type":"Task","Resource":"test:r","Arguments":{"a.$":"$.a"},"End":true}`), "$.States.A.Arguments.a.$", `keys ending in ".$" are JSONPath`},
		{"a .$ key deep in Output", jsonata(`"A":{"Type":"Pass","Output":{"x":[{"a.$":"$.a"}]},"End":true}`), "$.States.A.Output.x[0].a.$", `keys ending in ".$" are JSONPath`},
		{"a .$ key in a JSONata Assign", jsonata(`"A":{"Type":"Pass","Assign":{"a.$":"$.a"},"End":true}`), "$.States.A.Assign.a.$", `keys ending in ".$" are JSONPath`},
		{"Arguments in a JSONPath state", jsonpath(`"A":{"Type":"Task","Resource":"test:r","Arguments":{},"End":true}`), "$.States.A.Arguments", "only allowed in JSONata states"},
		{"Output in a JSONPath state", jsonpath(`"A":{"Type":"Pass","Output":{},"End":true}`), "$.States.A.Output", "only allowed in JSONata states"},
		{"Items in a JSONPath state", jsonpath(`"A":{"Type":"Map","Items":[1],"ItemProcessor":{"StartAt":"I","States":{"I":{"Type":"Succeed"}}},"End":true}`), "$.States.A.Items", "only allowed in JSONata states"},
		{"Condition in a JSONPath rule", jsonpath(`"A":{"Type":"Choice","Choices":[{"Condition":true,"Next":"B"}]},"B":{"Type":"Succeed"}`), "$.States.A.Choices[0].Condition", "only allowed in JSONata states"},
		{"Output in a JSONPath rule", jsonpath(`"A":{"Type":"Choice","Choices":[{"Variable":"$.a","IsPresent":true,"Output":{},"Next":"B"}]},"B":{"Type":"Succeed"}`), "$.States.A.Choices[0].Output", "only allowed in JSONata states"},
		{"Variable in a JSONata rule", jsonata(`"A":{"Type":"Choice","Choices":[{"Variable":"$.a","IsPresent":true,"Condition":true,"Next":"B"}]},"B":{"Type":"Succeed"}`), "$.States.A.Choices[0].Variable", "only allowed in JSONPath states"},
		{"a JSONata rule without Condition", jsonata(`"A":{"Type":"Choice","Choices":[{"Next":"B"}]},"B":{"Type":"Succeed"}`), "$.States.A.Choices[0].Condition", "needs a Condition"},
		{"a Condition that is neither boolean nor expression", jsonata(`"A":{"Type":"Choice","Choices":[{"Condition":"yes","Next":"B"}]},"B":{"Type":"Succeed"}`), "$.States.A.Choices[0].Condition", "true, false or a JSONata expression"},
		{"Output in a JSONPath catcher", jsonpath(`"A":{"Type":"Task","Resource":"test:r","Catch":[{"ErrorEquals":["States.ALL"],"Output":{},"Next":"B"}],"End":true},"B":{"Type":"Succeed"}`), "$.States.A.Catch[0].Output", "only allowed in JSONata states"},
		{"ResultPath in a JSONata catcher", jsonata(`"A":{"Type":"Task","Resource":"test:r","Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.e","Next":"B"}],"End":true},"B":{"Type":"Succeed"}`), "$.States.A.Catch[0].ResultPath", "only allowed in JSONPath states"},
		{"text around an expression", jsonata(`"A":{"Type":"Pass","Output":"total: {% $states.input.total %}","End":true}`), "$.States.A.Output", "must be the whole string"},
		{"a space before an expression", jsonata(`"A":{"Type":"Pass","Output":{"a":" {% 1 %}"},"End":true}`), "$.States.A.Output.a", "must be the whole string"},
		{"an expression not wrapped in a numeric field", jsonata(`"A":{"Type":"Task","Resource":"test:r","TimeoutSeconds":"{% 5 %} s","End":true}`), "$.States.A.TimeoutSeconds", "must be the whole string"},
		{"a JSONata syntax error", jsonata(`"A":{"Type":"Pass","Output":{"a":"{% $states.input. %}"},"End":true}`), "$.States.A.Output.a", "JSONata syntax error"},
		{"a syntax error in a Condition", jsonata(`"A":{"Type":"Choice","Choices":[{"Condition":"{% $x = %}","Next":"B"}]},"B":{"Type":"Succeed"}`), "$.States.A.Choices[0].Condition", "JSONata syntax error"},
		{"a syntax error in a Wait's Seconds", jsonata(`"A":{"Type":"Wait","Seconds":"{% ( %}","End":true}`), "$.States.A.Seconds", "JSONata syntax error"},
		{"a syntax error in a catcher's Assign", jsonata(`"A":{"Type":"Task","Resource":"test:r","Catch":[{"ErrorEquals":["States.ALL"],"Assign":{"e":"{% $states.errorOutput[ %}"},"Next":"B"}],"End":true},"B":{"Type":"Succeed"}`), "$.States.A.Catch[0].Assign.e", "JSONata syntax error"},
		{"a JSONPath state's Output written in a JSONata state machine's JSONPath state", jsonpath(`"A":{"Type":"Pass","QueryLanguage":"JSONata","Output":"{% [ %}","End":true}`), "$.States.A.Output", "JSONata syntax error"},
		{"Items that are neither array nor expression", jsonata(`"A":{"Type":"Map","Items":{"a":1},"ItemProcessor":{"StartAt":"I","States":{"I":{"Type":"Succeed"}}},"End":true}`), "$.States.A.Items", "array or a JSONata expression"},
		{"an expression in Resource", jsonata(`"A":{"Type":"Task","Resource":"{% $r %}","End":true}`), "$.States.A.Resource", "must be a constant"},
		{"Assign on a Succeed state", jsonata(`"A":{"Type":"Succeed","Assign":{"a":1}}`), "$.States.A.Assign", "not allowed in a Succeed state"},
		{"Assign on a Fail state", jsonpath(`"A":{"Type":"Fail","Assign":{"a":1}}`), "$.States.A.Assign", "not allowed in a Fail state"},
		{"Output on a Fail state", jsonata(`"A":{"Type":"Fail","Output":{}}`), "$.States.A.Output", "not allowed in a Fail state"},
		{"Assign that is not an object", jsonpath(`"A":{"Type":"Pass","Assign":[1],"End":true}`), "$.States.A.Assign", "must be an object"},
		{"a variable name starting with a digit", jsonpath(`"A":{"Type":"Pass","Assign":{"1x":1},"End":true}`), "$.States.A.Assign.1x", "not a variable name"},
		{"a variable name with a hyphen", jsonata(`"A":{"Type":"Pass","Assign":{"a-b":1},"End":true}`), "$.States.A.Assign.a-b", "not a variable name"},
		{"a variable name of 81 characters", jsonpath(`"A":{"Type":"Pass","Assign":{"` + strings.Repeat("v", 81) + `":1},"End":true}`), "$.States.A.Assign." + strings.Repeat("v", 81), "at most 80 characters"},
		{"assigning the reserved states", jsonata(`"A":{"Type":"Pass","Assign":{"states":1},"End":true}`), "$.States.A.Assign.states", "reserved"},
		{"a variable assigned twice in JSONPath", jsonpath(`"A":{"Type":"Pass","Assign":{"x":1,"x.$":"$.x"},"End":true}`), "$.States.A.Assign.x.$", "assigned twice"},
		{"a bad path in a JSONPath Assign", jsonpath(`"A":{"Type":"Pass","Assign":{"x.$":"$..a..b"},"End":true}`), "$.States.A.Assign.x.$", "descendant"},
		{"a bad variable in a path", jsonpath(`"A":{"Type":"Pass","InputPath":"$1x.a","End":true}`), "$.States.A.InputPath", "not a variable name"},
		{"a ResultPath naming a variable", jsonpath(`"A":{"Type":"Pass","ResultPath":"$x","End":true}`), "$.States.A.ResultPath", "ResultPath cannot name a variable"},
		{"a catcher's ResultPath naming a variable", jsonpath(`"A":{"Type":"Task","Resource":"test:r","Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$x.e","Next":"B"}],"End":true},"B":{"Type":"Succeed"}`), "$.States.A.Catch[0].ResultPath", "ResultPath cannot name a variable"},
		{"a Map iteration assigning an outer variable", jsonata(`"A":{"Type":"Pass","Assign":{"outer":"hello"},"Next":"M"},"M":{"Type":"Map","ItemProcessor":{"StartAt":"I","States":{"I":{"Type":"Pass","Assign":{"outer":"no"},"End":true}}},"End":true}`), "$.States.M.ItemProcessor.States.I.Assign", `variable "outer" is assigned in an enclosing scope`},
		{"a branch assigning a variable the Parallel state's own Assign sets", jsonpath(`"A":{"Type":"Parallel","Assign":{"total.$":"$[0]"},"Branches":[{"StartAt":"I","States":{"I":{"Type":"Choice","Choices":[{"Variable":"$.a","IsPresent":true,"Assign":{"total":1},"Next":"J"}],"Default":"J"},"J":{"Type":"Succeed"}}}],"End":true}`), "$.States.A.Branches[0].States.I.Choices[0].Assign", `variable "total" is assigned in an enclosing scope`},
		{"a nested Map assigning a variable of the Map around it", jsonata(`"A":{"Type":"Map","ItemProcessor":{"StartAt":"I","States":{"I":{"Type":"Pass","Assign":{"mid":1},"Next":"N"},"N":{"Type":"Map","ItemProcessor":{"StartAt":"J","States":{"J":{"Type":"Task","Resource":"test:r","Catch":[{"ErrorEquals":["States.ALL"],"Assign":{"mid":2},"Next":"K"}],"End":true},"K":{"Type":"Succeed"}}},"End":true}}},"End":true}`), "$.States.A.ItemProcessor.States.N.ItemProcessor.States.J.Catch[0].Assign", `variable "mid" is assigned in an enclosing scope`},
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

// TestValidJSONataAndVariableDefinitionsAreAccepted: what the validation must not refuse.
func TestValidJSONataAndVariableDefinitionsAreAccepted(t *testing.T) {
	for _, def := range []string{
		// sibling branches may use the same names; a JSONata state in a JSONPath machine
		`{"StartAt":"P","States":{"P":{"Type":"Parallel","Branches":[
			{"StartAt":"A","States":{"A":{"Type":"Pass","Assign":{"x":1},"End":true}}},
			{"StartAt":"B","States":{"B":{"Type":"Pass","QueryLanguage":"JSONata","Assign":{"x":"{% 2 %}"},"End":true}}}],"Next":"Q"},
		  "Q":{"Type":"Pass","Assign":{"y.$":"$[0]"},"End":true}}}`,
		// a Map state's own Catch may assign a variable of its scope
		`{"QueryLanguage":"JSONata","StartAt":"M","States":{"M":{"Type":"Map","Items":[1],"ItemProcessor":{"StartAt":"I","States":{"I":{"Type":"Succeed"}}},
			"Catch":[{"ErrorEquals":["States.ALL"],"Assign":{"failed":true},"Output":"{% $states.errorOutput %}","Next":"F"}],"Assign":{"failed":false},"End":true},
		  "F":{"Type":"Fail","Error":"{% 'E' %}","Cause":"static"}}}`,
		// constants where expressions may be; Unicode variable names; a Condition constant
		`{"QueryLanguage":"JSONata","StartAt":"W","States":{"W":{"Type":"Wait","Seconds":1,"Next":"T"},
		  "T":{"Type":"Task","Resource":"test:r","TimeoutSeconds":10,"HeartbeatSeconds":"{% 3 %}","Assign":{"straße":1,"número_2":2},"Next":"C"},
		  "C":{"Type":"Choice","Choices":[{"Condition":true,"Next":"S"}]},"S":{"Type":"Succeed","Output":[1,"{% $straße %}"]}}}`,
		// JSONata strings are only expressions in JSONata states; JSONPath strings stay text
		`{"StartAt":"A","States":{"A":{"Type":"Pass","Result":{"a":"{% not an expression %}"},"Assign":{"x":"{% also text %}"},"End":true}}}`,
	} {
		if _, errs := Parse([]byte(def)); len(errs) > 0 {
			t.Errorf("refused: %v\n%s", errs, def)
		}
	}
}

package asl

import (
	"maps"
	"slices"
	"strings"
)

// jsonPathOnly are the state fields of JSONPath states only; jsonataOnly those of JSONata states.
var (
	jsonPathOnly = []string{"InputPath", "OutputPath", "ResultPath", "Parameters", "ResultSelector", "Result",
		"SecondsPath", "TimestampPath", "ErrorPath", "CausePath", "ItemsPath",
		// The Path forms of the newer fields: a JSONata state writes an expression in the field.
		"TimeoutSecondsPath", "HeartbeatSecondsPath", "MaxConcurrencyPath", "ToleratedFailureCountPath", "ToleratedFailurePercentagePath"}
	jsonataOnly = []string{"Arguments", "Output", "Items"}
)

// allowedFields are the fields a state of type typ may have in query language ql (besides Type
// and Comment).
func allowedFields(typ, ql string) []string {
	base := stateFields[typ]
	out := make([]string, 0, len(base)+4)
	out = append(out, "QueryLanguage")
	if typ != "Succeed" && typ != "Fail" {
		out = append(out, "Assign")
	}
	if ql == QueryJSONPath {
		return append(out, base...)
	}
	for _, f := range base {
		if !slices.Contains(jsonPathOnly, f) {
			out = append(out, f)
		}
	}
	if typ != "Fail" {
		out = append(out, "Output")
	}
	switch typ {
	case "Task", "Parallel":
		out = append(out, "Arguments")
	case "Map":
		out = append(out, "Items")
	}
	return out
}

// fieldNotAllowed reports a field the state may not have, saying why when it belongs to the
// other query language.
func (p *parser) fieldNotAllowed(at, field, typ, ql string) {
	switch {
	case ql == QueryJSONata && slices.Contains(jsonPathOnly, field):
		p.add(at+"."+field, "field %q is only allowed in JSONPath states; this state's QueryLanguage is JSONata (use Arguments, Output and {%% %%} expressions)", field)
	case ql == QueryJSONPath && slices.Contains(jsonataOnly, field):
		p.add(at+"."+field, "field %q is only allowed in JSONata states; this state's QueryLanguage is JSONPath (set \"QueryLanguage\": \"JSONata\")", field)
	default:
		p.add(at+"."+field, "field %q is not allowed in a %s state", field, typ)
	}
}

// machineQL reads a state machine's top-level QueryLanguage (JSONPath when absent).
func (p *parser) machineQL(obj map[string]any, at string) string {
	v, ok := obj["QueryLanguage"]
	if !ok {
		return QueryJSONPath
	}
	if v != QueryJSONPath && v != QueryJSONata {
		p.add(at+".QueryLanguage", "QueryLanguage must be JSONPath or JSONata")
		return QueryJSONPath
	}
	return v.(string)
}

// stateQL reads a state's QueryLanguage: its own, or the state machine's. A JSONata machine may
// not have JSONPath states.
func (p *parser) stateQL(obj map[string]any, at string) string {
	v, ok := obj["QueryLanguage"]
	if !ok {
		return p.topQL
	}
	switch {
	case v != QueryJSONPath && v != QueryJSONata:
		p.add(at+".QueryLanguage", "QueryLanguage must be JSONPath or JSONata")
		return p.topQL
	case v == QueryJSONPath && p.topQL == QueryJSONata:
		p.add(at+".QueryLanguage", "a state machine whose QueryLanguage is JSONata cannot have JSONPath states")
		return QueryJSONata
	}
	return v.(string)
}

// assign parses an Assign field and records the variables it assigns in the current scope.
func (p *parser) assign(v any, at, ql string) *Assign {
	a, errs := parseAssign(v, at, ql)
	p.errs = append(p.errs, errs...)
	p.noteAssign(a, at)
	return a
}

// value compiles a JSONata value.
func (p *parser) value(v any, at string) *Value {
	val, errs := compileValue(v, at)
	p.errs = append(p.errs, errs...)
	return val
}

// jsonataFields parses the fields of a JSONata state that take JSONata values, and returns the
// state's object without them (and without the JSONPath-only fields, already reported) for the
// parsing both languages share. Numbers and strings that may be expressions (TimeoutSeconds,
// Seconds, Error...) are taken out only when they are expressions.
func (p *parser) jsonataFields(s *State, obj map[string]any, at string, allowed []string) map[string]any {
	rest := maps.Clone(obj)
	for _, f := range jsonPathOnly {
		delete(rest, f)
	}
	jf := &JSONataFields{}
	s.JSONata = jf
	take := func(field string) *Value {
		v, ok := obj[field]
		if !ok || !slices.Contains(allowed, field) {
			return nil
		}
		delete(rest, field)
		return p.value(v, at+"."+field)
	}
	jf.Arguments = take("Arguments")
	jf.Output = take("Output")
	if s.Type == "Map" {
		jf.ItemSelector = take("ItemSelector")
		if jf.Items = take("Items"); jf.Items != nil && jf.Items.expr == nil {
			if _, ok := jf.Items.raw.([]any); !ok {
				p.add(at+".Items", "Items must be an array or a JSONata expression giving one")
			}
		}
	}
	// expression takes a field that may be a constant or an expression: only an expression.
	expression := func(field string) *Value {
		str, ok := obj[field].(string)
		if !ok || !slices.Contains(allowed, field) {
			return nil
		}
		if !isExpression(str) {
			if strings.Contains(str, "{%") {
				p.add(at+"."+field, "%s", wrapMessage)
				delete(rest, field)
			}
			return nil
		}
		delete(rest, field)
		return p.value(str, at+"."+field)
	}
	switch s.Type {
	case "Task":
		jf.TimeoutSeconds = expression("TimeoutSeconds")
		jf.HeartbeatSeconds = expression("HeartbeatSeconds")
		if r, _ := obj["Resource"].(string); strings.Contains(r, "{%") {
			p.add(at+".Resource", "Resource must be a constant: it cannot be a JSONata expression")
		}
	case "Wait":
		if jf.Seconds = expression("Seconds"); jf.Seconds != nil {
			rest["Seconds"] = 0.0 // counted as the Wait's one duration; the expression gives it
		}
		if jf.Timestamp = expression("Timestamp"); jf.Timestamp != nil {
			rest["Timestamp"] = "1970-01-01T00:00:00Z"
		}
	case "Fail":
		jf.Error = expression("Error")
		jf.Cause = expression("Cause")
	case "Map":
		jf.MaxConcurrency = expression("MaxConcurrency")
		jf.ToleratedFailureCount = expression("ToleratedFailureCount")
		jf.ToleratedFailurePercentage = expression("ToleratedFailurePercentage")
		if b, ok := obj["ItemBatcher"].(map[string]any); ok && slices.Contains(allowed, "ItemBatcher") {
			rest["ItemBatcher"] = p.jsonataBatcher(jf, b, at+".ItemBatcher")
		}
	}
	return rest
}

// jsonataBatcher takes the JSONata parts of a JSONata Map's ItemBatcher: MaxItemsPerBatch and
// MaxInputBytesPerBatch may be expressions (their Path forms are JSONPath's), BatchInput is a
// JSONata value. It returns the ItemBatcher for the shared parsing, with a placeholder for each
// expression (jsonataFixup clears them).
func (p *parser) jsonataBatcher(jf *JSONataFields, b map[string]any, at string) map[string]any {
	rest := maps.Clone(b)
	for _, f := range []string{"MaxItemsPerBatch", "MaxInputBytesPerBatch"} {
		if _, ok := b[f+"Path"]; ok {
			p.add(at+"."+f+"Path", "field %q is only allowed in JSONPath states; in a JSONata state write %s as a JSONata expression (\"{%% ... %%}\")", f+"Path", f)
			delete(rest, f+"Path")
		}
		str, ok := b[f].(string)
		if !ok {
			continue
		}
		if !isExpression(str) {
			if strings.Contains(str, "{%") {
				p.add(at+"."+f, "%s", wrapMessage)
				delete(rest, f)
			}
			continue
		}
		v := p.value(str, at+"."+f)
		if f == "MaxItemsPerBatch" {
			jf.MaxItemsPerBatch = v
		} else {
			jf.MaxInputBytesPerBatch = v
		}
		rest[f] = 1.0 // a maximum, which the expression gives
	}
	if v, ok := b["BatchInput"]; ok {
		delete(rest, "BatchInput")
		jf.BatchInput = p.value(v, at+".BatchInput")
		if _, isObj := v.(map[string]any); !isObj && jf.BatchInput.expr == nil {
			p.add(at+".BatchInput", "BatchInput must be a JSON object or a JSONata expression giving one")
		}
	}
	return rest
}

// jsonataFixup clears the placeholders jsonataFields left for the shared parsing.
func (p *parser) jsonataFixup(s *State) {
	if s.JSONata == nil {
		return
	}
	if s.JSONata.Seconds != nil {
		s.Seconds = nil
	}
	if s.JSONata.Timestamp != nil {
		s.Timestamp = ""
	}
	if b := s.ItemBatcher; b != nil {
		if s.JSONata.MaxItemsPerBatch != nil {
			b.MaxItemsPerBatch = 0
		}
		if s.JSONata.MaxInputBytesPerBatch != nil {
			b.MaxInputBytesPerBatch = 0
		}
	}
}

// choiceRule parses a top-level Choice rule of a state of query language ql.
func (p *parser) choiceRule(ro map[string]any, at, ql string) *ChoiceRule {
	if ql == QueryJSONata {
		return p.jsonataRule(ro, at)
	}
	rest, cloned := ro, false
	var assign *Assign
	for _, k := range []string{"Assign", "Condition", "Output"} {
		v, ok := ro[k]
		if !ok {
			continue
		}
		if !cloned {
			rest, cloned = maps.Clone(ro), true
		}
		delete(rest, k)
		if k == "Assign" {
			assign = p.assign(v, at+".Assign", ql)
		} else {
			p.add(at+"."+k, "field %q of a choice rule is only allowed in JSONata states; this state's QueryLanguage is JSONPath", k)
		}
	}
	r, errs := parseChoiceRule(rest, at, true)
	p.errs = append(p.errs, errs...)
	r.Assign = assign
	return r
}

// jsonataRule parses a top-level rule of a JSONata Choice state: Condition, Next, Assign, Output.
func (p *parser) jsonataRule(ro map[string]any, at string) *ChoiceRule {
	r := &ChoiceRule{}
	for k, v := range ro {
		switch k {
		case "Condition":
			r.Condition = p.value(v, at+".Condition")
			if _, isBool := v.(bool); !isBool && r.Condition.expr == nil {
				p.add(at+".Condition", "Condition must be true, false or a JSONata expression")
			}
		case "Next":
			r.Next, _ = v.(string)
		case "Assign":
			r.Assign = p.assign(v, at+".Assign", QueryJSONata)
		case "Output":
			r.Output = p.value(v, at+".Output")
		case "Comment":
		default:
			if k == "Variable" || k == "And" || k == "Or" || k == "Not" || isComparison(k) {
				p.add(at+"."+k, "field %q of a choice rule is only allowed in JSONPath states; a JSONata rule has a Condition", k)
			} else {
				p.add(at+"."+k, "unknown field %q in a choice rule", k)
			}
		}
	}
	if r.Condition == nil {
		p.add(at+".Condition", "a JSONata choice rule needs a Condition")
	}
	if r.Next == "" {
		p.add(at+".Next", "a top-level choice rule needs Next")
	}
	return r
}

// catcherField parses a Catcher's Assign and Output; false if k is neither.
func (p *parser) catcherField(c *Catcher, k string, v any, at string) bool {
	switch k {
	case "Assign":
		c.Assign = p.assign(v, at+".Assign", p.ql)
	case "Output":
		if p.ql != QueryJSONata {
			p.add(at+".Output", "field \"Output\" of a catcher is only allowed in JSONata states; this state's QueryLanguage is JSONPath (use ResultPath)")
			return true
		}
		c.Output = p.value(v, at+".Output")
	case "ResultPath":
		if p.ql != QueryJSONata {
			return false
		}
		p.add(at+".ResultPath", "field \"ResultPath\" of a catcher is only allowed in JSONPath states; this state's QueryLanguage is JSONata (use Output)")
	default:
		return false
	}
	return true
}

package asl

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// FieldError is a validation error at a JSON path of the definition.
type FieldError struct {
	Path    string
	Message string
}

func (e FieldError) Error() string { return e.Path + ": " + e.Message }

// Machine is a parsed, validated state machine (or a Parallel branch / Map item processor).
type Machine struct {
	Comment        string
	StartAt        string
	States         map[string]*State
	TimeoutSeconds int
	// QueryLanguage is the state machine's (JSONPath or JSONata), the default of its states.
	QueryLanguage string
	// assigned are the variables the machine's states assign (its scope), with where.
	assigned map[string]string
}

// OptPath is an InputPath/OutputPath/ResultPath: absent (the default, "$"), null (discard), or a path.
type OptPath struct {
	Set, Null bool
	Path      Path
}

// Retrier is one Retry entry.
type Retrier struct {
	ErrorEquals     []string
	IntervalSeconds float64
	MaxAttempts     int
	BackoffRate     float64
	MaxDelaySeconds float64
	JitterStrategy  string
}

// Catcher is one Catch entry.
type Catcher struct {
	ErrorEquals []string
	Next        string
	ResultPath  OptPath
	// Assign and (JSONata) Output are evaluated against the Error Output when the catcher is taken.
	Assign *Assign
	Output *Value
}

// State is one state of a machine.
type State struct {
	Name, Type string
	Next       string
	End        bool

	InputPath, OutputPath, ResultPath    OptPath
	Parameters, ResultSelector, Selector *Template
	Result                               any
	HasResult                            bool

	Resource                         string
	TimeoutSeconds, HeartbeatSeconds int
	Retry                            []Retrier
	Catch                            []Catcher

	Choices []*ChoiceRule
	Default string

	Seconds       *float64
	Timestamp     string
	SecondsPath   *Path
	TimestampPath *Path

	Error, Cause         string
	ErrorPath, CausePath *Expr

	Branches       []*Machine
	ItemsPath      *Path
	ItemProcessor  *Machine
	MaxConcurrency int

	// The newer Task and Map fields (fields.go).
	TimeoutSecondsPath, HeartbeatSecondsPath *Path
	Credentials                              *Template
	MaxConcurrencyPath                       *Path
	ItemBatcher                              *ItemBatcher
	Tolerance                                Tolerance
	ProcessorMode, ExecutionType, Label      string
	// QueryLanguage is the state's: its own QueryLanguage, or the state machine's.
	QueryLanguage string
	// Assign assigns variables when the state ends (nil: none).
	Assign *Assign
	// JSONata holds the JSONata fields of a JSONata state (nil in a JSONPath state).
	JSONata *JSONataFields
}

var stateFields = map[string][]string{
	"Pass":     {"Next", "End", "InputPath", "OutputPath", "ResultPath", "Parameters", "Result"},
	"Task":     {"Next", "End", "InputPath", "OutputPath", "ResultPath", "Parameters", "ResultSelector", "Resource", "TimeoutSeconds", "HeartbeatSeconds", "Retry", "Catch"},
	"Choice":   {"InputPath", "OutputPath", "Choices", "Default"},
	"Wait":     {"Next", "End", "InputPath", "OutputPath", "Seconds", "Timestamp", "SecondsPath", "TimestampPath"},
	"Succeed":  {"InputPath", "OutputPath"},
	"Fail":     {"Error", "Cause", "ErrorPath", "CausePath"},
	"Parallel": {"Next", "End", "InputPath", "OutputPath", "ResultPath", "Parameters", "ResultSelector", "Branches", "Retry", "Catch"},
	"Map":      {"Next", "End", "InputPath", "OutputPath", "ResultPath", "Parameters", "ItemSelector", "ResultSelector", "ItemsPath", "ItemProcessor", "Iterator", "MaxConcurrency", "Retry", "Catch", "Label"},
}

// Parse reads a definition in JSON (or the same structure in YAML) and validates it. Every problem
// is reported with the JSON path of the offending field; a nil Machine means it is unusable.
func Parse(data []byte) (*Machine, []FieldError) {
	js := data
	if !json.Valid(data) { // JSON (what the controller pins) skips the YAML parser: 10 times faster
		var err error
		if js, err = yaml.YAMLToJSON(data); err != nil {
			return nil, []FieldError{{Path: "$", Message: "not JSON or YAML: " + err.Error()}}
		}
	}
	var raw any
	if err := json.Unmarshal(js, &raw); err != nil {
		return nil, []FieldError{{Path: "$", Message: err.Error()}}
	}
	obj, ok := raw.(map[string]any)
	if !ok {
		return nil, []FieldError{{Path: "$", Message: "a state machine must be an object"}}
	}
	p := &parser{topQL: QueryJSONPath}
	m := p.machine(obj, "$", true)
	p.checkUniqueNames()
	m.assigned = p.assigned
	p.checkScopes(m, nil)
	if len(p.errs) > 0 {
		slices.SortFunc(p.errs, func(a, b FieldError) int { return strings.Compare(a.Path, b.Path) })
		return nil, p.errs
	}
	return m, nil
}

type parser struct {
	errs []FieldError
	// depth is how many Parallel and Map states enclose the machine being parsed.
	depth int
	// names are the state names of the whole machine (validate_spec.go).
	names []nameAt
	// topQL is the state machine's query language; ql the language of the state being parsed.
	topQL, ql string
	// assigned are the variables assigned in the scope being parsed (see checkScopes).
	assigned map[string]string
}

func (p *parser) add(path, format string, a ...any) {
	p.errs = append(p.errs, FieldError{Path: path, Message: fmt.Sprintf(format, a...)})
}

func (p *parser) machine(obj map[string]any, at string, top bool) *Machine {
	m := &Machine{States: map[string]*State{}}
	allowed := []string{"Comment", "StartAt", "States"}
	if top {
		allowed = append(allowed, "TimeoutSeconds", "Version", "QueryLanguage")
	} else {
		allowed = append(allowed, "ProcessorConfig")
	}
	for k := range obj {
		if !slices.Contains(allowed, k) {
			p.add(at+"."+k, "unknown field %q", k)
		}
	}
	if top {
		p.topQL = p.machineQL(obj, at)
	}
	m.QueryLanguage = p.topQL
	m.Comment, _ = obj["Comment"].(string)
	m.StartAt, _ = obj["StartAt"].(string)
	if m.StartAt == "" {
		p.add(at+".StartAt", "StartAt is required")
	}
	if t, ok := obj["TimeoutSeconds"]; ok {
		m.TimeoutSeconds = p.positiveInt(t, at+".TimeoutSeconds", MaxTimeoutSeconds)
	}
	states, ok := obj["States"].(map[string]any)
	if !ok || len(states) == 0 {
		p.add(at+".States", "States must be a non-empty object")
		return m
	}
	for name, v := range states {
		sAt := at + ".States." + name
		so, ok := v.(map[string]any)
		if !ok {
			p.add(sAt, "a state must be an object")
			continue
		}
		if len(name) > 80 {
			p.add(sAt, "state names are at most 80 characters")
		}
		m.States[name] = p.state(name, so, sAt)
		p.noteName(name, sAt)
	}
	if _, ok := m.States[m.StartAt]; m.StartAt != "" && !ok {
		p.add(at+".StartAt", "StartAt names %q, which is not a state", m.StartAt)
	}
	p.checkTargets(m, at)
	p.checkTerminal(m, at)
	return m
}

// positiveInt reads an integer in [1, max].
func (p *parser) positiveInt(v any, at string, max int) int {
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || f <= 0 || f > float64(max) {
		p.add(at, "must be an integer from 1 to %d", max)
		return 0
	}
	return int(f)
}

// nested parses the machines of a Parallel or Map state, one level deeper.
func (p *parser) nested(obj map[string]any, at string) *Machine {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > MaxNesting {
		p.add(at, "Parallel and Map states nest at most %d deep", MaxNesting)
		return &Machine{States: map[string]*State{}}
	}
	outer := p.assigned
	p.assigned = nil
	m := p.machine(obj, at, false)
	m.assigned, p.assigned = p.assigned, outer
	return m
}

func (p *parser) optPath(obj map[string]any, field, at string, reference bool) OptPath {
	v, ok := obj[field]
	if !ok {
		return OptPath{}
	}
	if v == nil {
		return OptPath{Set: true, Null: true}
	}
	s, ok := v.(string)
	if !ok {
		p.add(at+"."+field, "must be a path string or null")
		return OptPath{}
	}
	parse := ParsePath
	if reference {
		parse = ParseReferencePath
	}
	path, err := parse(s)
	if err == nil && reference && path.variable != "" {
		err = fmt.Errorf("%q: ResultPath cannot name a variable", s)
	}
	if err != nil {
		p.add(at+"."+field, "%v", err)
		return OptPath{}
	}
	return OptPath{Set: true, Path: path}
}

func (p *parser) path(obj map[string]any, field, at string) *Path {
	v, ok := obj[field]
	if !ok {
		return nil
	}
	s, _ := v.(string)
	path, err := ParsePath(s)
	if err != nil {
		p.add(at+"."+field, "%v", err)
		return nil
	}
	return &path
}

// expr parses a field that takes a path or an intrinsic function call.
func (p *parser) expr(obj map[string]any, field, at string) *Expr {
	v, ok := obj[field]
	if !ok {
		return nil
	}
	s, _ := v.(string)
	e, err := ParseExpr(s)
	if err != nil {
		p.add(at+"."+field, "%v", err)
		return nil
	}
	return &e
}

func (p *parser) template(obj map[string]any, field, at string) *Template {
	v, ok := obj[field]
	if !ok {
		return nil
	}
	t, errs := ParseTemplate(v)
	for _, e := range errs {
		p.add(at+"."+field+e.Path, "%s", e.Message)
	}
	return &t
}

func (p *parser) state(name string, obj map[string]any, at string) *State {
	s := &State{Name: name}
	s.Type, _ = obj["Type"].(string)
	if _, ok := stateFields[s.Type]; !ok {
		p.add(at+".Type", "unknown state type %q (Pass, Task, Choice, Wait, Succeed, Fail, Parallel, Map)", obj["Type"])
		return s
	}
	ql := p.stateQL(obj, at)
	s.QueryLanguage = ql
	fields := allowedFields(s.Type, ql)
	for k := range obj {
		if k != "Type" && k != "Comment" && !slices.Contains(fields, k) {
			p.fieldNotAllowed(at, k, s.Type, ql)
		}
	}
	s.Next, _ = obj["Next"].(string)
	if e, ok := obj["End"]; ok {
		s.End, _ = e.(bool)
	}
	if slices.Contains(fields, "Next") {
		switch {
		case s.Next != "" && s.End:
			p.add(at, "a state has Next or End, not both")
		case s.Next == "" && !s.End:
			p.add(at, "a %s state needs Next or End: true", s.Type)
		}
	}
	if ql == QueryJSONata {
		obj = p.jsonataFields(s, obj, at, fields)
	}
	if v, ok := obj["Assign"]; ok && slices.Contains(fields, "Assign") {
		s.Assign = p.assign(v, at+".Assign", ql)
	}
	s.InputPath = p.optPath(obj, "InputPath", at, false)
	s.OutputPath = p.optPath(obj, "OutputPath", at, false)
	s.ResultPath = p.optPath(obj, "ResultPath", at, true)
	s.Parameters = p.template(obj, "Parameters", at)
	s.ResultSelector = p.template(obj, "ResultSelector", at)
	s.Selector = p.template(obj, "ItemSelector", at)
	if s.Type == "Map" && s.Selector == nil {
		s.Selector = s.Parameters // legacy: Parameters selects each item
		s.Parameters = nil
	}
	if r, ok := obj["Result"]; ok {
		s.Result, s.HasResult = r, true
	}
	switch s.Type {
	case "Task":
		s.Resource, _ = obj["Resource"].(string)
		if s.Resource == "" {
			p.add(at+".Resource", "a Task needs a Resource")
		}
		if v, ok := obj["TimeoutSeconds"]; ok {
			s.TimeoutSeconds = p.positiveInt(v, at+".TimeoutSeconds", MaxTimeoutSeconds)
		}
		if v, ok := obj["HeartbeatSeconds"]; ok {
			s.HeartbeatSeconds = p.positiveInt(v, at+".HeartbeatSeconds", MaxTimeoutSeconds)
			if s.TimeoutSeconds > 0 && s.HeartbeatSeconds >= s.TimeoutSeconds {
				p.add(at+".HeartbeatSeconds", "must be smaller than TimeoutSeconds")
			}
		}
	case "Choice":
		list, ok := obj["Choices"].([]any)
		if !ok || len(list) == 0 {
			p.add(at+".Choices", "a Choice state needs a non-empty Choices array")
		}
		for i, item := range list {
			rAt := fmt.Sprintf("%s.Choices[%d]", at, i)
			ro, ok := item.(map[string]any)
			if !ok {
				p.add(rAt, "a choice rule must be an object")
				continue
			}
			s.Choices = append(s.Choices, p.choiceRule(ro, rAt, ql))
		}
		s.Default, _ = obj["Default"].(string)
	case "Wait":
		n := 0
		if v, ok := obj["Seconds"]; ok {
			n++
			f, ok := v.(float64)
			if !ok || f < 0 || f != math.Trunc(f) || f > MaxWaitSeconds {
				p.add(at+".Seconds", "must be an integer from 0 to %d (a year)", MaxWaitSeconds)
			}
			s.Seconds = &f
		}
		if v, ok := obj["Timestamp"]; ok {
			n++
			s.Timestamp, _ = v.(string)
			if _, err := parseTimestamp(s.Timestamp); err != nil {
				p.add(at+".Timestamp", "must be an RFC3339 timestamp")
			}
		}
		if _, ok := obj["SecondsPath"]; ok {
			n++
			s.SecondsPath = p.path(obj, "SecondsPath", at)
		}
		if _, ok := obj["TimestampPath"]; ok {
			n++
			s.TimestampPath = p.path(obj, "TimestampPath", at)
		}
		if n != 1 {
			p.add(at, "a Wait state needs exactly one of Seconds, Timestamp, SecondsPath, TimestampPath")
		}
	case "Fail":
		s.Error, _ = obj["Error"].(string)
		s.Cause, _ = obj["Cause"].(string)
		s.ErrorPath = p.expr(obj, "ErrorPath", at)
		s.CausePath = p.expr(obj, "CausePath", at)
		if s.Error != "" && s.ErrorPath != nil {
			p.add(at, "Error and ErrorPath are exclusive")
		}
		if s.Cause != "" && s.CausePath != nil {
			p.add(at, "Cause and CausePath are exclusive")
		}
	case "Parallel":
		list, ok := obj["Branches"].([]any)
		if !ok || len(list) == 0 {
			p.add(at+".Branches", "a Parallel state needs a non-empty Branches array")
		}
		for i, b := range list {
			bo, ok := b.(map[string]any)
			if !ok {
				p.add(fmt.Sprintf("%s.Branches[%d]", at, i), "a branch must be a state machine object")
				continue
			}
			s.Branches = append(s.Branches, p.nested(bo, fmt.Sprintf("%s.Branches[%d]", at, i)))
		}
	case "Map":
		s.ItemsPath = p.path(obj, "ItemsPath", at)
		field := "ItemProcessor"
		proc, ok := obj[field].(map[string]any)
		if !ok {
			field = "Iterator"
			proc, ok = obj[field].(map[string]any)
		}
		if !ok {
			p.add(at+".ItemProcessor", "a Map state needs an ItemProcessor (or Iterator)")
		} else {
			s.ItemProcessor = p.nested(proc, at+"."+field)
		}
		if v, ok := obj["MaxConcurrency"]; ok {
			f, ok := v.(float64)
			if !ok || f < 0 || f != math.Trunc(f) || f > MaxTimeoutSeconds {
				p.add(at+".MaxConcurrency", "must be a non-negative integer")
			}
			s.MaxConcurrency = int(f)
		}
	}
	s.Retry = p.retriers(obj, at)
	p.ql = ql
	s.Catch = p.catchers(obj, at)
	p.checkSpecFields(s, obj, at)
	p.newerFields(s, obj, at)
	p.jsonataFixup(s)
	return s
}

func (p *parser) errorEquals(v any, at string) []string {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		p.add(at, "ErrorEquals must be a non-empty array of error names")
		return nil
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		s, ok := e.(string)
		if !ok || s == "" {
			p.add(fmt.Sprintf("%s[%d]", at, i), "an error name must be a non-empty string")
		}
		out = append(out, s)
	}
	if slices.Contains(out, "States.ALL") && len(out) != 1 {
		p.add(at, "States.ALL must appear alone in ErrorEquals")
	}
	return out
}

func (p *parser) retriers(obj map[string]any, at string) []Retrier {
	list, _ := obj["Retry"].([]any)
	var out []Retrier
	for i, item := range list {
		rAt := fmt.Sprintf("%s.Retry[%d]", at, i)
		ro, ok := item.(map[string]any)
		if !ok {
			p.add(rAt, "a retrier must be an object")
			continue
		}
		r := Retrier{IntervalSeconds: 1, MaxAttempts: 3, BackoffRate: 2, JitterStrategy: "NONE"}
		for k, v := range ro {
			f, isNum := v.(float64)
			switch k {
			case "ErrorEquals":
				r.ErrorEquals = p.errorEquals(v, rAt+".ErrorEquals")
			case "IntervalSeconds":
				if !isNum || f < 1 || f != math.Trunc(f) || f > MaxTimeoutSeconds {
					p.add(rAt+"."+k, "must be an integer from 1 to %d", MaxTimeoutSeconds)
				}
				r.IntervalSeconds = f
			case "MaxAttempts":
				if !isNum || f < 0 || f != math.Trunc(f) || f > MaxRetryAttempts {
					p.add(rAt+"."+k, "must be an integer from 0 to %d", MaxRetryAttempts)
				}
				r.MaxAttempts = int(f)
			case "BackoffRate":
				if !isNum || f < 1 || math.IsInf(f, 0) {
					p.add(rAt+"."+k, "must be a number at least 1.0")
				}
				r.BackoffRate = f
			case "MaxDelaySeconds":
				if !isNum || f < 1 || f != math.Trunc(f) || f > MaxTimeoutSeconds {
					p.add(rAt+"."+k, "must be an integer from 1 to %d", MaxTimeoutSeconds)
				}
				r.MaxDelaySeconds = f
			case "JitterStrategy":
				r.JitterStrategy, _ = v.(string)
				if r.JitterStrategy != "FULL" && r.JitterStrategy != "NONE" {
					p.add(rAt+"."+k, "must be FULL or NONE")
				}
			case "Comment":
			default:
				p.add(rAt+"."+k, "unknown field %q in a retrier", k)
			}
		}
		if _, ok := ro["ErrorEquals"]; !ok {
			p.add(rAt+".ErrorEquals", "ErrorEquals is required")
		}
		if slices.Contains(r.ErrorEquals, "States.ALL") && i != len(list)-1 {
			p.add(rAt+".ErrorEquals", "a retrier with States.ALL must be the last")
		}
		out = append(out, r)
	}
	return out
}

func (p *parser) catchers(obj map[string]any, at string) []Catcher {
	list, _ := obj["Catch"].([]any)
	var out []Catcher
	for i, item := range list {
		cAt := fmt.Sprintf("%s.Catch[%d]", at, i)
		co, ok := item.(map[string]any)
		if !ok {
			p.add(cAt, "a catcher must be an object")
			continue
		}
		c := Catcher{}
		for k, v := range co {
			switch k {
			case "ErrorEquals":
				c.ErrorEquals = p.errorEquals(v, cAt+".ErrorEquals")
			case "Next":
				c.Next, _ = v.(string)
			case "Comment":
			default:
				if p.catcherField(&c, k, v, cAt) {
					continue
				}
				if k == "ResultPath" {
					c.ResultPath = p.optPath(co, "ResultPath", cAt, true)
					continue
				}
				p.add(cAt+"."+k, "unknown field %q in a catcher", k)
			}
		}
		if c.Next == "" {
			p.add(cAt+".Next", "a catcher needs Next")
		}
		if slices.Contains(c.ErrorEquals, "States.ALL") && i != len(list)-1 {
			p.add(cAt+".ErrorEquals", "a catcher with States.ALL must be the last")
		}
		out = append(out, c)
	}
	return out
}

// checkTargets checks that every transition names a state and that every state is reachable.
func (p *parser) checkTargets(m *Machine, at string) {
	exists := func(name, where string) {
		if _, ok := m.States[name]; !ok {
			p.add(where, "names %q, which is not a state of this machine", name)
		}
	}
	targets := func(s *State) []string {
		var out []string
		if s.Next != "" {
			out = append(out, s.Next)
		}
		if s.Default != "" {
			out = append(out, s.Default)
		}
		for _, r := range s.Choices {
			if r.Next != "" {
				out = append(out, r.Next)
			}
		}
		for _, c := range s.Catch {
			if c.Next != "" {
				out = append(out, c.Next)
			}
		}
		return out
	}
	for name, s := range m.States {
		sAt := at + ".States." + name
		if s.Next != "" {
			exists(s.Next, sAt+".Next")
		}
		if s.Default != "" {
			exists(s.Default, sAt+".Default")
		}
		for i, r := range s.Choices {
			if r.Next != "" {
				exists(r.Next, fmt.Sprintf("%s.Choices[%d].Next", sAt, i))
			}
		}
		for i, c := range s.Catch {
			if c.Next != "" {
				exists(c.Next, fmt.Sprintf("%s.Catch[%d].Next", sAt, i))
			}
		}
	}
	seen := map[string]bool{}
	queue := []string{m.StartAt}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		s, ok := m.States[n]
		if !ok || seen[n] {
			continue
		}
		seen[n] = true
		queue = append(queue, targets(s)...)
	}
	for name := range m.States {
		if !seen[name] && m.StartAt != "" {
			p.add(at+".States."+name, "state %q is unreachable from StartAt", name)
		}
	}
}

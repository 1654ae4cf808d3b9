package asl

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits of workflow variables, as in Step Functions.
const (
	// MaxAssignBytes bounds the JSON of one Assign field's new values together (and so of any
	// one variable): 256 KiB.
	MaxAssignBytes = DefaultMaxPayloadBytes
	// MaxVariableBytes bounds the variables a run holds at once (its own scope and the scopes of
	// the Parallel branch or Map iteration assigning): 10 MiB. A WorkflowRun's whole state is
	// bounded more tightly by its object (see docs/workflow.md), which counts its variables.
	MaxVariableBytes = 10 << 20
	// MaxVariableNameLength is the longest variable name, in characters.
	MaxVariableNameLength = 80
)

// Assign is an Assign field (of a state, a Choice rule or a Catcher): the variables it assigns
// and their new values, a payload template in JSONPath states ("name.$" keys take paths and
// intrinsic functions) or a JSONata value.
type Assign struct {
	// Names are the variables assigned, sorted.
	Names    []string
	template *Template
	value    *Value
	raw      any
}

// Raw is the field as written.
func (a *Assign) Raw() any { return a.raw }

// validVariableName checks a variable name: a Unicode identifier (UAX #31: an ID_Start character,
// then ID_Continue characters) of at most 80 characters, not the reserved "states".
func validVariableName(name string) string {
	if name == "states" {
		return `"states" is reserved: a state cannot assign it`
	}
	if utf8.RuneCountInString(name) > MaxVariableNameLength {
		return fmt.Sprintf("a variable name is at most %d characters", MaxVariableNameLength)
	}
	for i, r := range name {
		start := unicode.IsLetter(r) || unicode.Is(unicode.Nl, r) || unicode.Is(unicode.Other_ID_Start, r)
		cont := start || unicode.IsDigit(r) || unicode.In(r, unicode.Mn, unicode.Mc, unicode.Pc) || unicode.Is(unicode.Other_ID_Continue, r)
		if (i == 0 && !start) || !cont {
			return fmt.Sprintf("%q is not a variable name: it must start with a letter and go on with letters, digits or _ (a Unicode identifier)", name)
		}
	}
	if name == "" {
		return "a variable name cannot be empty"
	}
	return ""
}

// parseAssign reads an Assign field at path at for a state of query language ql.
func parseAssign(v any, at, ql string) (*Assign, []FieldError) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, []FieldError{{Path: at, Message: "Assign must be an object of variable names and values"}}
	}
	var errs []FieldError
	a := &Assign{raw: v}
	seen := map[string]string{}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys) // errors name the same key every time
	for _, k := range keys {
		name := k
		if ql == QueryJSONPath {
			name = strings.TrimSuffix(k, ".$")
		}
		if msg := validVariableName(name); msg != "" {
			if ql == QueryJSONata && strings.HasSuffix(k, ".$") {
				msg = `keys ending in ".$" are JSONPath; in a JSONata state write the value as "{% expression %}"`
			}
			errs = append(errs, FieldError{Path: at + "." + k, Message: msg})
			continue
		}
		if other, dup := seen[name]; dup {
			errs = append(errs, FieldError{Path: at + "." + k, Message: fmt.Sprintf("variable %q is assigned twice (%q and %q)", name, other, k)})
			continue
		}
		seen[name] = k
		a.Names = append(a.Names, name)
	}
	sort.Strings(a.Names)
	if ql == QueryJSONata {
		val, e := compileValue(obj, at)
		errs = append(errs, e...)
		a.value = val
		return a, errs
	}
	t, e := ParseTemplate(obj)
	for _, fe := range e {
		errs = append(errs, FieldError{Path: at + fe.Path, Message: fe.Message})
	}
	a.template = &t
	return a, errs
}

// noteAssign records the variables an Assign field assigns in the scope being parsed.
func (p *parser) noteAssign(a *Assign, at string) {
	if a == nil {
		return
	}
	if p.assigned == nil {
		p.assigned = map[string]string{}
	}
	for _, n := range a.Names {
		if _, ok := p.assigned[n]; !ok {
			p.assigned[n] = at
		}
	}
}

// checkScopes enforces that no state of a Parallel branch or Map iteration assigns a variable
// of an enclosing scope: inner scopes read outer variables, but names are unique across scopes.
func (p *parser) checkScopes(m *Machine, outer map[string]bool) {
	names := maps.Clone(outer)
	if names == nil {
		names = map[string]bool{}
	}
	for n := range m.assigned {
		names[n] = true
	}
	for _, st := range m.States {
		inner := slices.Clone(st.Branches)
		if st.ItemProcessor != nil {
			inner = append(inner, st.ItemProcessor)
		}
		for _, in := range inner {
			for n, at := range in.assigned {
				if names[n] {
					p.add(at, "variable %q is assigned in an enclosing scope: a Parallel branch or Map iteration may read it but not assign it (names are unique across scopes)", n)
				}
			}
			p.checkScopes(in, names)
		}
	}
}

// lookupVar finds a variable: in the run's own scope, then in the scopes that enclose it.
func (s *stepper) lookupVar(name string) (any, bool) {
	if v, ok := s.run.Variables[name]; ok {
		return v, true
	}
	for i := len(s.opt.outer) - 1; i >= 0; i-- {
		if v, ok := s.opt.outer[i][name]; ok {
			return v, true
		}
	}
	return nil, false
}

// varContext is the context argument of paths, templates, intrinsics and Choice rules: the
// context object ($$) and the variables ($name).
type varContext struct {
	ctx    any
	lookup func(string) (any, bool)
}

// context is the context object ($$, built only if a path asks for it) with the variables.
func (s *stepper) context() any {
	if s.ctxVars == nil {
		s.ctxVars = &varContext{ctx: LazyContext(s.contextMap), lookup: s.lookupVar}
	}
	return s.ctxVars
}

// withVars gives a context object of the caller's (a Task token, a Map item) the variables.
func (s *stepper) withVars(ctx map[string]any) any {
	return &varContext{ctx: ctx, lookup: s.lookupVar}
}

// variableDoc is the value of variable name, as a path's context argument holds it.
func variableDoc(context any, name string) (any, bool) {
	if vc, ok := context.(*varContext); ok && vc.lookup != nil {
		return vc.lookup(name)
	}
	return nil, false
}

// evalAssign computes an Assign field's new values: a JSONPath Assign against doc ($), a JSONata
// one in env. Their JSON together is at most MaxAssignBytes.
func (s *stepper) evalAssign(a *Assign, doc any, env *jenv) (map[string]any, error) {
	var v any
	var err error
	if a.value != nil {
		if v, err = a.value.eval(env, "Assign"); err != nil {
			return nil, err
		}
	} else {
		if err = s.chargeWithin(a.template.cost); err != nil {
			return nil, err
		}
		if v, err = a.template.Resolve(doc, s.context()); err != nil {
			return nil, fmt.Errorf("Assign: %w", err)
		}
	}
	if _, err := s.payload("the values of Assign", v); err != nil {
		return nil, err
	}
	vals, _ := v.(map[string]any)
	return vals, nil
}

// applyAssign sets new values (computed against the values at state entry) together, keeping
// the run's variables within MaxVariableBytes. It never changes the map the run had: Step does
// not mutate its arguments.
func (s *stepper) applyAssign(vals map[string]any) error {
	if len(vals) == 0 {
		return nil
	}
	bytes := s.run.VariableBytes
	next := maps.Clone(s.run.Variables)
	if next == nil {
		next = make(map[string]any, len(vals))
	}
	for name, v := range vals {
		if old, ok := next[name]; ok {
			n, _ := jsonSize(old, MaxVariableBytes)
			bytes -= n + quotedLen(name)
		}
		n, _ := jsonSize(v, MaxVariableBytes)
		bytes += n + quotedLen(name)
		next[name] = v
	}
	if total := bytes + s.opt.outerBytes; total > MaxVariableBytes {
		return limitErrorf("the run's variables would take %d bytes (limit %d per execution)", total, MaxVariableBytes)
	}
	s.run.Variables, s.run.VariableBytes = next, bytes
	return nil
}

// assignOrFail evaluates and applies a JSONPath state's (or Choice rule's) Assign, failing the
// state when it cannot. It reports whether the state goes on.
func (s *stepper) assignOrFail(st *State, a *Assign, doc any) bool {
	if a == nil {
		return true
	}
	vals, err := s.evalAssign(a, doc, nil)
	if err == nil {
		err = s.applyAssign(vals)
	}
	if err != nil {
		s.fail(st, errorName(err, ErrRuntime), err.Error())
		return false
	}
	return true
}

// caught evaluates a taken Catcher's Output (JSONata) and Assign against the Error Output, and
// applies the assignment (the state's own Assign is not evaluated). combined is the Catcher's
// output so far (the Error Output placed by ResultPath, in JSONPath). A failure here fails the
// run: it is not the state's error, which was caught.
func (s *stepper) caught(st *State, c Catcher, errOut map[string]any, combined any) (any, bool) {
	var env *jenv
	if st.QueryLanguage == QueryJSONata {
		env = s.newEnv(nil)
		env.errorOutput, env.hasError = errOut, true
	}
	var err error
	var vals map[string]any
	if c.Output != nil {
		var out any
		if out, err = c.Output.eval(env, "Catch/Output"); err == nil {
			combined, err = s.payload("the output of the catcher of "+st.Name, out)
		}
	}
	if err == nil && c.Assign != nil {
		if vals, err = s.evalAssign(c.Assign, errOut, env); err == nil {
			err = s.applyAssign(vals)
		}
	}
	if err != nil {
		def := ErrRuntime
		if env != nil {
			def = ErrQueryEvaluation
		}
		s.run.Attempt = 0
		s.finish(Failed, nil, errorName(err, def), err.Error())
		return nil, false
	}
	return combined, true
}

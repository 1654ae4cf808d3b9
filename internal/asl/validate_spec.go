package asl

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// The States Language specification's MUSTs that are checked across fields or machines: state
// names unique across the whole machine, a path to a terminal state from every state, payload
// templates whose field names stay distinct once ".$" is dropped, Task Resources that are URIs.

// nameAt is a state name and the JSON path of its definition.
type nameAt struct{ name, at string }

// noteName records a state's name for checkUniqueNames.
func (p *parser) noteName(name, at string) { p.names = append(p.names, nameAt{name, at}) }

// checkUniqueNames reports every state whose name another state of the machine already has,
// nested Parallel branches and Map processors included ("State names MUST be unique within the
// scope of the whole state machine"). The first definition in path order is kept; each other one
// is reported at its own path.
func (p *parser) checkUniqueNames() {
	slices.SortFunc(p.names, func(a, b nameAt) int { return strings.Compare(a.at, b.at) })
	first := map[string]string{}
	for _, n := range p.names {
		if at, ok := first[n.name]; ok {
			p.add(n.at, "state name %q is already used at %s: names must be unique across the whole state machine, nested machines included", n.name, at)
			continue
		}
		first[n.name] = n.at
	}
}

// transitions are the states a state may go to: Next, Default, every Choice rule's Next and every
// Catch's Next.
func transitions(s *State) []string {
	var out []string
	add := func(n string) {
		if n != "" {
			out = append(out, n)
		}
	}
	add(s.Next)
	add(s.Default)
	for _, r := range s.Choices {
		add(r.Next)
	}
	for _, c := range s.Catch {
		add(c.Next)
	}
	return out
}

// terminal reports whether a state ends its machine: Succeed, Fail, or End: true.
func terminal(s *State) bool { return s.Type == "Succeed" || s.Type == "Fail" || s.End }

// checkTerminal reports the states of one machine (the top one, a Parallel branch or a Map
// processor: each is checked on its own, as each ends on its own terminal states) from which no
// sequence of transitions (Next, Choice rules, Default, Catch) reaches a terminal state. A run
// that enters such a state never ends, or ends only by an error no state handles. Only states
// reachable from StartAt are reported (the others are already reported as unreachable).
func (p *parser) checkTerminal(m *Machine, at string) {
	if len(m.States) == 0 {
		return
	}
	// Walk backwards from the terminal states.
	incoming := map[string][]string{}
	var queue []string
	ends := map[string]bool{}
	for name, s := range m.States {
		if s == nil {
			continue
		}
		if terminal(s) {
			ends[name] = true
			queue = append(queue, name)
		}
		for _, t := range transitions(s) {
			incoming[t] = append(incoming[t], name)
		}
	}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		for _, from := range incoming[n] {
			if !ends[from] {
				ends[from] = true
				queue = append(queue, from)
			}
		}
	}
	reachable := map[string]bool{}
	queue = []string{m.StartAt}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		s, ok := m.States[n]
		if !ok || s == nil || reachable[n] {
			continue
		}
		reachable[n] = true
		queue = append(queue, transitions(s)...)
	}
	for name, s := range m.States {
		if len(transitions(s)) == 0 {
			continue // no Next, End or Default: reported as such
		}
		if reachable[name] && !ends[name] {
			p.add(at+".States."+name, "no path leads from state %q to a terminal state (End: true, Succeed or Fail): a run that enters it never ends", name)
		}
	}
}

// duplicateFields reports the objects of a payload template in which two fields have the same
// name once ".$" is dropped ({"a": 1, "a.$": "$.x"}): the specification makes such a template
// invalid, where Step Functions would otherwise have to choose one.
func duplicateFields(v any, at string) []FieldError {
	var errs []FieldError
	switch t := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if name, ok := strings.CutSuffix(k, ".$"); ok {
				if _, dup := t[name]; dup {
					errs = append(errs, FieldError{Path: at + "." + k, Message: fmt.Sprintf("field %q and field %q have the same name once \".$\" is dropped", name, k)})
				}
				continue
			}
			errs = append(errs, duplicateFields(t[k], at+"."+k)...)
		}
	case []any:
		for i, c := range t {
			errs = append(errs, duplicateFields(c, fmt.Sprintf("%s[%d]", at, i))...)
		}
	}
	return errs
}

// uriScheme is the start of a URI (RFC 3986): a scheme, then a colon.
var uriScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:[^\s]+$`)

// isURI reports whether s is a URI: a scheme, a colon, and no white space ("arn:aws:...",
// "millrace:consumer/name", "https://...").
func isURI(s string) bool { return uriScheme.MatchString(s) }

// checkSpecFields checks a state's fields against the specification's MUSTs that concern a
// single state: a Task's Resource is a URI, and every payload template is a JSON object.
func (p *parser) checkSpecFields(s *State, obj map[string]any, at string) {
	if s.Type == "Task" && s.Resource != "" && !isURI(s.Resource) {
		p.add(at+".Resource", "must be a URI (a scheme, then a colon: arn:..., millrace:consumer/<name>, millrace:http), got %q", s.Resource)
	}
	for _, field := range []string{"Parameters", "ResultSelector", "ItemSelector"} {
		if v, ok := obj[field]; ok {
			if _, isObj := v.(map[string]any); !isObj {
				p.add(at+"."+field, "must be a JSON object (a payload template)")
			}
		}
	}
}

// describeValue names a value a path selected, for an error's cause: its JSON, cut short, or the
// path's error.
func describeValue(v any, err error) string {
	if err != nil {
		return "nothing (" + err.Error() + ")"
	}
	b, _ := json.Marshal(v)
	if len(b) > 64 {
		return string(b[:64]) + "..."
	}
	return string(b)
}

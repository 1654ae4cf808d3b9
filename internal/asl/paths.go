package asl

import (
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/theory/jsonpath"
	"github.com/theory/jsonpath/spec"
)

// Path is a JSONPath applied to the state's input ($) or to the context object ($$).
type Path struct {
	raw     string
	context bool
	// variable is the workflow variable the path reads ($name.field), if any.
	variable string
	query    *jsonpath.Path
}

// ParsePath parses a Path: a JSONPath starting with $ (the effective input) or $$ (the context
// object).
func ParsePath(s string) (Path, error) {
	if len(s) > MaxPathLength {
		return Path{}, fmt.Errorf("a path is at most %d characters", MaxPathLength)
	}
	p := Path{raw: s}
	expr := s
	switch {
	case strings.HasPrefix(s, "$$"):
		p.context = true
		expr = s[1:]
	case len(s) > 1 && s[0] == '$' && s[1] != '.' && s[1] != '[':
		// $name: a workflow variable, then a path into its value
		end := strings.IndexAny(s, ".[")
		if end < 0 {
			end = len(s)
		}
		if msg := validVariableName(s[1:end]); msg != "" && s[1:end] != "states" {
			return Path{}, fmt.Errorf("%q is not a path: %s", s, msg)
		}
		p.variable = s[1:end]
		expr = "$" + s[end:]
	case strings.HasPrefix(s, "$"):
	default:
		return Path{}, fmt.Errorf("%q is not a path: it must start with $", s)
	}
	q, err := jsonpath.Parse(bracketNames(expr))
	if err != nil {
		return Path{}, fmt.Errorf("%q is not a valid JSONPath: %v", s, err)
	}
	if err := checkDescendants(q.Query()); err != nil {
		return Path{}, fmt.Errorf("%q: %v", s, err)
	}
	p.query = q
	return p, nil
}

// checkDescendants refuses the queries whose cost grows with the square of the document: a
// second descendant segment (each node found by the first walks its own subtree again) and a
// descendant segment inside a filter (evaluated once per node the filter tests).
func checkDescendants(q *spec.PathQuery) error {
	descendants := 0
	for _, seg := range q.Segments() {
		if seg.IsDescendant() {
			descendants++
		}
		for _, sel := range seg.Selectors() {
			if f, ok := sel.(*spec.FilterSelector); ok && hasDescendant(f.String()) {
				return fmt.Errorf("a filter may not contain a descendant segment (..)")
			}
		}
	}
	if descendants > 1 {
		return fmt.Errorf("a path may have at most one descendant segment (..)")
	}
	return nil
}

// hasDescendant reports whether a filter's text has ".." outside its string literals.
func hasDescendant(filter string) bool {
	var quote byte
	for i := 0; i < len(filter); i++ {
		c := filter[i]
		switch {
		case quote != 0 && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '\'' || c == '"'):
			quote = c
		case quote == 0 && c == '.' && i+1 < len(filter) && filter[i+1] == '.':
			return true
		}
	}
	return false
}

// bracketNames rewrites dot-notation names that RFC 9535 does not allow in shorthand (such as
// "$.delivery-partner" or "$.error-info", which the States Language specification's own examples
// use and Step Functions accepts) into bracket notation: "$['delivery-partner']". Brackets, and
// the filters and quoted names inside them, are copied unchanged.
func bracketNames(expr string) string {
	var b strings.Builder
	for i := 0; i < len(expr); {
		switch c := expr[i]; c {
		case '[':
			j := closingBracket(expr, i)
			b.WriteString(expr[i:j])
			i = j
		case '.':
			dots := 1
			if i+1 < len(expr) && expr[i+1] == '.' {
				dots = 2
			}
			j := i + dots
			for j < len(expr) && expr[j] != '.' && expr[j] != '[' {
				j++
			}
			name := expr[i+dots : j]
			if name == "" || name == "*" || shorthandName(name) {
				b.WriteString(expr[i:j])
			} else {
				if dots == 2 {
					b.WriteString("..")
				}
				b.WriteString("['")
				b.WriteString(strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(name))
				b.WriteString("']")
			}
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

// closingBracket returns the index after the bracket that closes the one at i, skipping quoted
// strings and nested brackets (filters); the end of expr if there is none.
func closingBracket(expr string, i int) int {
	depth := 0
	var quote byte
	for j := i; j < len(expr); j++ {
		c := expr[j]
		switch {
		case quote != 0:
			if c == '\\' {
				j++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '[':
			depth++
		case c == ']':
			depth--
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(expr)
}

// shorthandName reports whether RFC 9535 accepts name after a dot: a letter, "_" or a non-ASCII
// character first, then those or digits.
func shorthandName(name string) bool {
	for i, r := range name {
		ok := r == '_' || r >= 0x80 || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// ParseReferencePath parses a Reference Path: a path that identifies a single node (only names
// and indexes, no wildcards, filters, slices or descendants).
func ParseReferencePath(s string) (Path, error) {
	p, err := ParsePath(s)
	if err != nil {
		return Path{}, err
	}
	if p.query.Query().Singular() == nil {
		return Path{}, fmt.Errorf("%q is not a reference path: it must select a single node", s)
	}
	return p, nil
}

func (p Path) String() string { return p.raw }

// IsSingular reports whether the path selects at most one node.
func (p Path) IsSingular() bool { return p.query.Query().Singular() != nil }

// LazyContext is a context object built only when a $$ path asks for it.
type LazyContext func() any

func contextDoc(context any) any {
	switch c := context.(type) {
	case LazyContext:
		return c()
	case *varContext:
		return contextDoc(c.ctx)
	}
	return context
}

// doc is the document the path applies to: the input, the context object or a variable.
func (p Path) doc(input, context any) (any, error) {
	switch {
	case p.context:
		return contextDoc(context), nil
	case p.variable != "":
		v, ok := variableDoc(context, p.variable)
		if !ok {
			return nil, fmt.Errorf("the path %s reads the variable $%s, which has no value", p.raw, p.variable)
		}
		return v, nil
	}
	return input, nil
}

// Get evaluates the path. A singular path yields its node (an error when it is missing); any other
// path yields the array of the nodes it selects.
func (p Path) Get(input, context any) (any, error) {
	doc, err := p.doc(input, context)
	if err != nil {
		return nil, err
	}
	if p.IsSingular() {
		nodes := p.query.Select(doc)
		if len(nodes) == 0 {
			return nil, fmt.Errorf("the path %s selects nothing", p.raw)
		}
		return nodes[0], nil
	}
	nodes, err := selectNodes(p.query.Query(), doc)
	if err != nil {
		return nil, fmt.Errorf("the path %s: %w", p.raw, err)
	}
	if _, err := checkPayload("the result of "+p.raw, nodes, DefaultMaxPayloadBytes); err != nil {
		return nil, err
	}
	return nodes, nil
}

// selectNodes evaluates a query segment by segment, walking descendant segments iteratively in
// document order (the library's recursion copies each level's results into its parent's: square
// time and memory in the depth). It stops with a LimitError beyond maxSelectedNodes nodes
// selected or visited.
func selectNodes(q *spec.PathQuery, root any) ([]any, error) {
	nodes := []any{root}
	visits := 0
	for _, seg := range q.Segments() {
		next := make([]any, 0, len(nodes))
		for _, n := range nodes {
			if seg.IsDescendant() {
				next = descend(seg, n, root, next, &visits)
			} else {
				next = append(next, seg.Select(n, root)...)
				visits++
			}
			if len(next) > maxSelectedNodes || visits > maxSelectedNodes {
				return nil, limitErrorf("it selects or visits more than %d nodes", maxSelectedNodes)
			}
		}
		nodes = next
	}
	return nodes, nil
}

// descend applies a descendant segment's selectors to n and each of its descendants, pre-order.
func descend(seg *spec.Segment, n, root any, out []any, visits *int) []any {
	child := spec.Child(seg.Selectors()...)
	stack := []any{n}
	for len(stack) > 0 && *visits <= maxSelectedNodes && len(out) <= maxSelectedNodes {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		*visits++
		out = append(out, child.Select(v, root)...)
		switch t := v.(type) {
		case []any:
			for i := len(t) - 1; i >= 0; i-- {
				stack = append(stack, t[i])
			}
		case map[string]any:
			for _, c := range t {
				stack = append(stack, c)
			}
		}
	}
	return out
}

// Present reports whether a singular path selects a node.
func (p Path) Present(input, context any) bool {
	doc, err := p.doc(input, context)
	if err != nil {
		return false
	}
	if p.IsSingular() {
		return len(p.query.Select(doc)) > 0
	}
	nodes, err := selectNodes(p.query.Query(), doc)
	return err == nil && len(nodes) > 0
}

// Set returns a copy of doc with value placed at the reference path, creating objects on the way;
// "$" replaces the whole document. Placing under a node that is not an object (or an index out of
// range) fails, as States.ResultPathMatchFailure.
func Set(doc any, ref Path, value any) (any, error) {
	segments := ref.query.Query().Segments()
	if len(segments) == 0 {
		return value, nil
	}
	return set(deepCopy(doc), segments, value, ref.raw)
}

func set(node any, segments []*spec.Segment, value any, raw string) (any, error) {
	if len(segments) == 0 {
		return value, nil
	}
	sel := segments[0].Selectors()[0]
	switch s := sel.(type) {
	case spec.Name:
		obj, ok := node.(map[string]any)
		if node == nil {
			obj, ok = map[string]any{}, true
		}
		if !ok {
			return nil, fmt.Errorf("cannot place a result at %s: %s is not an object", raw, string(s))
		}
		child, err := set(obj[string(s)], segments[1:], value, raw)
		if err != nil {
			return nil, err
		}
		obj[string(s)] = child
		return obj, nil
	case spec.Index:
		arr, ok := node.([]any)
		i := int(s)
		if i < 0 {
			i += len(arr)
		}
		if !ok || i < 0 || i >= len(arr) {
			return nil, fmt.Errorf("cannot place a result at %s: no such array element", raw)
		}
		child, err := set(arr[i], segments[1:], value, raw)
		if err != nil {
			return nil, err
		}
		arr[i] = child
		return arr, nil
	}
	return nil, fmt.Errorf("cannot place a result at %s", raw)
}

func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := maps.Clone(t)
		for k, c := range out {
			out[k] = deepCopy(c)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, c := range t {
			out[i] = deepCopy(c)
		}
		return out
	}
	return v
}

// Normalize turns any Go value into a JSON document of maps, slices, strings, float64s, bools and nils.
func Normalize(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	return out, json.Unmarshal(b, &out)
}

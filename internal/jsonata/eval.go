package jsonata

import (
	"context"
	"math"
	"reflect"
	"sort"
)

type env struct {
	vars   map[string]any
	parent *env
}

func (e *env) child() *env { return &env{vars: map[string]any{}, parent: e} }

func (e *env) lookup(name string) (any, bool) {
	for s := e; s != nil; s = s.parent {
		if v, ok := s.vars[name]; ok {
			return v, true
		}
	}
	if b, ok := builtins[name]; ok {
		return b, true
	}
	return undef, false
}

type evaluator struct {
	ctx   context.Context
	opts  Options
	root  any
	steps int
	depth int
	// keyOrder remembers the order in which the evaluation built each object's keys (JSONata
	// objects keep insertion order; Go maps do not). Objects from the input have lost theirs and
	// list their keys sorted.
	keyOrder map[uintptr][]string
}

func (ev *evaluator) remember(m map[string]any, keys []string) {
	if ev.keyOrder == nil {
		ev.keyOrder = map[uintptr][]string{}
	}
	ev.keyOrder[reflect.ValueOf(m).Pointer()] = keys
}

// keysOf lists an object's keys in the order they were built, or sorted.
func (ev *evaluator) keysOf(m map[string]any) []string {
	if ev != nil {
		if keys, ok := ev.keyOrder[reflect.ValueOf(m).Pointer()]; ok && len(keys) == len(m) {
			all := true
			for _, k := range keys {
				if _, ok := m[k]; !ok {
					all = false
					break
				}
			}
			if all {
				return keys
			}
		}
	}
	return sortedKeys(m)
}

// lambda is a function defined in the expression, with the scope and context it was defined in.
type lambda struct {
	def   *node
	env   *env
	input any
}

type partial struct {
	fn   any
	args []any // placeholder marks where the call's arguments go
}

type placeholderValue struct{}

type composed struct{ first, second any }

type transformer struct {
	def *node
	env *env
}

// tailCall is a call in tail position of a lambda body, returned to the caller's loop instead of
// being made, so that tail recursion runs in constant depth.
type tailCall struct {
	fn   any
	args []any
	pos  int
}

func (ev *evaluator) enter(pos int) error {
	ev.depth++
	if ev.depth > ev.opts.MaxDepth {
		return newErr(CodeDepth, pos, "stack overflow: the expression nests deeper than %d (check for a non-terminating recursive function)", ev.opts.MaxDepth)
	}
	ev.steps++
	if ev.steps > ev.opts.MaxSteps {
		return newErr(CodeSteps, pos, "the expression took more than %d evaluation steps", ev.opts.MaxSteps)
	}
	if ev.steps&1023 == 0 && ev.ctx != nil {
		if err := ev.ctx.Err(); err != nil {
			return newErr(CodeCancelled, pos, "evaluation stopped: %v", err)
		}
	}
	return nil
}

// charge counts building n items (or bytes) against the step budget, so that an expression
// that builds many values, each under MaxSize, is still bounded in time and memory.
func (ev *evaluator) charge(n, pos int) error {
	ev.steps += n
	if ev.steps > ev.opts.MaxSteps {
		return newErr(CodeSteps, pos, "the expression took more than %d evaluation steps", ev.opts.MaxSteps)
	}
	return nil
}

// checkSize refuses a value of n items or bytes over the evaluation's MaxSize.
func (ev *evaluator) checkSize(n, pos int) error {
	if n > ev.opts.MaxSize {
		return newErr(CodeSize, pos, "the expression built a value of %d items or bytes, more than the limit of %d", n, ev.opts.MaxSize)
	}
	return nil
}

func (ev *evaluator) eval(n *node, input any, en *env) (any, error) {
	if n == nil {
		return undef, nil
	}
	if err := ev.enter(n.pos); err != nil {
		return nil, err
	}
	defer func() { ev.depth-- }()
	v, err := ev.evalNode(n, input, en)
	if err != nil {
		return nil, err
	}
	for _, p := range n.predicates {
		if v, err = ev.filter(p, v, en); err != nil {
			return nil, err
		}
	}
	if n.group != nil && n.kind != kPath {
		if v, err = ev.group(n.group, n.groupPos, arrayOrSelf(v), nil, en); err != nil {
			return nil, err
		}
	}
	return collapse(v), nil
}

func arrayOrSelf(v any) []any {
	if items, ok := asArray(v); ok {
		return items
	}
	return []any{v}
}

func (ev *evaluator) evalNode(n *node, input any, en *env) (any, error) {
	switch n.kind {
	case kPath:
		return ev.path(n, input, en)
	case kName:
		return lookupField(input, n.str), nil
	case kString:
		return n.str, nil
	case kNumber:
		return n.num, nil
	case kValue:
		return n.val, nil
	case kRegex:
		return &regexMatcher{re: n.re}, nil
	case kVariable:
		switch n.str {
		case "":
			if a, ok := input.(*array); ok && a.outer {
				return a.items[0], nil
			}
			return input, nil
		case "$":
			return ev.root, nil
		}
		v, _ := en.lookup(n.str)
		return v, nil
	case kWildcard:
		return ev.wildcard(input, n.pos)
	case kDescendant:
		out := newSeq()
		return out, ev.descend(input, out, n.pos)
	case kBinary:
		return ev.binary(n, input, en)
	case kNegate:
		v, err := ev.eval(n.lhs, input, en)
		if err != nil || isUndef(v) {
			return v, err
		}
		f, ok := v.(float64)
		if !ok {
			return nil, &Error{Code: "D1002", Position: n.pos, Message: "cannot negate a non-numeric value"}
		}
		return -f, nil
	case kArray:
		return ev.arrayConstructor(n, input, en)
	case kObject:
		return ev.group(n.pairs, n.pos, arrayOrSelf(input), nil, en)
	case kCondition:
		c, err := ev.eval(n.lhs, input, en)
		if err != nil {
			return nil, err
		}
		if truthy(c) {
			return ev.eval(n.rhs, input, en)
		}
		return ev.eval(n.els, input, en)
	case kBlock:
		scope := en.child()
		var v any = undef
		var err error
		for _, it := range n.items {
			if v, err = ev.eval(it, input, scope); err != nil {
				return nil, err
			}
		}
		return v, nil
	case kBind:
		v, err := ev.eval(n.rhs, input, en)
		if err != nil {
			return nil, err
		}
		en.vars[n.str] = v
		return v, nil
	case kCall:
		return ev.call(n, input, en, undef, false)
	case kPartial:
		return ev.partial(n, input, en)
	case kLambda:
		return &lambda{def: n, env: en, input: input}, nil
	case kApply:
		return ev.applyOperator(n, input, en)
	case kTransform:
		return &transformer{def: n, env: en}, nil
	case kSort:
		return ev.sortItems(n, arrayify(input), nil, false, en)
	case kPlaceholder:
		return undef, nil
	case kParent:
		if l := linkOf(en); l != nil && !isUndef(l.value) {
			return l.value, nil
		}
		return nil, errNoParent(n.pos)
	}
	return nil, newErr("S0206", n.pos, "unknown expression type")
}

func lookupField(input any, name string) any { return lookupFieldAt(input, name, 0) }

func lookupFieldAt(input any, name string, depth int) any {
	checkNesting(depth)
	switch x := input.(type) {
	case map[string]any:
		if v, ok := x[name]; ok {
			return v
		}
		return undef
	case []any, *array:
		items, _ := asArray(x)
		out := newSeq()
		for _, it := range items {
			r := lookupFieldAt(it, name, depth+1)
			if isUndef(r) {
				continue
			}
			if sub, ok := asArray(r); ok {
				out.items = append(out.items, sub...)
			} else {
				out.items = append(out.items, r)
			}
		}
		return out
	}
	return undef
}

func (ev *evaluator) wildcard(input any, pos int) (any, error) {
	out := newSeq()
	add := func(v any) {
		if items, ok := asArray(v); ok {
			out.items = append(out.items, flatten(items, nil)...)
		} else if !isUndef(v) {
			out.items = append(out.items, v)
		}
	}
	switch x := input.(type) {
	case map[string]any:
		for _, k := range ev.keysOf(x) {
			add(x[k])
		}
	default:
		if items, ok := asArray(input); ok {
			for _, it := range items {
				add(it)
			}
		}
	}
	return out, ev.checkSize(len(out.items), pos)
}

func flatten(items []any, out []any) []any { return flattenAt(items, out, 0) }

func flattenAt(items []any, out []any, depth int) []any {
	checkNesting(depth)
	for _, it := range items {
		if sub, ok := asArray(it); ok {
			out = flattenAt(sub, out, depth+1)
		} else {
			out = append(out, it)
		}
	}
	return out
}

func (ev *evaluator) descend(v any, out *array, pos int) error {
	if err := ev.enter(pos); err != nil {
		return err
	}
	defer func() { ev.depth-- }()
	if isUndef(v) {
		return nil
	}
	if items, ok := asArray(v); ok {
		for _, it := range items {
			if err := ev.descend(it, out, pos); err != nil {
				return err
			}
		}
		return nil
	}
	out.items = append(out.items, v)
	if err := ev.checkSize(len(out.items), pos); err != nil {
		return err
	}
	if m, ok := v.(map[string]any); ok {
		for _, k := range ev.keysOf(m) {
			if err := ev.descend(m[k], out, pos); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (ev *evaluator) arrayConstructor(n *node, input any, en *env) (any, error) {
	out := &array{cons: true}
	for _, it := range n.items {
		v, err := ev.eval(it, input, en)
		if err != nil {
			return nil, err
		}
		if isUndef(v) {
			continue
		}
		if it.kind == kArray {
			out.items = append(out.items, v)
		} else if items, ok := asArray(v); ok {
			if err := ev.charge(len(items), n.pos); err != nil {
				return nil, err
			}
			out.items = append(out.items, items...)
		} else {
			out.items = append(out.items, v)
		}
		if err := ev.checkSize(len(out.items), n.pos); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// tuple is one item of a tuple stream: a context value with the @ and # variables bound on the
// way to it.
type tuple struct {
	ctx  any
	vars map[string]any
	link *parentLink // what % names: the parent of the last item reached, with its ancestors
	anc  *parentLink // the context item's own parent and ancestors (differs from link after @)
}

// parentLink is one ancestor of a tuple's context item.
type parentLink struct {
	value any
	up    *parentLink
}

// parentVar is the name under which the current context's ancestry is bound; no JSONata
// variable can have it.
const parentVar = "%"

func (t tuple) env(en *env) *env {
	if len(t.vars) == 0 && t.link == nil {
		return en
	}
	vars := t.vars
	if t.link != nil {
		vars = make(map[string]any, len(t.vars)+1)
		for k, v := range t.vars {
			vars[k] = v
		}
		vars[parentVar] = t.link
	}
	return &env{vars: vars, parent: en}
}

func errNoParent(pos int) error {
	return &Error{Code: "S0217", Position: pos, Message: "the object representing the 'parent' cannot be derived from this expression"}
}

func linkOf(en *env) *parentLink {
	v, _ := en.lookup(parentVar)
	l, _ := v.(*parentLink)
	return l
}

func (ev *evaluator) path(n *node, input any, en *env) (any, error) {
	var inputSeq []any
	if n.items[0].kind == kVariable {
		inputSeq = []any{input}
	} else if items, ok := asArray(input); ok {
		inputSeq = items
	} else {
		inputSeq = []any{input}
	}
	var result any = undef
	var tuples []tuple
	inTuples, started := n.tuple, false
	for i, step := range n.items {
		if step.tuple {
			inTuples = true
		}
		var err error
		switch {
		case i == 0 && step.consArray:
			result, err = ev.eval(step, newSeq(inputSeq...), en)
		case inTuples:
			if !started {
				started = true
				tuples = make([]tuple, 0, len(inputSeq))
				link := linkOf(en)
				for _, it := range inputSeq {
					tuples = append(tuples, tuple{ctx: it, link: link, anc: link})
				}
			}
			tuples, err = ev.tupleStep(step, tuples, en)
		default:
			result, err = ev.step(step, inputSeq, en, i == len(n.items)-1)
		}
		if err != nil {
			return nil, err
		}
		if !inTuples {
			items, ok := asArray(result)
			if isUndef(result) || (ok && len(items) == 0) {
				result = undef
				break
			}
			if !ok {
				items = []any{result}
			}
			inputSeq = items
		}
	}
	if inTuples {
		if n.group != nil {
			return ev.group(n.group, n.groupPos, nil, tuples, en)
		}
		out := newSeq()
		last := n.items[len(n.items)-1]
		for _, t := range tuples {
			if last.hasFocus {
				out.items = append(out.items, t.vars[last.focus])
			} else {
				out.items = append(out.items, t.ctx)
			}
		}
		result = out
	}
	if n.keepArray && !isUndef(result) {
		switch a := result.(type) {
		case *array:
			if a.isSeq {
				result = &array{items: a.items, isSeq: true, keepSingleton: true}
			} else {
				result = &array{items: []any{a}, isSeq: true, keepSingleton: true}
			}
		case []any:
		default:
			result = &array{items: []any{a}, isSeq: true, keepSingleton: true}
		}
	}
	if n.group != nil {
		return ev.group(n.group, n.groupPos, arrayify(result), nil, en)
	}
	return result, nil
}

func (ev *evaluator) step(step *node, inputSeq []any, en *env, last bool) (any, error) {
	if step.kind == kSort {
		v, err := ev.sortItems(step, inputSeq, nil, false, en)
		if err != nil {
			return nil, err
		}
		return ev.stages(step, v, en)
	}
	results := make([]any, 0, len(inputSeq))
	for _, it := range inputSeq {
		r, err := ev.eval(step, it, en)
		if err != nil {
			return nil, err
		}
		if r, err = ev.stages(step, r, en); err != nil {
			return nil, err
		}
		if !isUndef(r) {
			results = append(results, r)
		}
	}
	if last && len(results) == 1 {
		if _, ok := asArray(results[0]); ok && !isSequence(results[0]) {
			return results[0], nil
		}
	}
	out := newSeq()
	for _, r := range results {
		if a, ok := r.(*array); ok && a.cons && !a.isSeq {
			out.items = append(out.items, r)
		} else if items, ok := asArray(r); ok {
			if err := ev.charge(len(items), step.pos); err != nil {
				return nil, err
			}
			out.items = append(out.items, items...)
		} else {
			out.items = append(out.items, r)
		}
		if err := ev.checkSize(len(out.items), step.pos); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (ev *evaluator) stages(step *node, v any, en *env) (any, error) {
	var err error
	for _, s := range step.stages {
		if s.filter != nil {
			if v, err = ev.filter(s.filter, v, en); err != nil {
				return nil, err
			}
		}
	}
	return v, nil
}

// filter applies a predicate: a number (or numbers) selects by position, anything else by truth.
func (ev *evaluator) filter(pred *node, v any, en *env) (any, error) {
	items := arrayify(v)
	out := newSeq()
	if a, ok := v.(*array); ok && a.keepSingleton {
		out.keepSingleton = true
	}
	if pred.kind == kNumber {
		if i, ok := index(pred.num, len(items)); ok {
			if _, isArr := asArray(items[i]); isArr {
				return items[i], nil
			}
			out.items = append(out.items, items[i])
		}
		return out, nil
	}
	for i, it := range items {
		r, err := ev.eval(pred, it, en)
		if err != nil {
			return nil, err
		}
		if keep(r, i, len(items)) {
			out.items = append(out.items, it)
		}
	}
	return out, nil
}

func index(f float64, n int) (int, bool) {
	i := int(math.Floor(f))
	if i < 0 {
		i += n
	}
	return i, i >= 0 && i < n
}

// keep decides a predicate's outcome r for the item at position i of n.
func keep(r any, i, n int) bool {
	if f, ok := r.(float64); ok {
		j, ok := index(f, n)
		return ok && j == i
	}
	if items, ok := asArray(r); ok && len(items) > 0 {
		allNumbers := true
		for _, it := range items {
			if !isNumber(it) {
				allNumbers = false
				break
			}
		}
		if allNumbers {
			for _, it := range items {
				if j, ok := index(it.(float64), n); ok && j == i {
					return true
				}
			}
			return false
		}
	}
	return truthy(r)
}

func (ev *evaluator) tupleStep(step *node, tuples []tuple, en *env) ([]tuple, error) {
	var out []tuple
	if step.kind == kSort {
		sorted, err := ev.sortItems(step, nil, tuples, true, en)
		if err != nil {
			return nil, err
		}
		out = sorted.(*tupleList).tuples
		if step.hasIndex {
			for j := range out {
				vars := make(map[string]any, len(out[j].vars)+1)
				for k, v := range out[j].vars {
					vars[k] = v
				}
				vars[step.index] = float64(j)
				out[j].vars = vars
			}
		}
	} else if step.kind == kParent {
		for _, t := range tuples {
			if t.link == nil || isUndef(t.link.value) {
				return nil, errNoParent(step.pos)
			}
			out = append(out, tuple{ctx: t.link.value, vars: t.vars, link: t.link.up, anc: t.link.up})
		}
	} else {
		for _, t := range tuples {
			if inner := innerPath(step); inner != nil {
				// a path in parentheses: its items keep their own ancestry, so % still names
				// the parent they were reached from
				res, err := ev.tuplesOf(inner, tuple{ctx: t.ctx, link: t.anc, anc: t.anc}, t.env(en))
				if err != nil {
					return nil, err
				}
				for _, rt := range res {
					vars := make(map[string]any, len(t.vars))
					for k, v := range t.vars {
						vars[k] = v
					}
					out = append(out, tuple{ctx: rt.ctx, vars: vars, link: rt.anc, anc: rt.anc})
				}
				continue
			}
			r, err := ev.eval(step, t.ctx, t.env(en))
			if err != nil {
				return nil, err
			}
			if isUndef(r) {
				continue
			}
			items := arrayOrSelf(r)
			for j, it := range items {
				vars := make(map[string]any, len(t.vars)+2)
				for k, v := range t.vars {
					vars[k] = v
				}
				parent := &parentLink{value: t.ctx, up: t.anc}
				nt := tuple{ctx: it, vars: vars, link: parent, anc: parent}
				if step.hasFocus {
					vars[step.focus] = it
					nt.ctx, nt.anc = t.ctx, t.anc
				} else if step.kind == kVariable {
					nt.link, nt.anc = t.link, t.anc
				} else if step.kind == kObject {
					nt.link, nt.anc = nil, nil // a constructed object has no parent
				}
				if step.hasIndex {
					vars[step.index] = float64(j)
				}
				out = append(out, nt)
			}
			if err := ev.checkSize(len(out), step.pos); err != nil {
				return nil, err
			}
		}
	}
	for _, s := range step.stages {
		if s.filter == nil {
			for j := range out {
				out[j].vars[s.index] = float64(j)
			}
			continue
		}
		var kept []tuple
		for j, t := range out {
			var r any
			if s.filter.kind == kNumber {
				r = s.filter.num
			} else {
				var err error
				if r, err = ev.eval(s.filter, t.ctx, t.env(en)); err != nil {
					return nil, err
				}
			}
			if keep(r, j, len(out)) {
				kept = append(kept, t)
			}
		}
		out = kept
	}
	return out, nil
}

// tupleList carries a sorted tuple stream through sortItems.
type tupleList struct{ tuples []tuple }

func (ev *evaluator) sortItems(n *node, items []any, tuples []tuple, useTuples bool, en *env) (any, error) {
	type entry struct {
		t    tuple
		keys []any
	}
	if !useTuples {
		for _, it := range items {
			tuples = append(tuples, tuple{ctx: it})
		}
	}
	entries := make([]entry, len(tuples))
	for i, t := range tuples {
		entries[i].t = t
		for _, term := range n.terms {
			k, err := ev.eval(term.expr, t.ctx, t.env(en))
			if err != nil {
				return nil, err
			}
			entries[i].keys = append(entries[i].keys, k)
		}
	}
	var sortErr error
	sort.SliceStable(entries, func(i, j int) bool {
		for k, term := range n.terms {
			a, b := entries[i].keys[k], entries[j].keys[k]
			c, err := compareSortKeys(a, b, n.pos)
			if err != nil {
				sortErr = err
				return false
			}
			if c == 0 {
				continue
			}
			if term.descending && !isUndef(a) && !isUndef(b) {
				c = -c
			}
			return c < 0
		}
		return false
	})
	if sortErr != nil {
		return nil, sortErr
	}
	if useTuples {
		out := &tupleList{}
		for _, e := range entries {
			out.tuples = append(out.tuples, e.t)
		}
		return out, nil
	}
	out := newSeq()
	for _, e := range entries {
		out.items = append(out.items, e.t.ctx)
	}
	return out, nil
}

func compareSortKeys(a, b any, pos int) (int, error) {
	switch {
	case isUndef(a) && isUndef(b):
		return 0, nil
	case isUndef(a):
		return 1, nil
	case isUndef(b):
		return -1, nil
	}
	switch x := a.(type) {
	case float64:
		if y, ok := b.(float64); ok {
			switch {
			case x < y:
				return -1, nil
			case x > y:
				return 1, nil
			}
			return 0, nil
		}
	case string:
		if y, ok := b.(string); ok {
			return compareStrings(x, y), nil
		}
	}
	if (isNumber(a) || isString(a)) && (isNumber(b) || isString(b)) {
		return 0, &Error{Code: "T2007", Position: pos, Message: "type mismatch when comparing values in an order-by clause"}
	}
	return 0, &Error{Code: "T2008", Position: pos, Message: "the expressions within an order-by clause must evaluate to numeric or string values"}
}

// compareStrings orders strings by UTF-16 code units, as JavaScript does.
func compareStrings(a, b string) int {
	ua, ub := utf16Units(a), utf16Units(b)
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			if ua[i] < ub[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(ua) < len(ub):
		return -1
	case len(ua) > len(ub):
		return 1
	}
	return 0
}

// group evaluates an object constructor or grouping over items (or a tuple stream).
func (ev *evaluator) group(pairs [][2]*node, pos int, items []any, tuples []tuple, en *env) (any, error) {
	if tuples == nil {
		if len(items) == 0 {
			items = []any{undef}
		}
		for _, it := range items {
			tuples = append(tuples, tuple{ctx: it})
		}
	}
	type grp struct {
		members []tuple
		pair    int
	}
	groups := map[string]*grp{}
	var order []string
	for _, t := range tuples {
		for pi, p := range pairs {
			k, err := ev.eval(p[0], t.ctx, t.env(en))
			if err != nil {
				return nil, err
			}
			if isUndef(k) {
				continue
			}
			key, ok := k.(string)
			if !ok {
				return nil, &Error{Code: "T1003", Position: pos, Message: "key in object structure must evaluate to a string; got: " + typeOf(k)}
			}
			if g, ok := groups[key]; ok {
				if g.pair != pi {
					return nil, &Error{Code: "D1009", Position: pos, Token: key, Message: "multiple key definitions evaluate to same key: " + key}
				}
				g.members = append(g.members, t)
				continue
			}
			groups[key] = &grp{members: []tuple{t}, pair: pi}
			order = append(order, key)
		}
	}
	out := make(map[string]any, len(order))
	if err := ev.checkSize(len(order), pos); err != nil {
		return nil, err
	}
	kept := make([]string, 0, len(order))
	for _, key := range order {
		g := groups[key]
		ctx, scope := mergeTuples(g.members, en)
		v, err := ev.eval(pairs[g.pair][1], ctx, scope)
		if err != nil {
			return nil, err
		}
		if !isUndef(v) {
			out[key] = toJSON(v)
			kept = append(kept, key)
		}
	}
	ev.remember(out, kept)
	return out, nil
}

// mergeTuples makes one context of a group's members: the member itself when alone, else the
// sequence of their values, with each bound variable likewise merged.
func mergeTuples(members []tuple, en *env) (any, *env) {
	if len(members) == 1 {
		return members[0].ctx, members[0].env(en)
	}
	ctx := newSeq()
	vars := map[string]any{}
	for _, m := range members {
		ctx.items = appendValue(ctx.items, m.ctx)
		for k, v := range m.vars {
			prev, ok := vars[k]
			if !ok {
				vars[k] = v
				continue
			}
			s, isSeq := prev.(*array)
			if !isSeq || !s.isSeq {
				s = newSeq(prev)
			}
			s.items = appendValue(s.items, v)
			vars[k] = s
		}
	}
	if len(vars) == 0 {
		return ctx, en
	}
	return ctx, &env{vars: vars, parent: en}
}

func appendValue(items []any, v any) []any {
	if isUndef(v) {
		return items
	}
	if sub, ok := asArray(v); ok {
		return append(items, sub...)
	}
	return append(items, v)
}

func (ev *evaluator) binary(n *node, input any, en *env) (any, error) {
	if n.op == "and" || n.op == "or" {
		l, err := ev.eval(n.lhs, input, en)
		if err != nil {
			return nil, err
		}
		lb := truthy(l)
		if n.op == "and" && !lb {
			return false, nil
		}
		if n.op == "or" && lb {
			return true, nil
		}
		r, err := ev.eval(n.rhs, input, en)
		if err != nil {
			return nil, err
		}
		return truthy(r), nil
	}
	l, err := ev.eval(n.lhs, input, en)
	if err != nil {
		return nil, err
	}
	r, err := ev.eval(n.rhs, input, en)
	if err != nil {
		return nil, err
	}
	switch n.op {
	case "+", "-", "*", "/", "%":
		return arithmetic(n.op, l, r, n.pos)
	case "=", "!=":
		if isUndef(l) || isUndef(r) {
			return false, nil
		}
		eq := deepEqual(l, r)
		return eq == (n.op == "="), nil
	case "<", "<=", ">", ">=":
		return compare(n.op, l, r, n.pos)
	case "&":
		ls, err := ev.concatOperand(l)
		if err != nil {
			return nil, err
		}
		rs, err := ev.concatOperand(r)
		if err != nil {
			return nil, err
		}
		if err := ev.checkSize(len(ls)+len(rs), n.pos); err != nil {
			return nil, err
		}
		if err := ev.charge((len(ls)+len(rs))/64, n.pos); err != nil {
			return nil, err
		}
		return ls + rs, nil
	case "in":
		if isUndef(l) || isUndef(r) {
			return false, nil
		}
		for _, it := range arrayify(r) {
			if deepEqual(l, it) {
				return true, nil
			}
		}
		return false, nil
	case "..":
		return ev.rangeOf(l, r, n.pos)
	}
	return nil, newErr("S0204", n.pos, "unknown operator: %s", n.op)
}

func (ev *evaluator) concatOperand(v any) (string, error) {
	if isUndef(v) {
		return "", nil
	}
	return ev.stringify(v, false)
}

func arithmetic(op string, l, r any, pos int) (any, error) {
	lf, lok := l.(float64)
	rf, rok := r.(float64)
	if !lok && !isUndef(l) {
		return nil, &Error{Code: "T2001", Position: pos, Token: op, Message: "the left side of the " + op + " operator must evaluate to a number"}
	}
	if !rok && !isUndef(r) {
		return nil, &Error{Code: "T2002", Position: pos, Token: op, Message: "the right side of the " + op + " operator must evaluate to a number"}
	}
	if !lok || !rok {
		return undef, nil
	}
	if math.IsInf(lf, 0) || math.IsInf(rf, 0) {
		return nil, &Error{Code: "D1001", Position: pos, Message: "number out of range"}
	}
	var v float64
	switch op {
	case "+":
		v = lf + rf
	case "-":
		v = lf - rf
	case "*":
		v = lf * rf
	case "/":
		v = lf / rf
	case "%":
		v = math.Mod(lf, rf)
	}
	return v, nil
}

func compare(op string, l, r any, pos int) (any, error) {
	comparable := func(v any) bool {
		switch v.(type) {
		case float64, string, undefinedValue:
			return true
		}
		return false
	}
	if !comparable(l) || !comparable(r) {
		return nil, &Error{Code: "T2010", Position: pos, Token: op, Message: "the expressions either side of operator " + op + " must evaluate to numeric or string values"}
	}
	if isUndef(l) || isUndef(r) {
		return undef, nil
	}
	var c int
	switch x := l.(type) {
	case float64:
		y, ok := r.(float64)
		if !ok {
			return nil, &Error{Code: "T2009", Position: pos, Token: op, Message: "the values either side of operator " + op + " must be of the same data type"}
		}
		switch {
		case x < y:
			c = -1
		case x > y:
			c = 1
		}
	case string:
		y, ok := r.(string)
		if !ok {
			return nil, &Error{Code: "T2009", Position: pos, Token: op, Message: "the values either side of operator " + op + " must be of the same data type"}
		}
		c = compareStrings(x, y)
	}
	switch op {
	case "<":
		return c < 0, nil
	case "<=":
		return c <= 0, nil
	case ">":
		return c > 0, nil
	}
	return c >= 0, nil
}

// maxRange is JSONata's own limit on a range's size; MaxSize applies first when it is smaller.
const maxRange = 10_000_000

func (ev *evaluator) rangeOf(l, r any, pos int) (any, error) {
	lf, lok := l.(float64)
	rf, rok := r.(float64)
	if !isUndef(l) && (!lok || lf != math.Trunc(lf)) {
		return nil, &Error{Code: "T2003", Position: pos, Message: "the left side of the range operator (..) must evaluate to an integer"}
	}
	if !isUndef(r) && (!rok || rf != math.Trunc(rf)) {
		return nil, &Error{Code: "T2004", Position: pos, Message: "the right side of the range operator (..) must evaluate to an integer"}
	}
	if !lok || !rok || lf > rf {
		return undef, nil
	}
	size := rf - lf + 1
	if size > maxRange {
		return nil, &Error{Code: "D2014", Position: pos, Message: "the size of the sequence allocated by the range operator (..) must not exceed 1e7"}
	}
	if err := ev.checkSize(int(size), pos); err != nil {
		return nil, err
	}
	if err := ev.charge(int(size), pos); err != nil {
		return nil, err
	}
	out := &array{items: make([]any, 0, int(size)), isSeq: true}
	for f := lf; f <= rf; f++ {
		out.items = append(out.items, f)
	}
	return out, nil
}

func (ev *evaluator) callee(n *node, input any, en *env) (any, error) {
	if n.lhs.kind == kPath && len(n.lhs.items) == 1 && n.lhs.items[0].kind == kParent {
		return nil, &Error{Code: "T1006", Position: n.pos, Message: "attempted to invoke a non-function"}
	}
	fn, err := ev.eval(n.lhs, input, en)
	if err != nil {
		return nil, err
	}
	if isFunction(fn) {
		return fn, nil
	}
	code := "T1006"
	if n.kind == kPartial {
		code = "T1008"
	}
	if n.lhs.kind == kPath && len(n.lhs.items) == 1 && n.lhs.items[0].kind == kName {
		name := n.lhs.items[0].str
		if v, ok := en.lookup(name); ok && isFunction(v) {
			if code == "T1006" {
				code = "T1005"
			} else {
				code = "T1007"
			}
			return nil, &Error{Code: code, Position: n.pos, Token: name, Message: "attempted to invoke a non-function. Did you mean $" + name + "?"}
		}
	}
	return nil, &Error{Code: code, Position: n.pos, Message: "attempted to invoke a non-function"}
}

func (ev *evaluator) call(n *node, input any, en *env, applied any, hasApplied bool) (any, error) {
	fn, err := ev.callee(n, input, en)
	if err != nil {
		return nil, err
	}
	args := make([]any, 0, len(n.items)+1)
	if hasApplied {
		args = append(args, applied)
	}
	for _, a := range n.items {
		v, err := ev.eval(a, input, en)
		if err != nil {
			return nil, err
		}
		args = append(args, v)
	}
	if n.thunk {
		if _, ok := fn.(*lambda); ok {
			return &tailCall{fn: fn, args: args, pos: n.pos}, nil
		}
	}
	return ev.apply(fn, args, input, n.pos)
}

func (ev *evaluator) partial(n *node, input any, en *env) (any, error) {
	fn, err := ev.callee(n, input, en)
	if err != nil {
		return nil, err
	}
	args := make([]any, len(n.items))
	for i, a := range n.items {
		if a.kind == kPlaceholder {
			args[i] = placeholderValue{}
			continue
		}
		if args[i], err = ev.eval(a, input, en); err != nil {
			return nil, err
		}
	}
	return &partial{fn: fn, args: args}, nil
}

func (ev *evaluator) applyOperator(n *node, input any, en *env) (any, error) {
	l, err := ev.eval(n.lhs, input, en)
	if err != nil {
		return nil, err
	}
	if n.rhs.kind == kCall {
		c := *n.rhs
		c.thunk = false
		return ev.call(&c, input, en, l, true)
	}
	if p := n.rhs; p.kind == kPath && len(p.items) == 1 && p.items[0].kind == kCall && len(p.items[0].stages) == 0 && p.group == nil {
		c := *p.items[0]
		c.thunk = false
		v, err := ev.call(&c, input, en, l, true)
		if err != nil || !p.keepArray || isUndef(v) {
			return v, err
		}
		return &array{items: arrayOrSelf(v), isSeq: true, keepSingleton: true}, nil
	}
	fn, err := ev.eval(n.rhs, input, en)
	if err != nil {
		return nil, err
	}
	if !isFunction(fn) {
		return nil, &Error{Code: "T2006", Position: n.pos, Message: "the right side of the function application operator ~> must be a function"}
	}
	if isFunction(l) {
		return &composed{first: l, second: fn}, nil
	}
	return ev.apply(fn, []any{l}, input, n.pos)
}

// apply calls any function value with arguments; input is the caller's context, which a
// signature's '-' parameter takes when the argument is missing.
func (ev *evaluator) apply(fn any, args []any, input any, pos int) (any, error) {
	if err := ev.enter(pos); err != nil {
		return nil, err
	}
	defer func() { ev.depth-- }()
	for {
		var v any
		var err error
		switch f := fn.(type) {
		case *lambda:
			v, err = ev.applyLambda(f, args, pos)
		case *builtin:
			if a, ok := input.(*array); ok && a.outer {
				input = a.items[0]
			}
			if f.sig != nil {
				if args, err = f.sig.validate(args, input, "$"+f.name, pos); err != nil {
					return nil, err
				}
			}
			v, err = f.fn(ev, args, input, pos)
			if e, ok := err.(*Error); ok && e.Position == 0 {
				e.Position = pos
			}
		case *partial:
			full := make([]any, 0, len(f.args))
			k := 0
			for _, a := range f.args {
				if _, ok := a.(placeholderValue); ok {
					if k < len(args) {
						full = append(full, args[k])
						k++
					} else {
						full = append(full, undef)
					}
					continue
				}
				full = append(full, a)
			}
			fn, args = f.fn, full
			continue
		case *composed:
			if v, err = ev.apply(f.first, args, input, pos); err != nil {
				return nil, err
			}
			fn, args = f.second, []any{v}
			continue
		case *regexMatcher:
			s, _ := argAt(args, 0).(string)
			return f.matchAt(s, 0), nil
		case *transformer:
			return ev.transform(f, argAt(args, 0), pos)
		default:
			return nil, &Error{Code: "T1006", Position: pos, Message: "attempted to invoke a non-function"}
		}
		if err != nil {
			return nil, err
		}
		if tc, ok := v.(*tailCall); ok {
			fn, args = tc.fn, tc.args
			continue
		}
		return v, nil
	}
}

func argAt(args []any, i int) any {
	if i < len(args) {
		return args[i]
	}
	return undef
}

func (ev *evaluator) applyLambda(l *lambda, args []any, pos int) (any, error) {
	if l.def.sig != nil {
		var err error
		if args, err = l.def.sig.validate(args, l.input, "lambda", pos); err != nil {
			return nil, err
		}
	}
	scope := &env{vars: make(map[string]any, len(l.def.items)), parent: l.env}
	for i, p := range l.def.items {
		scope.vars[p.str] = argAt(args, i)
	}
	// a call in tail position comes back as a tailCall, for apply's loop
	return ev.eval(l.def.body, l.input, scope)
}

// arity is how many arguments a function value wants, for the higher-order functions that pass
// (value, index, array) only as far as the function takes them.
func arity(fn any) int {
	switch f := fn.(type) {
	case *lambda:
		if f.def.sig != nil {
			return f.def.sig.arity()
		}
		return len(f.def.items)
	case *builtin:
		if f.sig != nil {
			n := 0
			for _, p := range f.sig.params {
				if !p.optional {
					n++
				}
			}
			return n
		}
		return 1
	case *partial:
		n := 0
		for _, a := range f.args {
			if _, ok := a.(placeholderValue); ok {
				n++
			}
		}
		return n
	}
	return 1
}

func (ev *evaluator) transform(t *transformer, obj any, pos int) (any, error) {
	if isUndef(obj) {
		return undef, nil
	}
	clone := deepClone(toJSON(obj), 0)
	matches, err := ev.eval(t.def.lhs, clone, t.env)
	if err != nil {
		return nil, err
	}
	for _, m := range arrayify(matches) {
		target, ok := m.(map[string]any)
		if !ok {
			continue
		}
		upd, err := ev.eval(t.def.update, target, t.env)
		if err != nil {
			return nil, err
		}
		if !isUndef(upd) {
			u, ok := upd.(map[string]any)
			if !ok {
				return nil, &Error{Code: "T2011", Position: t.def.update.pos, Message: "the insert/update clause of the transform expression must evaluate to an object"}
			}
			for k, v := range u {
				target[k] = v
			}
		}
		if t.def.del == nil {
			continue
		}
		del, err := ev.eval(t.def.del, target, t.env)
		if err != nil {
			return nil, err
		}
		if isUndef(del) {
			continue
		}
		for _, k := range arrayOrSelf(del) {
			ks, ok := k.(string)
			if !ok {
				return nil, &Error{Code: "T2012", Position: t.def.del.pos, Message: "the delete clause of the transform expression must evaluate to a string or array of strings"}
			}
			delete(target, ks)
		}
	}
	return clone, nil
}

func deepClone(v any, depth int) any {
	checkNesting(depth)
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[k] = deepClone(val, depth+1)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = deepClone(val, depth+1)
		}
		return out
	}
	return v
}

func utf16Units(s string) []uint16 {
	out := make([]uint16, 0, len(s))
	for _, r := range s {
		if r >= 0x10000 {
			r -= 0x10000
			out = append(out, uint16(0xD800+(r>>10)), uint16(0xDC00+(r&0x3FF)))
		} else {
			out = append(out, uint16(r))
		}
	}
	return out
}

// innerPath is the plain path a step in parentheses holds, if any.
func innerPath(step *node) *node {
	switch step.kind {
	case kBlock:
		if len(step.items) == 1 && len(step.predicates) == 0 && step.group == nil {
			if p := innerPath(step.items[0]); p != nil {
				return p
			}
		}
	case kPath:
		if step.group == nil && !step.keepArray && len(step.predicates) == 0 && len(step.stages) == 0 {
			for _, s := range step.items {
				if s.consArray || s.hasFocus || s.hasIndex {
					return nil
				}
			}
			return step
		}
	}
	return nil
}

// tuplesOf runs a path from one tuple as a tuple stream and returns the tuples it reaches.
func (ev *evaluator) tuplesOf(p *node, start tuple, en *env) ([]tuple, error) {
	if err := ev.enter(p.pos); err != nil {
		return nil, err
	}
	defer func() { ev.depth-- }()
	tuples := []tuple{start}
	if items, ok := asArray(start.ctx); ok && p.items[0].kind != kVariable {
		tuples = tuples[:0]
		for _, it := range items {
			tuples = append(tuples, tuple{ctx: it, link: start.link, anc: start.anc})
		}
	}
	var err error
	for _, step := range p.items {
		if tuples, err = ev.tupleStep(step, tuples, en); err != nil {
			return nil, err
		}
	}
	return tuples, nil
}

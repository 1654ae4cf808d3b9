package jsonata

// process turns the parse tree into the evaluated form: a.b.c into one path of steps,
// predicates into a step's stages, a{...} into grouping, a^(...) into a sort step, @ and # into
// tuple-stream bindings, and checks what the grammar alone cannot.
func process(n *node) (*node, error) {
	if n == nil {
		return nil, nil
	}
	var err error
	switch n.kind {
	case kName, kWildcard, kDescendant:
		return &node{kind: kPath, items: []*node{n}, pos: n.pos}, nil
	case kParent:
		return &node{kind: kPath, items: []*node{n}, pos: n.pos, tuple: true}, nil
	case kBinary:
		switch n.op {
		case ".":
			return processDot(n)
		case "[":
			return processPredicate(n)
		case "[]":
			res, err := process(n.lhs)
			if err != nil {
				return nil, err
			}
			if res.kind != kPath {
				res = &node{kind: kPath, items: []*node{res}, pos: res.pos}
			}
			res.keepArray = true
			return res, nil
		case "{":
			res, err := process(n.lhs)
			if err != nil {
				return nil, err
			}
			if res.group != nil {
				return nil, &Error{Code: "S0210", Position: n.pos, Message: "each step can only have one grouping expression"}
			}
			if res.group, err = processPairs(n.pairs); err != nil {
				return nil, err
			}
			res.groupPos = n.pos
			return res, nil
		case "^":
			res, err := process(n.lhs)
			if err != nil {
				return nil, err
			}
			if res.kind != kPath {
				res = &node{kind: kPath, items: []*node{res}, pos: res.pos}
			}
			s := &node{kind: kSort, pos: n.pos}
			for _, t := range n.terms {
				e, err := process(t.expr)
				if err != nil {
					return nil, err
				}
				s.terms = append(s.terms, sortTerm{expr: e, descending: t.descending})
			}
			res.items = append(res.items, s)
			return res, nil
		case "@", "#":
			return processBinding(n)
		}
		out := *n
		if err := processInPlace(&out.lhs, &out.rhs); err != nil {
			return nil, err
		}
		return &out, nil
	case kNegate:
		operand, err := process(n.lhs)
		if err != nil {
			return nil, err
		}
		if operand.kind == kNumber {
			return &node{kind: kNumber, num: -operand.num, pos: n.pos}, nil
		}
		return &node{kind: kNegate, lhs: operand, pos: n.pos}, nil
	case kArray, kBlock:
		out := *n
		if out.items, err = processList(n.items); err != nil {
			return nil, err
		}
		return &out, nil
	case kObject:
		out := *n
		if out.pairs, err = processPairs(n.pairs); err != nil {
			return nil, err
		}
		return &out, nil
	case kCondition:
		out := *n
		if err := processInPlace(&out.lhs, &out.rhs, &out.els); err != nil {
			return nil, err
		}
		return &out, nil
	case kBind, kApply:
		out := *n
		if err := processInPlace(&out.lhs, &out.rhs); err != nil {
			return nil, err
		}
		return &out, nil
	case kCall, kPartial:
		out := *n
		if n.lhs.kind == kName || n.lhs.kind == kVariable {
			out.lhs = n.lhs // a function named by a bare name is looked up as written, not as a path
			if n.lhs.kind == kName {
				out.lhs, _ = process(n.lhs)
			}
		} else if out.lhs, err = process(n.lhs); err != nil {
			return nil, err
		}
		if out.items, err = processList(n.items); err != nil {
			return nil, err
		}
		return &out, nil
	case kLambda:
		out := *n
		if out.body, err = process(n.body); err != nil {
			return nil, err
		}
		markTailCalls(out.body)
		return &out, nil
	case kTransform:
		out := *n
		if err := processInPlace(&out.lhs, &out.update, &out.del); err != nil {
			return nil, err
		}
		return &out, nil
	}
	return n, nil
}

// usesParent reports whether % appears in an expression outside any lambda: a path whose steps
// use it runs as a tuple stream that carries each item's ancestors.
func usesParent(n *node) bool {
	if n == nil || n.kind == kLambda {
		return false
	}
	if n.kind == kParent {
		return true
	}
	for _, c := range []*node{n.lhs, n.rhs, n.els, n.update, n.del} {
		if usesParent(c) {
			return true
		}
	}
	for _, c := range n.items {
		if usesParent(c) {
			return true
		}
	}
	for _, p := range append(append([][2]*node(nil), n.pairs...), n.group...) {
		if usesParent(p[0]) || usesParent(p[1]) {
			return true
		}
	}
	for _, t := range n.terms {
		if usesParent(t.expr) {
			return true
		}
	}
	for _, s := range n.stages {
		if usesParent(s.filter) {
			return true
		}
	}
	for _, p := range n.predicates {
		if usesParent(p) {
			return true
		}
	}
	return false
}

func processPairs(pairs [][2]*node) ([][2]*node, error) {
	out := make([][2]*node, len(pairs))
	for i, p := range pairs {
		k, err := process(p[0])
		if err != nil {
			return nil, err
		}
		v, err := process(p[1])
		if err != nil {
			return nil, err
		}
		out[i] = [2]*node{k, v}
	}
	return out, nil
}

func processDot(n *node) (*node, error) {
	lstep, err := process(n.lhs)
	if err != nil {
		return nil, err
	}
	res := &node{kind: kPath, pos: n.pos}
	if lstep.kind == kString {
		lstep = &node{kind: kName, str: lstep.str, pos: lstep.pos}
	}
	if lstep.kind == kPath && lstep.group == nil && len(lstep.predicates) == 0 {
		res.items = append(res.items, lstep.items...)
		res.keepArray = lstep.keepArray
		res.tuple = lstep.tuple
	} else {
		if len(lstep.predicates) > 0 && lstep.group == nil {
			l := *lstep
			for _, p := range lstep.predicates {
				l.stages = append(l.stages, stage{filter: p})
			}
			l.predicates = nil
			lstep = &l
		}
		res.items = []*node{lstep}
	}
	if len(res.items) > 0 && res.items[0].kind == kArray {
		res.items[0].consArray = true
	}
	rest, err := process(n.rhs)
	if err != nil {
		return nil, err
	}
	var steps []*node
	if rest.kind == kPath && rest.group == nil && len(rest.predicates) == 0 {
		steps = rest.items
		if rest.keepArray {
			res.keepArray = true
		}
	} else {
		if len(rest.predicates) > 0 {
			r := *rest
			for _, p := range rest.predicates {
				r.stages = append(r.stages, stage{filter: p})
			}
			r.predicates = nil
			rest = &r
		}
		steps = []*node{rest}
	}
	for _, s := range steps {
		switch s.kind {
		case kNumber, kValue:
			return nil, &Error{Code: "S0213", Position: s.pos, Message: "the literal value cannot be used as a step within a path expression"}
		case kString:
			s = &node{kind: kName, str: s.str, pos: s.pos, stages: s.stages}
		case kArray:
			c := *s
			c.consArray = true
			s = &c
		}
		if s.tuple {
			res.tuple = true
		}
		res.items = append(res.items, s)
	}
	return res, nil
}

func processPredicate(n *node) (*node, error) {
	res, err := process(n.lhs)
	if err != nil {
		return nil, err
	}
	pred, err := process(n.rhs)
	if err != nil {
		return nil, err
	}
	if res.kind == kPath && len(res.items) > 0 && res.group == nil {
		last := *res.items[len(res.items)-1]
		if last.group != nil {
			return nil, &Error{Code: "S0209", Position: n.pos, Message: "a predicate cannot follow a grouping expression in a step"}
		}
		last.stages = append(append([]stage(nil), last.stages...), stage{filter: pred})
		out := *res
		out.items = append(append([]*node(nil), res.items[:len(res.items)-1]...), &last)
		return &out, nil
	}
	if res.group != nil {
		return nil, &Error{Code: "S0209", Position: n.pos, Message: "a predicate cannot follow a grouping expression in a step"}
	}
	out := *res
	out.predicates = append(append([]*node(nil), res.predicates...), pred)
	return &out, nil
}

func processBinding(n *node) (*node, error) {
	res, err := process(n.lhs)
	if err != nil {
		return nil, err
	}
	if res.kind != kPath || res.group != nil || len(res.predicates) > 0 {
		res = &node{kind: kPath, items: []*node{res}, pos: res.pos}
	}
	out := *res
	out.items = append([]*node(nil), res.items...)
	last := *out.items[len(out.items)-1]
	if n.op == "@" {
		if len(last.stages) > 0 || len(last.predicates) > 0 {
			return nil, &Error{Code: "S0215", Position: n.pos, Message: "a context variable binding must precede any predicates on a step"}
		}
		if last.kind == kSort {
			return nil, &Error{Code: "S0216", Position: n.pos, Message: "a context variable binding must precede any predicates on a step"}
		}
		last.focus, last.hasFocus = n.rhs.str, true
	} else {
		if len(last.stages) == 0 {
			if last.hasIndex {
				return nil, &Error{Code: "S0216", Position: n.pos, Message: "an index variable binding must precede any predicates on a step"}
			}
			last.index, last.hasIndex = n.rhs.str, true
		} else {
			last.stages = append(append([]stage(nil), last.stages...), stage{index: n.rhs.str})
		}
	}
	last.tuple = true
	out.items[len(out.items)-1] = &last
	out.tuple = true
	return &out, nil
}

// markTailCalls marks the function calls a lambda body returns directly, so that calling them
// does not grow the evaluation depth (JSONata evaluates tail calls in constant stack).
func markTailCalls(n *node) {
	if n == nil {
		return
	}
	switch n.kind {
	case kCall:
		if len(n.predicates) == 0 && n.group == nil {
			n.thunk = true
		}
	case kCondition:
		markTailCalls(n.rhs)
		markTailCalls(n.els)
	case kBlock:
		if len(n.items) > 0 && len(n.predicates) == 0 && n.group == nil {
			markTailCalls(n.items[len(n.items)-1])
		}
	}
}

// markParentPaths makes every path that uses % (in a step or a step's predicates) a tuple stream.
func markParentPaths(n *node) {
	if n == nil {
		return
	}
	if n.kind == kPath && !n.tuple {
		for _, s := range n.items {
			if usesParent(s) {
				n.tuple = true
				s.tuple = true
				break
			}
		}
	}
	for _, c := range []*node{n.lhs, n.rhs, n.els, n.update, n.del, n.body} {
		markParentPaths(c)
	}
	for _, c := range n.items {
		markParentPaths(c)
	}
	for _, p := range n.pairs {
		markParentPaths(p[0])
		markParentPaths(p[1])
	}
	for _, p := range n.group {
		markParentPaths(p[0])
		markParentPaths(p[1])
	}
	for _, t := range n.terms {
		markParentPaths(t.expr)
	}
	for _, s := range n.stages {
		markParentPaths(s.filter)
	}
	for _, p := range n.predicates {
		markParentPaths(p)
	}
}

// processList processes each node of a list into a new list.
func processList(items []*node) ([]*node, error) {
	out := make([]*node, len(items))
	for i, it := range items {
		var err error
		if out[i], err = process(it); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// processInPlace replaces each node with its processed form.
func processInPlace(nodes ...**node) error {
	for _, p := range nodes {
		v, err := process(*p)
		if err != nil {
			return err
		}
		*p = v
	}
	return nil
}

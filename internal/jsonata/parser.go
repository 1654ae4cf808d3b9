package jsonata

import (
	"regexp"
	"strings"
)

// maxParseDepth bounds the nesting of the expression text, so that no expression can make the
// recursive-descent parser overflow the stack.
const maxParseDepth = 2000

// binding powers of the infix operators (JSONata's precedence table).
var infixPower = map[string]int{
	".": 75, "[": 80, "{": 70, "(": 80, "@": 80, "#": 80, "?": 20,
	"+": 50, "-": 50, "*": 60, "/": 60, "%": 60, "&": 50,
	"=": 40, "!=": 40, "<": 40, "<=": 40, ">": 40, ">=": 40, "in": 40, "^": 40, "~>": 40,
	"and": 30, "or": 25, "..": 20, ":=": 10,
}

type parser struct {
	lex   lexer
	tok   token
	depth int
}

// advance reads the next token. The token just read decides whether the next may start an
// operand (then '/' begins a regular expression).
func (p *parser) advance() error {
	prefix := true
	switch p.tok.typ {
	case tokName, tokVariable, tokNumber, tokString, tokValue, tokRegex:
		prefix = false
	case tokOperator:
		prefix = !strings.Contains(")]}", p.tok.value)
	}
	t, err := p.lex.next(prefix)
	if err != nil {
		return err
	}
	p.tok = t
	return nil
}

func (p *parser) isOp(op string) bool { return p.tok.typ == tokOperator && p.tok.value == op }

func (p *parser) expect(op string) error {
	if p.tok.typ == tokEnd {
		return &Error{Code: "S0203", Position: p.tok.pos, Token: op, Message: "expected " + op + " before end of expression"}
	}
	if !p.isOp(op) {
		return &Error{Code: "S0202", Position: p.tok.pos, Token: p.tok.value, Message: "expected " + op + ", got " + p.tok.value}
	}
	return p.advance()
}

func parse(expr string) (*node, error) {
	p := &parser{lex: lexer{src: []rune(expr)}}
	if err := p.advance(); err != nil {
		return nil, err
	}
	n, err := p.expression(0)
	if err != nil {
		return nil, err
	}
	if p.tok.typ != tokEnd {
		return nil, &Error{Code: "S0201", Position: p.tok.pos, Token: p.tok.value, Message: "syntax error: " + p.tok.value}
	}
	// Left-associative chains (1+1+1+...) are parsed in a loop, not by recursion, so the tree
	// can be deeper than the parser went; the passes over the tree recurse, so bound it here.
	if treeDepth(n) > maxParseDepth {
		return nil, newErr(CodeDepth, 0, "expression is nested more than %d deep", maxParseDepth)
	}
	return n, nil
}

// treeDepth measures a parse tree without recursion.
func treeDepth(root *node) int {
	type frame struct {
		n     *node
		depth int
	}
	deepest := 0
	stack := []frame{{root, 1}}
	for len(stack) > 0 {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if f.n == nil {
			continue
		}
		deepest = max(deepest, f.depth)
		n, d := f.n, f.depth+1
		for _, c := range []*node{n.lhs, n.rhs, n.els, n.update, n.del, n.body} {
			stack = append(stack, frame{c, d})
		}
		for _, c := range n.items {
			stack = append(stack, frame{c, d})
		}
		for _, p := range n.pairs {
			stack = append(stack, frame{p[0], d}, frame{p[1], d})
		}
		for _, t := range n.terms {
			stack = append(stack, frame{t.expr, d})
		}
	}
	return deepest
}

func (p *parser) expression(rbp int) (*node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxParseDepth {
		return nil, newErr(CodeDepth, p.tok.pos, "expression is nested more than %d deep", maxParseDepth)
	}
	t := p.tok
	if err := p.advance(); err != nil {
		return nil, err
	}
	left, err := p.prefix(t)
	if err != nil {
		return nil, err
	}
	for p.tok.typ == tokOperator && infixPower[p.tok.value] > rbp {
		t = p.tok
		if err := p.advance(); err != nil {
			return nil, err
		}
		if left, err = p.infix(t, left); err != nil {
			return nil, err
		}
	}
	return left, nil
}

func (p *parser) prefix(t token) (*node, error) {
	switch t.typ {
	case tokEnd:
		return nil, newErr("S0207", t.pos, "unexpected end of expression")
	case tokString:
		return &node{kind: kString, str: t.value, pos: t.pos}, nil
	case tokNumber:
		return &node{kind: kNumber, num: t.num, pos: t.pos}, nil
	case tokValue:
		n := &node{kind: kValue, pos: t.pos}
		switch t.value {
		case "true":
			n.val = true
		case "false":
			n.val = false
		}
		return n, nil
	case tokVariable:
		return &node{kind: kVariable, str: t.value, pos: t.pos}, nil
	case tokName:
		return &node{kind: kName, str: t.value, pos: t.pos}, nil
	case tokRegex:
		return regexNode(t)
	}
	switch t.value {
	case "and", "or", "in":
		return &node{kind: kName, str: t.value, pos: t.pos}, nil
	case "-":
		operand, err := p.expression(70)
		if err != nil {
			return nil, err
		}
		return &node{kind: kNegate, lhs: operand, pos: t.pos}, nil
	case "*":
		return &node{kind: kWildcard, pos: t.pos}, nil
	case "**":
		return &node{kind: kDescendant, pos: t.pos}, nil
	case "%":
		return &node{kind: kParent, pos: t.pos}, nil
	case "?":
		return &node{kind: kPlaceholder, pos: t.pos}, nil
	case "(":
		n := &node{kind: kBlock, pos: t.pos}
		for !p.isOp(")") {
			item, err := p.expression(0)
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, item)
			if !p.isOp(";") {
				break
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		return n, p.expect(")")
	case "[":
		n := &node{kind: kArray, pos: t.pos}
		if !p.isOp("]") {
			for {
				item, err := p.expression(0)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, item)
				if !p.isOp(",") {
					break
				}
				if err := p.advance(); err != nil {
					return nil, err
				}
			}
		}
		return n, p.expect("]")
	case "{":
		pairs, err := p.pairs()
		if err != nil {
			return nil, err
		}
		return &node{kind: kObject, pairs: pairs, pos: t.pos}, nil
	case "|":
		n := &node{kind: kTransform, pos: t.pos}
		var err error
		if n.lhs, err = p.expression(0); err != nil {
			return nil, err
		}
		if err := p.expect("|"); err != nil {
			return nil, err
		}
		if n.update, err = p.expression(0); err != nil {
			return nil, err
		}
		if p.isOp(",") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			if n.del, err = p.expression(0); err != nil {
				return nil, err
			}
		}
		return n, p.expect("|")
	}
	return nil, &Error{Code: "S0211", Position: t.pos, Token: t.value, Message: "the symbol " + t.value + " cannot be used as a unary operator"}
}

func (p *parser) pairs() ([][2]*node, error) {
	var pairs [][2]*node
	if !p.isOp("}") {
		for {
			k, err := p.expression(0)
			if err != nil {
				return nil, err
			}
			if err := p.expect(":"); err != nil {
				return nil, err
			}
			v, err := p.expression(0)
			if err != nil {
				return nil, err
			}
			pairs = append(pairs, [2]*node{k, v})
			if !p.isOp(",") {
				break
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
	}
	return pairs, p.expect("}")
}

func (p *parser) infix(t token, left *node) (*node, error) {
	op := t.value
	switch op {
	case "(":
		return p.call(t, left)
	case "[":
		if p.isOp("]") {
			// a[]: keep a singleton array
			return &node{kind: kBinary, op: "[]", lhs: left, pos: t.pos}, p.advance()
		}
		pred, err := p.expression(0)
		if err != nil {
			return nil, err
		}
		return &node{kind: kBinary, op: "[", lhs: left, rhs: pred, pos: t.pos}, p.expect("]")
	case "{":
		pairs, err := p.pairs()
		if err != nil {
			return nil, err
		}
		return &node{kind: kBinary, op: "{", lhs: left, pairs: pairs, pos: t.pos}, nil
	case "^":
		if err := p.expect("("); err != nil {
			return nil, err
		}
		n := &node{kind: kBinary, op: "^", lhs: left, pos: t.pos}
		for {
			desc := false
			if p.isOp("<") || p.isOp(">") {
				desc = p.tok.value == ">"
				if err := p.advance(); err != nil {
					return nil, err
				}
			}
			e, err := p.expression(0)
			if err != nil {
				return nil, err
			}
			n.terms = append(n.terms, sortTerm{expr: e, descending: desc})
			if !p.isOp(",") {
				break
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
		return n, p.expect(")")
	case "?":
		n := &node{kind: kCondition, lhs: left, pos: t.pos}
		var err error
		if n.rhs, err = p.expression(0); err != nil {
			return nil, err
		}
		if p.isOp(":") {
			if err := p.advance(); err != nil {
				return nil, err
			}
			if n.els, err = p.expression(0); err != nil {
				return nil, err
			}
		}
		return n, nil
	case ":=":
		rhs, err := p.expression(infixPower[op] - 1)
		if err != nil {
			return nil, err
		}
		if left.kind != kVariable {
			return nil, &Error{Code: "S0212", Position: t.pos, Token: op, Message: "the left side of := must be a variable name (start with $)"}
		}
		return &node{kind: kBind, str: left.str, rhs: rhs, pos: t.pos}, nil
	case "@", "#":
		rhs, err := p.expression(infixPower[op])
		if err != nil {
			return nil, err
		}
		if rhs.kind != kVariable {
			return nil, &Error{Code: "S0214", Position: rhs.pos, Token: op, Message: "the right side of " + op + " must be a variable name (start with $)"}
		}
		return &node{kind: kBinary, op: op, lhs: left, rhs: rhs, pos: t.pos}, nil
	}
	rhs, err := p.expression(infixPower[op])
	if err != nil {
		return nil, err
	}
	if op == "~>" {
		return &node{kind: kApply, lhs: left, rhs: rhs, pos: t.pos}, nil
	}
	return &node{kind: kBinary, op: op, lhs: left, rhs: rhs, pos: t.pos}, nil
}

// call parses a function call's arguments, or a lambda definition when the callee is the name
// "function" or "λ".
func (p *parser) call(t token, callee *node) (*node, error) {
	var args []*node
	if !p.isOp(")") {
		for {
			a, err := p.expression(0)
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			if !p.isOp(",") {
				break
			}
			if err := p.advance(); err != nil {
				return nil, err
			}
		}
	}
	if err := p.expect(")"); err != nil {
		return nil, err
	}
	if callee.kind == kName && (callee.str == "function" || callee.str == "λ") {
		n := &node{kind: kLambda, pos: t.pos}
		for _, a := range args {
			if a.kind != kVariable {
				return nil, &Error{Code: "S0208", Position: a.pos, Message: "parameter of a function definition must be a variable name (start with $)"}
			}
			n.items = append(n.items, a)
		}
		if p.isOp("<") {
			sig, err := p.signatureText()
			if err != nil {
				return nil, err
			}
			if n.sig, err = parseSignature(sig, p.tok.pos); err != nil {
				return nil, err
			}
		}
		if err := p.expect("{"); err != nil {
			return nil, err
		}
		body, err := p.expression(0)
		if err != nil {
			return nil, err
		}
		n.body = body
		return n, p.expect("}")
	}
	n := &node{kind: kCall, lhs: callee, items: args, pos: t.pos}
	for _, a := range args {
		if a.kind == kPlaceholder {
			n.kind = kPartial
		}
	}
	return n, nil
}

// signatureText reads a function signature <...> straight from the source, since its symbols are
// not tokens of the expression language.
func (p *parser) signatureText() (string, error) {
	src := p.lex.src
	start := p.tok.start
	depth := 0
	for j := start; j < len(src); j++ {
		switch src[j] {
		case '<':
			depth++
		case '>':
			depth--
			if depth == 0 {
				p.lex.i = j + 1
				p.tok = token{typ: tokOperator, value: ">"}
				if err := p.advance(); err != nil {
					return "", err
				}
				return string(src[start+1 : j]), nil
			}
		}
	}
	return "", newErr("S0401", start, "function signature is not terminated")
}

func regexNode(t token) (*node, error) {
	pattern := translateRegex(t.value)
	prefix := ""
	if strings.Contains(t.flags, "i") {
		prefix += "i"
	}
	if strings.Contains(t.flags, "m") {
		prefix += "m"
	}
	if prefix != "" {
		pattern = "(?" + prefix + ")" + pattern
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, newErr("S0301", t.pos, "invalid regular expression: %v", err)
	}
	return &node{kind: kRegex, re: re, str: t.value, pos: t.pos}, nil
}

// translateRegex turns the JavaScript regular expression syntax JSONata uses into Go's RE2 where
// they differ in spelling: named groups, and \d etc. are the same. Look-arounds and
// back-references have no RE2 equivalent and fail to compile.
func translateRegex(s string) string {
	return strings.ReplaceAll(s, "(?<", "(?P<")
}

package jsonata

import "regexp"

type kind int

const (
	kPath kind = iota
	kName
	kVariable
	kString
	kNumber
	kValue // true, false, null: the Go value is in val
	kRegex
	kWildcard
	kDescendant
	kParent
	kBinary
	kNegate
	kArray
	kObject
	kCondition
	kBlock
	kBind
	kCall
	kPartial
	kPlaceholder
	kLambda
	kApply
	kSort
	kTransform
)

// node is one node of a processed expression tree. It is never written during evaluation, so a
// compiled expression is safe to share between goroutines.
type node struct {
	kind kind
	pos  int
	op   string  // kBinary operator
	str  string  // name, variable name, string value
	num  float64 // kNumber
	val  any     // kValue
	re   *regexp.Regexp

	lhs, rhs, els *node   // operands; kCondition: lhs ? rhs : els; kCall: lhs is the procedure
	items         []*node // kArray items, kBlock expressions, kCall arguments, kPath steps, kLambda params
	pairs         [][2]*node
	terms         []sortTerm
	sig           *signature
	body          *node
	update, del   *node // kTransform: lhs is the pattern

	// annotations of a path step, or of any expression followed by predicates or grouping
	stages     []stage // a step's predicates and index bindings, applied per context item
	predicates []*node // filters applied to the whole result of a non-path expression
	group      [][2]*node
	groupPos   int
	focus      string // @$focus
	index      string // #$index
	hasFocus   bool
	hasIndex   bool
	tuple      bool // the step, or some step of the path, binds @ or # (a tuple stream)
	consArray  bool // an array constructor used as a path step: its result is not flattened
	keepArray  bool // kPath: a step was followed by [] (keep a singleton array)
	thunk      bool // kCall in tail position of a lambda body
	ancestorOf int  // kParent: which level
}

type stage struct {
	filter *node
	index  string // when filter is nil: an index binding #$index after a predicate
}

type sortTerm struct {
	expr       *node
	descending bool
}

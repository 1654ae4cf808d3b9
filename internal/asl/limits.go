package asl

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// Limits that keep one tenant's definition or input from wedging or exhausting the process that
// runs it (the shared manager). Step Functions' own quotas are the guide; docs/workflow.md lists
// them with the error each one raises.
const (
	// MaxWaitSeconds bounds a Wait state and a retry delay: a standard Step Functions execution
	// lasts at most a year, so no wait may be longer (and a longer one would overflow
	// time.Duration arithmetic in the callers).
	MaxWaitSeconds = 365 * 24 * 3600
	// MaxTimeoutSeconds bounds TimeoutSeconds and HeartbeatSeconds (Step Functions' schema maximum).
	MaxTimeoutSeconds = 99999999
	// MaxRetryAttempts bounds a retrier's MaxAttempts (Step Functions' schema maximum).
	MaxRetryAttempts = 99999999
	// MaxNesting bounds how deeply Parallel and Map states nest inside each other: every level
	// multiplies the iterations that run at once (40 per inline Map).
	MaxNesting = 5
	// MaxMapItemsPerRun bounds the iterations all Map states of one run may start over its life
	// (a Map of Maps multiplies them); beyond it the run fails with States.DataLimitExceeded.
	MaxMapItemsPerRun = 100000
	// MaxTransitionsPerRun bounds the transitions (states executed, branches and items started)
	// of one run over its life, so that an endless loop ends: Step Functions stops an execution
	// at 25,000 history events; ours is larger, for inline Maps of many items. Beyond it the run
	// fails with States.Runtime, which no Catch can turn into another loop.
	MaxTransitionsPerRun = 1000000
	// DefaultStepTransitions and DefaultStepBytes are the budget of one Step when the caller
	// gives none: states executed plus branches and items started, and JSON bytes evaluated,
	// across the whole tree of Parallel and Map children. A step that spends it yields a
	// Continue effect; the run goes on in the next step.
	DefaultStepTransitions = 2000
	DefaultStepBytes       = 8 << 20
	// DefaultMaxHistory is how many transitions one Step returns at most (the latest ones);
	// the others are only counted (Budget.HistoryDropped).
	DefaultMaxHistory = 100
	// MaxPathLength bounds a JSONPath's text: a filter is evaluated on every node it selects
	// from, so its length multiplies the work of a query.
	MaxPathLength = 1024
	// minEvalCost is the least an evaluation is charged against Budget.Bytes, however small the
	// document it reads (a query visits nodes even when it selects none).
	minEvalCost = 1 << 10
	// maxSelectedNodes bounds the nodes a JSONPath query may select or visit: more than this
	// many values cannot fit in a payload anyway (each takes at least two bytes of JSON).
	maxSelectedNodes = DefaultMaxPayloadBytes / 2
)

// Budget is the work left to one Step, or to several steps of one reconcile that share it. It is
// spent across the whole tree of a run (its Parallel and Map children), so that no definition
// makes one step unbounded.
type Budget struct {
	// Transitions left: each state executed and each branch or item started costs one.
	Transitions int
	// Bytes left: the JSON size of each state's input and of every payload evaluated.
	Bytes int
	// HistoryDropped counts the transitions the steps made but did not return (beyond
	// Options.MaxHistory): the caller's history total must count them.
	HistoryDropped int
}

// NewBudget is the default budget of one step.
func NewBudget() *Budget {
	return &Budget{Transitions: DefaultStepTransitions, Bytes: DefaultStepBytes}
}

// Spent reports whether nothing is left.
func (b *Budget) Spent() bool { return b.Transitions <= 0 || b.Bytes <= 0 }

// LimitError is States.DataLimitExceeded: a value or a count beyond one of the engine's limits.
type LimitError struct{ Msg string }

func (e *LimitError) Error() string { return e.Msg }

func limitErrorf(format string, a ...any) error { return &LimitError{Msg: fmt.Sprintf(format, a...)} }

// checkPayload returns a LimitError if v's JSON is longer than limit bytes, and otherwise its
// size. It stops counting at the limit, so checking a value costs at most the limit's worth of
// work whatever the value (a query result may share subtrees and be far larger than its input).
func checkPayload(what string, v any, limit int) (int, error) {
	n, ok := jsonSize(v, limit)
	if !ok {
		return n, limitErrorf("%s exceeds the payload limit of %d bytes", what, limit)
	}
	return n, nil
}

// jsonSize is the length of v's compact JSON encoding (without HTML escaping), counted up to
// limit: ok is false as soon as it goes beyond.
func jsonSize(v any, limit int) (n int, ok bool) {
	var buf [32]byte
	var walk func(v any) bool
	walk = func(v any) bool {
		switch t := v.(type) {
		case nil:
			n += 4
		case bool:
			n += 5
			if t {
				n--
			}
		case float64:
			n += len(strconv.AppendFloat(buf[:0], t, 'g', -1, 64))
		case string:
			n += quotedLen(t)
		case []any:
			n += 1 + max(len(t)-1, 0) + 1
			for _, c := range t {
				if n > limit || !walk(c) {
					return false
				}
			}
		case map[string]any:
			n += 1 + max(len(t)-1, 0) + 1
			for k, c := range t {
				n += quotedLen(k) + 1
				if n > limit || !walk(c) {
					return false
				}
			}
		default:
			n += 16 // not a JSON document value (Normalize makes one); counted, not walked
		}
		return n <= limit
	}
	ok = walk(v)
	return n, ok
}

// quotedLen is the length of s as a JSON string.
func quotedLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			case c < 0x20:
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			n += 6 // \ufffd
		} else {
			n += size
		}
		i += size
	}
	return n
}

// waitSeconds converts a number of seconds of a Wait state or retry delay, refusing what is
// negative, not a number or beyond MaxWaitSeconds.
func waitSeconds(f float64) (float64, error) {
	if math.IsNaN(f) || f < 0 || f > MaxWaitSeconds {
		return 0, fmt.Errorf("%v seconds is not between 0 and %d (a year)", f, MaxWaitSeconds)
	}
	return f, nil
}

// isLimit reports whether err is (or wraps) a LimitError.
func isLimit(err error) bool {
	var le *LimitError
	return errors.As(err, &le)
}

// cost is what evaluating some paths and intrinsic calls is charged against Budget.Bytes: a
// singular path reads a few nodes (minEvalCost); any other path, and any intrinsic call, may read
// the whole document (its size).
type cost struct{ light, heavy int }

func (c cost) plus(d cost) cost { return cost{c.light + d.light, c.heavy + d.heavy} }

func (c cost) bytes(docBytes int) int {
	return c.light*minEvalCost + c.heavy*max(docBytes, minEvalCost)
}

func pathCost(p *Path) cost {
	if p == nil {
		return cost{}
	}
	if p.IsSingular() {
		return cost{light: 1}
	}
	return cost{heavy: 1}
}

func (e expr) cost() cost {
	if e.call != nil {
		return e.call.cost()
	}
	return pathCost(e.path)
}

func (c *call) cost() cost {
	n := cost{heavy: 1}
	for _, a := range c.args {
		switch {
		case a.path != nil:
			n = n.plus(pathCost(a.path))
		case a.call != nil:
			n = n.plus(a.call.cost())
		}
	}
	return n
}

// cost of a Choice rule: its Variable and ValuePath, nested rules included.
func (r *ChoiceRule) cost() cost {
	n := pathCost(r.Variable).plus(pathCost(r.ValuePath))
	for _, c := range r.Rules {
		n = n.plus(c.cost())
	}
	return n
}

package depth

import "time"

// IntervalPolicy is the adaptive polling policy of one queue.
type IntervalPolicy struct {
	// Base is the interval while anything moves (the fastest any adaptive subscriber asked for).
	Base time.Duration
	// Max is the ceiling while the queue is steady.
	Max time.Duration
	// SteadyAfter is how many unchanged samples in a row make a queue steady.
	SteadyAfter int
	// Ceiling, when set, is the longest interval a subscriber accepts even while the queue is
	// steady (a Consumer idle at zero waits for its first message); zero: none.
	Ceiling time.Duration
}

// Next returns the interval after a sample. unchanged counts the samples in a row equal to their
// predecessor (0 when this one changed). A steady queue's interval doubles each sample, from Base
// up to Max; any change returns to Base at once; Ceiling bounds both.
func (p IntervalPolicy) Next(current time.Duration, unchanged int) time.Duration {
	next := p.Base
	if unchanged >= p.SteadyAfter && p.Max > p.Base {
		next = min(max(current, p.Base)*2, p.Max)
	}
	if p.Ceiling > 0 {
		next = min(next, p.Ceiling)
	}
	return next
}

// AfterErrors returns the interval after a failed reading, the failures-th in a row (1 for the
// first): Base, then doubling up to Max. A queue that cannot be read (its role cannot be assumed,
// SQS refuses or throttles) is not read at the pace of a moving queue; Ceiling does not apply,
// since no message can be seen until a reading succeeds again. The first failure keeps Base, so
// one transient error costs nothing, and a deleted queue's subscribers hear of it at once (every
// failed reading is notified).
func (p IntervalPolicy) AfterErrors(failures int) time.Duration {
	next := p.Base
	for i := 1; i < failures && next < p.Max; i++ {
		next *= 2
	}
	if p.Max > p.Base {
		next = min(next, p.Max)
	}
	return next
}

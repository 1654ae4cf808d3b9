package depth

import "time"

// IntervalPolicy is the adaptive polling policy of one queue.
type IntervalPolicy struct {
	// Base is the interval while anything moves (the fastest any subscriber asked for).
	Base time.Duration
	// Max is the ceiling while the queue is steady.
	Max time.Duration
	// SteadyAfter is how many unchanged samples in a row make a queue steady.
	SteadyAfter int
}

// Next returns the interval after a sample. unchanged counts the samples in a row equal to their
// predecessor (0 when this one changed); fast is true when a subscriber needs the base interval
// regardless (for example a Consumer at zero replicas waiting to activate). A steady queue's
// interval doubles each sample, from Base up to Max; any change returns to Base at once.
func (p IntervalPolicy) Next(current time.Duration, unchanged int, fast bool) time.Duration {
	if fast || unchanged < p.SteadyAfter || p.Max <= p.Base {
		return p.Base
	}
	if current < p.Base {
		current = p.Base
	}
	next := current * 2
	if next > p.Max {
		next = p.Max
	}
	return next
}

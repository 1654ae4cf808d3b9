package depth

import (
	"testing"
	"time"
)

func TestIntervalPolicy(t *testing.T) {
	p := IntervalPolicy{Base: time.Second, Max: 8 * time.Second, SteadyAfter: 3}
	withCeiling := func(c time.Duration) IntervalPolicy { q := p; q.Ceiling = c; return q }
	cases := []struct {
		name      string
		policy    IntervalPolicy
		current   time.Duration
		unchanged int
		want      time.Duration
	}{
		{"a changed sample returns to the base interval", p, 8 * time.Second, 0, time.Second},
		{"a queue not yet steady stays at the base interval", p, time.Second, 2, time.Second},
		{"a steady queue doubles its interval", p, time.Second, 3, 2 * time.Second},
		{"a steady queue keeps doubling", p, 2 * time.Second, 4, 4 * time.Second},
		{"the interval never exceeds the ceiling", p, 8 * time.Second, 10, 8 * time.Second},
		{"a subscriber that needs a reading every base interval keeps it", withCeiling(time.Second), 4 * time.Second, 10, time.Second},
		{"an idle subscriber's ceiling bounds a steady queue's growth", withCeiling(3 * time.Second), 2 * time.Second, 10, 3 * time.Second},
		{"a ceiling above the growth changes nothing", withCeiling(30 * time.Second), 2 * time.Second, 10, 4 * time.Second},
		{"an interval below base is lifted to base before doubling", p, 0, 5, 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.policy.Next(tc.current, tc.unchanged); got != tc.want {
				t.Fatalf("Next(%v, %d) = %v, want %v", tc.current, tc.unchanged, got, tc.want)
			}
		})
	}
	flat := IntervalPolicy{Base: time.Second, Max: time.Second, SteadyAfter: 1}
	if got := flat.Next(time.Second, 9); got != time.Second {
		t.Fatalf("a policy whose ceiling is its base never grows: got %v", got)
	}
}

func TestIntervalAfterErrors(t *testing.T) {
	p := IntervalPolicy{Base: time.Second, Max: 8 * time.Second, SteadyAfter: 3}
	withCeiling := p
	withCeiling.Ceiling = time.Second
	flat := IntervalPolicy{Base: 5 * time.Second, Max: 5 * time.Second, SteadyAfter: 3}
	cases := []struct {
		name     string
		policy   IntervalPolicy
		failures int
		want     time.Duration
	}{
		{"the first failure is retried at the base interval", p, 1, time.Second},
		{"the second failure doubles it", p, 2, 2 * time.Second},
		{"the third doubles it again", p, 3, 4 * time.Second},
		{"the backoff stops at the maximum", p, 4, 8 * time.Second},
		{"and stays there", p, 40, 8 * time.Second},
		{"a huge count does not overflow", p, 1 << 30, 8 * time.Second},
		{"an idle subscriber's ceiling does not hold a failing queue at the base interval", withCeiling, 3, 4 * time.Second},
		{"a policy whose maximum is its base stays at the base", flat, 5, 5 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.policy.AfterErrors(tc.failures); got != tc.want {
				t.Fatalf("AfterErrors(%d) = %v, want %v", tc.failures, got, tc.want)
			}
		})
	}
}

package depth

import (
	"testing"
	"time"
)

func TestIntervalPolicy(t *testing.T) {
	p := IntervalPolicy{Base: time.Second, Max: 8 * time.Second, SteadyAfter: 3}
	cases := []struct {
		name      string
		current   time.Duration
		unchanged int
		fast      bool
		want      time.Duration
	}{
		{"a changed sample returns to the base interval", 8 * time.Second, 0, false, time.Second},
		{"a queue not yet steady stays at the base interval", time.Second, 2, false, time.Second},
		{"a steady queue doubles its interval", time.Second, 3, false, 2 * time.Second},
		{"a steady queue keeps doubling", 2 * time.Second, 4, false, 4 * time.Second},
		{"the interval never exceeds the ceiling", 8 * time.Second, 10, false, 8 * time.Second},
		{"a subscriber that needs speed keeps the base interval", 4 * time.Second, 10, true, time.Second},
		{"an interval below base is lifted to base before doubling", 0, 5, false, 2 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := p.Next(tc.current, tc.unchanged, tc.fast); got != tc.want {
				t.Fatalf("Next(%v, %d, %v) = %v, want %v", tc.current, tc.unchanged, tc.fast, got, tc.want)
			}
		})
	}
	flat := IntervalPolicy{Base: time.Second, Max: time.Second, SteadyAfter: 1}
	if got := flat.Next(time.Second, 9, false); got != time.Second {
		t.Fatalf("a policy whose ceiling is its base never grows: got %v", got)
	}
}

package scaling

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var errThrottled = errors.New("throttled")

func TestFallback(t *testing.T) {
	failed := Observation{Err: errThrottled}
	cases := []struct {
		name     string
		fallback Fallback
		min      int32
		start    int32
		steps    []step
	}{
		{"the count is held until the threshold, then the fallback applies",
			Fallback{FailureThreshold: 3, Replicas: 6}, 0, 2, []step{
				{0, failed, 2}, {5 * time.Second, failed, 2}, {10 * time.Second, failed, 6}, {15 * time.Second, failed, 6},
			}},
		{"the fallback applies from zero",
			Fallback{FailureThreshold: 2, Replicas: 3}, 0, 0, []step{
				{0, failed, 0}, {5 * time.Second, failed, 3},
			}},
		{"a good reading resets the count of failures",
			Fallback{FailureThreshold: 2, Replicas: 5}, 0, 1, []step{
				{0, failed, 1}, {5 * time.Second, Observation{Visible: 10}, 1}, {10 * time.Second, failed, 1}, {15 * time.Second, failed, 5},
			}},
		{"currentReplicasIfHigher keeps a higher current count",
			Fallback{FailureThreshold: 1, Replicas: 3, Behavior: FallbackCurrentReplicasIfHigher}, 0, 8, []step{{0, failed, 8}}},
		{"currentReplicasIfHigher lifts a lower one",
			Fallback{FailureThreshold: 1, Replicas: 3, Behavior: FallbackCurrentReplicasIfHigher}, 0, 1, []step{{0, failed, 3}}},
		{"currentReplicasIfLower keeps a lower current count",
			Fallback{FailureThreshold: 1, Replicas: 3, Behavior: FallbackCurrentReplicasIfLower}, 0, 2, []step{{0, failed, 2}}},
		{"currentReplicas keeps the count",
			Fallback{FailureThreshold: 1, Replicas: 3, Behavior: FallbackCurrentReplicas}, 0, 7, []step{{0, failed, 7}}},
		{"a fallback of zero current replicas still runs one: errors never scale to zero",
			Fallback{FailureThreshold: 1, Replicas: 3, Behavior: FallbackCurrentReplicas}, 0, 0, []step{{0, failed, 1}}},
		{"the fallback count respects minReplicas",
			Fallback{FailureThreshold: 1, Replicas: 1}, 4, 4, []step{{0, failed, 4}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := free()
			p.MinReplicas = tc.min
			fb := tc.fallback
			p.Fallback = &fb
			run(t, p, tc.start, tc.steps)
		})
	}
}

func TestFallbackCountsReadingsNotDecisions(t *testing.T) {
	p := free()
	p.Fallback = &Fallback{FailureThreshold: 2, Replicas: 4}
	st := &State{}
	read := Observation{Err: errThrottled, At: t0}
	for i := range 3 { // three reconciles on the same failed reading
		if d := Decide(p, 1, read, t0.Add(time.Duration(i)*time.Second), st); d.Fallback || d.Replicas != 1 {
			t.Fatalf("decision %d on one failed reading: %+v", i, d)
		}
	}
	read.At = t0.Add(5 * time.Second)
	d := Decide(p, 1, read, read.At, st)
	if !d.Fallback || d.Replicas != 4 || st.Failures() != 2 || !strings.Contains(d.Reason, "fallback to 4") {
		t.Fatalf("after the second failed reading: %+v, failures %d", d, st.Failures())
	}
}

func TestAReadingDecidedAgainDoesNotMoveTheLastMessage(t *testing.T) {
	p := free()
	p.ScaleToZeroDelay = 10 * time.Second
	st := &State{}
	busy := Observation{Visible: 1, At: t0}
	Decide(p, 1, busy, t0, st)
	// A reconcile 8 s later (a Deployment event) decides on the same reading of t0: the queue was
	// last seen holding a message at t0, not at t0+8s.
	Decide(p, 1, busy, t0.Add(8*time.Second), st)
	if d := Decide(p, 1, Observation{At: t0.Add(10 * time.Second)}, t0.Add(10*time.Second), st); d.Replicas != 0 {
		t.Fatalf("got %d (%s), want 0 ten seconds after the last message", d.Replicas, d.Reason)
	}
}

func TestIdleReplicas(t *testing.T) {
	idle := int32(0)
	p := free()
	p.MinReplicas, p.IdleReplicas, p.ActivationBacklog = 6, &idle, 5
	p.ScaleToZeroDelay = 20 * time.Second
	p.ScaleUp = DefaultScaleUp // 4 pods or 100% per 15 s; from idle the count jumps to minReplicas
	run(t, p, 0, []step{
		{0, Observation{Visible: 5}, 0},                 // not above activation: stays idle
		{5 * time.Second, Observation{Visible: 6}, 6},   // active: minReplicas at once
		{10 * time.Second, Observation{Visible: 80}, 6}, // then the backlog, under the policy
		{25 * time.Second, Observation{Visible: 80}, 8},
		{30 * time.Second, Observation{Visible: 10}, 6}, // down to minReplicas, not below
		{35 * time.Second, Observation{}, 6},            // empty: minReplicas during the delay
		{49 * time.Second, Observation{}, 6},
		{50 * time.Second, Observation{}, 0}, // idle 20 s after the last message
		{55 * time.Second, Observation{Err: errThrottled}, 0},
	})
	one := int32(1)
	p.MinReplicas, p.IdleReplicas, p.ScaleUp = 3, &one, Rules{Select: SelectMax}
	run(t, p, 1, []step{
		{0, Observation{Visible: 2}, 1}, // idle at 1: the one replica works below the activation
		{5 * time.Second, Observation{Visible: 40}, 4},
		{10 * time.Second, Observation{}, 3},
		{24 * time.Second, Observation{}, 3},
		{25 * time.Second, Observation{}, 1},
	})
}

func TestPausedReplicas(t *testing.T) {
	five, zero := int32(5), int32(0)
	p := free()
	p.MinReplicas = 2
	p.Paused, p.PausedReplicas = true, &five
	if d := Decide(p, 2, Observation{Visible: 1000}, t0, &State{}); d.Replicas != 5 || !d.Paused || !strings.Contains(d.Reason, "pausedReplicas 5") {
		t.Fatalf("%+v", d)
	}
	p.PausedReplicas = &zero // maintenance: zero even below minReplicas, as KEDA's paused-replicas
	if d := Decide(p, 2, Observation{Err: errThrottled}, t0, &State{}); d.Replicas != 0 || d.Degraded {
		t.Fatalf("%+v", d)
	}
	// Unpausing starts the scale-down window at the paused count.
	p.Paused, p.PausedReplicas = false, nil
	p.ScaleDown.StabilizationWindow = time.Minute
	st := &State{}
	p.Paused, p.PausedReplicas = true, &five
	Decide(p, 2, Observation{}, t0, st)
	p.Paused = false
	if d := Decide(p, 5, Observation{Visible: 20}, t0.Add(10*time.Second), st); d.Replicas != 5 || d.Waiting != 50*time.Second {
		t.Fatalf("after unpausing: %+v", d)
	}
}

func TestToleranceIsPerDirection(t *testing.T) {
	p := free()
	p.ScaleUp.Tolerance, p.ScaleDown.Tolerance = 0, 0.2
	run(t, p, 10, []step{
		{0, Observation{Visible: 101}, 11}, // no tolerance up
		{5 * time.Second, Observation{Visible: 90}, 11},
		{10 * time.Second, Observation{Visible: 88}, 11}, // 88/110 = 0.8: within 20%
		{15 * time.Second, Observation{Visible: 87}, 9},
	})
}

func TestReasonsNameTimesNotDurations(t *testing.T) {
	p := free()
	p.ScaleToZeroDelay = time.Minute
	st := &State{}
	Decide(p, 1, Observation{Visible: 1}, t0, st)
	a := Decide(p, 1, Observation{}, t0.Add(10*time.Second), st)
	b := Decide(p, 1, Observation{}, t0.Add(40*time.Second), st)
	if a.Reason != b.Reason || !strings.Contains(a.Reason, "scale to zero at 2026-11-26T12:01:00Z") {
		t.Fatalf("reasons %q and %q", a.Reason, b.Reason)
	}
	if b.Waiting != 20*time.Second {
		t.Fatalf("Waiting %v", b.Waiting)
	}
}

package scaling

import (
	"errors"
	"testing"
	"time"
)

// defaults is the policy of a Consumer created with no scaling settings: HPA behavior, a 5 minute
// scale-to-zero delay, 10 per replica, in flight counted.
func defaults() Policy {
	return Policy{MinReplicas: 0, MaxReplicas: 10, BacklogPerReplica: 10, CountInFlight: true,
		ScaleToZeroDelay: 5 * time.Minute, ScaleUp: DefaultScaleUp, ScaleDown: DefaultScaleDown}
}

// TestTheLastReplicaGoesAfterTheDelayNotAfterTheDelayAndTheWindow: scale to zero took
// scaleToZeroDelay plus the scale-down window, because the floor of 1 held during the delay entered
// the window.
func TestTheLastReplicaGoesAfterTheDelayNotAfterTheDelayAndTheWindow(t *testing.T) {
	cases := []struct {
		name  string
		delay time.Duration
	}{
		{"with the default 5m delay and 5m window the last replica goes after 5m", 5 * time.Minute},
		{"with a 1m delay and the default 5m window the last replica goes after 1m", time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := defaults()
			p.ScaleToZeroDelay = tc.delay
			st := &State{}
			current := int32(1)
			Decide(p, current, Observation{Visible: 3}, t0, st)
			var zeroAt time.Duration
			for at := 5 * time.Second; at <= 20*time.Minute; at += 5 * time.Second {
				d := Decide(p, current, Observation{}, t0.Add(at), st)
				st.RecordScale(t0.Add(at), current, d.Replicas)
				current = d.Replicas
				if current == 0 {
					zeroAt = at
					break
				}
			}
			if zeroAt < tc.delay || zeroAt > tc.delay+5*time.Second {
				t.Fatalf("scaled to zero %v after the last message, want %v (± one 5s poll)", zeroAt, tc.delay)
			}
		})
	}
}

// TestAFreshStateStartsTheScaleDownWindowAtTheCurrentCount: after a restart or a leader change the
// state is empty; the HPA starts its window at the current count instead of scaling down at once.
func TestAFreshStateStartsTheScaleDownWindowAtTheCurrentCount(t *testing.T) {
	p := defaults()
	p.MaxReplicas = 100
	st := &State{} // a new leader
	d := Decide(p, 20, Observation{Visible: 10}, t0, st)
	if d.Replicas != 20 {
		t.Fatalf("a new leader scaled 20 → %d at once (%s); the window must start at the current count", d.Replicas, d.Reason)
	}
	d = Decide(p, 20, Observation{Visible: 10}, t0.Add(5*time.Minute+time.Second), st)
	if d.Replicas != 1 {
		t.Fatalf("after the window: %d (%s), want 1", d.Replicas, d.Reason)
	}
}

// TestAHeldChangeSaysWhenItIsReleased: a change held by a stabilization window must report how long
// until it is released, so the controller decides again at that moment instead of at the next sample.
func TestAHeldChangeSaysWhenItIsReleased(t *testing.T) {
	cases := []struct {
		name    string
		rules   func(*Policy)
		steps   []step
		waiting time.Duration // Waiting of the last step
	}{
		{"a scale-down held by the window is released when the highest recommendation leaves it",
			func(p *Policy) { p.ScaleDown.StabilizationWindow = 30 * time.Second }, []step{
				{0, Observation{Visible: 80}, 8},
				{10 * time.Second, Observation{Visible: 20}, 8},
			}, 20 * time.Second},
		{"a partial scale-down is followed by the next step when its recommendation leaves the window",
			func(p *Policy) { p.ScaleDown.StabilizationWindow = 30 * time.Second }, []step{
				{0, Observation{Visible: 80}, 8},
				{10 * time.Second, Observation{Visible: 40}, 8},
				{20 * time.Second, Observation{Visible: 20}, 8},
				{31 * time.Second, Observation{Visible: 20}, 4}, // the 8 left; the 4 of t+10 holds until t+40
			}, 9 * time.Second},
		{"a scale-up held by the scale-up window is released when the lowest recommendation leaves it",
			func(p *Policy) { p.ScaleUp.StabilizationWindow = 20 * time.Second }, []step{
				{0, Observation{Visible: 10}, 1},
				{5 * time.Second, Observation{Visible: 100}, 1},
			}, 15 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := free()
			tc.rules(&p)
			st := &State{}
			current := int32(tc.steps[0].want)
			var d Decision
			for i, s := range tc.steps {
				now := t0.Add(s.at)
				d = Decide(p, current, s.obs, now, st)
				if d.Replicas != s.want {
					t.Fatalf("step %d: got %d (%s), want %d", i, d.Replicas, d.Reason, s.want)
				}
				st.RecordScale(now, current, d.Replicas)
				current = d.Replicas
			}
			if d.Waiting != tc.waiting {
				t.Fatalf("Waiting = %v, want %v (%s)", d.Waiting, tc.waiting, d.Reason)
			}
		})
	}
}

// TestPausedAndUnreadableDepthKeepTheQueueBusy: while paused or while the depth cannot be read, the
// queue may hold messages; the scale-to-zero delay must start again afterwards, not count from the
// last message seen before.
func TestPausedAndUnreadableDepthKeepTheQueueBusy(t *testing.T) {
	cases := []struct {
		name   string
		during func(*Policy, *Observation)
	}{
		{"unpausing with an empty queue waits for the delay", func(p *Policy, _ *Observation) { p.Paused = true }},
		{"the first good read after errors waits for the delay", func(_ *Policy, o *Observation) { o.Err = errors.New("throttled") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := free()
			p.ScaleToZeroDelay = time.Minute
			st := &State{}
			Decide(p, 2, Observation{Visible: 20}, t0, st)
			held, obs := p, Observation{}
			tc.during(&held, &obs)
			for at := 5 * time.Second; at <= 10*time.Minute; at += 5 * time.Second {
				if d := Decide(held, 2, obs, t0.Add(at), st); d.Replicas != 2 {
					t.Fatalf("t+%v: %d (%s)", at, d.Replicas, d.Reason)
				}
			}
			d := Decide(p, 2, Observation{}, t0.Add(10*time.Minute+5*time.Second), st)
			if d.Replicas == 0 {
				t.Fatalf("scaled to zero at once (%s); the delay must start again", d.Reason)
			}
		})
	}
}

// TestSmallChangesWithinTheToleranceDoNotScale: the HPA ignores a usage ratio within 10% of 1.
func TestSmallChangesWithinTheToleranceDoNotScale(t *testing.T) {
	p := defaults()
	p.MaxReplicas = 100
	p.ScaleDown.StabilizationWindow = 0
	run(t, p, 10, []step{
		{0, Observation{Visible: 100}, 10},
		{15 * time.Second, Observation{Visible: 105}, 10},
		{30 * time.Second, Observation{Visible: 100}, 10},
		{45 * time.Second, Observation{Visible: 95}, 10},
		{60 * time.Second, Observation{Visible: 109}, 10},
		{75 * time.Second, Observation{Visible: 111}, 12}, // 11.1% above: scales (to ceil(111/10))
		{90 * time.Second, Observation{Visible: 120}, 12},
		{105 * time.Second, Observation{Visible: 60}, 6},
	})
}

// Every decision kept a recommendation for the whole stabilization window (up to an hour), and
// every decision scanned them all; a Consumer's reconciles are driven by its tenant (each write of
// the Consumer, each change of its Deployment), so one tenant could make each decision of the
// shared manager's single Consumer worker scan tens of thousands of entries. Equal counts keep only
// their newest recommendation now: the state is bounded by the replica range, and the decisions
// are the same (the other tests of this package).
func TestDecisionStateIsBoundedWhateverTheReconcileRate(t *testing.T) {
	p := defaults()
	p.ScaleDown.StabilizationWindow = time.Hour
	st := &State{}
	now := time.Unix(1_700_000_000, 0)
	const decisions = 30_000 // 50 reconciles a second for 10 minutes, all within the window
	for i := range decisions {
		visible := int64(25 + 10*(i%7)) // a backlog that moves: several counts recommended
		Decide(p, 3, Observation{Visible: visible, At: now}, now, st)
		now = now.Add(20 * time.Millisecond)
	}
	if n := len(st.recommendations); n > int(p.MaxReplicas)+2 {
		t.Fatalf("%d recommendations kept after %d decisions (each decision scans them all)", n, decisions)
	}
}

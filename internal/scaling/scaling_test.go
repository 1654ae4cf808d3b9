package scaling

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// free is a policy without stabilization or rate limits, to test the arithmetic alone.
func free() Policy {
	return Policy{MinReplicas: 0, MaxReplicas: 100, BacklogPerReplica: 10, CountInFlight: true,
		ScaleUp: Rules{Select: SelectMax}, ScaleDown: Rules{Select: SelectMax}}
}

func TestDecideOnce(t *testing.T) {
	cases := []struct {
		name    string
		policy  func(*Policy)
		current int32
		obs     Observation
		want    int32
		reason  string
		active  bool
	}{
		{"an empty queue at zero stays at zero", nil, 0, Observation{}, 0, "inactive", false},
		{"a backlog is divided by the backlog per replica, rounded up", nil, 0, Observation{Visible: 25}, 3, "backlog 25", true},
		{"in-flight messages count by default", nil, 1, Observation{Visible: 5, InFlight: 15}, 2, "backlog 20", true},
		{"in-flight messages are ignored when countInFlight is false", func(p *Policy) { p.CountInFlight = false }, 1, Observation{Visible: 5, InFlight: 15}, 1, "backlog 5", true},
		{"delayed messages are ignored by default", nil, 1, Observation{Visible: 10, Delayed: 50}, 1, "backlog 10", true},
		{"delayed messages count when countDelayed is true", func(p *Policy) { p.CountDelayed = true }, 1, Observation{Visible: 10, Delayed: 50}, 6, "backlog 60", true},
		{"a backlog at the activation threshold does not start from zero", func(p *Policy) { p.ActivationBacklog = 5 }, 0, Observation{Visible: 5}, 0, "inactive", false},
		{"a backlog above the activation threshold starts from zero", func(p *Policy) { p.ActivationBacklog = 5 }, 0, Observation{Visible: 6}, 1, "backlog 6", true},
		{"running replicas keep working below the activation threshold", func(p *Policy) { p.ActivationBacklog = 50 }, 2, Observation{Visible: 15}, 2, "backlog 15", false},
		{"the count is capped at maxReplicas", func(p *Policy) { p.MaxReplicas = 4 }, 0, Observation{Visible: 1000}, 4, "capped at maxReplicas 4", true},
		{"the count is raised to minReplicas", func(p *Policy) { p.MinReplicas = 2 }, 2, Observation{}, 2, "raised to minReplicas 2", false},
		{"a count below minReplicas is corrected at once", func(p *Policy) { p.MinReplicas = 3 }, 0, Observation{}, 3, "raised to minReplicas 3", false},
		{"a count above maxReplicas is corrected at once", func(p *Policy) { p.MaxReplicas = 2 }, 9, Observation{Visible: 1000}, 2, "capped", true},
		{"an unreadable depth holds the current count", nil, 3, Observation{Err: errors.New("throttled")}, 3, "depth unknown", false},
		{"an unreadable depth never scales to zero", nil, 1, Observation{Err: errors.New("throttled")}, 1, "holding 1", false},
		{"an unreadable depth still honours minReplicas", func(p *Policy) { p.MinReplicas = 2 }, 0, Observation{Err: errors.New("x")}, 2, "holding 2", false},
		{"paused holds the count whatever the backlog", func(p *Policy) { p.Paused = true }, 2, Observation{Visible: 1000}, 2, "paused", false},
		{"a zero backlog per replica is treated as one", func(p *Policy) { p.BacklogPerReplica = 0 }, 0, Observation{Visible: 7}, 7, "backlog 7", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := free()
			if tc.policy != nil {
				tc.policy(&p)
			}
			d := Decide(p, tc.current, tc.obs, t0, &State{})
			if d.Replicas != tc.want || !strings.Contains(d.Reason, tc.reason) || d.Active != tc.active {
				t.Fatalf("got %d active=%v (%q), want %d active=%v containing %q", d.Replicas, d.Active, d.Reason, tc.want, tc.active, tc.reason)
			}
			if d.Degraded != (tc.obs.Err != nil && !p.Paused) {
				t.Fatalf("Degraded = %v", d.Degraded)
			}
		})
	}
}

// step is one decision in a sequence: at offset, with this observation, expect this count. The
// count is applied (and recorded) before the next step, as the controller does.
type step struct {
	at   time.Duration
	obs  Observation
	want int32
}

func run(t *testing.T, p Policy, start int32, steps []step) {
	t.Helper()
	st := &State{}
	current := start
	for i, s := range steps {
		now := t0.Add(s.at)
		d := Decide(p, current, s.obs, now, st)
		if d.Replicas != s.want {
			t.Fatalf("step %d (t+%v, %+v): got %d (%s), want %d", i, s.at, s.obs, d.Replicas, d.Reason, s.want)
		}
		st.RecordScale(now, current, d.Replicas)
		current = d.Replicas
	}
}

func TestScaleToZeroWaitsForTheDelayOfAnEmptyQueue(t *testing.T) {
	p := free()
	p.ScaleToZeroDelay = time.Minute
	run(t, p, 0, []step{
		{0, Observation{Visible: 5}, 1},
		{10 * time.Second, Observation{InFlight: 5}, 1}, // in flight: still busy; the last message seen
		{20 * time.Second, Observation{}, 1},
		{69 * time.Second, Observation{}, 1}, // 59 s empty
		{70 * time.Second, Observation{}, 0}, // 60 s empty
		{90 * time.Second, Observation{Visible: 1}, 1},
		{95 * time.Second, Observation{Delayed: 1}, 1}, // a delayed message is not an empty queue
		{154 * time.Second, Observation{}, 1},
		{155 * time.Second, Observation{}, 0},
	})
}

func TestScaleToZeroReportsHowLongToWait(t *testing.T) {
	p := free()
	p.ScaleToZeroDelay = time.Minute
	st := &State{}
	Decide(p, 1, Observation{Visible: 1}, t0, st)
	d := Decide(p, 1, Observation{}, t0.Add(20*time.Second), st)
	if d.Replicas != 1 || d.Waiting != 40*time.Second {
		t.Fatalf("got %d replicas, waiting %v", d.Replicas, d.Waiting)
	}
}

func TestScaleDownStabilizationUsesTheHighestRecentRecommendation(t *testing.T) {
	p := free()
	p.ScaleDown.StabilizationWindow = 30 * time.Second
	run(t, p, 0, []step{
		{0, Observation{Visible: 80}, 8},
		{10 * time.Second, Observation{Visible: 20}, 8},
		{20 * time.Second, Observation{Visible: 40}, 8},
		{35 * time.Second, Observation{Visible: 20}, 4}, // the 8 left the window; 4 (t+20) is the highest
		{51 * time.Second, Observation{Visible: 20}, 2},
	})
}

func TestScaleUpStabilizationUsesTheLowestRecentRecommendation(t *testing.T) {
	p := free()
	p.ScaleUp.StabilizationWindow = 20 * time.Second
	run(t, p, 1, []step{
		{0, Observation{Visible: 10}, 1},
		{5 * time.Second, Observation{Visible: 100}, 1}, // a spike: the 1 at t+0 is still in the window
		{15 * time.Second, Observation{Visible: 100}, 1},
		{21 * time.Second, Observation{Visible: 100}, 10}, // sustained for the window
	})
}

func TestScaleUpRatePolicies(t *testing.T) {
	cases := []struct {
		name  string
		rules Rules
		steps []step
		start int32
	}{
		{"pods per period limit the step and free up when the period passes",
			Rules{Select: SelectMax, Policies: []RatePolicy{{Kind: Pods, Value: 2, Period: 10 * time.Second}}}, []step{
				{0, Observation{Visible: 100}, 3},
				{5 * time.Second, Observation{Visible: 100}, 3},
				{10 * time.Second, Observation{Visible: 100}, 5},
				{20 * time.Second, Observation{Visible: 100}, 7},
			}, 1},
		{"percent per period doubles at 100%",
			Rules{Select: SelectMax, Policies: []RatePolicy{{Kind: Percent, Value: 100, Period: 10 * time.Second}}}, []step{
				{0, Observation{Visible: 100}, 4},
				{10 * time.Second, Observation{Visible: 100}, 8},
				{20 * time.Second, Observation{Visible: 100}, 10},
			}, 2},
		{"select Max takes the policy allowing more (HPA defaults from zero: 4 pods)",
			DefaultScaleUp, []step{
				{0, Observation{Visible: 1000}, 4},
				{15 * time.Second, Observation{Visible: 1000}, 8},
				{30 * time.Second, Observation{Visible: 1000}, 16},
			}, 0},
		{"select Min takes the policy allowing less",
			Rules{Select: SelectMin, Policies: []RatePolicy{{Kind: Percent, Value: 100, Period: 15 * time.Second}, {Kind: Pods, Value: 4, Period: 15 * time.Second}}}, []step{
				{0, Observation{Visible: 1000}, 2},
				{15 * time.Second, Observation{Visible: 1000}, 4},
				{30 * time.Second, Observation{Visible: 1000}, 8},
				{45 * time.Second, Observation{Visible: 1000}, 12},
			}, 1},
		{"a disabled direction never scales",
			Rules{Select: SelectDisabled}, []step{{0, Observation{Visible: 1000}, 1}}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := free()
			p.ScaleUp = tc.rules
			run(t, p, tc.start, tc.steps)
		})
	}
}

func TestScaleDownRatePolicies(t *testing.T) {
	one := Observation{Visible: 1}
	p := free()
	p.ScaleDown = Rules{Select: SelectMax, Policies: []RatePolicy{{Kind: Pods, Value: 3, Period: 10 * time.Second}}}
	run(t, p, 10, []step{
		{0, one, 7},
		{5 * time.Second, one, 7},
		{10 * time.Second, one, 4},
		{20 * time.Second, one, 1},
	})
	p.ScaleDown = Rules{Select: SelectMax, Policies: []RatePolicy{{Kind: Percent, Value: 50, Period: 10 * time.Second}}}
	run(t, p, 10, []step{
		{0, one, 5},
		{10 * time.Second, one, 2}, // 50% of 5 is 2.5, rounded down
		{20 * time.Second, one, 1},
	})
}

func TestADisabledScaleDownAlsoKeepsTheConsumerFromIdling(t *testing.T) {
	p := free()
	p.ScaleToZeroDelay = 10 * time.Second
	p.ScaleDown.Select = SelectDisabled
	run(t, p, 3, []step{
		{0, Observation{Visible: 1}, 3},
		{10 * time.Second, Observation{}, 3},
		{time.Hour, Observation{}, 3},
	})
}

func TestGoingIdleAfterTheDelayIsNotRateLimited(t *testing.T) {
	// Like KEDA's cooldownPeriod: once the queue has been empty for scaleToZeroDelay, no work is
	// left and the count is set to zero at once; rate policies govern 1..N only.
	p := free()
	p.ScaleToZeroDelay = 30 * time.Second
	p.ScaleDown = Rules{Select: SelectMax, Policies: []RatePolicy{{Kind: Pods, Value: 1, Period: time.Minute}}}
	run(t, p, 5, []step{
		{0, Observation{Visible: 1}, 4},
		{10 * time.Second, Observation{}, 4}, // the last message was seen at t+0
		{29 * time.Second, Observation{}, 4},
		{30 * time.Second, Observation{}, 0},
	})
}

func TestDefaultScaleDownWaitsFiveMinutes(t *testing.T) {
	p := free()
	p.ScaleUp, p.ScaleDown = DefaultScaleUp, DefaultScaleDown
	run(t, p, 0, []step{
		{0, Observation{Visible: 30}, 3},
		{time.Minute, Observation{Visible: 10}, 3},
		{5*time.Minute + time.Second, Observation{Visible: 10}, 1},
	})
}

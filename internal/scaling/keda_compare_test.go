package scaling

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// This file drives Decide on simulated time, as the Consumer controller does (a decision at each
// depth reading and when a held change is released), next to a model of KEDA's aws-sqs-queue
// scaler with an HPA: KEDA reads the queue every pollingInterval (30 s) to activate from zero and
// to go back to zero after cooldownPeriod (300 s) without activity; between 1 and N the HPA decides
// every 15 s on a live reading. The HPA's arithmetic and behavior are autoscaling/v2's, which
// Decide implements, so the model reuses them with KEDA's settings (queueLength 5, max 100).
// The timelines are printed with -v; docs/consumer.md's comparison table comes from them.

// load is the queue over time: what a reading at t sees.
type load func(t time.Duration) Observation

// settings are the user's choices in both systems' terms.
type settings struct {
	perReplica, activation int64
	countInFlight          bool
	min, max               int32
	fallback               *Fallback
	idlePoll               time.Duration // Millrace's idlePollInterval (default 30s)
}

func crdDefaults() settings {
	return settings{perReplica: 10, countInFlight: true, max: 10, idlePoll: 30 * time.Second}
}

// millracePolicy is a Consumer created with those settings and the CRD's defaults.
func (s settings) millracePolicy() Policy {
	return Policy{MinReplicas: s.min, MaxReplicas: s.max, BacklogPerReplica: s.perReplica, ActivationBacklog: s.activation,
		CountInFlight: s.countInFlight, ScaleToZeroDelay: 5 * time.Minute, ScaleUp: DefaultScaleUp, ScaleDown: DefaultScaleDown, Fallback: s.fallback}
}

type change struct {
	at       time.Duration
	from, to int32
}

type timeline struct {
	changes  []change
	readings int
}

func (tl timeline) String() string {
	var b strings.Builder
	for _, c := range tl.changes {
		fmt.Fprintf(&b, " t+%v %d→%d;", c.at, c.from, c.to)
	}
	return fmt.Sprintf("%s (%d readings)", b.String(), tl.readings)
}

// first returns when the count first reached n or more (-1: never).
func (tl timeline) first(n int32) time.Duration {
	for _, c := range tl.changes {
		if c.to >= n {
			return c.at
		}
	}
	return -1
}

// zeroAfter returns when the count reached zero after t (-1: never).
func (tl timeline) zeroAfter(t time.Duration) time.Duration {
	for _, c := range tl.changes {
		if c.at >= t && c.to == 0 {
			return c.at
		}
	}
	return -1
}

func (tl timeline) last() int32 {
	if len(tl.changes) == 0 {
		return 0
	}
	return tl.changes[len(tl.changes)-1].to
}

func (tl *timeline) set(at time.Duration, current *int32, n int32) {
	if n != *current {
		tl.changes = append(tl.changes, change{at, *current, n})
		*current = n
	}
}

// simulateMillrace runs the Consumer controller's loop: a reading every pollInterval (5 s) while
// running, every idlePollInterval while idle, and a decision at each reading and at each release
// of a held change.
func simulateMillrace(s settings, q load, start int32, length time.Duration) timeline {
	p := s.millracePolicy()
	st := &State{}
	var tl timeline
	current := start
	var obs Observation
	nextRead, requeue := time.Duration(0), time.Duration(-1)
	for at := time.Duration(0); at <= length; at += time.Second {
		now := t0.Add(at)
		decide := false
		if at >= nextRead {
			obs = q(at)
			obs.At = now
			tl.readings++
			decide = true
		}
		if requeue >= 0 && at >= requeue {
			decide, requeue = true, -1
		}
		if !decide {
			continue
		}
		d := Decide(p, current, obs, now, st)
		st.RecordScale(now, current, d.Replicas)
		tl.set(at, &current, d.Replicas)
		if d.Waiting > 0 {
			requeue = at + d.Waiting.Round(time.Second)
		}
		if at >= nextRead {
			nextRead = at + 5*time.Second
			if idle, ok := p.Idle(); ok && current <= idle {
				nextRead = at + s.idlePoll
			}
		}
	}
	return tl
}

// simulateKEDA models a ScaledObject (pollingInterval 30, cooldownPeriod 300, the trigger's
// queueLength/activationQueueLength/scaleOnInFlight, fallback) and the HPA it makes (sync 15 s,
// default behavior, tolerance 10%).
func simulateKEDA(s settings, q load, start int32, length time.Duration) timeline {
	hpa := Policy{MinReplicas: max(s.min, 1), MaxReplicas: s.max, BacklogPerReplica: s.perReplica,
		CountInFlight: s.countInFlight, ScaleUp: DefaultScaleUp, ScaleDown: DefaultScaleDown, Fallback: s.fallback}
	hst := &State{}
	var tl timeline
	current := start
	lastActive := time.Duration(0)
	for at := time.Duration(0); at <= length; at += time.Second {
		now := t0.Add(at)
		if at%(30*time.Second) == 0 { // KEDA's scale loop: activation and cooldown
			obs := q(at)
			tl.readings++
			active := obs.Err == nil && hpa.backlog(obs) > s.activation
			switch {
			case active:
				lastActive = at
				if current == 0 {
					tl.set(at, &current, max(s.min, 1))
					hst = &State{}
				}
			case obs.Err != nil && s.fallback != nil && current == 0:
				// fallback from zero once the scaler has failed failureThreshold times
				if hst.failures+1 >= s.fallback.FailureThreshold {
					tl.set(at, &current, s.fallback.Replicas)
				}
				hst.failures++
			case current > 0 && s.min == 0 && at-lastActive >= 300*time.Second:
				tl.set(at, &current, 0)
			}
		}
		if current > 0 && at%(15*time.Second) == 0 { // the HPA's sync on a live reading
			obs := q(at)
			obs.At = now
			tl.readings++
			d := Decide(hpa, current, obs, now, hst)
			hst.RecordScale(now, current, d.Replicas)
			tl.set(at, &current, d.Replicas)
		}
	}
	return tl
}

// between returns a load of obs from a to b, and empty otherwise.
func between(a, b time.Duration, obs Observation) load {
	return func(t time.Duration) Observation {
		if t >= a && t < b {
			return obs
		}
		return Observation{}
	}
}

func TestKEDAComparisonScenarios(t *testing.T) {
	const minute = time.Minute
	keda := func(s settings) settings { s.perReplica, s.max = 5, 100; return s } // KEDA's defaults
	cases := []struct {
		name   string
		s      settings
		kedaS  settings
		q      load
		start  int32
		length time.Duration
		check  func(t *testing.T, m, k timeline)
	}{
		{"25 messages into an idle queue, handled in 40 s, defaults", crdDefaults(), keda(crdDefaults()),
			between(2*time.Second, 42*time.Second, Observation{Visible: 25}), 0, 12 * minute,
			func(t *testing.T, m, k timeline) {
				// Both read an idle queue every 30 s; Millrace goes to zero 5 min after the last
				// message (± one reading), KEDA 5 min after its last active poll (± 30 s).
				if f := m.first(1); f < 0 || f > 30*time.Second {
					t.Errorf("Millrace first replica at %v", f)
				}
				if z := m.zeroAfter(42 * time.Second); z < 5*minute+40*time.Second || z > 5*minute+47*time.Second {
					t.Errorf("Millrace zero at %v, want 5m after the last message at 40-42s (± one 5s reading)", z)
				}
			}},
		{"the same with idlePollInterval 5s", func() settings { s := crdDefaults(); s.idlePoll = 5 * time.Second; return s }(), keda(crdDefaults()),
			between(2*time.Second, 42*time.Second, Observation{Visible: 25}), 0, 2 * minute,
			func(t *testing.T, m, k timeline) {
				if f := m.first(1); f < 0 || f > 5*time.Second {
					t.Errorf("Millrace first replica at %v", f)
				}
			}},
		{"a backlog flapping between 100 and 105 at 10 per replica", crdDefaults(), func() settings { s := keda(crdDefaults()); s.perReplica = 10; return s }(),
			func(t time.Duration) Observation { return Observation{Visible: 100 + 5*int64(t/(10*time.Second)%2)} }, 10, 10 * minute,
			func(t *testing.T, m, k timeline) {
				if len(m.changes) != 0 || len(k.changes) != 0 {
					t.Errorf("flapping within the tolerance moved the count: Millrace%v KEDA%v", m, k)
				}
			}},
		{"a spike of 500 for a minute, then 50, max 100", func() settings { s := crdDefaults(); s.max = 100; return s }(), keda(crdDefaults()),
			func(t time.Duration) Observation {
				switch {
				case t < 5*time.Second:
					return Observation{}
				case t < 65*time.Second:
					return Observation{Visible: 500}
				}
				return Observation{Visible: 50}
			}, 0, 8 * minute,
			func(t *testing.T, m, k timeline) {
				// Up by the HPA's default policy (4 pods or 100% per 15 s) from the first reading;
				// down to 5 when the 5 minute window has passed the spike.
				if f := m.first(16); f < 0 || f > 60*time.Second || m.last() != 5 {
					t.Errorf("Millrace %v", m)
				}
			}},
		{"a slow handler: 5 messages in flight for 10 min, in-flight not counted", func() settings { s := crdDefaults(); s.countInFlight = false; return s }(),
			func() settings { s := keda(crdDefaults()); s.countInFlight = false; return s }(),
			func(t time.Duration) Observation {
				if t < 10*time.Second {
					return Observation{Visible: 5}
				}
				if t < 10*minute {
					return Observation{InFlight: 5}
				}
				return Observation{}
			}, 0, 16 * minute,
			func(t *testing.T, m, k timeline) {
				// KEDA's activity is the counted backlog: it goes to zero during the handling;
				// Millrace idles only when no message at all is left.
				if z := m.zeroAfter(0); z < 10*minute+5*minute-5*time.Second {
					t.Errorf("Millrace went to zero at %v while messages were in flight", z)
				}
				if z := k.zeroAfter(0); z < 0 || z > 10*minute {
					t.Errorf("the KEDA model went to zero at %v", z)
				}
			}},
		{"40 messages, activation 5, the last 3 left below it", func() settings { s := crdDefaults(); s.activation = 5; return s }(),
			func() settings { s := keda(crdDefaults()); s.activation = 5; return s }(),
			func(t time.Duration) Observation {
				switch {
				case t < 5*time.Second:
					return Observation{}
				case t < 60*time.Second:
					return Observation{Visible: 40}
				}
				return Observation{Visible: 3}
			}, 0, 12 * minute,
			func(t *testing.T, m, k timeline) {
				// KEDA: below activation is inactive, so it returns to zero with 3 messages left.
				if m.last() == 0 {
					t.Errorf("Millrace stranded messages below the activation threshold: %v", m)
				}
				if k.last() != 0 {
					t.Errorf("the KEDA model kept %d", k.last())
				}
			}},
		{"depth unreadable from zero, fallback 3 replicas after 3 failures", func() settings {
			s := crdDefaults()
			s.fallback = &Fallback{FailureThreshold: 3, Replicas: 3}
			return s
		}(), func() settings {
			s := keda(crdDefaults())
			s.fallback = &Fallback{FailureThreshold: 3, Replicas: 3}
			return s
		}(),
			func(t time.Duration) Observation {
				if t >= 60*time.Second && t < 4*minute {
					return Observation{Err: errors.New("AccessDenied")}
				}
				return Observation{}
			}, 0, 5 * minute,
			func(t *testing.T, m, k timeline) {
				if f := m.first(3); f < 60*time.Second || f > 60*time.Second+3*30*time.Second {
					t.Errorf("Millrace fallback at %v", f)
				}
			}},
		{"a new leader at 20 replicas with a backlog of 10", func() settings { s := crdDefaults(); s.max = 100; return s }(),
			keda(func() settings { s := crdDefaults(); s.perReplica = 10; return s }()),
			func(time.Duration) Observation { return Observation{Visible: 10} }, 20, 7 * minute,
			func(t *testing.T, m, k timeline) {
				if len(m.changes) == 0 || m.changes[0].at < 5*minute {
					t.Errorf("Millrace scaled down before the window: %v", m)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := simulateMillrace(tc.s, tc.q, tc.start, tc.length)
			k := simulateKEDA(tc.kedaS, tc.q, tc.start, tc.length)
			t.Logf("Millrace:%v", m)
			t.Logf("KEDA+HPA:%v", k)
			tc.check(t, m, k)
		})
	}
}

// TestScaleToZeroTimeAndIdleReadingsWithDefaults gives docs/benchmarks.md its figures: the time
// from the last message to zero replicas with the CRD's defaults, at every phase of the 5 s
// reading, and the depth readings of a day at zero.
func TestScaleToZeroTimeAndIdleReadingsWithDefaults(t *testing.T) {
	var worst, best time.Duration = 0, time.Hour
	for phase := time.Duration(0); phase < 5*time.Second; phase += time.Second {
		lastMessage := 10*time.Second + phase
		tl := simulateMillrace(crdDefaults(), between(0, lastMessage, Observation{Visible: 3}), 0, 10*time.Minute)
		z := tl.zeroAfter(lastMessage) - lastMessage
		worst, best = max(worst, z), min(best, z)
	}
	t.Logf("last message → zero replicas: %v to %v (scaleToZeroDelay 5m, pollInterval 5s)", best, worst)
	if best < 5*time.Minute-5*time.Second || worst > 5*time.Minute+5*time.Second {
		t.Fatalf("scale to zero took %v to %v, want 5m ± one 5s reading", best, worst)
	}
	day := simulateMillrace(crdDefaults(), func(time.Duration) Observation { return Observation{} }, 0, 24*time.Hour-time.Second)
	t.Logf("readings in a day at zero: %d (idlePollInterval 30s)", day.readings)
	if day.readings != 2880 {
		t.Fatalf("%d readings a day", day.readings)
	}
}

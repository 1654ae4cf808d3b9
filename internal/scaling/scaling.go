// Package scaling decides how many replicas a Consumer should run from its queue's depth. It is pure:
// the caller passes the policy, the current replica count, the newest depth observation, the time
// and the State kept between decisions, and gets back the desired count and the reason.
//
// Semantics:
//   - backlog = visible (+ in flight when CountInFlight) (+ delayed when CountDelayed);
//     the raw recommendation is ceil(backlog / BacklogPerReplica), as KEDA's aws-sqs-queue scaler.
//   - Activation gates only the step from zero: at zero replicas nothing starts until the backlog
//     exceeds ActivationBacklog. Once running, replicas follow the backlog, so messages below the
//     activation threshold are never stranded.
//   - Scale to zero happens only after ScaleToZeroDelay without any message (visible, in flight or
//     delayed); until then at least one replica stays.
//   - Stabilization windows and rate policies follow autoscaling/v2 HPA behavior.
//   - When depth cannot be read the current count is held (never scaled to zero on an error), only
//     lifted into [MinReplicas, MaxReplicas], and the decision says Degraded.
//   - Paused holds the current count.
package scaling

import (
	"fmt"
	"math"
	"time"
)

// SelectPolicy picks among several rate policies, as in HPA behavior.
type SelectPolicy string

const (
	// SelectMax allows the largest change any policy allows (the HPA default).
	SelectMax SelectPolicy = "Max"
	// SelectMin allows the smallest change any policy allows.
	SelectMin SelectPolicy = "Min"
	// SelectDisabled forbids scaling in that direction.
	SelectDisabled SelectPolicy = "Disabled"
)

// RateKind is the unit of a rate policy.
type RateKind string

const (
	// Pods limits the change to Value replicas per Period.
	Pods RateKind = "Pods"
	// Percent limits the change to Value percent of the replicas at the start of the Period.
	Percent RateKind = "Percent"
)

// RatePolicy limits how fast replicas change.
type RatePolicy struct {
	Kind   RateKind
	Value  int32
	Period time.Duration
}

// Rules are the behavior of one direction.
type Rules struct {
	// StabilizationWindow: scaling up uses the lowest, scaling down the highest recommendation
	// seen within the window.
	StabilizationWindow time.Duration
	Select              SelectPolicy
	Policies            []RatePolicy
}

// Policy is a Consumer's scaling spec in typed form.
type Policy struct {
	MinReplicas       int32
	MaxReplicas       int32
	BacklogPerReplica int64
	ActivationBacklog int64
	CountInFlight     bool
	CountDelayed      bool
	ScaleToZeroDelay  time.Duration
	ScaleUp           Rules
	ScaleDown         Rules
	Paused            bool
}

// DefaultScaleUp and DefaultScaleDown are HPA's default behaviors.
var (
	DefaultScaleUp = Rules{Select: SelectMax, Policies: []RatePolicy{
		{Kind: Percent, Value: 100, Period: 15 * time.Second},
		{Kind: Pods, Value: 4, Period: 15 * time.Second},
	}}
	DefaultScaleDown = Rules{StabilizationWindow: 5 * time.Minute, Select: SelectMax, Policies: []RatePolicy{
		{Kind: Percent, Value: 100, Period: 15 * time.Second},
	}}
)

// Observation is one reading of the queue.
type Observation struct {
	Visible, InFlight, Delayed int64
	// Err says the depth could not be read.
	Err error
}

// State is what decisions remember; the caller keeps one per Consumer.
type State struct {
	recommendations []timed
	scaleUps        []timed
	scaleDowns      []timed
	// lastMessage is the last time the queue held any message.
	lastMessage time.Time
}

type timed struct {
	at time.Time
	n  int32
}

// Decision is the outcome.
type Decision struct {
	Replicas int32
	// Reason explains Replicas in words, for status and Events.
	Reason string
	// Backlog is the counted backlog (0 when Degraded).
	Backlog int64
	// Active is true when the backlog exceeds the activation threshold.
	Active bool
	// Degraded is true when the depth could not be read and the count was held.
	Degraded bool
	// Waiting is how long until a pending change (scale to zero, a rate limit or a stabilization
	// window) may take effect; zero when nothing is pending. The caller decides again by then.
	Waiting time.Duration
}

// Decide returns the desired replicas.
func Decide(p Policy, current int32, obs Observation, now time.Time, st *State) Decision {
	if p.Paused {
		return Decision{Replicas: current, Reason: "paused: holding the current replica count"}
	}
	if obs.Err != nil {
		return Decision{Replicas: clamp(current, p.MinReplicas, p.MaxReplicas), Degraded: true,
			Reason: fmt.Sprintf("queue depth unknown (%v): holding %d replicas", obs.Err, clamp(current, p.MinReplicas, p.MaxReplicas))}
	}
	backlog := obs.Visible
	if p.CountInFlight {
		backlog += obs.InFlight
	}
	if p.CountDelayed {
		backlog += obs.Delayed
	}
	if obs.Visible+obs.InFlight+obs.Delayed > 0 || st.lastMessage.IsZero() {
		st.lastMessage = now
	}
	d := Decision{Backlog: backlog, Active: backlog > p.ActivationBacklog}

	perReplica := max(p.BacklogPerReplica, 1)
	raw := int32(min((backlog+perReplica-1)/perReplica, math.MaxInt32))
	reason := fmt.Sprintf("backlog %d at %d per replica", backlog, perReplica)
	if current == 0 && !d.Active {
		raw = 0
		reason = fmt.Sprintf("inactive: backlog %d does not exceed activation %d", backlog, p.ActivationBacklog)
	}
	if raw == 0 && current > 0 {
		if idle := now.Sub(st.lastMessage); idle < p.ScaleToZeroDelay {
			raw = 1
			d.Waiting = p.ScaleToZeroDelay - idle
			reason = fmt.Sprintf("queue empty for %s, scale to zero after %s", idle.Round(time.Second), p.ScaleToZeroDelay)
		} else {
			reason = fmt.Sprintf("queue empty for %s", idle.Round(time.Second))
		}
	}
	if c := clamp(raw, p.MinReplicas, p.MaxReplicas); c != raw {
		if c == p.MaxReplicas {
			reason += fmt.Sprintf(", capped at maxReplicas %d", c)
		} else {
			reason += fmt.Sprintf(", raised to minReplicas %d", c)
		}
		raw = c
	}
	st.record(now, raw, max(p.ScaleUp.StabilizationWindow, p.ScaleDown.StabilizationWindow))

	// Out-of-bounds counts are corrected at once, without behavior (as the HPA does).
	if current < p.MinReplicas || current > p.MaxReplicas {
		d.Replicas, d.Reason = raw, reason
		return d
	}
	desired, why, wait := p.behave(current, raw, now, st)
	if why != "" {
		reason += ", " + why
	}
	d.Replicas, d.Reason = desired, fmt.Sprintf("%s: %d replicas", reason, desired)
	if wait > 0 && (d.Waiting == 0 || wait < d.Waiting) {
		d.Waiting = wait
	}
	return d
}

// RecordScale tells the state that the replica count changed (after the change was applied), so
// rate policies can count it.
func (st *State) RecordScale(now time.Time, from, to int32) {
	st.scaleUps = prune(st.scaleUps, now)
	st.scaleDowns = prune(st.scaleDowns, now)
	switch {
	case to > from:
		st.scaleUps = append(st.scaleUps, timed{now, to - from})
	case to < from:
		st.scaleDowns = append(st.scaleDowns, timed{now, from - to})
	}
}

// maxPeriod is the longest rate-policy period the HPA allows (1800 s); older events never count.
const maxPeriod = 30 * time.Minute

func prune(events []timed, now time.Time) []timed {
	cut := 0
	for cut < len(events) && now.Sub(events[cut].at) > maxPeriod {
		cut++
	}
	return events[cut:]
}

func (st *State) record(now time.Time, n int32, window time.Duration) {
	st.recommendations = append(st.recommendations, timed{now, n})
	cut := 0
	for cut < len(st.recommendations)-1 && now.Sub(st.recommendations[cut].at) > window {
		cut++
	}
	st.recommendations = st.recommendations[cut:]
}

// behave applies stabilization windows and rate policies.
func (p Policy) behave(current, raw int32, now time.Time, st *State) (int32, string, time.Duration) {
	up, down := raw, raw
	for _, r := range st.recommendations {
		if now.Sub(r.at) <= p.ScaleUp.StabilizationWindow {
			up = min(up, r.n)
		}
		if now.Sub(r.at) <= p.ScaleDown.StabilizationWindow {
			down = max(down, r.n)
		}
	}
	switch {
	case current < up:
		limit, wait := p.ScaleUp.limit(current, now, st, true)
		if limit < up {
			return max(limit, current), fmt.Sprintf("limited by the scale-up policy to %d", max(limit, current)), wait
		}
		if up < raw {
			return up, "stabilized by the scale-up window", 0
		}
		return up, "", 0
	case current > down:
		limit, wait := p.ScaleDown.limit(current, now, st, false)
		if limit > down {
			return min(limit, current), fmt.Sprintf("limited by the scale-down policy to %d", min(limit, current)), wait
		}
		if down > raw {
			return down, "stabilized by the scale-down window", p.ScaleDown.StabilizationWindow
		}
		return down, "", 0
	default:
		if raw != current {
			return current, "held by the stabilization window", 0
		}
		return current, "", 0
	}
}

// limit returns the furthest the count may move in one direction now, and how long until a rate
// window frees more room.
func (r Rules) limit(current int32, now time.Time, st *State, up bool) (int32, time.Duration) {
	if r.Select == SelectDisabled {
		return current, 0
	}
	if len(r.Policies) == 0 {
		if up {
			return math.MaxInt32, 0
		}
		return 0, 0
	}
	var best int32
	var wait time.Duration
	for i, pol := range r.Policies {
		added := changes(st.scaleUps, now, pol.Period)
		removed := changes(st.scaleDowns, now, pol.Period)
		start := current - added + removed
		var l int32
		switch {
		case up && pol.Kind == Pods:
			l = start + pol.Value
		case up:
			l = int32(math.Ceil(float64(start) * (1 + float64(pol.Value)/100)))
		case pol.Kind == Pods:
			l = start - pol.Value
		default:
			l = int32(float64(start) * (1 - float64(pol.Value)/100))
		}
		if (up && l <= current) || (!up && l >= current) {
			if w := nextExpiry(st, up, now, pol.Period); w > 0 && (wait == 0 || w < wait) {
				wait = w
			}
		}
		pick := i == 0
		if !pick {
			wantsMore := (r.Select != SelectMin) == up
			pick = (wantsMore && l > best) || (!wantsMore && l < best)
		}
		if pick {
			best = l
		}
	}
	return best, wait
}

func changes(events []timed, now time.Time, period time.Duration) int32 {
	var n int32
	for _, e := range events {
		if now.Sub(e.at) < period {
			n += e.n
		}
	}
	return n
}

func nextExpiry(st *State, up bool, now time.Time, period time.Duration) time.Duration {
	events := st.scaleDowns
	if up {
		events = st.scaleUps
	}
	for _, e := range events {
		if left := period - now.Sub(e.at); left > 0 {
			return left
		}
	}
	return 0
}

func clamp(n, lo, hi int32) int32 {
	if n < lo {
		return lo
	}
	if hi > 0 && n > hi {
		return hi
	}
	return n
}

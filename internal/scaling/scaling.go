// Package scaling decides how many replicas a Consumer should run from its queue's depth. It is pure:
// the caller passes the policy, the current replica count, the newest depth observation, the time
// and the State kept between decisions, and gets back the desired count and the reason.
//
// Semantics:
//   - backlog = visible (+ in flight when CountInFlight) (+ delayed when CountDelayed);
//     the raw recommendation is ceil(backlog / BacklogPerReplica), as KEDA's aws-sqs-queue scaler,
//     unless the usage ratio is within the direction's Tolerance of 1 (the HPA's 10%).
//   - Activation gates only the step from idle (zero, or IdleReplicas): nothing starts until the
//     backlog exceeds ActivationBacklog, then the count goes to MinReplicas at once. Once running,
//     replicas follow the backlog, so messages below the activation threshold are never stranded.
//   - The Consumer idles only after ScaleToZeroDelay without any message (visible, in flight or
//     delayed); until then at least one replica stays. The idle step is set at once: the delay is
//     its stabilization (as KEDA's cooldownPeriod), not the scale-down window again.
//   - Stabilization windows and rate policies follow autoscaling/v2 HPA behavior; a fresh State
//     (a restart, a new leader) starts the scale-down window at the current count, as the HPA does.
//     Decision.Waiting says when a held change is released, so the caller decides again then.
//   - When depth cannot be read the current count is held (never scaled to zero on an error), only
//     lifted into [MinReplicas, MaxReplicas], and the decision says Degraded; after
//     Fallback.FailureThreshold failed readings in a row the fallback count applies (KEDA's fallback).
//   - Paused holds the current count, or sets PausedReplicas (KEDA's paused-replicas).
//   - A pause and an unknown depth count as activity: the scale-to-zero delay starts again after them.
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
	// Tolerance: a change in this direction is ignored while the usage ratio (backlog over
	// replicas × BacklogPerReplica) is within Tolerance of 1, as the HPA's tolerance (0.1).
	Tolerance float64
}

// FallbackBehavior chooses the count held once the depth has been unreadable FailureThreshold
// times in a row; the values are KEDA's fallback.behavior.
type FallbackBehavior string

const (
	// FallbackStatic uses Fallback.Replicas (KEDA's default, "static").
	FallbackStatic FallbackBehavior = "Static"
	// FallbackCurrentReplicas keeps the current count.
	FallbackCurrentReplicas FallbackBehavior = "CurrentReplicas"
	// FallbackCurrentReplicasIfHigher uses the current count when it is above Fallback.Replicas.
	FallbackCurrentReplicasIfHigher FallbackBehavior = "CurrentReplicasIfHigher"
	// FallbackCurrentReplicasIfLower uses the current count when it is below Fallback.Replicas.
	FallbackCurrentReplicasIfLower FallbackBehavior = "CurrentReplicasIfLower"
)

// Fallback is the count to run when the depth cannot be read, as KEDA's fallback.
type Fallback struct {
	// FailureThreshold is how many depth readings in a row must fail before the fallback applies.
	FailureThreshold int32
	Replicas         int32
	Behavior         FallbackBehavior
}

func (f Fallback) target(current int32) int32 {
	switch f.Behavior {
	case FallbackCurrentReplicas:
		return current
	case FallbackCurrentReplicasIfHigher:
		return max(current, f.Replicas)
	case FallbackCurrentReplicasIfLower:
		return min(current, f.Replicas)
	}
	return f.Replicas
}

// Policy is a Consumer's scaling spec in typed form.
type Policy struct {
	MinReplicas int32
	MaxReplicas int32
	// IdleReplicas, when set below MinReplicas, is the count after ScaleToZeroDelay without any
	// message; a backlog above the activation threshold lifts it to MinReplicas at once (KEDA's
	// idleReplicaCount). Unset, a Consumer with MinReplicas 0 idles at zero and one with
	// MinReplicas above 0 never idles.
	IdleReplicas      *int32
	BacklogPerReplica int64
	ActivationBacklog int64
	CountInFlight     bool
	CountDelayed      bool
	ScaleToZeroDelay  time.Duration
	ScaleUp           Rules
	ScaleDown         Rules
	Paused            bool
	// PausedReplicas, when set, is the count while Paused (KEDA's paused-replicas); unset, Paused
	// holds the current count.
	PausedReplicas *int32
	// Fallback, when set, is the count to run after consecutive failed depth readings; unset, the
	// current count is held.
	Fallback *Fallback
}

// DefaultTolerance is the HPA's default tolerance.
const DefaultTolerance = 0.1

// DefaultScaleUp and DefaultScaleDown are HPA's default behaviors.
var (
	DefaultScaleUp = Rules{Select: SelectMax, Tolerance: DefaultTolerance, Policies: []RatePolicy{
		{Kind: Percent, Value: 100, Period: 15 * time.Second},
		{Kind: Pods, Value: 4, Period: 15 * time.Second},
	}}
	DefaultScaleDown = Rules{StabilizationWindow: 5 * time.Minute, Select: SelectMax, Tolerance: DefaultTolerance, Policies: []RatePolicy{
		{Kind: Percent, Value: 100, Period: 15 * time.Second},
	}}
)

// Observation is one reading of the queue.
type Observation struct {
	Visible, InFlight, Delayed int64
	// At is when the reading was taken (zero: at the decision). Deciding twice on one reading
	// counts its failure once and does not move the time the queue last held a message.
	At time.Time
	// Err says the depth could not be read.
	Err error
}

// State is what decisions remember; the caller keeps one per Consumer.
type State struct {
	started         bool
	recommendations []timed
	scaleUps        []timed
	scaleDowns      []timed
	// lastMessage is the last time the queue held any message, or might have (paused, unreadable).
	lastMessage time.Time
	// failures counts the failed readings in a row; lastFailure is the newest one's time.
	failures    int32
	lastFailure time.Time
}

type timed struct {
	at time.Time
	n  int32
	// seed marks the current count entered on the first decision: it holds a scale-down for the
	// window (as the HPA does after a restart) but never holds a scale-up.
	seed bool
}

// Failures is how many depth readings in a row have failed.
func (st *State) Failures() int32 { return st.failures }

// Decision is the outcome.
type Decision struct {
	Replicas int32
	// Reason explains Replicas in words, for status and Events. It names times, not durations, so
	// it stays true until the next decision.
	Reason string
	// Backlog is the counted backlog (0 when Degraded).
	Backlog int64
	// Active is true when the backlog exceeds the activation threshold.
	Active bool
	// Degraded is true when the depth could not be read.
	Degraded bool
	// Fallback is true when the count comes from the fallback after failed readings.
	Fallback bool
	// Paused is true when the count was held or set by a pause.
	Paused bool
	// Waiting is how long until a pending change (going idle, a rate limit or a stabilization
	// window) may take effect; zero when nothing is pending. The caller decides again by then.
	Waiting time.Duration
}

// Decide returns the desired replicas.
func Decide(p Policy, current int32, obs Observation, now time.Time, st *State) Decision {
	st.begin(now, current)
	switch {
	case p.Paused:
		return p.paused(current, obs, now, st)
	case obs.Err != nil:
		return p.unknown(current, obs, now, st)
	}
	st.failures = 0
	backlog := p.backlog(obs)
	seen := obs.At
	if seen.IsZero() {
		seen = now
	}
	if obs.Visible+obs.InFlight+obs.Delayed > 0 && seen.After(st.lastMessage) {
		st.lastMessage = seen
	}
	d := Decision{Backlog: backlog, Active: backlog > p.ActivationBacklog}
	idle, canIdle := p.Idle()
	perReplica := max(p.BacklogPerReplica, 1)
	raw := int32(min((backlog+perReplica-1)/perReplica, math.MaxInt32))
	reason := fmt.Sprintf("backlog %d at %d per replica", backlog, perReplica)

	if canIdle && current <= idle && !d.Active {
		reason = fmt.Sprintf("inactive: backlog %d does not exceed activation %d", backlog, p.ActivationBacklog)
		return p.set(d, idle, reason, now, st)
	}
	if within, tol := p.tolerated(current, backlog, raw); within {
		raw = current
		reason += fmt.Sprintf(", within the %g%% tolerance", tol*100)
	}
	// selectPolicy Disabled forbids every scale-down, the idle step too (KEDA's paused-scale-in).
	if raw == 0 && canIdle && current > idle && p.ScaleDown.Select != SelectDisabled {
		idleSince := st.lastMessage
		release := idleSince.Add(p.ScaleToZeroDelay)
		if !now.Before(release) {
			return p.set(d, idle, fmt.Sprintf("queue empty since %s, for scaleToZeroDelay %s", clock(idleSince), p.ScaleToZeroDelay), now, st)
		}
		raw = 1
		d.Waiting = release.Sub(now)
		reason = fmt.Sprintf("queue empty since %s, %s at %s", clock(idleSince), idleWord(idle), clock(release))
	}
	if c := clamp(raw, p.MinReplicas, p.MaxReplicas); c != raw {
		if c == p.MaxReplicas {
			reason += fmt.Sprintf(", capped at maxReplicas %d", c)
		} else {
			reason += fmt.Sprintf(", raised to minReplicas %d", c)
		}
		raw = c
	}
	return p.finish(d, current, raw, reason, now, st)
}

func idleWord(idle int32) string {
	if idle == 0 {
		return "scale to zero"
	}
	return fmt.Sprintf("scale to idleReplicas %d", idle)
}

func clock(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (p Policy) backlog(obs Observation) int64 {
	backlog := obs.Visible
	if p.CountInFlight {
		backlog += obs.InFlight
	}
	if p.CountDelayed {
		backlog += obs.Delayed
	}
	return backlog
}

// Idle returns the count an idle Consumer runs and whether it may idle at all.
func (p Policy) Idle() (int32, bool) {
	if p.IdleReplicas != nil && *p.IdleReplicas < p.MinReplicas {
		return max(*p.IdleReplicas, 0), true
	}
	return 0, p.MinReplicas == 0
}

// tolerated reports whether a move from current to raw is within the direction's tolerance.
func (p Policy) tolerated(current int32, backlog int64, raw int32) (bool, float64) {
	if current <= 0 || raw == current {
		return false, 0
	}
	tol := p.ScaleDown.Tolerance
	if raw > current {
		tol = p.ScaleUp.Tolerance
	}
	ratio := float64(backlog) / (float64(current) * float64(max(p.BacklogPerReplica, 1)))
	return tol > 0 && math.Abs(ratio-1) <= tol, tol
}

// paused holds the count, or sets PausedReplicas. A pause counts as activity: the scale-to-zero
// delay and the scale-down window start again when it ends.
func (p Policy) paused(current int32, obs Observation, now time.Time, st *State) Decision {
	st.busy(now)
	d := Decision{Replicas: current, Paused: true, Reason: fmt.Sprintf("paused: holding %d replicas", current)}
	if obs.Err == nil {
		d.Backlog = p.backlog(obs)
	}
	if p.PausedReplicas != nil {
		d.Replicas = *p.PausedReplicas
		d.Reason = fmt.Sprintf("paused at pausedReplicas %d", d.Replicas)
	}
	st.record(now, d.Replicas, p.window())
	return d
}

// unknown decides without a depth: the current count is held (never scaled to zero on an error)
// until Fallback.FailureThreshold readings in a row have failed, then the fallback count applies.
// Unknown depth counts as activity, as a pause does.
func (p Policy) unknown(current int32, obs Observation, now time.Time, st *State) Decision {
	st.busy(now)
	if obs.At.IsZero() || !obs.At.Equal(st.lastFailure) {
		st.failures++
		st.lastFailure = obs.At
	}
	d := Decision{Degraded: true}
	if f := p.Fallback; f != nil && st.failures >= max(f.FailureThreshold, 1) {
		d.Fallback = true
		target := clamp(max(f.target(current), 1), p.MinReplicas, p.MaxReplicas)
		reason := fmt.Sprintf("queue depth unknown for %d readings (%v): fallback to %d replicas", st.failures, obs.Err, target)
		return p.finish(d, current, target, reason, now, st)
	}
	hold := clamp(current, p.MinReplicas, p.MaxReplicas)
	if idle, canIdle := p.Idle(); canIdle && current == idle {
		hold = current
	}
	return p.set(d, hold, fmt.Sprintf("queue depth unknown (%v): holding %d replicas", obs.Err, hold), now, st)
}

// set decides n at once, without stabilization or rate policies: idling after the scale-to-zero
// delay (the delay is this step's stabilization, as KEDA's cooldownPeriod), staying idle, and
// holding on an unknown depth.
func (p Policy) set(d Decision, n int32, reason string, now time.Time, st *State) Decision {
	st.record(now, n, p.window())
	d.Replicas, d.Reason = n, fmt.Sprintf("%s: %d replicas", reason, n)
	return d
}

// finish applies the bounds and the behavior to a recommendation.
func (p Policy) finish(d Decision, current, raw int32, reason string, now time.Time, st *State) Decision {
	st.record(now, raw, p.window())
	// Out-of-bounds counts are corrected at once, without behavior (as the HPA does); this also
	// lifts an idle Consumer to minReplicas at once when it activates (as KEDA does).
	if current < p.MinReplicas || (p.MaxReplicas > 0 && current > p.MaxReplicas) {
		d.Replicas, d.Reason = raw, fmt.Sprintf("%s: %d replicas", reason, raw)
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

func (p Policy) window() time.Duration {
	return max(p.ScaleUp.StabilizationWindow, p.ScaleDown.StabilizationWindow)
}

// begin seeds a fresh state (a new Consumer, a restart, a new leader): the scale-down window
// starts at the current count and the scale-to-zero delay starts now.
func (st *State) begin(now time.Time, current int32) {
	if st.started {
		return
	}
	st.started = true
	st.lastMessage = now
	st.recommendations = append(st.recommendations, timed{at: now, n: current, seed: true})
}

func (st *State) busy(now time.Time) {
	if now.After(st.lastMessage) {
		st.lastMessage = now
	}
}

// RecordScale tells the state that the replica count changed (after the change was applied), so
// rate policies can count it.
func (st *State) RecordScale(now time.Time, from, to int32) {
	st.scaleUps = prune(st.scaleUps, now)
	st.scaleDowns = prune(st.scaleDowns, now)
	switch {
	case to > from:
		st.scaleUps = append(st.scaleUps, timed{at: now, n: to - from})
	case to < from:
		st.scaleDowns = append(st.scaleDowns, timed{at: now, n: from - to})
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

// record keeps a recommendation for the windows. An earlier recommendation of the same count is
// dropped: the windows ask only for the least and the most count within them, and for when the
// last recommendation holding a count leaves them, which the newest of equal counts answers alone.
// So the state holds at most one entry per count between minReplicas and maxReplicas, however
// often decisions are made (one per reconcile, which a tenant can trigger at will: keeping them all
// made each decision scan every one of the last hour's).
func (st *State) record(now time.Time, n int32, window time.Duration) {
	kept := st.recommendations[:0]
	for _, r := range st.recommendations {
		if r.seed || r.n != n {
			kept = append(kept, r)
		}
	}
	st.recommendations = append(kept, timed{at: now, n: n})
	cut := 0
	for cut < len(st.recommendations)-1 && now.Sub(st.recommendations[cut].at) > window {
		cut++
	}
	st.recommendations = st.recommendations[cut:]
}

// behave applies stabilization windows and rate policies, and says how long until a held change
// is released.
func (p Policy) behave(current, raw int32, now time.Time, st *State) (int32, string, time.Duration) {
	upWindow, downWindow := p.ScaleUp.StabilizationWindow, p.ScaleDown.StabilizationWindow
	up, down := raw, raw
	for _, r := range st.recommendations {
		if !r.seed && now.Sub(r.at) <= upWindow {
			up = min(up, r.n)
		}
		if now.Sub(r.at) <= downWindow && (!r.seed || downWindow > 0) {
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
			return up, "stabilized by the scale-up window", st.released(now, upWindow, func(n int32) bool { return n <= up }, false)
		}
		return up, "", 0
	case current > down:
		limit, wait := p.ScaleDown.limit(current, now, st, false)
		if limit > down {
			return min(limit, current), fmt.Sprintf("limited by the scale-down policy to %d", min(limit, current)), wait
		}
		if down > raw {
			return down, "stabilized by the scale-down window", st.released(now, downWindow, func(n int32) bool { return n >= down }, true)
		}
		return down, "", 0
	case raw > current:
		return current, "held by the scale-up window", st.released(now, upWindow, func(n int32) bool { return n <= current }, false)
	case raw < current:
		return current, "held by the scale-down window", st.released(now, downWindow, func(n int32) bool { return n >= current }, true)
	}
	return current, "", 0
}

// released returns how long until no recommendation that holds the count (holds(n)) is left in the
// window: the moment the held change may happen.
func (st *State) released(now time.Time, window time.Duration, holds func(int32) bool, seeds bool) time.Duration {
	var wait time.Duration
	for _, r := range st.recommendations {
		if (r.seed && (!seeds || window == 0)) || !holds(r.n) {
			continue
		}
		if left := window - now.Sub(r.at); left > wait {
			wait = left
		}
	}
	return wait
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

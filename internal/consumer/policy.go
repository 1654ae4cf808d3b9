package consumer

import (
	"fmt"
	"time"

	"k8s.io/utils/ptr"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/scaling"
)

// DefaultVisibilityTimeout is SQS's, for Queues that do not set one.
const DefaultVisibilityTimeout = 30 * time.Second

// Policy converts a Consumer's scaling spec to the scaling package's policy.
func Policy(s millracev1.ScalingSpec) scaling.Policy {
	p := scaling.Policy{
		MinReplicas:       ptr.Deref(s.MinReplicas, 0),
		MaxReplicas:       s.MaxReplicas,
		BacklogPerReplica: int64(s.BacklogPerReplica),
		ActivationBacklog: int64(s.ActivationBacklog),
		CountInFlight:     ptr.Deref(s.CountInFlight, true),
		CountDelayed:      s.CountDelayed,
		ScaleToZeroDelay:  s.ScaleToZeroDelay.Duration(),
		ScaleUp:           scaling.DefaultScaleUp,
		ScaleDown:         scaling.DefaultScaleDown,
		Paused:            s.Paused,
		PausedReplicas:    s.PausedReplicas,
		IdleReplicas:      s.IdleReplicas,
	}
	if f := s.Fallback; f != nil {
		behavior := scaling.FallbackBehavior(f.Behavior)
		if behavior == "" {
			behavior = scaling.FallbackStatic
		}
		p.Fallback = &scaling.Fallback{FailureThreshold: f.FailureThreshold, Replicas: f.Replicas, Behavior: behavior}
	}
	if p.MaxReplicas == 0 {
		p.MaxReplicas = 10
	}
	if b := s.Behavior; b != nil {
		p.ScaleUp = rules(b.ScaleUp, scaling.DefaultScaleUp)
		p.ScaleDown = rules(b.ScaleDown, scaling.DefaultScaleDown)
	}
	return p
}

func rules(r *millracev1.ScalingRules, def scaling.Rules) scaling.Rules {
	if r == nil {
		return def
	}
	out := def
	if r.StabilizationWindow != nil {
		out.StabilizationWindow = r.StabilizationWindow.Duration()
	}
	if r.SelectPolicy != "" {
		out.Select = scaling.SelectPolicy(r.SelectPolicy)
	}
	if r.TolerancePercent != nil {
		out.Tolerance = float64(*r.TolerancePercent) / 100
	}
	if len(r.Policies) > 0 {
		out.Policies = make([]scaling.RatePolicy, 0, len(r.Policies))
		for _, p := range r.Policies {
			out.Policies = append(out.Policies, scaling.RatePolicy{Kind: scaling.RateKind(p.Type), Value: p.Value, Period: p.Period.Duration()})
		}
	}
	return out
}

// Validate checks what the CRD schema cannot: the settings that depend on the Queue. Each error
// names the field.
func Validate(c *millracev1.Consumer, q *millracev1.Queue) error {
	d := c.Spec.Delivery
	if ns := c.Spec.QueueRef.Namespace; ns != "" && ns != c.Namespace {
		return fmt.Errorf("spec.queueRef.namespace: a Consumer may only use Queues of its own namespace %q, not %q", c.Namespace, ns)
	}
	if q == nil {
		return nil
	}
	fifo := q.Spec.Type == millracev1.QueueTypeFIFO
	if fifo && d.BatchSize > 10 {
		return fmt.Errorf("spec.delivery.batchSize: %d exceeds 10, the most a FIFO queue delivers in one batch", d.BatchSize)
	}
	if fifo && d.BatchWindow != nil && d.BatchWindow.Duration() > 0 {
		return fmt.Errorf("spec.delivery.batchWindow: batching windows are for Standard queues; Queue %q is FIFO", q.Name)
	}
	visibility := DefaultVisibilityTimeout
	if q.Spec.VisibilityTimeout != nil {
		visibility = q.Spec.VisibilityTimeout.Duration()
	}
	if d.Mode != millracev1.DeliveryNone && d.Timeout.Duration() > visibility {
		return fmt.Errorf("spec.delivery.timeout: %s exceeds the visibility timeout of Queue %q (%s); messages would reappear while being handled — raise the Queue's visibilityTimeout or lower the timeout",
			d.Timeout.Duration(), q.Name, visibility)
	}
	return nil
}

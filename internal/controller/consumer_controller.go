package controller

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/conditions"
	"github.com/millrace-io/millrace/internal/consumer"
	"github.com/millrace-io/millrace/internal/depth"
	"github.com/millrace-io/millrace/internal/scaling"
)

// Consumer condition types beyond Ready/Reconciling/Stalled, and reasons.
const (
	ConditionActive   = "Active"
	ConditionDegraded = "Degraded"
	ConditionPaused   = "Paused"

	ReasonWaitingForQueue  = "WaitingForQueue"
	ReasonInvalidSpec      = "InvalidSpec"
	ReasonScaled           = "Scaled"
	ReasonScaledToZero     = "ScaledToZero"
	ReasonAvailable        = "Available"
	ReasonUnavailable      = "Unavailable"
	ReasonRolling          = "Progressing"
	ReasonDepthUnknown     = "DepthUnknown"
	ReasonDepthKnown       = "DepthKnown"
	ReasonBacklog          = "BacklogAboveActivation"
	ReasonIdle             = "BacklogAtOrBelowActivation"
	ReasonNotOwned         = "DeploymentNotOwned"
	ReasonFallback         = "Fallback"
	consumerFieldOwner     = "millrace-consumer"
	consumerQueueKey       = "spec.queueRef.name"
	noSampleYetDescription = "no queue depth reading yet"
)

// ConsumerMetrics are the gauges a person would graph per Consumer.
type ConsumerMetrics struct {
	Backlog  *prometheus.GaugeVec
	Desired  *prometheus.GaugeVec
	Replicas *prometheus.GaugeVec
	Scales   *prometheus.CounterVec
	// DepthFailures is the count of failed depth readings in a row; Fallback is 1 while the
	// fallback count applies; Paused is 1 while scaling is paused.
	DepthFailures *prometheus.GaugeVec
	Fallback      *prometheus.GaugeVec
	Paused        *prometheus.GaugeVec
}

// NewConsumerMetrics creates the Consumer metrics and registers them with reg (when not nil).
func NewConsumerMetrics(reg prometheus.Registerer) *ConsumerMetrics {
	labels := []string{"namespace", "consumer"}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	m := &ConsumerMetrics{
		Backlog:       gauge("millrace_consumer_backlog", "Backlog counted for a Consumer's scaling."),
		Desired:       gauge("millrace_consumer_desired_replicas", "Replicas the scaling decision asks for."),
		Replicas:      gauge("millrace_consumer_replicas", "Replicas of the workload the Consumer scales."),
		Scales:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_consumer_scale_events_total", Help: "Replica count changes, by direction."}, append(labels, "direction")),
		DepthFailures: gauge("millrace_consumer_depth_read_failures", "Failed queue depth readings in a row for a Consumer (0 once one succeeds)."),
		Fallback:      gauge("millrace_consumer_fallback_active", "1 while a Consumer runs its fallback replica count because the depth cannot be read."),
		Paused:        gauge("millrace_consumer_paused", "1 while a Consumer's scaling is paused."),
	}
	if reg != nil {
		reg.MustRegister(m.Backlog, m.Desired, m.Replicas, m.Scales, m.DepthFailures, m.Fallback, m.Paused)
	}
	return m
}

func (m *ConsumerMetrics) gauges() []*prometheus.GaugeVec {
	return []*prometheus.GaugeVec{m.Backlog, m.Desired, m.Replicas, m.DepthFailures, m.Fallback, m.Paused}
}

// DefaultIdlePollInterval is how often an idle Consumer's queue is read when neither the Consumer
// nor the manager says otherwise: KEDA's pollingInterval, 2,880 readings a day.
const DefaultIdlePollInterval = 30 * time.Second

// ConsumerReconciler runs Consumers as Deployments scaled on their queue's depth.
type ConsumerReconciler struct {
	client.Client
	Recorder events.EventRecorder
	Monitor  *depth.Monitor
	Metrics  *ConsumerMetrics
	Render   consumer.Options
	// Region and Endpoint are handed to dispatchers and handlers.
	Region, Endpoint string
	// StatusWriteInterval bounds how often a backlog-only change is written to status.
	StatusWriteInterval time.Duration
	// IdlePollInterval is how often an idle Consumer's queue is read unless its spec says
	// (default DefaultIdlePollInterval).
	IdlePollInterval time.Duration
	// Now is the clock (tests and benchmarks may replace it).
	Now func() time.Time
	// APIReader confirms, uncached, that no Deployment of the Consumer's name exists before one is
	// applied (the cache may not show a Deployment created a moment ago).
	APIReader client.Reader

	mu      sync.Mutex
	states  map[k8stypes.NamespacedName]*consumerState
	samples chan event.TypedGenericEvent[*millracev1.Consumer]
}

type consumerState struct {
	scaling    scaling.State
	lastStatus time.Time
	// renderKey and renderedHash remember the last rendering, so unchanged inputs skip it.
	renderKey, renderedHash string
	// applied is the replica count this controller last applied (-1: unknown, e.g. after a
	// restart); a user's edit of the workload's replicas is measured against it and reverted.
	applied     int32
	watchingURL string
	fast        bool
	interval    time.Duration // the interval subscribed with
	// fallback and paused remember the last decision's, for the Events of their transitions.
	fallback, paused bool
}

// consumerScope is what the steps of one reconcile observe and decide.
type consumerScope struct {
	c        *millracev1.Consumer
	st       *consumerState
	queue    *millracev1.Queue
	target   *workload
	policy   scaling.Policy
	current  int32
	decision scaling.Decision
	sample   depth.Sample
	// verdict is Ready's reason and message when nothing holds it back (see summarizeConsumer).
	verdict conditions.Verdict
}

// +kubebuilder:rbac:groups=millrace.io,resources=consumers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=millrace.io,resources=consumers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=millrace.io,resources=queues,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=apps,resources=statefulsets,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments/scale;statefulsets/scale,verbs=get;update;patch
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch

// Reconcile runs the Consumer's handler and sets the replica count from the scaling decision: on
// the Deployment it renders, or on the workload its scaleTargetRef names.
func (r *ConsumerReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	c := &millracev1.Consumer{}
	if err := r.Get(ctx, req.NamespacedName, c); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !c.DeletionTimestamp.IsZero() {
		r.forget(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	original := c.DeepCopy()
	s := &consumerScope{c: c, st: r.state(req.NamespacedName), policy: consumer.Policy(c.Spec.Scaling)}
	defer func() {
		summarizeConsumer(c, s.verdict)
		if err := r.patchStatus(ctx, original, c, s.st); err != nil && retErr == nil {
			retErr = err
		}
	}()
	steps := []func(context.Context, *consumerScope) (ctrl.Result, bool, error){r.findQueue, r.findRendered, r.decideReplicas, r.applyRendered}
	if c.Spec.ScaleTargetRef != nil {
		steps = []func(context.Context, *consumerScope) (ctrl.Result, bool, error){r.findQueue, r.findTarget, r.decideReplicas, r.applyTarget}
	}
	for _, step := range steps {
		res, done, err := step(ctx, s)
		if err != nil || done {
			return res, err
		}
	}
	r.recordScale(s)
	r.observe(s)
	c.Status.ObservedGeneration = c.Generation
	if s.decision.Waiting > 0 {
		// The moment a held change (the scale-to-zero delay, a window, a rate limit) is released:
		// decide again then, not at the next depth reading.
		return ctrl.Result{RequeueAfter: s.decision.Waiting + 10*time.Millisecond}, nil
	}
	return ctrl.Result{}, nil
}

// findQueue validates the spec and finds the Queue and its URL.
func (r *ConsumerReconciler) findQueue(ctx context.Context, s *consumerScope) (ctrl.Result, bool, error) {
	c := s.c
	// Whenever there is no Queue to read (invalid spec, Queue gone, no URL), the Consumer stops
	// reading the one it read: a poller kept on a deleted Queue's URL would read it with no
	// namespace's identity left to choose, and scale on a queue of that name created later.
	if err := consumer.Validate(c, nil); err != nil {
		r.unwatch(client.ObjectKeyFromObject(c), s.st)
		res, err := r.stallConsumer(c, err.Error())
		return res, true, err
	}
	q := &millracev1.Queue{}
	if err := r.Get(ctx, k8stypes.NamespacedName{Namespace: c.Namespace, Name: c.Spec.QueueRef.Name}, q); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, true, err
		}
		r.unwatch(client.ObjectKeyFromObject(c), s.st)
		conditions.MarkReconciling(&c.Status.Conditions, c.Generation, ReasonWaitingForQueue,
			fmt.Sprintf("spec.queueRef: Queue %q does not exist", c.Spec.QueueRef.Name))
		return ctrl.Result{}, true, nil
	}
	if err := consumer.Validate(c, q); err != nil {
		r.unwatch(client.ObjectKeyFromObject(c), s.st)
		res, err := r.stallConsumer(c, err.Error())
		return res, true, err
	}
	if q.Status.QueueURL == "" {
		conditions.MarkReconciling(&c.Status.Conditions, c.Generation, ReasonWaitingForQueue,
			fmt.Sprintf("spec.queueRef: Queue %q has no queue URL (yet, or no longer: see its conditions)", q.Name))
		// Nothing to read until the Queue has a URL again (its change brings a reconcile).
		r.unwatch(client.ObjectKeyFromObject(c), s.st)
		return ctrl.Result{}, true, nil
	}
	s.queue = q
	return ctrl.Result{}, false, nil
}

// findRendered finds the Deployment the Consumer renders, refusing one it does not control.
func (r *ConsumerReconciler) findRendered(ctx context.Context, s *consumerScope) (ctrl.Result, bool, error) {
	dep, exists, err := r.deployment(ctx, client.ObjectKeyFromObject(s.c))
	if err != nil {
		return ctrl.Result{}, true, err
	}
	if exists && !metav1.IsControlledBy(dep, s.c) {
		// Applying would take over a Deployment someone else made (adding a container, changing
		// its replicas): never do that.
		res, err := r.stall(s.c, ReasonNotOwned, fmt.Sprintf(
			"Deployment %q exists and is not controlled by this Consumer; Millrace will not take it over (rename the Consumer, delete the Deployment, or name it in spec.scaleTargetRef instead of spec.template)", dep.Name))
		// The Deployment is not ours, so its deletion is not watched: look again now and then.
		res.RequeueAfter = jitter(time.Minute)
		return res, true, err
	}
	if exists {
		s.target = deploymentWorkload(dep)
		s.current = ptr.Deref(dep.Spec.Replicas, 0)
	}
	return ctrl.Result{}, false, nil
}

// findTarget finds the workload spec.scaleTargetRef names and checks that this Consumer may scale it.
func (r *ConsumerReconciler) findTarget(ctx context.Context, s *consumerScope) (ctrl.Result, bool, error) {
	c := s.c
	w, err := r.scaleTarget(ctx, c)
	if err != nil {
		return ctrl.Result{}, true, err
	}
	ref := c.Spec.ScaleTargetRef
	if w == nil {
		conditions.MarkReconciling(&c.Status.Conditions, c.Generation, ReasonWaitingForTarget,
			fmt.Sprintf("spec.scaleTargetRef: %s %q does not exist in namespace %q", ref.Kind, ref.Name, c.Namespace))
		return ctrl.Result{}, true, nil
	}
	reason, msg, err := r.targetConflict(ctx, c, w)
	if err != nil {
		return ctrl.Result{}, true, err
	}
	if reason != "" {
		res, err := r.stall(c, reason, msg)
		// The conflict goes away when the other autoscaler does: look again now and then.
		res.RequeueAfter = jitter(time.Minute)
		return res, true, err
	}
	s.target = w
	s.current = ptr.Deref(w.replicas, 1)
	return ctrl.Result{}, false, nil
}

// decideReplicas runs the scaling function and subscribes to the queue's depth at the interval
// the decision needs.
func (r *ConsumerReconciler) decideReplicas(_ context.Context, s *consumerScope) (ctrl.Result, bool, error) {
	if s.st.applied >= 0 && s.target != nil {
		// Measured against what Millrace applied, so an edit made outside is reverted.
		s.current = s.st.applied
	}
	s.decision, s.sample = r.decide(s.queue.Status.QueueURL, s.policy, s.current, s.st)
	r.watch(client.ObjectKeyFromObject(s.c), s.queue.Status.QueueURL, s.c, s.st, s.policy, s.decision)
	return ctrl.Result{}, false, nil
}

// applyRendered renders and applies the Deployment when its inputs or its replica count changed.
func (r *ConsumerReconciler) applyRendered(ctx context.Context, s *consumerScope) (ctrl.Result, bool, error) {
	c, q, st, decision := s.c, s.queue, s.st, s.decision
	target := consumer.Target{QueueURL: q.Status.QueueURL, QueueARN: q.Status.QueueARN,
		FIFO: q.Spec.Type == millracev1.QueueTypeFIFO, Region: r.Region, Endpoint: r.Endpoint}
	var dep *appsv1.Deployment
	onDeployment := int32(0)
	if s.target != nil {
		dep = s.target.obj.(*appsv1.Deployment)
		onDeployment = ptr.Deref(dep.Spec.Replicas, 0)
	}
	// Most reconciles are depth samples that change nothing: render (and hash the pod template) only
	// when the rendering's inputs changed, the Deployment differs from what was applied, or the
	// replica count moves.
	renderKey := fmt.Sprintf("%d/%s/%v", c.Generation, c.UID, target)
	if dep == nil || st.renderKey != renderKey || dep.Annotations[consumer.AnnotationHash] != st.renderedHash || onDeployment != decision.Replicas {
		want := consumer.Render(c, decision.Replicas, target, r.Render)
		st.renderKey, st.renderedHash = renderKey, want.Annotations[consumer.AnnotationHash]
		if dep == nil || dep.Annotations[consumer.AnnotationHash] != st.renderedHash || onDeployment != decision.Replicas {
			if err := r.apply(ctx, want); err != nil {
				conditions.MarkReconciling(&c.Status.Conditions, c.Generation, "ApplyFailed", err.Error())
				return ctrl.Result{}, true, err
			}
			if dep != nil && onDeployment != s.current {
				r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, "ReplicasReverted", "Scale",
					"replicas of Deployment %s were set to %d outside Millrace; restored to %d", dep.Name, onDeployment, decision.Replicas)
			}
			if dep != nil && want.Generation == 0 {
				// The apply's answer was not read back: keep the status observed, and the
				// generation one past it, as a changed spec has.
				want.Status, want.Generation = dep.Status, dep.Generation+1
			}
			dep = want
		}
	}
	s.target = deploymentWorkload(dep)
	c.Status.Deployment = dep.Name
	st.applied = decision.Replicas
	return ctrl.Result{}, false, nil
}

// applyTarget writes the decided replica count to the scaleTargetRef's scale subresource.
func (r *ConsumerReconciler) applyTarget(ctx context.Context, s *consumerScope) (ctrl.Result, bool, error) {
	w, want := s.target, s.decision.Replicas
	if on := ptr.Deref(w.replicas, 1); on != want {
		if err := r.scale(ctx, w, want); err != nil {
			conditions.MarkReconciling(&s.c.Status.Conditions, s.c.Generation, "ScaleFailed", err.Error())
			return ctrl.Result{}, true, err
		}
		if s.st.applied >= 0 && on != s.current {
			r.Recorder.Eventf(s.c, nil, corev1.EventTypeNormal, "ReplicasReverted", "Scale",
				"replicas of %s were set to %d outside Millrace; restored to %d", w.name(), on, want)
		}
		w.replicas = &want
	}
	s.st.applied = want
	return ctrl.Result{}, false, nil
}

// decide runs the scaling function on the newest depth sample of the queue.
func (r *ConsumerReconciler) decide(url string, p scaling.Policy, current int32, st *consumerState) (scaling.Decision, depth.Sample) {
	sample, ok := r.Monitor.Latest(url)
	if !ok {
		hold := max(current, p.MinReplicas)
		if p.MaxReplicas > 0 {
			hold = min(hold, p.MaxReplicas)
		}
		return scaling.Decision{Replicas: hold, Reason: noSampleYetDescription}, sample
	}
	obs := scaling.Observation{Visible: sample.Visible, InFlight: sample.InFlight, Delayed: sample.Delayed, At: sample.At, Err: sample.Err}
	return scaling.Decide(p, current, obs, r.Now(), &st.scaling), sample
}

// watch subscribes the Consumer to its queue's depth; a sample triggers a reconcile. An idle
// Consumer (at zero or idleReplicas) needs a reading every idle interval whatever the queue does,
// to wake on the first message; an active one every poll interval; otherwise the interval of a
// steady queue may grow.
func (r *ConsumerReconciler) watch(key k8stypes.NamespacedName, url string, c *millracev1.Consumer, st *consumerState, p scaling.Policy, d scaling.Decision) {
	interval, fast := c.Spec.Scaling.PollInterval.Duration(), d.Active
	if idle, canIdle := p.Idle(); canIdle && d.Replicas <= idle {
		interval, fast = r.idleInterval(c), true
	}
	if st.watchingURL == url && st.fast == fast && st.interval == interval {
		return
	}
	if st.watchingURL != "" && st.watchingURL != url {
		r.Monitor.Unwatch(st.watchingURL, consumerMonitorID(key))
	}
	st.watchingURL, st.fast, st.interval = url, fast, interval
	obj := &millracev1.Consumer{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	r.Monitor.Watch(url, consumerMonitorID(key), depth.Subscription{
		Interval: interval,
		Fast:     fast,
		Notify: func(depth.Sample) {
			select {
			case r.samples <- event.TypedGenericEvent[*millracev1.Consumer]{Object: obj}:
			default: // the queue is full: reconciles are already pending and will read the newest sample
			}
		},
	})
}

func (r *ConsumerReconciler) idleInterval(c *millracev1.Consumer) time.Duration {
	if d := c.Spec.Scaling.IdlePollInterval; d != nil && d.Duration() > 0 {
		return d.Duration()
	}
	if r.IdlePollInterval > 0 {
		return r.IdlePollInterval
	}
	return DefaultIdlePollInterval
}

func (r *ConsumerReconciler) apply(ctx context.Context, d *appsv1.Deployment) error {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: obj}
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(consumerFieldOwner), client.ForceOwnership); err != nil {
		return err
	}
	// The answer is the Deployment as stored: its new generation with the status of the old one,
	// so the rollout the apply starts is seen as one, not taken for done.
	if u.GetName() == "" {
		return nil
	}
	return runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, d)
}

// recordScale counts an applied change for the rate policies and reports it, and the transitions
// of a fallback and a pause.
func (r *ConsumerReconciler) recordScale(s *consumerScope) {
	c, st, d, from := s.c, s.st, s.decision, s.current
	now := r.Now()
	st.scaling.RecordScale(now, from, d.Replicas)
	if d.Fallback != st.fallback {
		if d.Fallback {
			r.Recorder.Eventf(c, nil, corev1.EventTypeWarning, ReasonFallback, "Scale", "%s", d.Reason)
		} else {
			r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, ReasonDepthKnown, "Scale", "queue depth read again after the fallback: %s", d.Reason)
		}
		st.fallback = d.Fallback
	}
	if d.Paused != st.paused {
		if d.Paused {
			r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, "Paused", "Scale", "%s", d.Reason)
		} else {
			r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, "Resumed", "Scale", "scaling resumed: %s", d.Reason)
		}
		st.paused = d.Paused
	}
	if from == d.Replicas {
		return
	}
	t := metav1.NewTime(now)
	c.Status.LastScaleTime = &t
	c.Status.LastScaleReason = d.Reason
	direction, reason := "up", ReasonScaled
	if d.Replicas < from {
		direction = "down"
	}
	if d.Replicas == 0 {
		reason = ReasonScaledToZero
	}
	r.Metrics.Scales.WithLabelValues(c.Namespace, c.Name, direction).Inc()
	r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, reason, "Scale", "scaled %s from %d to %d: %s", s.target.name(), from, d.Replicas, d.Reason)
}

// observe sets status and conditions from what was observed and decided.
func (r *ConsumerReconciler) observe(s *consumerScope) {
	c, w, d, smp, p := s.c, s.target, s.decision, s.sample, s.policy
	c.Status.Target = w.name()
	c.Status.Replicas = w.current
	c.Status.ReadyReplicas = w.ready
	c.Status.DesiredReplicas = d.Replicas
	if !smp.At.IsZero() && smp.Err == nil {
		at := metav1.NewTime(smp.At.Truncate(time.Second))
		c.Status.Backlog = &millracev1.BacklogStatus{Total: d.Backlog, Visible: smp.Visible, InFlight: smp.InFlight, Delayed: smp.Delayed, ObservedAt: &at}
	}
	key := []string{c.Namespace, c.Name}
	r.Metrics.Backlog.WithLabelValues(key...).Set(float64(d.Backlog))
	r.Metrics.Desired.WithLabelValues(key...).Set(float64(d.Replicas))
	r.Metrics.Replicas.WithLabelValues(key...).Set(float64(w.current))
	r.Metrics.DepthFailures.WithLabelValues(key...).Set(float64(s.st.scaling.Failures()))
	r.Metrics.Fallback.WithLabelValues(key...).Set(boolGauge(d.Fallback))
	r.Metrics.Paused.WithLabelValues(key...).Set(boolGauge(d.Paused))

	setBool := func(kind string, ok bool, yes, no, msg string) {
		status, reason := metav1.ConditionFalse, no
		if ok {
			status, reason = metav1.ConditionTrue, yes
		}
		meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: kind, Status: status, Reason: reason, Message: conditions.Clip(msg), ObservedGeneration: c.Generation})
	}
	setBool(ConditionActive, d.Active, ReasonBacklog, ReasonIdle,
		fmt.Sprintf("backlog %d, activation %d", d.Backlog, p.ActivationBacklog))
	degradedMsg, degradedReason := "queue depth is being read", ReasonDepthUnknown
	if d.Degraded {
		degradedMsg = fmt.Sprintf("%d depth readings in a row failed, the last: %s; %d replicas", s.st.scaling.Failures(), smp.Err, d.Replicas)
		if d.Fallback {
			degradedReason = ReasonFallback
		}
	}
	if w.stuck != "" {
		// A rollout that stopped making progress decides: old replicas serve a spec that is not
		// the Consumer's, or none do.
		if d.Degraded {
			degradedMsg = w.stuck + "; also " + degradedMsg
		} else {
			degradedMsg = w.stuck
		}
		degradedReason = ReasonRolloutStuck
	}
	setBool(ConditionDegraded, d.Degraded || w.stuck != "", degradedReason, ReasonDepthKnown, degradedMsg)
	pausedMsg := "spec.scaling.paused is false"
	if d.Paused {
		pausedMsg = d.Reason
	}
	setBool(ConditionPaused, d.Paused, "Paused", "NotPaused", pausedMsg)

	switch {
	case d.Replicas == 0 && w.current == 0:
		// Nothing runs, so nothing runs an old spec: the next replica starts from the newest.
		conditions.MarkReconciled(&c.Status.Conditions)
		s.verdict = conditions.Verdict{Reason: ReasonScaledToZero, Message: "no backlog: scaled to zero"}
	case w.stuck != "":
		// Not progressing: Degraded (RolloutStuck) holds Ready back.
		conditions.MarkReconciled(&c.Status.Conditions)
	case w.rolling != "":
		conditions.MarkReconciling(&c.Status.Conditions, c.Generation, ReasonRollingOut, w.rolling)
	case d.Replicas == 0:
		conditions.MarkReconciled(&c.Status.Conditions)
		s.verdict = conditions.Verdict{Reason: ReasonScaledToZero, Message: "no backlog: scaled to zero"}
	case w.available:
		conditions.MarkReconciled(&c.Status.Conditions)
		s.verdict = conditions.Verdict{Reason: ReasonAvailable, Message: fmt.Sprintf("%d of %d replicas ready", w.ready, d.Replicas)}
	default:
		conditions.MarkReconciling(&c.Status.Conditions, c.Generation, ReasonRolling,
			fmt.Sprintf("%d of %d replicas ready", w.ready, d.Replicas))
	}
}

// summarizeConsumer derives the Consumer's Ready (internal/conditions): False while Stalled,
// Degraded or Reconciling. A Consumer whose queue depth cannot be read is not Ready, also at zero
// replicas and also while it runs its fallback replicas: it does not do what it declares (scale on
// its queue's depth), and a user waiting on Ready, or a kstatus health check, must not take it for
// healthy. Degraded's reason (DepthUnknown or Fallback) and message say which, with the count of
// failed readings and the replicas it holds. Paused does not hold Ready back: the count a user
// asked for is the count that runs.
func summarizeConsumer(c *millracev1.Consumer, v conditions.Verdict) {
	conditions.Summarize(&c.Status.Conditions, c.Generation, v, ConditionDegraded)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func deploymentConditions(d *appsv1.Deployment) []metav1.Condition {
	out := make([]metav1.Condition, 0, len(d.Status.Conditions))
	for _, c := range d.Status.Conditions {
		out = append(out, metav1.Condition{Type: string(c.Type), Status: metav1.ConditionStatus(c.Status)})
	}
	return out
}

func (r *ConsumerReconciler) stallConsumer(c *millracev1.Consumer, msg string) (ctrl.Result, error) {
	return r.stall(c, ReasonInvalidSpec, msg)
}

func (r *ConsumerReconciler) stall(c *millracev1.Consumer, reason, msg string) (ctrl.Result, error) {
	if !conditions.IsStalled(c.Status.Conditions) || c.Status.ObservedGeneration != c.Generation {
		r.Recorder.Eventf(c, nil, corev1.EventTypeWarning, reason, "Validate", "%s", msg)
	}
	conditions.MarkStalled(&c.Status.Conditions, c.Generation, reason, msg)
	c.Status.ObservedGeneration = c.Generation
	return ctrl.Result{}, nil
}

// deployment reads the Consumer's Deployment from the cache, and confirms an absence with the API
// server itself before the caller creates one.
func (r *ConsumerReconciler) deployment(ctx context.Context, key k8stypes.NamespacedName) (*appsv1.Deployment, bool, error) {
	dep := &appsv1.Deployment{}
	err := r.Get(ctx, key, dep)
	if apierrors.IsNotFound(err) && r.APIReader != nil {
		err = r.APIReader.Get(ctx, key, dep)
	}
	switch {
	case apierrors.IsNotFound(err):
		return dep, false, nil
	case err != nil:
		return nil, false, err
	}
	return dep, true, nil
}

// patchStatus writes status when it changed; a change of the backlog alone is written at most
// every StatusWriteInterval (Prometheus carries every reading).
func (r *ConsumerReconciler) patchStatus(ctx context.Context, original, c *millracev1.Consumer, st *consumerState) error {
	if equality.Semantic.DeepEqual(original.Status, c.Status) {
		return nil
	}
	withoutBacklog := c.Status.DeepCopy()
	withoutBacklog.Backlog = original.Status.Backlog
	if equality.Semantic.DeepEqual(original.Status, *withoutBacklog) && r.Now().Sub(st.lastStatus) < r.StatusWriteInterval {
		return nil
	}
	if err := r.Status().Patch(ctx, c, client.MergeFrom(original), client.FieldOwner(consumerFieldOwner)); err != nil {
		return client.IgnoreNotFound(err)
	}
	st.lastStatus = r.Now()
	return nil
}

func (r *ConsumerReconciler) state(key k8stypes.NamespacedName) *consumerState {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, ok := r.states[key]
	if !ok {
		st = &consumerState{applied: -1}
		r.states[key] = st
	}
	return st
}

// unwatch ends the Consumer's depth subscription.
func (r *ConsumerReconciler) unwatch(key k8stypes.NamespacedName, st *consumerState) {
	if st.watchingURL != "" {
		r.Monitor.Unwatch(st.watchingURL, consumerMonitorID(key))
		st.watchingURL, st.fast, st.interval = "", false, 0
	}
}

func (r *ConsumerReconciler) forget(key k8stypes.NamespacedName) {
	r.mu.Lock()
	st, ok := r.states[key]
	delete(r.states, key)
	r.mu.Unlock()
	if ok && st.watchingURL != "" {
		r.Monitor.Unwatch(st.watchingURL, consumerMonitorID(key))
	}
	for _, g := range r.Metrics.gauges() {
		g.DeleteLabelValues(key.Namespace, key.Name)
	}
}

func consumerMonitorID(key k8stypes.NamespacedName) string { return "consumer/" + key.String() }

// SetupWithManager registers the controller: Consumers, their Deployments, their Queues and the
// depth samples.
func (r *ConsumerReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Metrics == nil {
		r.Metrics = NewConsumerMetrics(nil)
	}
	if r.Monitor == nil {
		return fmt.Errorf("the Consumer controller needs the depth monitor")
	}
	r.states = map[k8stypes.NamespacedName]*consumerState{}
	r.samples = make(chan event.TypedGenericEvent[*millracev1.Consumer], 4096)
	indexer := mgr.GetFieldIndexer()
	if err := indexer.IndexField(ctx, &millracev1.Consumer{}, consumerQueueKey, func(o client.Object) []string {
		return []string{o.(*millracev1.Consumer).Spec.QueueRef.Name}
	}); err != nil {
		return err
	}
	for _, kind := range knownTargetKinds {
		if err := indexer.IndexField(ctx, &millracev1.Consumer{}, targetIndex(kind), indexTarget(kind)); err != nil {
			return err
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&millracev1.Consumer{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&appsv1.Deployment{}, builder.WithPredicates(deploymentChanged())).
		// Workloads named by a scaleTargetRef: their edits are reverted and their status reported.
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.consumersTargeting(consumerTargetDeploymentKey)), builder.WithPredicates(deploymentChanged())).
		Watches(&appsv1.StatefulSet{}, handler.EnqueueRequestsFromMapFunc(r.consumersTargeting(consumerTargetStatefulSetKey)), builder.WithPredicates(statefulSetChanged())).
		Watches(&millracev1.Queue{}, handler.EnqueueRequestsFromMapFunc(r.consumersOfQueue), builder.WithPredicates(queueUsableChanged())).
		WatchesRawSource(source.TypedChannel(r.samples, &handler.TypedEnqueueRequestForObject[*millracev1.Consumer]{})).
		Named("consumer").
		Complete(r)
}

func (r *ConsumerReconciler) consumersOfQueue(ctx context.Context, o client.Object) []reconcile.Request {
	return referrers(ctx, r.Client, &millracev1.ConsumerList{}, consumerQueueKey, o, nil)
}

func (r *ConsumerReconciler) consumersTargeting(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		return referrers(ctx, r.Client, &millracev1.ConsumerList{}, index, o, nil)
	}
}

// statefulSetChanged is deploymentChanged for StatefulSets.
func statefulSetChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*appsv1.StatefulSet)
		n, ok2 := e.ObjectNew.(*appsv1.StatefulSet)
		if !ok1 || !ok2 {
			return true
		}
		return o.Generation != n.Generation || o.Status.Replicas != n.Status.Replicas ||
			o.Status.ReadyReplicas != n.Status.ReadyReplicas || o.Status.AvailableReplicas != n.Status.AvailableReplicas ||
			o.Status.ObservedGeneration != n.Status.ObservedGeneration || o.Status.UpdatedReplicas != n.Status.UpdatedReplicas ||
			o.Status.CurrentRevision != n.Status.CurrentRevision || o.Status.UpdateRevision != n.Status.UpdateRevision
	}}
}

// deploymentChanged passes the Deployment changes the Consumer reports or reverts: its spec
// (a user's edit of replicas) and its replica counts and availability — not every status heartbeat.
func deploymentChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*appsv1.Deployment)
		n, ok2 := e.ObjectNew.(*appsv1.Deployment)
		if !ok1 || !ok2 {
			return true
		}
		return o.Generation != n.Generation || o.Status.Replicas != n.Status.Replicas ||
			o.Status.ReadyReplicas != n.Status.ReadyReplicas || o.Status.AvailableReplicas != n.Status.AvailableReplicas ||
			o.Status.ObservedGeneration != n.Status.ObservedGeneration || o.Status.UpdatedReplicas != n.Status.UpdatedReplicas ||
			!equality.Semantic.DeepEqual(o.Status.Conditions, n.Status.Conditions)
	}}
}

// queueUsableChanged passes Queue changes a Consumer depends on: URL, type and visibility timeout.
func queueUsableChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		o, ok1 := e.ObjectOld.(*millracev1.Queue)
		n, ok2 := e.ObjectNew.(*millracev1.Queue)
		return !ok1 || !ok2 || o.Status.QueueURL != n.Status.QueueURL || o.Generation != n.Generation
	}}
}

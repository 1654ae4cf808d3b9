package controllers

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
}

// NewConsumerMetrics creates the Consumer metrics and registers them with reg (when not nil).
func NewConsumerMetrics(reg prometheus.Registerer) *ConsumerMetrics {
	labels := []string{"namespace", "consumer"}
	m := &ConsumerMetrics{
		Backlog:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "millrace_consumer_backlog", Help: "Backlog counted for a Consumer's scaling."}, labels),
		Desired:  prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "millrace_consumer_desired_replicas", Help: "Replicas the scaling decision asks for."}, labels),
		Replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "millrace_consumer_replicas", Help: "Replicas of the Consumer's Deployment."}, labels),
		Scales:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_consumer_scale_events_total", Help: "Replica count changes, by direction."}, append(labels, "direction")),
	}
	if reg != nil {
		reg.MustRegister(m.Backlog, m.Desired, m.Replicas, m.Scales)
	}
	return m
}

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
	// restart); a user's edit of the Deployment's replicas is measured against it and reverted.
	applied     int32
	watchingURL string
	fast        bool
	interval    time.Duration // the pollInterval subscribed with
}

// +kubebuilder:rbac:groups=millrace.io,resources=consumers,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=millrace.io,resources=consumers/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=millrace.io,resources=queues,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete

// Reconcile renders the Consumer's Deployment and sets its replica count from the scaling decision.
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
	st := r.state(req.NamespacedName)
	defer func() {
		if err := r.patchStatus(ctx, original, c, st); err != nil && retErr == nil {
			retErr = err
		}
	}()

	if err := consumer.Validate(c, nil); err != nil {
		return r.stallConsumer(c, err.Error())
	}
	q := &millracev1.Queue{}
	if err := r.Get(ctx, k8stypes.NamespacedName{Namespace: c.Namespace, Name: c.Spec.QueueRef.Name}, q); err != nil {
		if !apierrors.IsNotFound(err) {
			return ctrl.Result{}, err
		}
		conditions.MarkReconciling(&c.Status.Conditions, c.Generation, ReasonWaitingForQueue,
			fmt.Sprintf("spec.queueRef: Queue %q does not exist", c.Spec.QueueRef.Name))
		return ctrl.Result{}, nil
	}
	if err := consumer.Validate(c, q); err != nil {
		return r.stallConsumer(c, err.Error())
	}
	if q.Status.QueueURL == "" {
		conditions.MarkReconciling(&c.Status.Conditions, c.Generation, ReasonWaitingForQueue,
			fmt.Sprintf("spec.queueRef: Queue %q has no queue URL yet", q.Name))
		return ctrl.Result{}, nil
	}

	dep, exists, err := r.deployment(ctx, req.NamespacedName)
	if err != nil {
		return ctrl.Result{}, err
	}
	if exists && !metav1.IsControlledBy(dep, c) {
		// Applying would take over a Deployment someone else made (adding a container, changing
		// its replicas): never do that.
		res, err := r.stall(c, ReasonNotOwned, fmt.Sprintf(
			"Deployment %q exists and is not controlled by this Consumer; Millrace will not take it over (rename the Consumer, or delete the Deployment)", dep.Name))
		// The Deployment is not ours, so its deletion is not watched: look again now and then.
		res.RequeueAfter = jitter(time.Minute)
		return res, err
	}
	current, onDeployment := int32(0), int32(0)
	if exists && dep.Spec.Replicas != nil {
		onDeployment = *dep.Spec.Replicas
		current = onDeployment
	}
	if st.applied >= 0 && exists {
		current = st.applied
	}
	policy := consumer.Policy(c.Spec.Scaling)
	decision, sample := r.decide(q.Status.QueueURL, policy, current, st)
	// Fast polling while the Consumer is, or is about to be, at zero replicas (the first message
	// must wake it within a poll interval) and while it is active.
	r.watch(req.NamespacedName, q.Status.QueueURL, c, st, current == 0 || decision.Replicas == 0 || decision.Active)

	target := consumer.Target{QueueURL: q.Status.QueueURL, QueueARN: q.Status.QueueARN,
		FIFO: q.Spec.Type == millracev1.QueueTypeFIFO, Region: r.Region, Endpoint: r.Endpoint}
	// Most reconciles are depth samples that change nothing: render (and hash the pod template) only
	// when the rendering's inputs changed, the Deployment differs from what was applied, or the
	// replica count moves.
	renderKey := fmt.Sprintf("%d/%s/%v", c.Generation, c.UID, target)
	if !exists || st.renderKey != renderKey || dep.Annotations[consumer.AnnotationHash] != st.renderedHash || onDeployment != decision.Replicas {
		want := consumer.Render(c, decision.Replicas, target, r.Render)
		st.renderKey, st.renderedHash = renderKey, want.Annotations[consumer.AnnotationHash]
		if !exists || dep.Annotations[consumer.AnnotationHash] != st.renderedHash || onDeployment != decision.Replicas {
			if err := r.apply(ctx, want); err != nil {
				conditions.MarkReconciling(&c.Status.Conditions, c.Generation, "ApplyFailed", err.Error())
				return ctrl.Result{}, err
			}
			if exists && onDeployment != current {
				r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, "ReplicasReverted", "Scale",
					"replicas of Deployment %s were set to %d outside Millrace; restored to %d", dep.Name, onDeployment, decision.Replicas)
			}
			want.Status = dep.Status
			dep = want
		}
	}
	st.applied = decision.Replicas
	r.recordScale(c, st, current, decision)
	r.observe(c, dep, decision, sample, policy)
	c.Status.ObservedGeneration = c.Generation
	if decision.Waiting > 0 {
		return ctrl.Result{RequeueAfter: decision.Waiting + 10*time.Millisecond}, nil
	}
	return ctrl.Result{}, nil
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
	obs := scaling.Observation{Visible: sample.Visible, InFlight: sample.InFlight, Delayed: sample.Delayed, Err: sample.Err}
	return scaling.Decide(p, current, obs, r.Now(), &st.scaling), sample
}

// watch subscribes the Consumer to its queue's depth; a sample triggers a reconcile.
func (r *ConsumerReconciler) watch(key k8stypes.NamespacedName, url string, c *millracev1.Consumer, st *consumerState, fast bool) {
	interval := c.Spec.Scaling.PollInterval.Duration()
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

func (r *ConsumerReconciler) apply(ctx context.Context, d *appsv1.Deployment) error {
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(d)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: obj}
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(u.Object, "spec", "template", "metadata", "creationTimestamp")
	return r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(consumerFieldOwner), client.ForceOwnership)
}

func (r *ConsumerReconciler) recordScale(c *millracev1.Consumer, st *consumerState, from int32, d scaling.Decision) {
	now := r.Now()
	st.scaling.RecordScale(now, from, d.Replicas)
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
	r.Recorder.Eventf(c, nil, corev1.EventTypeNormal, reason, "Scale", "scaled from %d to %d: %s", from, d.Replicas, d.Reason)
}

// observe sets status and conditions from what was observed and decided.
func (r *ConsumerReconciler) observe(c *millracev1.Consumer, dep *appsv1.Deployment, d scaling.Decision, s depth.Sample, p scaling.Policy) {
	c.Status.Deployment = dep.Name
	c.Status.Replicas = dep.Status.Replicas
	c.Status.ReadyReplicas = dep.Status.ReadyReplicas
	c.Status.DesiredReplicas = d.Replicas
	if !s.At.IsZero() && s.Err == nil {
		at := metav1.NewTime(s.At.Truncate(time.Second))
		c.Status.Backlog = &millracev1.BacklogStatus{Total: d.Backlog, Visible: s.Visible, InFlight: s.InFlight, Delayed: s.Delayed, ObservedAt: &at}
	}
	key := []string{c.Namespace, c.Name}
	r.Metrics.Backlog.WithLabelValues(key...).Set(float64(d.Backlog))
	r.Metrics.Desired.WithLabelValues(key...).Set(float64(d.Replicas))
	r.Metrics.Replicas.WithLabelValues(key...).Set(float64(dep.Status.Replicas))

	setBool := func(kind string, ok bool, yes, no, msg string) {
		status, reason := metav1.ConditionFalse, no
		if ok {
			status, reason = metav1.ConditionTrue, yes
		}
		meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: kind, Status: status, Reason: reason, Message: msg, ObservedGeneration: c.Generation})
	}
	setBool(ConditionActive, d.Active, ReasonBacklog, ReasonIdle,
		fmt.Sprintf("backlog %d, activation %d", d.Backlog, p.ActivationBacklog))
	degradedMsg := "queue depth is being read"
	if d.Degraded {
		degradedMsg = fmt.Sprintf("%s; holding %d replicas", s.Err, d.Replicas)
	}
	setBool(ConditionDegraded, d.Degraded, ReasonDepthUnknown, ReasonDepthKnown, degradedMsg)
	setBool(ConditionPaused, p.Paused, "Paused", "NotPaused", "spec.scaling.paused")

	available := meta.IsStatusConditionTrue(deploymentConditions(dep), string(appsv1.DeploymentAvailable))
	switch {
	case d.Replicas == 0:
		conditions.MarkReady(&c.Status.Conditions, c.Generation, ReasonScaledToZero, "no backlog: scaled to zero")
	case available && dep.Status.ReadyReplicas > 0:
		conditions.MarkReady(&c.Status.Conditions, c.Generation, ReasonAvailable,
			fmt.Sprintf("%d of %d replicas ready", dep.Status.ReadyReplicas, d.Replicas))
	default:
		conditions.MarkReconciling(&c.Status.Conditions, c.Generation, ReasonRolling,
			fmt.Sprintf("%d of %d replicas ready", dep.Status.ReadyReplicas, d.Replicas))
	}
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

func (r *ConsumerReconciler) forget(key k8stypes.NamespacedName) {
	r.mu.Lock()
	st, ok := r.states[key]
	delete(r.states, key)
	r.mu.Unlock()
	if ok && st.watchingURL != "" {
		r.Monitor.Unwatch(st.watchingURL, consumerMonitorID(key))
	}
	for _, g := range []*prometheus.GaugeVec{r.Metrics.Backlog, r.Metrics.Desired, r.Metrics.Replicas} {
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
	if err := mgr.GetFieldIndexer().IndexField(ctx, &millracev1.Consumer{}, consumerQueueKey, func(o client.Object) []string {
		return []string{o.(*millracev1.Consumer).Spec.QueueRef.Name}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&millracev1.Consumer{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Owns(&appsv1.Deployment{}, builder.WithPredicates(deploymentChanged())).
		Watches(&millracev1.Queue{}, handler.EnqueueRequestsFromMapFunc(r.consumersOfQueue), builder.WithPredicates(queueUsableChanged())).
		WatchesRawSource(source.TypedChannel(r.samples, &handler.TypedEnqueueRequestForObject[*millracev1.Consumer]{})).
		Named("consumer").
		Complete(r)
}

func (r *ConsumerReconciler) consumersOfQueue(ctx context.Context, o client.Object) []reconcile.Request {
	return referrers(ctx, r.Client, &millracev1.ConsumerList{}, consumerQueueKey, o, nil)
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

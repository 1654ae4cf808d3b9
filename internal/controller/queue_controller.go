package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/awsidentity"
	"github.com/millrace-io/millrace/internal/conditions"
	"github.com/millrace-io/millrace/internal/depth"
	"github.com/millrace-io/millrace/internal/sqsx"
	"github.com/millrace-io/millrace/internal/tenancy"
)

const (
	// QueueFinalizer holds a Queue until its SQS queue was deleted or retained per policy.
	QueueFinalizer = "millrace.io/queue"
	fieldOwner     = "millrace-manager"
	deadLetterKey  = "spec.deadLetter.queueRef.name"
)

// Reasons of Queue conditions and Events.
const (
	ReasonSynced             = "Synced"
	ReasonCreated            = "Created"
	ReasonAdopted            = "Adopted"
	ReasonUpdated            = "Updated"
	ReasonTagsUpdated        = "TagsUpdated"
	ReasonDeleted            = "Deleted"
	ReasonRetained           = "Retained"
	ReasonSQSRefused         = "SQSRefused"
	ReasonSQSError           = "SQSError"
	ReasonAlreadyExists      = "AlreadyExists"
	ReasonOwnedElsewhere     = "OwnedElsewhere"
	ReasonDeletedRecently    = "QueueDeletedRecently"
	ReasonWaitingDeadLetter  = "WaitingForDeadLetterQueue"
	ReasonInvalidDeadLetter  = "InvalidDeadLetterQueue"
	ReasonAttributesNotTaken = "AttributesNotApplied"
	ReasonNameNotAllowed     = "QueueNameNotAllowed"
	ReasonAdoptionNotAllowed = "AdoptionNotAllowed"
	ReasonDeadLetterDenied   = "DeadLetterNotAllowed"
	ReasonKMSKeyDenied       = "KMSKeyNotAllowed"
	// ReasonQueueMissing: an adopted queue was deleted outside Millrace, which recreates only the
	// queues it created.
	ReasonQueueMissing = "QueueMissing"
	// ReasonQueueMoved: the Queue's queue was created at another URL than the one it had (the
	// namespace was mapped to another AWS account or region).
	ReasonQueueMoved = "QueueMoved"
)

// QueueReconciler keeps SQS queues in sync with Queue resources.
type QueueReconciler struct {
	client.Client
	SQS      SQSAPI
	Recorder events.EventRecorder
	Monitor  *depth.Monitor
	Counts   *QueueCountsWriter
	// ClusterName goes into the owner tag, so two clusters sharing an AWS account never fight.
	ClusterName string
	// Resync is how often a Ready queue is compared with SQS again (jittered by up to 10%).
	Resync time.Duration
	// StalledRetry is how often a Stalled queue is tried again without a spec change, in case what
	// SQS refused was fixed outside Millrace (an IAM or KMS policy).
	StalledRetry time.Duration
	// DepthInterval is how often the depth monitor reads a queue's counts while they move.
	DepthInterval time.Duration
	// Identities hands out the SQS clients of namespaces mapped to an IAM role (TenantPolicy
	// spec.aws); SQS serves the others.
	Identities *awsidentity.Clients

	// router learns which namespace each queue URL belongs to, for the depth monitor and task sends.
	router *queueRouter

	// gone carries the Queues whose depth reading said their SQS queue does not exist: reconciled
	// at once, not at the next resync.
	gone chan event.TypedGenericEvent[*millracev1.Queue]
}

// queueScope carries what one reconcile observed from step to step.
type queueScope struct {
	queue      *millracev1.Queue
	name       string
	url        string
	arn        string
	deadLetter string
	owner      string
	attributes map[string]string
	tags       map[string]string
	grants     tenancy.Grants
	// sqs is the client of the namespace's AWS identity.
	sqs SQSAPI
	// sources are the Queues allowed to use this queue as their dead-letter queue.
	sources []string
}

// +kubebuilder:rbac:groups=millrace.io,resources=queues,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=millrace.io,resources=queues/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=millrace.io,resources=queues/finalizers,verbs=update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// Reconcile converges one Queue.
func (r *QueueReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	q := &millracev1.Queue{}
	if err := r.Get(ctx, req.NamespacedName, q); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName, "")
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	original := q.DeepCopy()
	var verdict conditions.Verdict
	defer func() {
		conditions.Summarize(&q.Status.Conditions, q.Generation, verdict)
		if err := r.patchStatus(ctx, original, q); err != nil && retErr == nil {
			retErr = err
		}
	}()

	if !q.DeletionTimestamp.IsZero() {
		return r.reconcileDelete(ctx, q)
	}
	if !controllerutil.ContainsFinalizer(q, QueueFinalizer) {
		patch := client.MergeFrom(q.DeepCopy())
		controllerutil.AddFinalizer(q, QueueFinalizer)
		return ctrl.Result{}, r.Patch(ctx, q, patch, client.FieldOwner(fieldOwner))
	}

	s := &queueScope{
		queue: q,
		name:  sqsName(q),
		owner: sqsx.OwnerValue(r.ClusterName, q.Namespace, q.Name),
	}
	q.Status.QueueName = s.name
	for _, step := range []func(context.Context, *queueScope) (ctrl.Result, bool, error){
		r.checkGrants,
		r.resolveDeadLetter,
		r.ensureQueue,
		r.syncAttributes,
		r.syncTags,
	} {
		res, done, err := step(ctx, s)
		if err != nil || done {
			return res, err
		}
	}
	if previous := q.Status.QueueURL; previous != "" && previous != s.url {
		// The queue moved (the namespace was mapped to another account or region): the old URL's
		// poller would keep reading a queue this Queue no longer has, and its NotFound readings
		// would keep bringing the Queue back here.
		r.Monitor.Unwatch(previous, monitorID(req.NamespacedName))
		r.router.forget(previous)
	}
	q.Status.QueueURL, q.Status.QueueARN, q.Status.DeadLetterSources = s.url, s.arn, s.sources
	r.router.register(s.url, q.Namespace)
	r.Monitor.Watch(s.url, monitorID(req.NamespacedName), depth.Subscription{
		Interval: r.DepthInterval,
		Notify:   r.notify(req.NamespacedName),
	})
	if !conditions.IsReady(q.Status.Conditions) {
		r.Recorder.Eventf(q, nil, corev1.EventTypeNormal, ReasonSynced, "Sync", "queue %s is Ready", s.name)
	}
	conditions.MarkReconciled(&q.Status.Conditions)
	verdict = conditions.Verdict{Reason: ReasonSynced, Message: fmt.Sprintf("queue %s matches the spec", s.name)}
	q.Status.ObservedGeneration = q.Generation
	return ctrl.Result{RequeueAfter: jitter(r.Resync)}, nil
}

// checkGrants refuses, before any SQS call, what only an administrator may grant a namespace: an
// explicit SQS name (it could name another team's queue), a dead-letter queue outside the
// namespace (messages moved there could be forged into another team's queue) and a customer-managed
// KMS key (another team's key would be used through Millrace's identity).
func (r *QueueReconciler) checkGrants(ctx context.Context, s *queueScope) (ctrl.Result, bool, error) {
	q := s.queue
	g, err := grantsFor(ctx, r.Client, q.Namespace)
	if err != nil {
		return ctrl.Result{}, true, err
	}
	s.grants = g
	if s.sqs, err = sqsFor(r.SQS, r.Identities, g); err != nil {
		return r.stall(s, ReasonAWSIdentity, err.Error())
	}
	if q.Spec.QueueName != "" {
		if err := g.QueueName(q.Spec.QueueName); err != nil {
			return r.stall(s, ReasonNameNotAllowed, err.Error())
		}
	}
	if dl := q.Spec.DeadLetter; dl != nil && dl.ARN != "" {
		if err := g.DeadLetterARN(dl.ARN); err != nil {
			return r.stall(s, ReasonDeadLetterDenied, err.Error())
		}
	}
	if enc := q.Spec.Encryption; enc != nil && enc.KMSKeyID != "" {
		if err := g.KMSKey(enc.KMSKeyID); err != nil {
			return r.stall(s, ReasonKMSKeyDenied, err.Error())
		}
	}
	return ctrl.Result{}, false, nil
}

// sqsName is the Queue's SQS name: explicit, or generated; a Queue that already recorded the
// generated name of earlier releases keeps it (renaming would abandon its queue and messages).
func sqsName(q *millracev1.Queue) string {
	if q.Spec.QueueName == "" {
		if legacy := sqsx.LegacyQueueName(q.Namespace, q.Name, q.Spec); q.Status.QueueName == legacy {
			return legacy
		}
	}
	return sqsx.QueueName(q.Namespace, q.Name, q.Spec)
}

// deletionPolicy is the Queue's effective deletion policy: an adopted queue outlives its Queue
// unless the spec says Delete.
func deletionPolicy(q *millracev1.Queue) millracev1.DeletionPolicy {
	switch {
	case q.Spec.DeletionPolicy != "":
		return q.Spec.DeletionPolicy
	case q.Status.Adopted:
		return millracev1.DeletionPolicyRetain
	}
	return millracev1.DeletionPolicyDelete
}

// resolveDeadLetter finds the ARN of the dead-letter queue, waiting for a referenced Queue to have one.
func (r *QueueReconciler) resolveDeadLetter(ctx context.Context, s *queueScope) (ctrl.Result, bool, error) {
	q := s.queue
	dl := q.Spec.DeadLetter
	switch {
	case dl == nil:
		return ctrl.Result{}, false, nil
	case dl.ARN != "":
		s.deadLetter = dl.ARN
		return ctrl.Result{}, false, nil
	}
	if dl.QueueRef.Name == q.Name {
		return r.stall(s, ReasonInvalidDeadLetter, "spec.deadLetter.queueRef: a queue cannot be its own dead-letter queue")
	}
	target := &millracev1.Queue{}
	err := r.Get(ctx, k8stypes.NamespacedName{Namespace: q.Namespace, Name: dl.QueueRef.Name}, target)
	switch {
	case apierrors.IsNotFound(err):
		return r.wait(s, ReasonWaitingDeadLetter, fmt.Sprintf("spec.deadLetter.queueRef: Queue %q does not exist yet", dl.QueueRef.Name))
	case err != nil:
		return ctrl.Result{}, true, err
	}
	targetType := target.Spec.Type
	if targetType == "" {
		targetType = millracev1.QueueTypeStandard
	}
	if targetType != q.Spec.Type {
		return r.stall(s, ReasonInvalidDeadLetter, fmt.Sprintf(
			"spec.deadLetter.queueRef: Queue %q is %s but this queue is %s; the dead-letter queue must be of the same type",
			dl.QueueRef.Name, targetType, q.Spec.Type))
	}
	if target.Status.QueueARN == "" {
		return r.wait(s, ReasonWaitingDeadLetter, fmt.Sprintf("spec.deadLetter.queueRef: Queue %q has no queue ARN yet", dl.QueueRef.Name))
	}
	if !slices.Contains(target.Status.DeadLetterSources, q.Name) {
		return r.wait(s, ReasonWaitingDeadLetter, fmt.Sprintf(
			"spec.deadLetter.queueRef: Queue %q does not list this queue in its redrive allow policy yet (status.deadLetterSources; SQS allows at most %d sources)",
			dl.QueueRef.Name, sqsx.MaxRedriveSources))
	}
	s.deadLetter = target.Status.QueueARN
	return ctrl.Result{}, false, nil
}

// ensureQueue finds the queue in SQS, creating it or adopting it per policy.
func (r *QueueReconciler) ensureQueue(ctx context.Context, s *queueScope) (ctrl.Result, bool, error) {
	q := s.queue
	got, err := s.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(s.name)})
	if err == nil {
		s.url = aws.ToString(got.QueueUrl)
		return r.claimExisting(ctx, s)
	}
	if class, _ := sqsx.Classify(err); class != sqsx.NotFound {
		return r.sqsError(s, "GetQueueUrl", err)
	}
	if q.Status.Adopted {
		return r.adoptedQueueMissing(s)
	}
	created, err := s.sqs.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName:  aws.String(s.name),
		Attributes: sqsx.CreateAttributes(q.Spec, s.deadLetter),
		Tags:       sqsx.DesiredTags(q.Spec.Tags, s.owner, false),
	})
	if err != nil {
		return r.sqsError(s, "CreateQueue", err)
	}
	s.url = aws.ToString(created.QueueUrl)
	q.Status.Adopted = false
	switch previous := q.Status.QueueURL; {
	case previous == s.url:
		// Only a queue created again at the URL it had was deleted outside Millrace; the depth
		// poller, backing off from the readings that said it was missing, reads it at once.
		r.Recorder.Eventf(q, nil, corev1.EventTypeWarning, "Recreating", "Create",
			"queue %s was deleted outside Millrace; created it again", s.name)
		r.Monitor.Poke(s.url)
	case previous != "":
		r.Recorder.Eventf(q, nil, corev1.EventTypeNormal, ReasonQueueMoved, "Create",
			"queue %s now lives at %s (was %s): the namespace's AWS account or region changed; the old queue is left in place", s.name, s.url, previous)
	}
	r.Recorder.Eventf(q, nil, corev1.EventTypeNormal, ReasonCreated, "Create", "created %s queue %s", q.Spec.Type, s.name)
	return ctrl.Result{}, false, nil
}

// adoptedQueueMissing reports an adopted queue deleted outside Millrace. Millrace creates again
// only the queues it created: an adopted queue belonged to someone else first, and its deletion may
// have been meant. The Queue forgets the URL and ARN (its Consumers and the Queues that use it as
// their dead-letter queue then wait), and adopts the queue again if it reappears (at the stalled
// retry interval, or at once on a change of the Queue).
func (r *QueueReconciler) adoptedQueueMissing(s *queueScope) (ctrl.Result, bool, error) {
	q := s.queue
	if q.Status.QueueURL != "" {
		r.Monitor.Unwatch(q.Status.QueueURL, monitorID(client.ObjectKeyFromObject(q)))
	}
	q.Status.QueueURL, q.Status.QueueARN = "", ""
	return r.stall(s, ReasonQueueMissing, fmt.Sprintf(
		"queue %s, adopted by this Queue, no longer exists in SQS (deleted outside Millrace); Millrace creates again only the queues it created: create it in SQS to have it adopted again, or delete this Queue", s.name))
}

// notify is the Queue's depth subscription: message counts go to the status writer, and a
// reading that says the queue does not exist brings the Queue's reconcile (recreate, or report)
// within one poll rather than at the next resync.
func (r *QueueReconciler) notify(key k8stypes.NamespacedName) func(depth.Sample) {
	counts := r.Counts.Notify(key)
	obj := &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	return func(smp depth.Sample) {
		counts(smp)
		if smp.Err == nil {
			return
		}
		if class, _ := sqsx.Classify(smp.Err); class == sqsx.NotFound {
			select {
			case r.gone <- event.TypedGenericEvent[*millracev1.Queue]{Object: obj}:
			default: // full: reconciles of the missing queues are already pending
			}
		}
	}
}

// claimExisting decides whether an existing queue is this resource's: created by it (owner tag),
// or adoptable per spec.adoptionPolicy.
func (r *QueueReconciler) claimExisting(ctx context.Context, s *queueScope) (ctrl.Result, bool, error) {
	q := s.queue
	tags, err := s.sqs.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(s.url)})
	if err != nil {
		return r.sqsError(s, "ListQueueTags", err)
	}
	s.tags = tags.Tags
	switch owner := s.tags[sqsx.OwnerTag]; {
	case owner == s.owner && (s.tags[sqsx.AdoptedTag] == "" || q.Status.Adopted):
		return ctrl.Result{}, false, nil // created by a Queue of this name, or adopted by this one
	case owner == s.owner && q.Spec.AdoptionPolicy != millracev1.AdoptionPolicyAdopt:
		// Adopted by an earlier Queue of this name and retained when it went: taking it again is
		// adopting it again, with what that needs.
		return r.stall(s, ReasonAlreadyExists, fmt.Sprintf(
			"queue %s existed before Millrace and was adopted by an earlier Queue of this name; set spec.adoptionPolicy: Adopt to manage it again", s.name))
	case owner == s.owner: // adopted again: the grant is checked below
	case owner != "":
		return r.stall(s, ReasonOwnedElsewhere, fmt.Sprintf(
			"queue %s is managed by another Millrace Queue (%s=%s); it will not be taken over", s.name, sqsx.OwnerTag, owner))
	case q.Spec.AdoptionPolicy != millracev1.AdoptionPolicyAdopt:
		return r.stall(s, ReasonAlreadyExists, fmt.Sprintf(
			"queue %s already exists in SQS and was not created by this Queue; set spec.adoptionPolicy: Adopt to manage it", s.name))
	}
	if err := s.grants.Adoption(); err != nil {
		return r.stall(s, ReasonAdoptionNotAllowed, fmt.Sprintf("queue %s already exists in SQS: %v", s.name, err))
	}
	q.Status.Adopted = true
	r.Recorder.Eventf(q, nil, corev1.EventTypeNormal, ReasonAdopted, "Adopt", "adopted existing queue %s", s.name)
	return ctrl.Result{}, false, nil
}

// syncAttributes reads the queue's attributes, corrects what differs from the spec, and reads them
// back: Ready is decided from what SQS reports, not from what was asked.
func (r *QueueReconciler) syncAttributes(ctx context.Context, s *queueScope) (ctrl.Result, bool, error) {
	q := s.queue
	if err := r.readAttributes(ctx, s); err != nil {
		return r.sqsError(s, "GetQueueAttributes", err)
	}
	if fifo := strings.EqualFold(s.attributes[sqsx.AttrFifoQueue], "true"); fifo != (q.Spec.Type == millracev1.QueueTypeFIFO) {
		return r.stall(s, ReasonAlreadyExists, fmt.Sprintf("spec.type: queue %s exists in SQS with FifoQueue=%v", s.name, fifo))
	}
	desired := sqsx.DesiredAttributes(q.Spec, s.deadLetter)
	sources, err := r.redriveSources(ctx, q, s.arn)
	if err != nil {
		return ctrl.Result{}, true, err
	}
	desired[sqsx.AttrRedriveAllowPolicy] = sqsx.RedriveAllow(slices.Collect(maps.Values(sources)))
	diff := sqsx.AttributeDiff(desired, s.attributes)
	if len(diff) == 0 {
		s.sources = slices.Sorted(maps.Keys(sources))
		return ctrl.Result{}, false, nil
	}
	if _, err := s.sqs.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{QueueUrl: aws.String(s.url), Attributes: diff}); err != nil {
		return r.sqsError(s, "SetQueueAttributes", err)
	}
	names := strings.Join(sqsx.DriftedNames(diff), ", ")
	r.Recorder.Eventf(q, nil, corev1.EventTypeNormal, ReasonUpdated, "Update", "set %s on queue %s", names, s.name)
	if err := r.readAttributes(ctx, s); err != nil {
		return r.sqsError(s, "GetQueueAttributes", err)
	}
	if still := sqsx.AttributeDiff(desired, s.attributes); len(still) > 0 {
		return r.wait(s, ReasonAttributesNotTaken, fmt.Sprintf("SQS accepted but does not report %s as set on queue %s",
			strings.Join(sqsx.DriftedNames(still), ", "), s.name))
	}
	s.sources = slices.Sorted(maps.Keys(sources))
	return ctrl.Result{}, false, nil
}

// redriveSources maps the Queues of q's namespace that name q as their dead-letter queue (the
// first MaxRedriveSources by name) to their queue ARNs, derived from q's own ARN: a queue's
// RedriveAllowPolicy admits exactly them, so no queue of another namespace or outside Millrace
// can move messages into it.
func (r *QueueReconciler) redriveSources(ctx context.Context, q *millracev1.Queue, arn string) (map[string]string, error) {
	var list millracev1.QueueList
	if err := r.List(ctx, &list, client.InNamespace(q.Namespace), client.MatchingFields{deadLetterKey: q.Name}); err != nil {
		return nil, err
	}
	slices.SortFunc(list.Items, func(a, b millracev1.Queue) int { return strings.Compare(a.Name, b.Name) })
	sources := map[string]string{}
	for i := range list.Items {
		src := &list.Items[i]
		if src.Name == q.Name || !src.DeletionTimestamp.IsZero() || len(sources) == sqsx.MaxRedriveSources {
			continue
		}
		sources[src.Name] = sqsx.SiblingARN(arn, sqsName(src))
	}
	return sources, nil
}

func (r *QueueReconciler) readAttributes(ctx context.Context, s *queueScope) error {
	out, err := s.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl:       aws.String(s.url),
		AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameAll},
	})
	if err != nil {
		return err
	}
	s.attributes = out.Attributes
	s.arn = out.Attributes[sqsx.AttrQueueArn]
	return nil
}

// syncTags makes the queue's tags exactly the spec's plus the owner tag.
func (r *QueueReconciler) syncTags(ctx context.Context, s *queueScope) (ctrl.Result, bool, error) {
	q := s.queue
	if s.tags == nil {
		out, err := s.sqs.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(s.url)})
		if err != nil {
			return r.sqsError(s, "ListQueueTags", err)
		}
		s.tags = out.Tags
	}
	set, remove := sqsx.TagDiff(sqsx.DesiredTags(q.Spec.Tags, s.owner, q.Status.Adopted), s.tags)
	if len(set) > 0 {
		if _, err := s.sqs.TagQueue(ctx, &sqs.TagQueueInput{QueueUrl: aws.String(s.url), Tags: set}); err != nil {
			return r.sqsError(s, "TagQueue", err)
		}
	}
	if len(remove) > 0 {
		if _, err := s.sqs.UntagQueue(ctx, &sqs.UntagQueueInput{QueueUrl: aws.String(s.url), TagKeys: remove}); err != nil {
			return r.sqsError(s, "UntagQueue", err)
		}
	}
	if len(set)+len(remove) > 0 {
		r.Recorder.Eventf(q, nil, corev1.EventTypeNormal, ReasonTagsUpdated, "Update",
			"tags of queue %s: set %d, removed %d", s.name, len(set), len(remove))
	}
	return ctrl.Result{}, false, nil
}

// reconcileDelete deletes or retains the SQS queue per policy, then releases the finalizer.
func (r *QueueReconciler) reconcileDelete(ctx context.Context, q *millracev1.Queue) (ctrl.Result, error) {
	key := client.ObjectKeyFromObject(q)
	r.forget(key, q.Status.QueueURL)
	if !controllerutil.ContainsFinalizer(q, QueueFinalizer) {
		return ctrl.Result{}, nil
	}
	name := q.Status.QueueName
	if name == "" {
		name = sqsName(q)
	}
	if deletionPolicy(q) == millracev1.DeletionPolicyRetain {
		r.Recorder.Eventf(q, nil, corev1.EventTypeNormal, ReasonRetained, "Delete", "queue %s retained per deletionPolicy", name)
	} else if res, err := r.deleteOwnedQueue(ctx, q, name); err != nil || res.RequeueAfter > 0 {
		if err != nil {
			r.Recorder.Eventf(q, nil, corev1.EventTypeWarning, "DeleteFailed", "Delete", "queue %s: %v", name, err)
		}
		return res, err
	}
	patch := client.MergeFrom(q.DeepCopy())
	controllerutil.RemoveFinalizer(q, QueueFinalizer)
	return ctrl.Result{}, client.IgnoreNotFound(r.Patch(ctx, q, patch, client.FieldOwner(fieldOwner)))
}

// deletionGrant says whether the namespace may still delete a queue it owns: an adopted one only
// with allowAdoption, an explicitly named one only with its name's prefix.
func deletionGrant(g tenancy.Grants, q *millracev1.Queue, tags map[string]string) error {
	if tags[sqsx.AdoptedTag] != "" {
		if err := g.Adoption(); err != nil {
			return err
		}
	}
	if q.Spec.QueueName != "" {
		return g.QueueName(q.Spec.QueueName)
	}
	return nil
}

// deleteOwnedQueue deletes the queue only if it carries this resource's owner tag: a queue that was
// never created nor adopted by this resource is never deleted.
func (r *QueueReconciler) deleteOwnedQueue(ctx context.Context, q *millracev1.Queue, name string) (ctrl.Result, error) {
	g, err := grantsFor(ctx, r.Client, q.Namespace)
	if err != nil {
		return ctrl.Result{}, err
	}
	api, err := sqsFor(r.SQS, r.Identities, g)
	if err != nil {
		return ctrl.Result{}, err
	}
	got, err := api.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if class, _ := sqsx.Classify(err); err != nil && class == sqsx.NotFound {
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, fmt.Errorf("GetQueueUrl: %s", sqsx.Message(err))
	}
	url := aws.ToString(got.QueueUrl)
	tags, err := api.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(url)})
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("ListQueueTags: %s", sqsx.Message(err))
	}
	if tags.Tags[sqsx.OwnerTag] != sqsx.OwnerValue(r.ClusterName, q.Namespace, q.Name) {
		r.Recorder.Eventf(q, nil, corev1.EventTypeNormal, ReasonRetained, "Delete",
			"queue %s was not created or adopted by this Queue; left in place", name)
		return ctrl.Result{}, nil
	}
	// A queue that existed before Millrace, or that has a name only a grant allows, is deleted only
	// while the namespace still holds that grant.
	if err := deletionGrant(g, q, tags.Tags); err != nil {
		r.Recorder.Eventf(q, nil, corev1.EventTypeNormal, ReasonRetained, "Delete", "queue %s left in place: %v", name, err)
		return ctrl.Result{}, nil
	}
	if _, err := api.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil {
		if class, _ := sqsx.Classify(err); class != sqsx.NotFound {
			return ctrl.Result{}, fmt.Errorf("DeleteQueue: %s", sqsx.Message(err))
		}
	}
	r.Recorder.Eventf(q, nil, corev1.EventTypeNormal, ReasonDeleted, "Delete", "deleted queue %s", name)
	return ctrl.Result{}, nil
}

// sqsError turns an SQS error into the right outcome: Stalled for a refusal (retried only at the
// slow resync), a timed wait for a recently deleted name, a returned error (backoff) otherwise.
func (r *QueueReconciler) sqsError(s *queueScope, op string, err error) (ctrl.Result, bool, error) {
	class, _ := sqsx.Classify(err)
	msg := fmt.Sprintf("%s: %s", op, sqsx.Message(err))
	switch class {
	case sqsx.Refused:
		return r.stall(s, ReasonSQSRefused, "SQS refused "+msg)
	case sqsx.Wait:
		conditions.MarkReconciling(&s.queue.Status.Conditions, s.queue.Generation, ReasonDeletedRecently, msg)
		return ctrl.Result{RequeueAfter: jitter(sqsx.QueueDeletedRecentlyWait)}, true, nil
	default:
		conditions.MarkReconciling(&s.queue.Status.Conditions, s.queue.Generation, ReasonSQSError, msg)
		return ctrl.Result{}, true, fmt.Errorf("%s", msg)
	}
}

// stall records a terminal problem; the queue is looked at again only at the resync interval or
// when its spec changes.
func (r *QueueReconciler) stall(s *queueScope, reason, message string) (ctrl.Result, bool, error) {
	q := s.queue
	if !conditions.IsStalled(q.Status.Conditions) || q.Status.ObservedGeneration != q.Generation {
		r.Recorder.Eventf(q, nil, corev1.EventTypeWarning, reason, "Sync", "%s", message)
	}
	conditions.MarkStalled(&q.Status.Conditions, q.Generation, reason, message)
	q.Status.ObservedGeneration = q.Generation
	return ctrl.Result{RequeueAfter: jitter(r.StalledRetry)}, true, nil
}

// wait records a condition that will clear by itself (or by an event we watch).
func (r *QueueReconciler) wait(s *queueScope, reason, message string) (ctrl.Result, bool, error) {
	conditions.MarkReconciling(&s.queue.Status.Conditions, s.queue.Generation, reason, message)
	return ctrl.Result{RequeueAfter: jitter(30 * time.Second)}, true, nil
}

func (r *QueueReconciler) forget(key k8stypes.NamespacedName, url string) {
	if url != "" {
		r.Monitor.Unwatch(url, monitorID(key))
		r.router.forget(url)
	}
	r.Counts.Forget(key)
}

func (r *QueueReconciler) patchStatus(ctx context.Context, original, q *millracev1.Queue) error {
	if equality.Semantic.DeepEqual(original.Status, q.Status) {
		return nil
	}
	// Message counts belong to the counts writer; never write back a stale copy of them.
	q.Status.Messages = original.Status.Messages
	err := r.Status().Patch(ctx, q, client.MergeFrom(original), client.FieldOwner(fieldOwner))
	return client.IgnoreNotFound(err)
}

func monitorID(key k8stypes.NamespacedName) string { return "queue/" + key.String() }

// jitter spreads periodic work by up to 10%.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + time.Duration(rand.Int64N(int64(d)/10+1))
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// SetupWithManager registers the controller, its index of dead-letter references and its runnables.
func (r *QueueReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if r.Monitor == nil {
		r.Monitor = depth.NewMonitor(r.SQS, depth.Options{})
	}
	if r.Counts == nil {
		r.Counts = &QueueCountsWriter{Client: r.Client, MinInterval: 5 * time.Second}
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &millracev1.Queue{}, deadLetterKey, func(o client.Object) []string {
		q := o.(*millracev1.Queue)
		if q.Spec.DeadLetter == nil || q.Spec.DeadLetter.QueueRef == nil {
			return nil
		}
		return []string{q.Spec.DeadLetter.QueueRef.Name}
	}); err != nil {
		return err
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &millracev1.Queue{}, queueURLKey, func(o client.Object) []string {
		if url := o.(*millracev1.Queue).Status.QueueURL; url != "" {
			return []string{url}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := mgr.Add(r.Monitor); err != nil {
		return err
	}
	if err := mgr.Add(r.Counts); err != nil {
		return err
	}
	r.gone = make(chan event.TypedGenericEvent[*millracev1.Queue], 1024)
	return ctrl.NewControllerManagedBy(mgr).
		For(&millracev1.Queue{}, builder.WithPredicates(specOrLifecycleChanged())).
		Watches(&millracev1.Queue{}, handler.EnqueueRequestsFromMapFunc(r.referencingQueues),
			builder.WithPredicates(deadLetterTargetChanged())).
		Watches(&millracev1.Queue{}, handler.EnqueueRequestsFromMapFunc(deadLetterTarget),
			builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&millracev1.TenantPolicy{}, handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, o client.Object) []reconcile.Request {
			return policyNamespaces(ctx, r.Client, o, &millracev1.QueueList{})
		})).
		WatchesRawSource(source.TypedChannel(r.gone, &handler.TypedEnqueueRequestForObject[*millracev1.Queue]{})).
		Named("queue").
		Complete(r)
}

// referencingQueues maps a Queue to the Queues that use it as their dead-letter queue.
func (r *QueueReconciler) referencingQueues(ctx context.Context, o client.Object) []reconcile.Request {
	return referrers(ctx, r.Client, &millracev1.QueueList{}, deadLetterKey, o, nil)
}

// deadLetterTarget maps a Queue to the Queue it names as its dead-letter queue, whose redrive
// allow policy lists its sources (an update maps both the old and the new reference).
func deadLetterTarget(_ context.Context, o client.Object) []reconcile.Request {
	q, ok := o.(*millracev1.Queue)
	if !ok || q.Spec.DeadLetter == nil || q.Spec.DeadLetter.QueueRef == nil {
		return nil
	}
	return []reconcile.Request{{NamespacedName: k8stypes.NamespacedName{Namespace: q.Namespace, Name: q.Spec.DeadLetter.QueueRef.Name}}}
}

// specOrLifecycleChanged ignores the Queue's own status writes (message counts) and changes of its
// labels and annotations, which the reconcile does not read: none of them causes SQS calls (each
// reconcile makes three or more, and a tenant could otherwise multiply them by rewriting an
// annotation in a loop).
func specOrLifecycleChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld, e.ObjectNew
			return o.GetGeneration() != n.GetGeneration() ||
				!o.GetDeletionTimestamp().Equal(n.GetDeletionTimestamp()) ||
				!equality.Semantic.DeepEqual(o.GetFinalizers(), n.GetFinalizers())
		},
	}
}

// deadLetterTargetChanged passes a Queue's creation, deletion and ARN or type changes: what the
// queues that reference it as a dead-letter queue depend on.
func deadLetterTargetChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*millracev1.Queue)
			n, ok2 := e.ObjectNew.(*millracev1.Queue)
			return ok1 && ok2 && (o.Status.QueueARN != n.Status.QueueARN || o.Spec.Type != n.Spec.Type ||
				!slices.Equal(o.Status.DeadLetterSources, n.Status.DeadLetterSources))
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

package controller

import (
	"context"
	"fmt"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/awsidentity"
	"github.com/millrace-io/millrace/internal/tenancy"
)

// ReasonAWSIdentity: the namespace's AWS identity cannot be used (TenantPolicies disagree).
const ReasonAWSIdentity = "AWSIdentityConflict"

const queueURLKey = "status.queueURL"

// sqsFor is the SQS client for the queues of namespace g.Namespace: the manager's own, or one with
// the credentials of the IAM role its TenantPolicies map it to (spec.aws). A namespace mapped to a
// role never falls back to the manager's own identity: its queues would land in another account.
func sqsFor(own SQSAPI, identities *awsidentity.Clients, g tenancy.Grants) (SQSAPI, error) {
	id, err := g.AWS()
	switch {
	case err != nil:
		return nil, err
	case id == nil:
		return own, nil
	case identities == nil:
		return nil, fmt.Errorf("namespace %s is mapped to IAM role %s, but this manager was wired without AWS identities", g.Namespace, id.RoleARN)
	}
	return identities.For(g.Namespace, &awsidentity.Role{ARN: id.RoleARN, Region: id.Region, ExternalID: id.ExternalID}), nil
}

// queueRouter makes a call on one queue with the SQS client of the namespace whose Queue has that
// URL: the depth monitor's readings and the WorkflowRun controller's task messages (which only ever
// go to a Queue of the run's own namespace) use it, so they need not know about identities. The
// Queue controller registers each URL as it learns it; a URL not registered (after a restart,
// before the Queue's first reconcile) is looked up among the Queues in the cache.
type queueRouter struct {
	own        *sqs.Client
	identities *awsidentity.Clients
	reader     client.Reader

	mu    sync.RWMutex
	byURL map[string]string // queue URL -> namespace
}

func newQueueRouter(own *sqs.Client, identities *awsidentity.Clients, reader client.Reader) *queueRouter {
	return &queueRouter{own: own, identities: identities, reader: reader, byURL: map[string]string{}}
}

func (q *queueRouter) register(url, namespace string) {
	if q == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.byURL[url] = namespace
}

func (q *queueRouter) forget(url string) {
	if q == nil {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.byURL, url)
}

// clientFor returns the client of the namespace of the Queue with url; the manager's own for a URL
// no Queue has (nothing of a tenant's is reached that way: the callers check the namespace).
func (q *queueRouter) clientFor(ctx context.Context, url string) (SQSAPI, error) {
	q.mu.RLock()
	ns, ok := q.byURL[url]
	q.mu.RUnlock()
	if !ok {
		var list millracev1.QueueList
		if err := q.reader.List(ctx, &list, client.MatchingFields{queueURLKey: url}, client.UnsafeDisableDeepCopy); err != nil {
			return nil, err
		}
		if len(list.Items) == 0 {
			return q.own, nil
		}
		ns = list.Items[0].Namespace
		for _, other := range list.Items[1:] {
			if other.Namespace != ns {
				return nil, fmt.Errorf("queue %s is the queue of Queues of namespaces %s and %s; refusing to pick an identity", url, ns, other.Namespace)
			}
		}
	}
	g, err := grantsFor(ctx, q.reader, ns)
	if err != nil {
		return nil, err
	}
	return sqsFor(q.own, q.identities, g)
}

// GetQueueAttributes reads a queue's attributes (the depth monitor's API).
func (q *queueRouter) GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, opts ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error) {
	c, err := q.clientFor(ctx, aws.ToString(in.QueueUrl))
	if err != nil {
		return nil, err
	}
	return c.GetQueueAttributes(ctx, in, opts...)
}

// SendMessage sends a task message (the WorkflowRun controller's TaskSender).
func (q *queueRouter) SendMessage(ctx context.Context, in *sqs.SendMessageInput, opts ...func(*sqs.Options)) (*sqs.SendMessageOutput, error) {
	c, err := q.clientFor(ctx, aws.ToString(in.QueueUrl))
	if err != nil {
		return nil, err
	}
	sender, ok := c.(TaskSender)
	if !ok {
		return nil, fmt.Errorf("the SQS client of queue %s cannot send messages", aws.ToString(in.QueueUrl))
	}
	return sender.SendMessage(ctx, in, opts...)
}

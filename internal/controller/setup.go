package controller

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/client_golang/prometheus"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/millrace-io/millrace/internal/awsidentity"
	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/consumer"
	"github.com/millrace-io/millrace/internal/depth"
	"github.com/millrace-io/millrace/internal/egress"
	"github.com/millrace-io/millrace/internal/httpserver"
	"github.com/millrace-io/millrace/internal/tasktoken"
)

// Options configure what Setup wires into a manager. Zero values take the manager's defaults.
type Options struct {
	// SQS manages queues, reads their depth and sends task messages, with the manager's own
	// identity; namespaces a TenantPolicy maps to an IAM role (spec.aws) get a client with its
	// credentials, its region, and SQS's endpoint, transport and metrics.
	SQS *sqs.Client
	// STSEndpoint overrides the STS endpoint used to assume namespaces' roles (an interface VPC
	// endpoint; a test's stand-in). Empty: the regional endpoint of the manager's region.
	STSEndpoint string
	// Registerer receives the controllers' metrics (nil: not registered).
	Registerer prometheus.Registerer
	// ClusterName goes into the owner tag of the queues this cluster manages (default "default").
	ClusterName string
	// Resync is how often a Ready Queue is compared with SQS again (default 10 min), StalledRetry
	// how often a Stalled one is tried again (default 30 min).
	Resync, StalledRetry time.Duration
	// DepthInterval is how often queue depth is read while it changes (default 10 s),
	// DepthMaxInterval the slowest interval while it is steady (default 1 min).
	DepthInterval, DepthMaxInterval time.Duration
	// StatusWriteInterval bounds how often message counts and backlog-only changes are written
	// (default 5 s).
	StatusWriteInterval time.Duration
	// IdlePollInterval is how often an idle Consumer's queue is read unless its
	// spec.scaling.idlePollInterval says (default DefaultIdlePollInterval).
	IdlePollInterval time.Duration
	// Region and Endpoint of SQS, handed to dispatchers and handlers.
	Region, Endpoint string
	// Render configures the Deployments of Consumers (the dispatcher's image, the callback URL).
	Render consumer.Options
	// Signer signs and checks task tokens.
	Signer *tasktoken.Signer
	// HTTP performs millrace:http tasks; nil disables them.
	HTTP *egress.Client
	// RunWorkers is how many WorkflowRuns are reconciled at once (default 8), LocalTaskWorkers how
	// many tasks the manager performs itself at once (default 16).
	RunWorkers, LocalTaskWorkers int
	// LocalTasksPerNamespace bounds one namespace's share of them, queued or in flight (default a
	// quarter of LocalTaskWorkers, at least 1).
	LocalTasksPerNamespace int
	// CallbackAddr is where the callback API is served, on every replica; empty serves nothing
	// (the caller serves Controllers.Callback itself, as tests do).
	CallbackAddr string
	// CallbackLimits bound the callback server's connections (default: internal/httpserver's).
	CallbackLimits httpserver.Limits
	// Webhooks registers the admission webhooks with the manager's webhook server.
	Webhooks bool
}

func (o *Options) setDefaults() {
	if o.ClusterName == "" {
		o.ClusterName = "default"
	}
	if o.Resync <= 0 {
		o.Resync = 10 * time.Minute
	}
	if o.StalledRetry <= 0 {
		o.StalledRetry = 30 * time.Minute
	}
	if o.DepthInterval <= 0 {
		o.DepthInterval = 10 * time.Second
	}
	if o.DepthMaxInterval <= 0 {
		o.DepthMaxInterval = time.Minute
	}
	if o.StatusWriteInterval <= 0 {
		o.StatusWriteInterval = 5 * time.Second
	}
	if o.RunWorkers <= 0 {
		o.RunWorkers = 8
	}
}

// Controllers are what Setup wired, for callers that look inside (tests, benchmarks).
type Controllers struct {
	Queues    *QueueReconciler
	Consumers *ConsumerReconciler
	Workflows *WorkflowReconciler
	Runs      *WorkflowRunReconciler
	Monitor   *depth.Monitor
	// Identities are the SQS clients of namespaces mapped to IAM roles.
	Identities *awsidentity.Clients
	// Callback is the callback API's handler (served at Options.CallbackAddr, if given).
	Callback http.Handler
}

// Setup wires every controller of Millrace into mgr: Queue (with the depth monitor and the
// status writer of message counts), Consumer, Workflow, WorkflowRun (with its task executor), the
// callback API, and the admission webhooks when asked. The manager, the envtest suite and the
// restart test all use it, so they run the same wiring.
func Setup(ctx context.Context, mgr ctrl.Manager, o Options) (*Controllers, error) {
	if o.SQS == nil || o.Signer == nil {
		return nil, fmt.Errorf("controllers.Setup needs an SQS client and a task token signer")
	}
	o.setDefaults()
	c := &Controllers{}
	c.Identities = awsidentity.New(o.SQS, awsidentity.Options{STSEndpoint: o.STSEndpoint, Registerer: o.Registerer})
	// Depth readings and task messages go to each queue with its namespace's identity.
	router := newQueueRouter(o.SQS, c.Identities, mgr.GetClient())
	c.Monitor = depth.NewMonitor(router, depth.Options{MaxInterval: o.DepthMaxInterval, Registerer: o.Registerer, Log: ctrl.Log.WithName("depth")})
	c.Queues = &QueueReconciler{
		Client:        mgr.GetClient(),
		SQS:           o.SQS,
		Identities:    c.Identities,
		router:        router,
		Recorder:      mgr.GetEventRecorder("millrace-queue-controller"),
		Monitor:       c.Monitor,
		Counts:        &QueueCountsWriter{Client: mgr.GetClient(), MinInterval: o.StatusWriteInterval, Log: ctrl.Log.WithName("queue-counts")},
		ClusterName:   o.ClusterName,
		Resync:        o.Resync,
		StalledRetry:  o.StalledRetry,
		DepthInterval: o.DepthInterval,
	}
	if err := c.Queues.SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("setting up the Queue controller: %w", err)
	}
	c.Consumers = &ConsumerReconciler{
		Client:              mgr.GetClient(),
		Recorder:            mgr.GetEventRecorder("millrace-consumer-controller"),
		Monitor:             c.Monitor,
		Metrics:             NewConsumerMetrics(o.Registerer),
		Render:              o.Render,
		APIReader:           mgr.GetAPIReader(),
		Region:              o.Region,
		Endpoint:            o.Endpoint,
		StatusWriteInterval: o.StatusWriteInterval,
		IdlePollInterval:    o.IdlePollInterval,
	}
	if err := c.Consumers.SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("setting up the Consumer controller: %w", err)
	}
	c.Workflows = &WorkflowReconciler{Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("millrace-workflow-controller")}
	if err := c.Workflows.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the Workflow controller: %w", err)
	}
	c.Runs = &WorkflowRunReconciler{
		Client:                 mgr.GetClient(),
		Recorder:               mgr.GetEventRecorder("millrace-workflowrun-controller"),
		SQS:                    router,
		Signer:                 o.Signer,
		APIReader:              mgr.GetAPIReader(),
		Workers:                o.RunWorkers,
		LocalTaskWorkers:       o.LocalTaskWorkers,
		LocalTasksPerNamespace: o.LocalTasksPerNamespace,
		Metrics:                NewWorkflowRunMetrics(o.Registerer),
		HTTP:                   o.HTTP,
		Log:                    ctrl.Log.WithName("workflowrun"),
	}
	if err := c.Runs.SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("setting up the WorkflowRun controller: %w", err)
	}
	c.Callback = callback.Handler(o.Signer, c.Runs)
	if o.CallbackAddr != "" {
		if err := mgr.Add(&CallbackServer{Addr: o.CallbackAddr, Handler: c.Callback, Limits: o.CallbackLimits}); err != nil {
			return nil, err
		}
	}
	if o.Webhooks {
		if err := (WorkflowRunValidator{}).SetupWebhookWithManager(mgr); err != nil {
			return nil, err
		}
	}
	return c, nil
}

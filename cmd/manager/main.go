// Command manager runs Millrace's controllers (controller.Setup): Queue with the shared
// queue-depth monitor, Consumer, Workflow and WorkflowRun, the task callback API and, when asked,
// the admission webhook. It manages queues with its own AWS identity, or with the IAM role a
// TenantPolicy maps a namespace to (assumed through STS).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/consumer"
	"github.com/millrace-io/millrace/internal/controller"
	"github.com/millrace-io/millrace/internal/egress"
	"github.com/millrace-io/millrace/internal/metricsauth"
	"github.com/millrace-io/millrace/internal/sqsx"
	"github.com/millrace-io/millrace/internal/tasktoken"
)

type options struct {
	metricsAddr, probeAddr string
	leaderElect            bool
	region, endpoint       string
	stsEndpoint            string
	clusterName            string
	resync                 time.Duration
	stalledRetry           time.Duration
	depthInterval          time.Duration
	depthMaxInterval       time.Duration
	statusWriteInterval    time.Duration
	idlePollInterval       time.Duration
	dispatcherImage        string
	callbackAddr           string
	callbackURL            string
	tokenKeyFile           string
	runWorkers             int
	localTaskWorkers       int
	localTasksPerNamespace int
	watchNamespaces        string
	httpTasks              bool
	webhook                webhookOptions
	clusterRanges          string
	metricsSecure          bool
	metricsCertDir         string
}

func main() {
	var o options
	flag.StringVar(&o.metricsAddr, "metrics-bind-address", ":8443", "Address of the Prometheus metrics endpoint (0 disables it).")
	flag.BoolVar(&o.metricsSecure, "metrics-secure", true, "Serve metrics over HTTPS to callers the API server authenticates and authorizes (GET on /metrics); false is allowed only on a loopback address.")
	flag.StringVar(&o.metricsCertDir, "metrics-cert-dir", "", "Folder with tls.crt and tls.key for the metrics endpoint (empty: a self-signed certificate).")
	flag.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz endpoints.")
	flag.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that only one replica reconciles.")
	flag.StringVar(&o.region, "region", os.Getenv("AWS_REGION"), "AWS region (default: $AWS_REGION or the shared config).")
	flag.StringVar(&o.endpoint, "sqs-endpoint", os.Getenv("MILLRACE_SQS_ENDPOINT"), "SQS endpoint override, for fauxqs, LocalStack or ElasticMQ.")
	flag.StringVar(&o.stsEndpoint, "sts-endpoint", os.Getenv("MILLRACE_STS_ENDPOINT"), "STS endpoint override for assuming the IAM roles TenantPolicies map namespaces to (an interface VPC endpoint); empty: the regional endpoint.")
	flag.StringVar(&o.clusterName, "cluster-name", "default", "Name of this cluster in the owner tag of the queues it manages.")
	flag.DurationVar(&o.resync, "resync-interval", 10*time.Minute, "How often a Ready Queue is compared with SQS again (drift correction).")
	flag.DurationVar(&o.stalledRetry, "stalled-retry-interval", 30*time.Minute, "How often a Stalled Queue is tried again without a spec change.")
	flag.DurationVar(&o.depthInterval, "depth-interval", 10*time.Second, "How often queue depth is read while it changes.")
	flag.DurationVar(&o.depthMaxInterval, "depth-max-interval", time.Minute, "Slowest depth polling interval while a queue is steady.")
	flag.DurationVar(&o.statusWriteInterval, "status-write-interval", 5*time.Second, "Minimum time between two writes of a Queue's message counts.")
	flag.DurationVar(&o.idlePollInterval, "idle-poll-interval", controller.DefaultIdlePollInterval, "How often an idle Consumer's queue is read, unless its spec.scaling.idlePollInterval says.")
	flag.StringVar(&o.dispatcherImage, "dispatcher-image", "ghcr.io/millrace-io/millrace-dispatcher:v0.1.0", "Image of the dispatcher sidecar injected into Consumer pods.")
	flag.StringVar(&o.callbackAddr, "callback-bind-address", ":9443", "Address of the task callback API (POST /v1/tasks/{success,failure,heartbeat}).")
	flag.StringVar(&o.callbackURL, "callback-url", os.Getenv("MILLRACE_CALLBACK_URL"), "URL at which dispatchers reach the callback API (e.g. http://millrace-callback.millrace-system:9443).")
	flag.StringVar(&o.watchNamespaces, "watch-namespaces", os.Getenv("MILLRACE_WATCH_NAMESPACES"), "Comma-separated namespaces whose resources the manager watches (empty: all); with a list it needs permissions only there.")
	flag.BoolVar(&o.httpTasks, "http-tasks", false, "Perform millrace:http workflow tasks, to the destinations each namespace's TenantPolicies grant (off: every such task fails with Millrace.Forbidden).")
	flag.StringVar(&o.clusterRanges, "cluster-cidrs", os.Getenv("MILLRACE_CLUSTER_CIDRS"), "Comma-separated pod and service CIDRs of the cluster, refused to millrace:http host rules like private ranges.")
	flag.IntVar(&o.webhook.port, "webhook-port", 0, "Port of the admission webhook (0: off). With it, the manager keeps the serving certificate in --webhook-secret and the CA in --webhook-configuration.")
	flag.StringVar(&o.webhook.certDir, "webhook-cert-dir", filepath.Join(os.TempDir(), "millrace-webhook"), "Folder the webhook's certificate is written to (a writable emptyDir in a pod).")
	flag.StringVar(&o.webhook.secret, "webhook-secret", "millrace-webhook-cert", "Secret of the manager's namespace ($POD_NAMESPACE) holding the webhook's CA and certificate (made at the first start).")
	flag.StringVar(&o.webhook.service, "webhook-service", "millrace-webhook", "Service through which the API server calls the webhook (the certificate's name).")
	flag.StringVar(&o.webhook.configuration, "webhook-configuration", "millrace-validation", "ValidatingWebhookConfiguration whose caBundle the manager keeps.")
	flag.IntVar(&o.runWorkers, "workflowrun-workers", 8, "How many WorkflowRuns are reconciled at once.")
	flag.IntVar(&o.localTaskWorkers, "local-task-workers", 16, "How many workflow tasks the manager performs itself (millrace:http, sqs:sendMessage) at once.")
	flag.IntVar(&o.localTasksPerNamespace, "local-tasks-per-namespace", 0, "How many of them one namespace may have queued or running (0: a quarter of --local-task-workers).")
	flag.StringVar(&o.tokenKeyFile, "task-token-key-file", os.Getenv("MILLRACE_TASK_TOKEN_KEY_FILE"), "File holding the HMAC key (at least 32 bytes) that signs task tokens; mount it from a Secret. Empty: a random key, valid until the manager restarts.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(ctrl.SetupSignalHandler(), o); err != nil {
		fmt.Fprintln(os.Stderr, "manager:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	log := ctrl.Log.WithName("manager")
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(millracev1.AddToScheme(scheme))

	var cacheOpts cache.Options
	if o.watchNamespaces != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range strings.Split(o.watchNamespaces, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				cacheOpts.DefaultNamespaces[ns] = cache.Config{}
			}
		}
		log.Info("watching namespaces", "namespaces", o.watchNamespaces)
	}
	metricsOpts, err := metricsauth.Options(metricsauth.Flags{Addr: o.metricsAddr, Secure: o.metricsSecure, CertDir: o.metricsCertDir})
	if err != nil {
		return err
	}
	cfg := ctrl.GetConfigOrDie()
	webhookServer, err := o.webhook.server(ctx, cfg, scheme)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		WebhookServer:                 webhookServer,
		Scheme:                        scheme,
		Cache:                         cacheOpts,
		Metrics:                       metricsOpts,
		HealthProbeBindAddress:        o.probeAddr,
		LeaderElection:                o.leaderElect,
		LeaderElectionID:              "millrace-manager.millrace.io",
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	client, err := sqsx.New(ctx, sqsx.Options{Region: o.region, Endpoint: o.endpoint, Metrics: sqsx.NewMetrics(metrics.Registry)})
	if err != nil {
		return err
	}
	key, err := taskTokenKey(o.tokenKeyFile)
	if err != nil {
		return err
	}
	signer, err := tasktoken.NewSigner(key)
	if err != nil {
		return err
	}
	httpClient, err := httpTaskClient(o)
	if err != nil {
		return err
	}
	if _, err := controller.Setup(ctx, mgr, controller.Options{
		SQS:                    client,
		STSEndpoint:            o.stsEndpoint,
		Registerer:             metrics.Registry,
		ClusterName:            o.clusterName,
		Resync:                 o.resync,
		StalledRetry:           o.stalledRetry,
		DepthInterval:          o.depthInterval,
		DepthMaxInterval:       o.depthMaxInterval,
		StatusWriteInterval:    o.statusWriteInterval,
		IdlePollInterval:       o.idlePollInterval,
		Region:                 client.Options().Region,
		Endpoint:               o.endpoint,
		Render:                 consumer.Options{DispatcherImage: o.dispatcherImage, CallbackURL: o.callbackURL},
		Signer:                 signer,
		HTTP:                   httpClient,
		RunWorkers:             o.runWorkers,
		LocalTaskWorkers:       o.localTaskWorkers,
		LocalTasksPerNamespace: o.localTasksPerNamespace,
		CallbackAddr:           o.callbackAddr,
		Webhooks:               o.webhook.port != 0,
	}); err != nil {
		return err
	}
	if err := o.webhook.register(mgr); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	log.Info("starting", "region", o.region, "sqsEndpoint", o.endpoint, "cluster", o.clusterName)
	return mgr.Start(ctx)
}

// httpTaskClient is the egress client of millrace:http tasks, or nil when they are off.
func httpTaskClient(o options) (*egress.Client, error) {
	if !o.httpTasks {
		return nil, nil
	}
	var ranges []netip.Prefix
	for _, c := range strings.Split(o.clusterRanges, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("--cluster-cidrs: %w", err)
		}
		ranges = append(ranges, p)
	}
	return egress.New(egress.Options{ClusterRanges: ranges}), nil
}

// taskTokenKey reads the HMAC key, or makes a random one (tokens then die with the process).
func taskTokenKey(file string) ([]byte, error) {
	if file != "" {
		key, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading the task token key: %w", err)
		}
		return bytes.TrimSpace(key), nil
	}
	ctrl.Log.WithName("manager").Info("no --task-token-key-file: using a random key; task tokens will not survive a restart")
	key := make([]byte, 32)
	_, err := rand.Read(key)
	return key, err
}

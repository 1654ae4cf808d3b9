// Command gateway is Millrace's HTTP front door (internal/gateway): it accepts requests into SQS
// queues and starts WorkflowRuns, authenticating callers with the API server (TokenReview) and
// authorizing them with RBAC (SubjectAccessReview). It reads Queues, Workflows and WorkflowRuns
// from an informer cache and shuts down gracefully, finishing requests in flight.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/gateway"
	"github.com/millrace-io/millrace/internal/gctune"
	"github.com/millrace-io/millrace/internal/httpserver"
	"github.com/millrace-io/millrace/internal/sqsx"
)

// config is the command line.
type config struct {
	addr, metricsAddr, probeAddr, region, endpoint, audiences string
	keysNamespace, keyServiceAccountNamespaces                string
	failedAuth                                                gateway.FailedAuthLimit
	grace                                                     time.Duration
	limits                                                    httpserver.Limits
}

func main() {
	var c config
	flag.StringVar(&c.addr, "address", ":8080", "Address of the gateway's API.")
	flag.StringVar(&c.metricsAddr, "metrics-bind-address", ":8081", "Address of the Prometheus metrics endpoint (0 disables it).")
	flag.StringVar(&c.probeAddr, "health-probe-bind-address", ":8082", "Address of /healthz and /readyz.")
	flag.StringVar(&c.region, "region", os.Getenv("AWS_REGION"), "AWS region.")
	flag.StringVar(&c.endpoint, "sqs-endpoint", os.Getenv("MILLRACE_SQS_ENDPOINT"), "SQS endpoint override (fauxqs, LocalStack, ElasticMQ).")
	flag.StringVar(&c.audiences, "token-audiences", "", "Comma-separated audiences bearer tokens must carry (empty: the API server's).")
	flag.StringVar(&c.keysNamespace, "api-keys-namespace", "", "Namespace of API key Secrets (labelled "+gateway.APIKeyLabel+"=true); empty: API keys are off.")
	flag.StringVar(&c.keyServiceAccountNamespaces, "api-key-service-account-namespaces", "", "Comma-separated namespaces whose ServiceAccounts API keys may act as (required with --api-keys-namespace).")
	flag.IntVar(&c.failedAuth.Burst, "failed-auth-burst", 20, "Failed authentications a client address may make at once before it gets 429.")
	flag.Float64Var(&c.failedAuth.PerSecond, "failed-auth-per-second", 1, "Failed authentications per second a client address may make after the burst.")
	flag.DurationVar(&c.grace, "shutdown-grace", 25*time.Second, "How long requests in flight may take to finish at shutdown.")
	flag.Int64Var(&c.limits.BodyBytes, "body-bytes", 16<<20, "Request body bytes the gateway holds at once, from every caller (past it: 503).")
	flag.Int64Var(&c.limits.BodyBytesPerSource, "body-bytes-per-source", 4<<20, "Request body bytes one client address may hold at once (raise it behind an ingress, whose address every caller shares).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	gctune.Apply(gateway.GCPercent, gateway.MemoryLimit)
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	if err := run(ctrl.SetupSignalHandler(), c); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	log := ctrl.Log.WithName("gateway")
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(millracev1.AddToScheme(scheme))
	keyNamespaces := splitList(c.keyServiceAccountNamespaces)
	if c.keysNamespace != "" && len(keyNamespaces) == 0 {
		return errors.New("--api-keys-namespace needs --api-key-service-account-namespaces: the namespaces whose ServiceAccounts keys may act as")
	}
	opts := managerOptions(scheme, c)
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), opts)
	if err != nil {
		return err
	}
	gwMetrics := gateway.NewMetrics(metrics.Registry)
	auth := &gateway.KubernetesAuthorizer{Client: mgr.GetClient(), Metrics: gwMetrics, Audiences: splitList(c.audiences)}
	if c.keysNamespace != "" {
		if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Secret{}, gateway.APIKeyIndex, gateway.IndexAPIKey); err != nil {
			return err
		}
		auth.Keys = &gateway.APIKeys{Reader: mgr.GetCache(), Namespace: c.keysNamespace, ServiceAccountNamespaces: keyNamespaces}
	}
	// SendMessageBatch, the gateway's every call, without the SDK's per-call middleware.
	sqsClient, err := sqsx.NewFastBatch(ctx, sqsx.Options{Region: c.region, Endpoint: c.endpoint, Metrics: sqsx.NewMetrics(metrics.Registry)})
	if err != nil {
		return err
	}
	srv := &gateway.Server{Reader: mgr.GetClient(), Writer: mgr.GetClient(), SQS: sqsClient, Auth: auth, Metrics: gwMetrics, Log: log, FailedAuth: c.failedAuth}
	if err := mgr.Add(serveUntilDone(httpServer(c.addr, srv.Handler(), c.limits), c.grace, log.Info)); err != nil {
		return err
	}
	_ = mgr.AddHealthzCheck("ping", healthz.Ping)
	_ = mgr.AddReadyzCheck("cache", func(r *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(r.Context()) {
			return errors.New("cache not synced")
		}
		return nil
	})
	log.Info("serving", "address", c.addr)
	return mgr.Start(ctx)
}

// httpServer serves the gateway's API. Anyone who reaches the port may connect before any
// authentication, so every phase of a connection is bounded; the handler's deadline (15s by
// default) ends a request waiting on SQS with 503 while the connection can still carry it.
// managerOptions are the gateway's manager and cache settings. What tenants write is kept out of
// the shared gateway's memory: WorkflowRuns are read from the API server, never cached (a cache
// would watch every run of every namespace, outputs and histories included), and the cached
// Workflows keep only what the gateway reads of them (spec.http), not their definitions.
func managerOptions(scheme *runtime.Scheme, c config) ctrl.Options {
	opts := ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: c.metricsAddr}, HealthProbeBindAddress: c.probeAddr,
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&millracev1.WorkflowRun{}}}}}
	opts.Cache.ByObject = map[client.Object]cache.ByObject{&millracev1.Workflow{}: {Transform: workflowHTTPOnly}}
	if c.keysNamespace != "" { // watch only the key Secrets of one namespace
		opts.Cache.ByObject[&corev1.Secret{}] = cache.ByObject{
			Namespaces: map[string]cache.Config{c.keysNamespace: {}},
			Label:      labels.SelectorFromSet(labels.Set{gateway.APIKeyLabel: "true"}),
		}
	}
	return opts
}

// workflowHTTPOnly keeps of a Workflow its identity and spec.http.
func workflowHTTPOnly(obj any) (any, error) {
	wf, ok := obj.(*millracev1.Workflow)
	if !ok {
		return obj, nil
	}
	return &millracev1.Workflow{TypeMeta: wf.TypeMeta, ObjectMeta: metav1.ObjectMeta{Name: wf.Name, Namespace: wf.Namespace,
		UID: wf.UID, ResourceVersion: wf.ResourceVersion, Generation: wf.Generation}, Spec: millracev1.WorkflowSpec{HTTP: wf.Spec.HTTP}}, nil
}

func httpServer(addr string, h http.Handler, l httpserver.Limits) *http.Server {
	return httpserver.New(addr, h, l)
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// serveUntilDone runs the HTTP server until the manager stops, then lets requests in flight finish
// within grace.
func serveUntilDone(s *http.Server, grace time.Duration, info func(string, ...any)) runnableFunc {
	return func(ctx context.Context) error {
		errc := make(chan error, 1)
		go func() { errc <- s.ListenAndServe() }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
		}
		info("shutting down: finishing requests in flight", "grace", grace.String())
		shutdown, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		return s.Shutdown(shutdown)
	}
}

type runnableFunc func(context.Context) error

func (f runnableFunc) Start(ctx context.Context) error { return f(ctx) }

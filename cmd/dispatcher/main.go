// Command dispatcher is Lambda's SQS event source mapping for one consumer: the sidecar the Consumer
// controller injects, or a plain process. Every flag defaults to the environment variable the
// controller sets (shown in --help).
package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/millrace-io/millrace/internal/consumer"
	"github.com/millrace-io/millrace/internal/dispatch"
	"github.com/millrace-io/millrace/internal/gctune"
	"github.com/millrace-io/millrace/internal/httpserver"
	"github.com/millrace-io/millrace/internal/sqsx"
)

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, err := strconv.ParseBool(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func main() {
	var cfg dispatch.Config
	var mode, handlerURL, runtimeAddr, endpoint, healthAddr, callbackURL, drainToken string
	flag.StringVar(&cfg.QueueURL, "queue-url", env(consumer.EnvQueueURL, ""), "Queue URL ($"+consumer.EnvQueueURL+").")
	flag.StringVar(&cfg.QueueARN, "queue-arn", env(consumer.EnvQueueARN, ""), "Queue ARN, sent as eventSourceARN ($"+consumer.EnvQueueARN+").")
	flag.StringVar(&cfg.FunctionName, "function-name", env(consumer.EnvFunctionName, consumerName(os.Getenv(consumer.EnvConsumer))), "Function name in the invokedFunctionArn a Lambda runtime gets ($"+consumer.EnvFunctionName+"; default: the Consumer's name, else the queue's).")
	flag.BoolVar(&cfg.FIFO, "fifo", envBool(consumer.EnvQueueFIFO, false), "The queue is FIFO ($"+consumer.EnvQueueFIFO+").")
	flag.StringVar(&cfg.Region, "region", env(consumer.EnvRegion, ""), "AWS region ($AWS_REGION).")
	flag.StringVar(&endpoint, "sqs-endpoint", env(consumer.EnvSQSEndpoint, ""), "SQS endpoint override ($"+consumer.EnvSQSEndpoint+").")
	flag.StringVar(&mode, "mode", env(consumer.EnvDeliveryMode, "HTTP"), "HTTP or LambdaRuntime ($"+consumer.EnvDeliveryMode+").")
	flag.StringVar(&handlerURL, "handler-url", env(consumer.EnvHandlerURL, "http://127.0.0.1:8080/"), "Handler URL for mode HTTP ($"+consumer.EnvHandlerURL+").")
	flag.StringVar(&runtimeAddr, "runtime-api-address", env(consumer.EnvRuntimeAPIAddress, consumer.RuntimeAPIAddress), "Address of the Lambda Runtime API for mode LambdaRuntime ($"+consumer.EnvRuntimeAPIAddress+").")
	flag.IntVar(&cfg.BatchSize, "batch-size", envInt(consumer.EnvBatchSize, 10), "Most messages per event ($"+consumer.EnvBatchSize+").")
	flag.DurationVar(&cfg.BatchWindow, "batch-window", envDuration(consumer.EnvBatchWindow, 0), "Batching window ($"+consumer.EnvBatchWindow+").")
	flag.IntVar(&cfg.Concurrency, "concurrency", envInt(consumer.EnvConcurrency, 1), "Batches handled at once ($"+consumer.EnvConcurrency+").")
	flag.DurationVar(&cfg.HandlerTimeout, "handler-timeout", envDuration(consumer.EnvHandlerTimeout, 30*time.Second), "Handler timeout per batch ($"+consumer.EnvHandlerTimeout+").")
	flag.BoolVar(&cfg.ReportBatchItemFailures, "report-batch-item-failures", envBool(consumer.EnvReportBatchItemFailures, false), "Honour batchItemFailures ($"+consumer.EnvReportBatchItemFailures+").")
	flag.DurationVar(&cfg.FailureBackoff, "failure-backoff", envDuration("MILLRACE_FAILURE_BACKOFF", 0), "Make failed messages visible again after this long instead of the visibility timeout ($MILLRACE_FAILURE_BACKOFF).")
	flag.DurationVar(&cfg.WaitTime, "wait-time", envDuration("MILLRACE_WAIT_TIME", 20*time.Second), "Long-poll wait per receive ($MILLRACE_WAIT_TIME).")
	flag.StringVar(&callbackURL, "callback-url", env(consumer.EnvCallbackURL, ""), "Manager callback API for workflow task results ($MILLRACE_CALLBACK_URL).")
	flag.StringVar(&healthAddr, "health-address", env("MILLRACE_HEALTH_ADDRESS", ":9090"), "Address of /healthz, /healthz/handler, /readyz, /drain and /metrics ($MILLRACE_HEALTH_ADDRESS).")
	drainToken = os.Getenv(consumer.EnvDrainToken) // not a flag: flags show in the process list
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	gctune.Apply(dispatch.GCPercent, dispatch.MemoryLimit)
	log := zap.New(zap.UseFlagOptions(&zapOpts)).WithName("dispatcher")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, log, cfg, mode, handlerURL, runtimeAddr, endpoint, healthAddr, callbackURL, drainToken); err != nil {
		fmt.Fprintln(os.Stderr, "dispatcher:", err)
		os.Exit(1)
	}
}

// consumerName is the name part of $MILLRACE_CONSUMER (namespace/name).
func consumerName(nsName string) string {
	if i := strings.LastIndexByte(nsName, '/'); i >= 0 {
		return nsName[i+1:]
	}
	return nsName
}

func run(ctx context.Context, log logr.Logger, cfg dispatch.Config, mode, handlerURL, runtimeAddr, endpoint, healthAddr, callbackURL, drainToken string) error {
	if cfg.QueueURL == "" {
		return errors.New("no queue URL: set --queue-url or $" + consumer.EnvQueueURL)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	client, err := sqsx.New(ctx, sqsx.Options{Region: cfg.Region, Endpoint: endpoint, Metrics: sqsx.NewMetrics(reg)})
	if err != nil {
		return err
	}
	if cfg.Region == "" {
		cfg.Region = client.Options().Region
	}
	var invoker dispatch.Invoker
	var api *dispatch.RuntimeAPI
	switch mode {
	case "HTTP":
		invoker = &dispatch.HTTPInvoker{URL: handlerURL}
	case "LambdaRuntime":
		api = &dispatch.RuntimeAPI{Log: log.WithName("runtime-api")}
		addr, err := api.Listen(runtimeAddr)
		if err != nil {
			return fmt.Errorf("serving the Lambda Runtime API: %w", err)
		}
		defer func() {
			// The AWS runtime clients have no way to stop but to exit, most with an error, when the
			// Runtime API goes away; in a pod the handler container stops first (preStop, then
			// SIGTERM), so this concerns the dispatcher run as a plain process.
			log.Info("closing the Lambda Runtime API: a runtime still using it exits now, with an error or not; that is expected at shutdown", "pollingRuntimes", api.Polling())
			_ = api.Close()
		}()
		log.Info("serving the Lambda Runtime API", "address", addr)
		invoker = api
	default:
		return fmt.Errorf("unknown delivery mode %q (HTTP or LambdaRuntime)", mode)
	}
	var callback *dispatch.CallbackClient
	if callbackURL != "" {
		callback = &dispatch.CallbackClient{BaseURL: callbackURL}
	}
	d := dispatch.New(cfg, client, invoker, callback, dispatch.NewMetrics(reg), log)
	// dispatching ends on SIGTERM or on a drain request (the handler container's preStop hook).
	dispatching, drain := context.WithCancel(ctx)
	defer drain()
	drained := make(chan struct{})

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	// The handler container's liveness probe: fails once after an invocation timed out, so that
	// the kubelet restarts the handler as Lambda starts a fresh environment.
	mux.HandleFunc("/healthz/handler", func(w http.ResponseWriter, _ *http.Request) {
		if api != nil {
			if err := api.CheckHandler(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok"))
	})
	// The handler container's preStop hook: stop receiving, finish in-flight batches, release the
	// rest, and answer when done, so the handler gets SIGTERM only when it has nothing left to do.
	mux.HandleFunc("/drain", func(w http.ResponseWriter, req *http.Request) {
		if drainToken != "" && subtle.ConstantTimeCompare([]byte(req.Header.Get(consumer.DrainTokenHeader)), []byte(drainToken)) != 1 {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		if api != nil && api.DrainIsRestart() {
			log.Info("drain request from the preStop hook of the handler's restart after a timeout; not draining")
			_, _ = w.Write([]byte("restarting the handler; not draining"))
			return
		}
		// No deadline while draining: the kubelet bounds the hook by the termination grace period.
		answering := httpserver.LongPoll(w, 5*time.Second)
		log.Info("drain requested")
		drain()
		select {
		case <-drained:
			answering()
			_, _ = w.Write([]byte("drained"))
		case <-req.Context().Done():
		}
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !d.Ready() {
			http.Error(w, "SQS unreachable", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok"))
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", healthAddr)
	if err != nil {
		return err
	}
	// Probes and scrapes are quick; anything in the pod's network can connect, so every phase of a
	// connection is bounded (only /drain, which needs the token, lifts its deadlines while it waits).
	server := httpserver.New("", mux, httpserver.Limits{Handler: -1})
	go func() { _ = server.Serve(ln) }()
	defer server.Close()

	log.Info("dispatching", "queue", cfg.QueueURL, "mode", mode, "batchSize", cfg.BatchSize, "concurrency", cfg.Concurrency, "health", ln.Addr().String())
	err = d.Run(dispatching)
	close(drained)
	if ctx.Err() == nil {
		// Drained on request: the pod is terminating. Keep serving the probes and the Runtime API
		// (a runtime still polling must not see it go) until SIGTERM, which comes once the handler
		// container has stopped.
		log.Info("drained on request; waiting for SIGTERM")
		<-ctx.Done()
	}
	log.Info("drained; exiting")
	return err
}

// Command dispatcher is Lambda's SQS event source mapping for one consumer: the sidecar the Consumer
// controller injects, or a plain process. Every flag defaults to the environment variable the
// controller sets (shown in --help).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
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
	var mode, handlerURL, runtimeAddr, endpoint, healthAddr, callbackURL string
	flag.StringVar(&cfg.QueueURL, "queue-url", env(consumer.EnvQueueURL, ""), "Queue URL ($"+consumer.EnvQueueURL+").")
	flag.StringVar(&cfg.QueueARN, "queue-arn", env(consumer.EnvQueueARN, ""), "Queue ARN, sent as eventSourceARN ($"+consumer.EnvQueueARN+").")
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
	flag.StringVar(&healthAddr, "health-address", env("MILLRACE_HEALTH_ADDRESS", ":9090"), "Address of /healthz, /readyz and /metrics ($MILLRACE_HEALTH_ADDRESS).")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	gctune.Apply(dispatch.GCPercent, dispatch.MemoryLimit)
	log := zap.New(zap.UseFlagOptions(&zapOpts)).WithName("dispatcher")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, log, cfg, mode, handlerURL, runtimeAddr, endpoint, healthAddr, callbackURL); err != nil {
		fmt.Fprintln(os.Stderr, "dispatcher:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log logr.Logger, cfg dispatch.Config, mode, handlerURL, runtimeAddr, endpoint, healthAddr, callbackURL string) error {
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
	switch mode {
	case "HTTP":
		invoker = &dispatch.HTTPInvoker{URL: handlerURL}
	case "LambdaRuntime":
		api := &dispatch.RuntimeAPI{FunctionARN: cfg.QueueARN}
		addr, err := api.Listen(runtimeAddr)
		if err != nil {
			return fmt.Errorf("serving the Lambda Runtime API: %w", err)
		}
		defer api.Close()
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

	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
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
	// connection is bounded.
	server := httpserver.New("", mux, httpserver.Limits{})
	go func() { _ = server.Serve(ln) }()
	defer server.Close()

	log.Info("dispatching", "queue", cfg.QueueURL, "mode", mode, "batchSize", cfg.BatchSize, "concurrency", cfg.Concurrency, "health", ln.Addr().String())
	err = d.Run(ctx)
	log.Info("drained; exiting")
	return err
}

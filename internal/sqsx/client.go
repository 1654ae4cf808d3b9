package sqsx

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/millrace-io/millrace/internal/directhttp"
)

// Options configure the SQS client.
type Options struct {
	// Region is the AWS region; empty takes it from the default chain (AWS_REGION, profile).
	Region string
	// Endpoint overrides the SQS endpoint (fauxqs, LocalStack, ElasticMQ); empty uses AWS's.
	Endpoint string
	// Metrics records every call; nil records nothing.
	Metrics *Metrics
	// NetHTTP keeps the SDK's own HTTP client (net/http's Transport) instead of
	// internal/directhttp. It is used anyway when a proxy is configured (HTTPS_PROXY, HTTP_PROXY),
	// which directhttp does not speak.
	NetHTTP bool
}

// Metrics count SQS API calls, errors and latency by operation.
type Metrics struct {
	Calls    *prometheus.CounterVec
	Errors   *prometheus.CounterVec
	Duration *prometheus.HistogramVec
}

// NewMetrics creates the SQS metrics and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "millrace_sqs_api_calls_total",
			Help: "SQS API calls made, by operation.",
		}, []string{"operation"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "millrace_sqs_api_errors_total",
			Help: "SQS API calls that failed, by operation and error code.",
		}, []string{"operation", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "millrace_sqs_api_call_duration_seconds",
			Help:    "Latency of SQS API calls, by operation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"operation"}),
	}
	if reg != nil {
		reg.MustRegister(m.Calls, m.Errors, m.Duration)
	}
	return m
}

// New builds an SQS client from the default AWS credential chain (environment, shared config,
// IRSA web identity, EKS Pod Identity, instance metadata) with the given overrides.
func New(ctx context.Context, opts Options) (*sqs.Client, error) {
	cfg, err := LoadConfig(ctx, opts)
	if err != nil {
		return nil, err
	}
	return NewFromConfig(cfg, opts), nil
}

// LoadConfig loads the default AWS configuration (credential chain, shared config) with the
// region of opts, and checks that a region is known.
func LoadConfig(ctx context.Context, opts Options) (aws.Config, error) {
	var loadOpts []func(*config.LoadOptions) error
	if opts.Region != "" {
		loadOpts = append(loadOpts, config.WithRegion(opts.Region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return cfg, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return cfg, errors.New("no AWS region: set --region or AWS_REGION")
	}
	return cfg, nil
}

// NewFromConfig builds an SQS client on cfg (its credentials and region) with the endpoint,
// transport and metrics of opts (opts.Region is ignored: cfg has it).
func NewFromConfig(cfg aws.Config, opts Options) *sqs.Client {
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		if !opts.NetHTTP && !proxyConfigured() {
			// Every SQS call on keep-alive connections without transport goroutines: about 30 %
			// less CPU per call (BenchmarkSQSCall, docs/benchmarks.md). TLS as the SDK configured
			// it (AWS_CA_BUNDLE, ca_bundle in the shared config).
			o.HTTPClient = &directhttp.Client{TLS: sdkTLS(cfg.HTTPClient)}
		}
		if opts.Metrics != nil {
			o.APIOptions = append(o.APIOptions, opts.Metrics.middleware)
		}
	})
}

// sdkTLS returns the TLS configuration of the SDK's default HTTP client (its CA bundle), if any.
func sdkTLS(c aws.HTTPClient) *tls.Config {
	if b, ok := c.(*awshttp.BuildableClient); ok {
		if t := b.GetTransport(); t != nil {
			return t.TLSClientConfig
		}
	}
	return nil
}

// proxyConfigured reports whether the environment names an HTTP proxy.
func proxyConfigured() bool {
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"} {
		if os.Getenv(k) != "" {
			return true
		}
	}
	return false
}

func (m *Metrics) middleware(stack *middleware.Stack) error {
	return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("MillraceMetrics",
		func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
			op := awsmiddleware.GetOperationName(ctx)
			start := time.Now()
			out, md, err := next.HandleInitialize(ctx, in)
			m.Calls.WithLabelValues(op).Inc()
			m.Duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
			if err != nil {
				code := "Unknown"
				var api smithy.APIError
				if errors.As(err, &api) {
					code = api.ErrorCode()
				} else if errors.Is(err, context.Canceled) {
					code = "Canceled"
				}
				m.Errors.WithLabelValues(op, code).Inc()
			}
			return out, md, err
		}), middleware.After)
}

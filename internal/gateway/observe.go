package gateway

import (
	_ "embed"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

//go:embed openapi.json
var openAPI []byte

// Metrics are the gateway's Prometheus metrics.
type Metrics struct {
	Requests  *prometheus.CounterVec
	Latency   *prometheus.HistogramVec
	SQSErrors prometheus.Counter
	Auth      *prometheus.CounterVec
	// CallEntries is the number of messages per SQS call of the single-message route (group commit).
	CallEntries prometheus.Histogram
	// AuthThrottled counts requests refused (429) because their source failed authentication
	// too often: a rising line is someone guessing tokens or keys.
	AuthThrottled prometheus.Counter
	// CacheEvictions counts answers evicted from a full cache, by cache (identity, refused,
	// access): evictions of identities mean the cache is too small for the callers.
	CacheEvictions *prometheus.CounterVec
}

func (m *Metrics) countEviction(cache string) {
	if m != nil {
		m.CacheEvictions.WithLabelValues(cache).Inc()
	}
}

// observeCall records one SQS call of the single-message route.
func (s *Server) observeCall(entries int, _ error) {
	if s.Metrics != nil {
		s.Metrics.CallEntries.Observe(float64(entries))
	}
}

// countAuth counts an authentication by method (token, apikey) and result (ok, refused, error).
func (m *Metrics) countAuth(method string, err error) {
	if m == nil {
		return
	}
	result := "ok"
	switch {
	case errors.Is(err, ErrUnauthenticated):
		result = "refused"
	case err != nil:
		result = "error"
	}
	m.Auth.WithLabelValues(method, result).Inc()
}

// NewMetrics creates the metrics and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_gateway_requests_total", Help: "Requests, by route and status code."},
			[]string{"route", "code"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "millrace_gateway_request_duration_seconds", Help: "Request latency, by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"route"}),
		SQSErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "millrace_gateway_sqs_errors_total", Help: "Messages SQS did not take (a failed call or a failed entry of a batch)."}),
		Auth: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_gateway_authentications_total",
			Help: "Authentications, by method (token, apikey) and result (ok, refused, error)."}, []string{"method", "result"}),
		CallEntries: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "millrace_gateway_sqs_call_messages",
			Help: "Messages per SQS call for single-message requests (requests arriving together share a SendMessageBatch).", Buckets: prometheus.LinearBuckets(1, 1, 10)}),
		AuthThrottled: prometheus.NewCounter(prometheus.CounterOpts{Name: "millrace_gateway_authentications_throttled_total",
			Help: "Requests refused with 429 without checking their credential: their source (client IP) failed authentication too often."}),
		CacheEvictions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_gateway_auth_cache_evictions_total",
			Help: "Cached authentication answers evicted to make room, by cache (identity, refused, access)."}, []string{"cache"}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Latency, m.SQSErrors, m.Auth, m.CallEntries, m.AuthThrottled, m.CacheEvictions)
	}
	return m
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// observe counts, times and logs every request by its route pattern.
func (s *Server) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		took := time.Since(start)
		if s.Metrics != nil {
			s.Metrics.Requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
			s.Metrics.Latency.WithLabelValues(route).Observe(took.Seconds())
		}
		if log := s.log().V(1); route != "GET /healthz" && log.Enabled() {
			log.Info("request", "method", r.Method, "path", r.URL.Path, "code", sw.code, "ms", took.Milliseconds(), "remote", r.RemoteAddr)
		}
	})
}

func (s *Server) log() logr.Logger {
	if s.Log.GetSink() == nil {
		return logr.Discard()
	}
	return s.Log
}

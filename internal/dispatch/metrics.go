package dispatch

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the dispatcher's Prometheus series.
type Metrics struct {
	Received     prometheus.Counter
	Delivered    prometheus.Counter
	Succeeded    prometheus.Counter
	Failed       prometheus.Counter
	Deleted      prometheus.Counter
	Released     prometheus.Counter
	Extensions   prometheus.Counter
	SQSErrors    *prometheus.CounterVec
	BatchSize    prometheus.Histogram
	HandlerTime  prometheus.Histogram
	InFlight     prometheus.Gauge
	InHand       prometheus.Gauge
	TaskReports  *prometheus.CounterVec
	ReceiveCount prometheus.Histogram
}

// NewMetrics creates the metrics and registers them with reg (when not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "millrace_dispatcher_" + name, Help: help})
	}
	m := &Metrics{
		Received:   c("messages_received_total", "Messages received from SQS."),
		Delivered:  c("messages_delivered_total", "Messages delivered to the handler."),
		Succeeded:  c("messages_succeeded_total", "Messages the handler processed successfully."),
		Failed:     c("messages_failed_total", "Messages the handler failed (whole-batch failures, batchItemFailures, timeouts)."),
		Deleted:    c("messages_deleted_total", "Messages deleted from SQS after success."),
		Released:   c("messages_released_total", "Received messages made visible again without being handled (shutdown, FIFO group stop)."),
		Extensions: c("visibility_extensions_total", "Messages whose visibility timeout was extended."),
		SQSErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_dispatcher_sqs_errors_total",
			Help: "SQS calls that failed, by operation."}, []string{"operation"}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "millrace_dispatcher_batch_size",
			Help: "Messages per delivered batch.", Buckets: []float64{1, 2, 5, 10, 20, 50, 100, 500, 1000, 10000}}),
		HandlerTime: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "millrace_dispatcher_handler_duration_seconds",
			Help: "Time the handler took per batch.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "millrace_dispatcher_batches_in_flight", Help: "Batches being handled."}),
		InHand:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "millrace_dispatcher_messages_in_hand", Help: "Messages received and not yet deleted or released."}),
		TaskReports: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_dispatcher_task_reports_total",
			Help: "Workflow task results reported to the manager, by result: accepted; refused (404/410, final); too_large (output over 256 KiB, reported as States.DataLimitExceeded); lost (not accepted in time: the message is kept and delivered again)."}, []string{"result"}),
		ReceiveCount: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "millrace_dispatcher_receive_count",
			Help: "ApproximateReceiveCount of delivered messages (redeliveries show above 1).", Buckets: []float64{1, 2, 3, 5, 10, 20}}),
	}
	if reg != nil {
		reg.MustRegister(m.Received, m.Delivered, m.Succeeded, m.Failed, m.Deleted, m.Released, m.Extensions,
			m.SQSErrors, m.BatchSize, m.HandlerTime, m.InFlight, m.InHand, m.TaskReports, m.ReceiveCount)
	}
	return m
}

package controller

import (
	"github.com/prometheus/client_golang/prometheus"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// WorkflowRunMetrics are the WorkflowRun controller's Prometheus metrics.
type WorkflowRunMetrics struct {
	Started      *prometheus.CounterVec
	Finished     *prometheus.CounterVec
	Duration     *prometheus.HistogramVec
	Transitions  *prometheus.CounterVec
	Tasks        *prometheus.CounterVec
	StatusWrites *prometheus.CounterVec
	HTTPCalls    *prometheus.CounterVec
	// LocalTasks counts the tasks the manager performs itself, by how their result was reported
	// (reported, stale, gave_up, cancelled).
	LocalTasks *prometheus.CounterVec
}

// NewWorkflowRunMetrics creates the WorkflowRun metrics and registers them with reg (when not nil).
func NewWorkflowRunMetrics(reg prometheus.Registerer) *WorkflowRunMetrics {
	labels := []string{"namespace", "workflow"}
	m := &WorkflowRunMetrics{
		Started:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_workflowrun_started_total", Help: "WorkflowRuns started."}, labels),
		Finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_workflowrun_finished_total", Help: "WorkflowRuns finished, by phase."}, append(labels, "phase")),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "millrace_workflowrun_duration_seconds", Help: "Time from a run's start to its end, by phase.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2.5, 14)}, append(labels, "phase")),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_workflowrun_transitions_total", Help: "State transitions recorded in run histories."}, labels),
		Tasks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_workflowrun_tasks_sent_total", Help: "Task attempts sent, by resource kind (consumer, sqs, http) and result."},
			append(labels, "kind", "result")),
		StatusWrites: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_workflowrun_status_writes_total", Help: "Status patches sent, by result (ok, conflict, error)."}, []string{"result"}),
		HTTPCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_http_task_calls_total",
			Help: "millrace:http task calls, by namespace and result (ok, status, forbidden, timeout, too_large, error); forbidden counts destinations refused by the namespace's grants."}, []string{"namespace", "result"}),
		LocalTasks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "millrace_local_tasks_total",
			Help: "Tasks the manager performs itself (millrace:http, sqs:sendMessage), by the fate of their result: reported, stale (the run had moved on), gave_up (not recorded after retries; kept to report again), not_performed (failed to start after retries; tried again), cancelled (the manager stopped; the task runs again after a restart)."},
			[]string{"kind", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.Started, m.Finished, m.Duration, m.Transitions, m.Tasks, m.StatusWrites, m.HTTPCalls, m.LocalTasks)
	}
	return m
}

// observeWrite counts a status write and, when it succeeded, what it recorded: a run started,
// transitions, a run finished and how long it took. Only the write that starts (or ends) a run
// sees it start (or end), so each is counted once.
func (m *WorkflowRunMetrics) observeWrite(original, run *millracev1.WorkflowRun, result string) {
	m.StatusWrites.WithLabelValues(result).Inc()
	if result != "ok" {
		return
	}
	if finished(run.Status.Phase) && !finished(original.Status.Phase) {
		labels := []string{run.Namespace, run.Spec.WorkflowRef.Name, string(run.Status.Phase)}
		m.Finished.WithLabelValues(labels...).Inc()
		if run.Status.StartTime != nil && run.Status.CompletionTime != nil {
			m.Duration.WithLabelValues(labels...).Observe(run.Status.CompletionTime.Sub(run.Status.StartTime.Time).Seconds())
		}
	}
	if original.Status.StartTime == nil && run.Status.StartTime != nil {
		m.Started.WithLabelValues(run.Namespace, run.Spec.WorkflowRef.Name).Inc()
	}
	if run.Status.HistoryTotal > original.Status.HistoryTotal {
		m.Transitions.WithLabelValues(run.Namespace, run.Spec.WorkflowRef.Name).Add(float64(run.Status.HistoryTotal - original.Status.HistoryTotal))
	}
}

package controller

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
)

// A heartbeat not written is at most half a HeartbeatSeconds younger than the written one, so a
// deadline of the written one + 1.5 × HeartbeatSeconds is never early, even for a manager that
// restarted (or another replica) and never saw the heartbeats only held in memory.
func TestHeartbeatDeadlinesAreNeverEarlyAcrossARestart(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	task := asl.Active{State: &asl.State{Name: "T", Type: "Task", HeartbeatSeconds: 10}, Attempt: 1, Entered: t0}
	written := func(at time.Time) *millracev1.WorkflowRun {
		return &millracev1.WorkflowRun{Status: millracev1.WorkflowRunStatus{Heartbeats: []millracev1.TaskHeartbeat{{Task: task.Key(), Time: metav1.NewTime(at)}}}}
	}
	cases := []struct {
		name   string
		run    *millracev1.WorkflowRun
		memory time.Time // zero: a manager that holds none (restarted, or another replica)
		want   time.Time
	}{
		{"a task that never heartbeats times out 15 s after its start", &millracev1.WorkflowRun{}, time.Time{}, t0.Add(15 * time.Second)},
		{"a written heartbeat at 4 s keeps the task until 19 s", written(t0.Add(4 * time.Second)), time.Time{}, t0.Add(19 * time.Second)},
		{"a heartbeat in memory at 8 s, after one written at 4 s, keeps it until 19 s: the later of both rules", written(t0.Add(4 * time.Second)), t0.Add(8 * time.Second), t0.Add(19 * time.Second)},
		{"a heartbeat in memory at 12 s keeps it until 22 s", written(t0.Add(4 * time.Second)), t0.Add(12 * time.Second), t0.Add(22 * time.Second)},
		{"after a restart, the heartbeat at 8 s the old process held is covered: 19 s is after 8 s + 10 s", written(t0.Add(4 * time.Second)), time.Time{}, t0.Add(19 * time.Second)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &WorkflowRunReconciler{}
			if !tc.memory.IsZero() {
				r.beats.note(tc.run.UID, task.Key(), tc.memory, 10*time.Second)
			}
			if got := r.heartbeatDeadline(tc.run, task); !got.Equal(tc.want) {
				t.Fatalf("deadline %v, want %v", got.Sub(t0), tc.want.Sub(t0))
			}
		})
	}
}

package controller

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/asl"
	"github.com/millrace-io/millrace/internal/callback"
	"github.com/millrace-io/millrace/internal/tasktoken"
)

// Heartbeats are kept in memory and reach the run's status in batches: a heartbeat is written
// only when the task's last written one (or its start) is at least half its HeartbeatSeconds
// old, and that write carries the latest heartbeat of every task of the run. A run's status is
// then written about twice per HeartbeatSeconds, however many tasks heartbeat and however often
// (16 tasks heartbeating every second made 175 writes in 4 s).
//
// Timeouts are never early, across restarts and replicas: a heartbeat not written is at most half
// a HeartbeatSeconds younger than the written one (else it would have been written), whichever
// replica received it, and whether or not that process still runs. So a task's deadline is
// HeartbeatSeconds after the latest of: the heartbeat this process holds in memory, and the
// written one plus half a HeartbeatSeconds. The price: a task that stopped heartbeating times out
// up to half a HeartbeatSeconds late.

// heartbeatDeadline is when a running task times out without a new heartbeat.
func (r *WorkflowRunReconciler) heartbeatDeadline(run *millracev1.WorkflowRun, a asl.Active) time.Time {
	every := time.Duration(a.HeartbeatSeconds()) * time.Second
	last := writtenHeartbeat(run, a).Add(every / 2) // a heartbeat not written is no later
	if mem, ok := r.beats.latest(run.UID, a.Key()); ok && mem.After(last) {
		last = mem
	}
	return last.Add(every)
}

// writtenHeartbeat is the task's last heartbeat in the run's status, or its start.
func writtenHeartbeat(run *millracev1.WorkflowRun, a asl.Active) time.Time {
	last := a.Entered
	for _, h := range run.Status.Heartbeats {
		if h.Task == a.Key() && h.Time.After(last) {
			last = h.Time.Time
		}
	}
	return last
}

// heartbeat records that a running task is alive: in memory, and in the run's status when its
// last written heartbeat is half a HeartbeatSeconds old. Writes of one run's heartbeats are
// serialized in this process, so that heartbeats arriving together make one write.
func (r *WorkflowRunReconciler) heartbeat(ctx context.Context, c tasktoken.Claims) error {
	key := asl.TaskKey(c.State, c.Path, c.Attempt, c.Visit)
	now := r.Now()
	for attempt := 0; attempt < 5; attempt++ {
		run, m, engine, err := r.currentTask(ctx, c, attempt)
		if err != nil {
			return err
		}
		active := m.Active(engine)
		i := slices.IndexFunc(active, func(a asl.Active) bool { return a.Key() == key })
		if i < 0 {
			return callback.ErrStale
		}
		a := active[i]
		every := time.Duration(a.HeartbeatSeconds()) * time.Second
		if every == 0 {
			return nil // a task without HeartbeatSeconds cannot time out for want of heartbeats
		}
		if attempt == 0 {
			r.beats.note(run.UID, key, now, every)
		}
		if !r.heartbeatDue(run, a, now) {
			return nil
		}
		err = r.writeHeartbeats(ctx, run, active, a, now)
		if apierrors.IsConflict(err) {
			continue
		}
		return err
	}
	return errors.New("the run kept changing; try again")
}

// heartbeatDue reports whether a task's last written heartbeat (in the status, or by this
// process) is half a HeartbeatSeconds old.
func (r *WorkflowRunReconciler) heartbeatDue(run *millracev1.WorkflowRun, a asl.Active, now time.Time) bool {
	written := writtenHeartbeat(run, a)
	if w := r.beats.written(run.UID, a.Key()); w.After(written) {
		written = w
	}
	return now.Sub(written) >= time.Duration(a.HeartbeatSeconds())*time.Second/2
}

// writeHeartbeats writes the latest heartbeat this process holds of each running task of the
// run, unless another write made it unneeded while this one waited its turn.
func (r *WorkflowRunReconciler) writeHeartbeats(ctx context.Context, run *millracev1.WorkflowRun, active []asl.Active, due asl.Active, now time.Time) error {
	mu := r.beats.lockFor(run.UID)
	mu.Lock()
	defer mu.Unlock()
	if !r.heartbeatDue(run, due, now) {
		return nil
	}
	original := run.DeepCopy()
	written := map[string]time.Time{}
	for _, a := range active {
		at, ok := r.beats.latest(run.UID, a.Key())
		if !ok || !a.Running() || !at.After(writtenHeartbeat(run, a)) {
			continue
		}
		key := a.Key()
		written[key] = at
		run.Status.Heartbeats = append(slices.DeleteFunc(run.Status.Heartbeats, func(h millracev1.TaskHeartbeat) bool { return h.Task == key }),
			millracev1.TaskHeartbeat{Task: key, Time: metav1.NewTime(at)})
	}
	if err := r.persist(ctx, original, run); err != nil {
		return err
	}
	r.beats.wrote(run.UID, written)
	return nil
}

// heartbeatMemory holds the latest heartbeat of each running task, by run. Entries leave when
// their task does (keep) or, for runs deleted while running, once they can no longer matter.
type heartbeatMemory struct {
	mu        sync.Mutex
	byRun     map[k8stypes.UID]map[string]beat
	lastSweep time.Time
	// writing serializes the heartbeat writes of a run (striped by run: no lock to forget).
	writing [64]sync.Mutex
}

type beat struct {
	// at is the latest heartbeat, written the latest this process wrote, useless when the
	// entry can no longer matter.
	at, written, useless time.Time
}

func (h *heartbeatMemory) lockFor(run k8stypes.UID) *sync.Mutex {
	return &h.writing[fnv32(string(run))%uint32(len(h.writing))]
}

func fnv32(s string) uint32 {
	x := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		x = (x ^ uint32(s[i])) * 16777619
	}
	return x
}

func (h *heartbeatMemory) note(run k8stypes.UID, key string, at time.Time, every time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byRun == nil {
		h.byRun = map[k8stypes.UID]map[string]beat{}
	}
	if at.Sub(h.lastSweep) > time.Minute {
		h.lastSweep = at
		for r, beats := range h.byRun {
			for k, b := range beats {
				if at.After(b.useless) {
					delete(beats, k)
				}
			}
			if len(beats) == 0 {
				delete(h.byRun, r)
			}
		}
	}
	if h.byRun[run] == nil {
		h.byRun[run] = map[string]beat{}
	}
	b := h.byRun[run][key]
	b.at, b.useless = at, at.Add(2*every)
	h.byRun[run][key] = b
}

// wrote records the heartbeats a write put into the run's status.
func (h *heartbeatMemory) wrote(run k8stypes.UID, written map[string]time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for key, at := range written {
		if b, ok := h.byRun[run][key]; ok {
			b.written = at
			h.byRun[run][key] = b
		}
	}
}

func (h *heartbeatMemory) written(run k8stypes.UID, key string) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byRun[run][key].written
}

func (h *heartbeatMemory) latest(run k8stypes.UID, key string) (time.Time, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	b, ok := h.byRun[run][key]
	return b.at, ok
}

// keep forgets the heartbeats of a run's tasks that are no longer live.
func (h *heartbeatMemory) keep(run k8stypes.UID, live map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for k := range h.byRun[run] {
		if !live[k] {
			delete(h.byRun[run], k)
		}
	}
	if len(h.byRun[run]) == 0 {
		delete(h.byRun, run)
	}
}

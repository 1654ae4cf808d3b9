package controller

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
	"github.com/millrace-io/millrace/internal/depth"
)

// QueueCountsWriter copies the depth monitor's samples into Queue.status.messages, rate-limited:
// a Queue's status is written only when its counts changed, and at most once per MinInterval.
// Prometheus gauges (in the depth package) carry the full resolution.
type QueueCountsWriter struct {
	Client      client.Client
	MinInterval time.Duration
	Log         logr.Logger

	mu      sync.Mutex
	pending map[types.NamespacedName]depth.Sample
	written map[types.NamespacedName]writtenCounts
}

type writtenCounts struct {
	sample depth.Sample
	at     time.Time
}

// Notify returns the depth subscription callback for one Queue.
func (w *QueueCountsWriter) Notify(key types.NamespacedName) func(depth.Sample) {
	return func(s depth.Sample) {
		if s.Err != nil {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.pending == nil {
			w.pending = map[types.NamespacedName]depth.Sample{}
		}
		w.pending[key] = s
	}
}

// Forget drops a Queue (deleted).
func (w *QueueCountsWriter) Forget(key types.NamespacedName) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.pending, key)
	delete(w.written, key)
}

// Start flushes pending counts until ctx ends (a controller-runtime Runnable).
func (w *QueueCountsWriter) Start(ctx context.Context) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			w.flush(ctx)
		}
	}
}

// NeedLeaderElection: only the leader writes status.
func (w *QueueCountsWriter) NeedLeaderElection() bool { return true }

func (w *QueueCountsWriter) flush(ctx context.Context) {
	now := time.Now()
	due := map[types.NamespacedName]depth.Sample{}
	w.mu.Lock()
	if w.written == nil {
		w.written = map[types.NamespacedName]writtenCounts{}
	}
	for key, s := range w.pending {
		last, ok := w.written[key]
		switch {
		case ok && last.sample.SameCounts(s):
			delete(w.pending, key) // nothing new to say
		case ok && now.Sub(last.at) < w.MinInterval:
			// wait: written too recently
		default:
			due[key] = s
			delete(w.pending, key)
		}
	}
	w.mu.Unlock()
	for key, s := range due {
		if err := w.write(ctx, key, s); err != nil {
			if !apierrors.IsNotFound(err) {
				w.Log.Error(err, "writing queue message counts", "queue", key)
				w.mu.Lock()
				if _, newer := w.pending[key]; !newer {
					w.pending[key] = s
				}
				w.mu.Unlock()
			}
			continue
		}
		w.mu.Lock()
		w.written[key] = writtenCounts{sample: s, at: now}
		w.mu.Unlock()
	}
}

func (w *QueueCountsWriter) write(ctx context.Context, key types.NamespacedName, s depth.Sample) error {
	q := &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}}
	at := metav1.NewTime(s.At.Truncate(time.Second))
	patch := map[string]any{"status": map[string]any{"messages": millracev1.MessageCounts{
		Visible: s.Visible, InFlight: s.InFlight, Delayed: s.Delayed, ObservedAt: &at,
	}}}
	return w.Client.Status().Patch(ctx, q, client.RawPatch(types.MergePatchType, mustJSON(patch)), client.FieldOwner(fieldOwner))
}

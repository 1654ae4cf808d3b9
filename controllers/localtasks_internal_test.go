package controllers

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// Work handed over before the manager starts waits for it; at shutdown the work sees its context
// cancelled and Start returns only when it has finished.
func TestLocalTasksRunOnTheManagersContextAndAreWaitedFor(t *testing.T) {
	var l localTasks
	var ran, sawCancel atomic.Bool
	release := make(chan struct{})
	l.Go(func(ctx context.Context) {
		ran.Store(true)
		<-release
		<-ctx.Done()
		sawCancel.Store(true)
	})
	if ran.Load() {
		t.Fatal("work ran before the manager started")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = l.Start(ctx); close(done) }()
	deadline := time.Now().Add(5 * time.Second)
	for !ran.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
		t.Fatal("Start returned while work was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-done
	if !sawCancel.Load() {
		t.Fatal("the work did not see the manager's context cancelled")
	}
}

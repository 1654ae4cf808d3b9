package controllers

import (
	"context"
	"sync"
)

// localTasks runs the work of tasks the manager performs itself (millrace:http calls, results of
// sqs:sendMessage) on the manager's context: cancelled at shutdown, and waited for, instead of
// goroutines on context.Background() that outlive the reconcile and the manager. Work handed over
// before the manager started runs once it has.
type localTasks struct {
	once    sync.Once
	started chan struct{}
	ctx     context.Context
	wg      sync.WaitGroup
}

func (l *localTasks) init() { l.once.Do(func() { l.started = make(chan struct{}) }) }

// NeedLeaderElection is false: the work was dispatched by this replica's reconciles.
func (l *localTasks) NeedLeaderElection() bool { return false }

// Start makes the manager's context available, and at shutdown waits for the work in flight
// (which sees the context cancelled).
func (l *localTasks) Start(ctx context.Context) error {
	l.init()
	l.ctx = ctx
	close(l.started)
	<-ctx.Done()
	l.wg.Wait()
	return nil
}

// Go runs f with the manager's context.
func (l *localTasks) Go(f func(context.Context)) {
	l.init()
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		<-l.started
		f(l.ctx)
	}()
}

package controller

import (
	"sync"
	"time"

	k8stypes "k8s.io/apimachinery/pkg/types"
)

// DispatchRecordDelay is how long after sending a task to a queue the run records it in
// status.dispatched (which keeps a restarted manager from sending it again). A task that reports
// sooner needs no record: most short tasks cost one status write less. The price: a manager that
// stops within this delay of sending a task sends it again, with the same token, when it
// restarts. Tasks the manager performs itself are never recorded: they are held by the task
// executor until their result is.
var DispatchRecordDelay = time.Second

// sentTasks are the task attempts this process has sent to a queue, by run, until
// status.dispatched records them (or, for tasks that reported first, for sentMemory). They keep a
// task from being sent twice by a reconcile that reads an older copy of the run from the cache
// than the one that sent it: a task that has already left the run's active states in the newest
// copy may still be active in that older one.
type sentTasks struct {
	mu        sync.Mutex
	byRun     map[k8stypes.UID]map[string]time.Time
	lastSweep time.Time
}

// sentMemory is how long a sent task is remembered when no record of it is written; far longer
// than the cache can lag behind.
const sentMemory = 10 * time.Minute

func (s *sentTasks) when(run k8stypes.UID, key string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.byRun[run][key]
	return at, ok
}

func (s *sentTasks) add(run k8stypes.UID, key string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byRun == nil {
		s.byRun = map[k8stypes.UID]map[string]time.Time{}
	}
	if at.Sub(s.lastSweep) > time.Minute {
		s.lastSweep = at
		for r, tasks := range s.byRun {
			for k, t := range tasks {
				if at.Sub(t) > sentMemory {
					delete(tasks, k)
				}
			}
			if len(tasks) == 0 {
				delete(s.byRun, r)
			}
		}
	}
	if s.byRun[run] == nil {
		s.byRun[run] = map[string]time.Time{}
	}
	s.byRun[run][key] = at
}

// forget drops tasks whose sending status.dispatched now records.
func (s *sentTasks) forget(run k8stypes.UID, keys []string) {
	if len(keys) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		delete(s.byRun[run], k)
	}
	if len(s.byRun[run]) == 0 {
		delete(s.byRun, run)
	}
}

package controller

import (
	"context"
	"slices"
	"strings"

	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// defaultHistoryLimit is how many finished runs of a Workflow are kept without spec.historyLimit.
const defaultHistoryLimit = 50

// collectGarbage deletes the oldest finished runs of the Workflow of run beyond its historyLimit.
func (r *WorkflowRunReconciler) collectGarbage(ctx context.Context, run *millracev1.WorkflowRun) error {
	wf := &millracev1.Workflow{}
	if err := r.Get(ctx, k8stypes.NamespacedName{Namespace: run.Namespace, Name: run.Spec.WorkflowRef.Name}, wf); err != nil {
		return client.IgnoreNotFound(err)
	}
	limit := defaultHistoryLimit
	if wf.Spec.HistoryLimit != nil {
		limit = int(*wf.Spec.HistoryLimit)
	}
	var list millracev1.WorkflowRunList
	// Read-only use of the cached objects: no deep copy of every run on every completion.
	if err := r.List(ctx, &list, client.InNamespace(run.Namespace), client.MatchingFields{workflowRefKey: wf.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	// The cache may not have this run's completion yet: count the run as we know it.
	items := slices.DeleteFunc(list.Items, func(i millracev1.WorkflowRun) bool { return i.UID == run.UID })
	items = append(items, *run)
	for _, old := range runsToDelete(limit, items) {
		if err := r.Delete(ctx, old); client.IgnoreNotFound(err) != nil {
			return err
		}
	}
	return nil
}

// runsToDelete picks the runs to delete so that at most limit finished runs remain: the oldest
// finished ones (by completion, then creation, then name: times have second precision). Runs
// still running, asked to be redriven, or already being deleted, and child runs (their parent
// deletes them), are never picked and do not count.
func runsToDelete(limit int, runs []millracev1.WorkflowRun) []*millracev1.WorkflowRun {
	var done []*millracev1.WorkflowRun
	for i := range runs {
		r := &runs[i]
		if finished(r.Status.Phase) && r.Status.CompletionTime != nil && r.DeletionTimestamp.IsZero() && !redriveRequested(r) && r.Spec.ParentRef == nil {
			done = append(done, r)
		}
	}
	if len(done) <= max(limit, 0) {
		return nil
	}
	slices.SortFunc(done, func(a, b *millracev1.WorkflowRun) int {
		if c := a.Status.CompletionTime.Compare(b.Status.CompletionTime.Time); c != 0 {
			return c
		}
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return done[:len(done)-max(limit, 0)]
}

package controller

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// A Queue's labels and annotations are not read by its reconcile, whose every run makes three or
// more SQS calls: a tenant rewriting an annotation in a loop made 200 writes cost 602 SQS calls.
// Only spec (generation), deletion and finalizer changes reconcile it.
func TestQueueMetadataChurnCausesNoReconcile(t *testing.T) {
	base := &millracev1.Queue{ObjectMeta: metav1.ObjectMeta{Namespace: "t", Name: "q", Generation: 1,
		Labels: map[string]string{"a": "1"}, Annotations: map[string]string{"b": "1"}, Finalizers: []string{QueueFinalizer}}}
	p := specOrLifecycleChanged()
	for name, tc := range map[string]struct {
		change func(*millracev1.Queue)
		want   bool
	}{
		"an annotation":  {func(q *millracev1.Queue) { q.Annotations["b"] = "2" }, false},
		"a label":        {func(q *millracev1.Queue) { q.Labels["a"] = "2" }, false},
		"the status":     {func(q *millracev1.Queue) { q.Status.QueueURL = "u" }, false},
		"the spec":       {func(q *millracev1.Queue) { q.Generation = 2 }, true},
		"deletion":       {func(q *millracev1.Queue) { now := metav1.Now(); q.DeletionTimestamp = &now }, true},
		"the finalizers": {func(q *millracev1.Queue) { q.Finalizers = nil }, true},
	} {
		n := base.DeepCopy()
		tc.change(n)
		if got := p.Update(event.UpdateEvent{ObjectOld: base, ObjectNew: n}); got != tc.want {
			t.Errorf("a change of %s: reconcile %v, want %v", name, got, tc.want)
		}
	}
}

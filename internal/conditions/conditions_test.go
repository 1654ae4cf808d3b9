package conditions

import (
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

func TestTransitions(t *testing.T) {
	type want struct{ ready, reconciling, stalled metav1.ConditionStatus } // "" = absent
	cases := []struct {
		name  string
		steps []func(*[]metav1.Condition)
		want  want
	}{
		{
			name:  "a new object being created is reconciling and not ready",
			steps: []func(*[]metav1.Condition){func(c *[]metav1.Condition) { MarkReconciling(c, 1, "Creating", "") }},
			want:  want{ready: metav1.ConditionFalse, reconciling: metav1.ConditionTrue},
		},
		{
			name: "ready removes reconciling and stalled",
			steps: []func(*[]metav1.Condition){
				func(c *[]metav1.Condition) { MarkStalled(c, 1, "Refused", "") },
				func(c *[]metav1.Condition) { MarkReconciling(c, 2, "Updating", "") },
				func(c *[]metav1.Condition) { MarkReady(c, 2, "Synced", "") },
			},
			want: want{ready: metav1.ConditionTrue},
		},
		{
			name: "stalled after ready makes ready false and drops reconciling",
			steps: []func(*[]metav1.Condition){
				func(c *[]metav1.Condition) { MarkReady(c, 1, "Synced", "") },
				func(c *[]metav1.Condition) { MarkStalled(c, 2, "Refused", "") },
			},
			want: want{ready: metav1.ConditionFalse, stalled: metav1.ConditionTrue},
		},
		{
			name: "reconciling after stalled drops stalled",
			steps: []func(*[]metav1.Condition){
				func(c *[]metav1.Condition) { MarkStalled(c, 1, "Refused", "") },
				func(c *[]metav1.Condition) { MarkReconciling(c, 2, "Updating", "") },
			},
			want: want{ready: metav1.ConditionFalse, reconciling: metav1.ConditionTrue},
		},
	}
	status := func(c []metav1.Condition, kind string) metav1.ConditionStatus {
		if cond := meta.FindStatusCondition(c, kind); cond != nil {
			return cond.Status
		}
		return ""
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var conds []metav1.Condition
			for _, step := range tc.steps {
				step(&conds)
			}
			got := want{
				ready:       status(conds, millracev1.ConditionReady),
				reconciling: status(conds, millracev1.ConditionReconciling),
				stalled:     status(conds, millracev1.ConditionStalled),
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestObservedGenerationFollowsTheLatestMark(t *testing.T) {
	var conds []metav1.Condition
	MarkReady(&conds, 1, "Synced", "")
	MarkReady(&conds, 3, "Synced", "")
	if got := meta.FindStatusCondition(conds, millracev1.ConditionReady).ObservedGeneration; got != 3 {
		t.Fatalf("observedGeneration = %d, want 3", got)
	}
}

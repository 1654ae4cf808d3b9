package conditions

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

const degraded = "Degraded"

type step func(*[]metav1.Condition)

func stalled(reason string) step {
	return func(c *[]metav1.Condition) { MarkStalled(c, 1, reason, reason+" message") }
}

func reconciling(reason string) step {
	return func(c *[]metav1.Condition) { MarkReconciling(c, 1, reason, reason+" message") }
}

func reconciled(c *[]metav1.Condition) { MarkReconciled(c) }

func abnormal(kind string, on bool, reason string) step {
	return func(c *[]metav1.Condition) {
		status := metav1.ConditionFalse
		if on {
			status = metav1.ConditionTrue
		}
		meta.SetStatusCondition(c, metav1.Condition{Type: kind, Status: status, Reason: reason, Message: reason + " message"})
	}
}

func TestSummarize(t *testing.T) {
	synced := Verdict{Reason: "Synced", Message: "matches the spec"}
	type want struct {
		ready, reconciling, stalled metav1.ConditionStatus // "" = absent
		reason                      string
	}
	cases := []struct {
		name    string
		steps   []step
		verdict Verdict
		want    want
	}{
		{
			name:  "a new object being created is reconciling and not ready",
			steps: []step{reconciling("Creating")},
			want:  want{ready: metav1.ConditionFalse, reconciling: metav1.ConditionTrue, reason: "Creating"},
		},
		{
			name:    "a reconcile that went through with nothing abnormal is ready with the verdict's reason",
			steps:   []step{stalled("Refused"), reconciling("Updating"), reconciled},
			verdict: synced,
			want:    want{ready: metav1.ConditionTrue, reason: "Synced"},
		},
		{
			name:    "stalled after ready makes ready false with the stalled reason",
			steps:   []step{reconciled, stalled("Refused")},
			verdict: synced,
			want:    want{ready: metav1.ConditionFalse, stalled: metav1.ConditionTrue, reason: "Refused"},
		},
		{
			name:  "reconciling after stalled drops stalled",
			steps: []step{stalled("Refused"), reconciling("Updating")},
			want:  want{ready: metav1.ConditionFalse, reconciling: metav1.ConditionTrue, reason: "Updating"},
		},
		{
			name:    "a degraded object is not ready, with the degraded reason, although the reconcile went through",
			steps:   []step{reconciled, abnormal(degraded, true, "DepthUnknown")},
			verdict: Verdict{Reason: "ScaledToZero", Message: "no backlog"},
			want:    want{ready: metav1.ConditionFalse, reason: "DepthUnknown"},
		},
		{
			name:    "a degraded object running on fallback replicas is not ready, reason Fallback",
			steps:   []step{reconciled, abnormal(degraded, true, "Fallback")},
			verdict: Verdict{Reason: "Available", Message: "3 of 3 replicas ready"},
			want:    want{ready: metav1.ConditionFalse, reason: "Fallback"},
		},
		{
			name:    "degraded False does not hold ready back",
			steps:   []step{reconciled, abnormal(degraded, false, "DepthKnown")},
			verdict: Verdict{Reason: "Available", Message: "1 of 1 replicas ready"},
			want:    want{ready: metav1.ConditionTrue, reason: "Available"},
		},
		{
			name:  "stalled decides over degraded",
			steps: []step{abnormal(degraded, true, "DepthUnknown"), stalled("InvalidSpec")},
			want:  want{ready: metav1.ConditionFalse, stalled: metav1.ConditionTrue, reason: "InvalidSpec"},
		},
		{
			name:  "degraded decides over reconciling: it is the more actionable of the two",
			steps: []step{abnormal(degraded, true, "DepthUnknown"), reconciling("Progressing")},
			want:  want{ready: metav1.ConditionFalse, reconciling: metav1.ConditionTrue, reason: "DepthUnknown"},
		},
		{
			name:  "without a verdict and nothing holding it back, ready is left as it was (absent)",
			steps: []step{reconciled},
			want:  want{},
		},
		{
			name: "without a verdict, ready stays true",
			steps: []step{reconciled, func(c *[]metav1.Condition) {
				Summarize(c, 1, synced, degraded)
			}},
			want: want{ready: metav1.ConditionTrue, reason: "Synced"},
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
			for _, s := range tc.steps {
				s(&conds)
			}
			Summarize(&conds, 1, tc.verdict, degraded)
			got := want{
				ready:       status(conds, millracev1.ConditionReady),
				reconciling: status(conds, millracev1.ConditionReconciling),
				stalled:     status(conds, millracev1.ConditionStalled),
			}
			if r := meta.FindStatusCondition(conds, millracev1.ConditionReady); r != nil {
				got.reason = r.Reason
				if r.Status == metav1.ConditionFalse && r.Message != r.Reason+" message" {
					t.Errorf("Ready message %q is not the deciding condition's", r.Message)
				}
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if got.reconciling == metav1.ConditionTrue && got.stalled == metav1.ConditionTrue {
				t.Fatal("Reconciling and Stalled are both True")
			}
		})
	}
}

func TestObservedGenerationFollowsTheLatestSummary(t *testing.T) {
	var conds []metav1.Condition
	Summarize(&conds, 1, Verdict{Reason: "Synced"})
	Summarize(&conds, 3, Verdict{Reason: "Synced"})
	if got := meta.FindStatusCondition(conds, millracev1.ConditionReady).ObservedGeneration; got != 3 {
		t.Fatalf("observedGeneration = %d, want 3", got)
	}
}

// A message quoting what a tenant wrote (a run's 256 KiB Cause) is clipped, at a character
// boundary, so the status that carries it can still be written (the API server refuses condition
// messages over 32,768 characters, and a refused status is never written at all).
func TestLongMessagesAreClipped(t *testing.T) {
	for _, tc := range []struct {
		name, message string
	}{
		{"ascii", strings.Repeat("x", 256<<10)},
		{"multi-byte characters across the cut", strings.Repeat("é", 3000)},
		{"exactly the limit", strings.Repeat("y", MaxMessage)},
		{"short", "fine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conds []metav1.Condition
			MarkStalled(&conds, 1, "Failed", tc.message)
			Summarize(&conds, 1, Verdict{})
			for _, c := range conds {
				if len(c.Message) > MaxMessage || !utf8.ValidString(c.Message) {
					t.Fatalf("%s: %d bytes, valid UTF-8 %v", c.Type, len(c.Message), utf8.ValidString(c.Message))
				}
				if len(tc.message) <= MaxMessage && c.Message != tc.message {
					t.Fatalf("%s: a short message changed: %q", c.Type, c.Message)
				}
				if len(tc.message) > MaxMessage && !strings.HasSuffix(c.Message, fmt.Sprintf("(%d bytes in all)", len(tc.message))) {
					t.Fatalf("%s: a clipped message does not say how long it was: %q", c.Type, c.Message[len(c.Message)-40:])
				}
			}
		})
	}
}

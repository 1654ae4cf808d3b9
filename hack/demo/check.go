package demo

import (
	"encoding/json"
	"fmt"

	millracev1 "github.com/millrace-io/millrace/api/v1alpha1"
)

// Problems is what the end-to-end tests (local processes or real pods) assert of a demo run, one
// line per broken promise: every order handled at least once, the replicas above one and then
// zero, the poison message in the dead-letter queue and never handled, the WorkflowRun succeeded
// with order-1 priced and charged.
func (r *Result) Problems() []string {
	var out []string
	for _, id := range r.Sent {
		if r.Handled[id] == 0 {
			out = append(out, fmt.Sprintf("order %s was never handled", id))
		}
	}
	if r.MaxReplicas < 2 || r.FinalReplicas != 0 {
		out = append(out, fmt.Sprintf("replicas rose to %d and ended at %d; want above 1, then 0", r.MaxReplicas, r.FinalReplicas))
	}
	if r.Handled[r.Poison] != 0 || len(r.InDLQ) != 1 || r.InDLQ[0] != r.Poison {
		out = append(out, fmt.Sprintf("the poison message %s: handled %d times; dead-letter queue holds %v", r.Poison, r.Handled[r.Poison], r.InDLQ))
	}
	if r.Run == nil || r.Run.Status.Phase != millracev1.RunSucceeded {
		if r.Run != nil {
			out = append(out, fmt.Sprintf("run %s: %s %s", r.Run.Status.Phase, r.Run.Status.Error, r.Run.Status.Cause))
		}
		return out
	}
	if p := ChargeProblem(r.Run, "order-1", 15); p != "" {
		out = append(out, p)
	}
	return out
}

// ChargeProblem says what is wrong with a finished order run's output (empty: nothing): the
// amount priced and charged by the handler for the order id.
func ChargeProblem(run *millracev1.WorkflowRun, id string, amount float64) string {
	var out struct {
		Amount float64
		Charge struct {
			Charged float64
			For     string
		}
	}
	if run.Status.Output != nil {
		_ = json.Unmarshal(run.Status.Output.Raw, &out)
	}
	if out.Amount != amount || out.Charge.Charged != amount || out.Charge.For != id {
		return fmt.Sprintf("run %s output %s; want the amount priced to %v and charged by the handler", run.Name, run.Status.Output, amount)
	}
	return ""
}

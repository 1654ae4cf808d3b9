package asl

import (
	"fmt"
	"math"
	"slices"
)

// Running the newer Task and Map fields (fields.go): the Path forms are evaluated against the
// state's effective input (after InputPath) when the state (a Map) or the attempt (a Task)
// starts; what they select must be an integer in range, else the state fails with
// States.Runtime.

// MapRun is what a running Map state evaluated when it started, kept in the run so that its
// iterations start and end the same way across steps and manager restarts.
type MapRun struct {
	// MaxConcurrency is MaxConcurrencyPath's value (0: no limit of its own).
	MaxConcurrency int `json:"maxConcurrency,omitempty"`
	// BatchSize is the items per batch when only the item count cuts batches; BatchEnds the end
	// (exclusive) of each batch when MaxInputBytesPerBatch cuts them.
	BatchSize int   `json:"batchSize,omitempty"`
	BatchEnds []int `json:"batchEnds,omitempty"`
	// ToleratedCount and ToleratedPercentage are the tolerated failure threshold; Failures the
	// failed iterations so far.
	ToleratedCount      *int     `json:"toleratedCount,omitempty"`
	ToleratedPercentage *float64 `json:"toleratedPercentage,omitempty"`
	Failures            int      `json:"failures,omitempty"`
	// FailedItems are the iterations that failed within the threshold (their results hold
	// their errors): a redrive runs them again, from their beginning.
	FailedItems []int `json:"failedItems,omitempty"`
}

// TimeoutSeconds is the Task's timeout: its TimeoutSecondsPath as evaluated when the attempt
// started, else its TimeoutSeconds (0: none).
func (a Active) TimeoutSeconds() int {
	if a.timeoutSeconds > 0 {
		return a.timeoutSeconds
	}
	return a.State.TimeoutSeconds
}

// HeartbeatSeconds is the Task's heartbeat timeout: its HeartbeatSecondsPath as evaluated when
// the attempt started, else its HeartbeatSeconds (0: none).
func (a Active) HeartbeatSeconds() int {
	if a.heartbeatSeconds > 0 {
		return a.heartbeatSeconds
	}
	return a.State.HeartbeatSeconds
}

// intAt evaluates a path that must select an integer in [lo, hi].
func (s *stepper) intAt(p *Path, field string, doc any, lo, hi int) (int, error) {
	s.charge(pathCost(p))
	v, err := p.Get(doc, s.context())
	f, ok := v.(float64)
	if err != nil || !ok || f != math.Trunc(f) || f < float64(lo) || f > float64(hi) {
		return 0, fmt.Errorf("%s %s must select an integer from %d to %d, got %s", field, p, lo, hi, describeValue(v, err))
	}
	return int(f), nil
}

// taskSettings evaluates a Task attempt's TimeoutSecondsPath, HeartbeatSecondsPath (kept in the
// run, where Active finds them) and Credentials.
func (s *stepper) taskSettings(st *State, effective any) (timeout, heartbeat int, credentials any, err error) {
	timeout, heartbeat = st.TimeoutSeconds, st.HeartbeatSeconds
	s.run.TaskTimeout, s.run.TaskHeartbeat = 0, 0
	if st.TimeoutSecondsPath != nil {
		if timeout, err = s.intAt(st.TimeoutSecondsPath, "TimeoutSecondsPath", effective, 1, MaxTimeoutSeconds); err != nil {
			return 0, 0, nil, err
		}
		s.run.TaskTimeout = timeout
	}
	if st.HeartbeatSecondsPath != nil {
		if heartbeat, err = s.intAt(st.HeartbeatSecondsPath, "HeartbeatSecondsPath", effective, 1, MaxTimeoutSeconds); err != nil {
			return 0, 0, nil, err
		}
		s.run.TaskHeartbeat = heartbeat
	}
	if timeout > 0 && heartbeat >= timeout {
		return 0, 0, nil, fmt.Errorf("the heartbeat timeout (%d s) must be smaller than the timeout (%d s)", heartbeat, timeout)
	}
	if st.Credentials != nil {
		if credentials, err = s.resolve(st.Credentials, "Credentials", effective, s.context()); err != nil {
			return 0, 0, nil, err
		}
	}
	return timeout, heartbeat, credentials, nil
}

// startMap evaluates what a Map state needs when it starts (MaxConcurrencyPath, the tolerated
// failure threshold, the batches) and returns its number of iterations: its items, or its
// batches. The MapRun is nil when the state has none of those fields.
func (s *stepper) startMap(st *State, effective any, list []any) (int, *MapRun, error) {
	jf := st.JSONata
	if jf == nil {
		jf = &JSONataFields{}
	}
	if st.MaxConcurrencyPath == nil && st.ItemBatcher == nil && !st.Tolerance.Set() &&
		jf.ToleratedFailureCount == nil && jf.ToleratedFailurePercentage == nil {
		return len(list), nil, nil
	}
	mr := &MapRun{}
	var err error
	if st.MaxConcurrencyPath != nil {
		if mr.MaxConcurrency, err = s.intAt(st.MaxConcurrencyPath, "MaxConcurrencyPath", effective, 0, MaxTimeoutSeconds); err != nil {
			return 0, nil, err
		}
	}
	t := st.Tolerance
	switch {
	case jf.ToleratedFailureCount != nil:
		n, err := jf.ToleratedFailureCount.evalInt(s.newEnv(nil), "ToleratedFailureCount", 0, math.MaxInt32)
		if err != nil {
			return 0, nil, err
		}
		mr.ToleratedCount = &n
	case t.Count != nil:
		n := int(*t.Count)
		mr.ToleratedCount = &n
	case t.CountPath != nil:
		n, err := s.intAt(t.CountPath, "ToleratedFailureCountPath", effective, 0, math.MaxInt32)
		if err != nil {
			return 0, nil, err
		}
		mr.ToleratedCount = &n
	}
	switch {
	case jf.ToleratedFailurePercentage != nil:
		f, err := jf.ToleratedFailurePercentage.evalNumber(s.newEnv(nil), "ToleratedFailurePercentage", 0, 100)
		if err != nil {
			return 0, nil, err
		}
		mr.ToleratedPercentage = &f
	case t.Percentage != nil:
		f := *t.Percentage
		mr.ToleratedPercentage = &f
	case t.PercentagePath != nil:
		n, err := s.intAt(t.PercentagePath, "ToleratedFailurePercentagePath", effective, 0, 100)
		if err != nil {
			return 0, nil, err
		}
		f := float64(n)
		mr.ToleratedPercentage = &f
	}
	total := len(list)
	if st.ItemBatcher != nil {
		if total, err = s.cutBatches(st, effective, list, mr); err != nil {
			return 0, nil, err
		}
	}
	return total, mr, nil
}

// cutBatches decides the Map state's batches: at most MaxItemsPerBatch items each, and, with
// MaxInputBytesPerBatch, at most that many bytes of JSON each ({"Items": [...]} and the fields of
// BatchInput). Items go into batches in order. A single item larger than MaxInputBytesPerBatch
// fails the state with States.DataLimitExceeded.
func (s *stepper) cutBatches(st *State, effective any, list []any, mr *MapRun) (int, error) {
	b := st.ItemBatcher
	maxItems, maxBytes := b.MaxItemsPerBatch, b.MaxInputBytesPerBatch
	var err error
	if jf := st.JSONata; jf != nil && jf.MaxItemsPerBatch != nil {
		if maxItems, err = jf.MaxItemsPerBatch.evalInt(s.newEnv(nil), "ItemBatcher/MaxItemsPerBatch", 1, MaxMapItemsPerRun); err != nil {
			return 0, err
		}
	}
	if jf := st.JSONata; jf != nil && jf.MaxInputBytesPerBatch != nil {
		if maxBytes, err = jf.MaxInputBytesPerBatch.evalInt(s.newEnv(nil), "ItemBatcher/MaxInputBytesPerBatch", 1, DefaultMaxPayloadBytes); err != nil {
			return 0, err
		}
	}
	if b.MaxItemsPerBatchPath != nil {
		if maxItems, err = s.intAt(b.MaxItemsPerBatchPath, "MaxItemsPerBatchPath", effective, 1, MaxMapItemsPerRun); err != nil {
			return 0, err
		}
	}
	if b.MaxInputBytesPerBatchPath != nil {
		if maxBytes, err = s.intAt(b.MaxInputBytesPerBatchPath, "MaxInputBytesPerBatchPath", effective, 1, DefaultMaxPayloadBytes); err != nil {
			return 0, err
		}
	}
	if maxItems <= 0 {
		maxItems = max(len(list), 1)
	}
	if maxBytes <= 0 {
		mr.BatchSize = maxItems
		return (len(list) + maxItems - 1) / maxItems, nil
	}
	base, err := s.batchInput(st, effective)
	if err != nil {
		return 0, err
	}
	// {"Items":[]} is 12 bytes; BatchInput's fields add their size and a comma.
	baseBytes := 12
	if len(base) > 0 {
		n, _ := jsonSize(base, DefaultMaxPayloadBytes)
		baseBytes += n - 2 + 1
	}
	var ends []int
	size, count := baseBytes, 0
	for i := range list {
		v, err := s.itemValue(st, effective, list, i)
		if err != nil {
			return 0, err
		}
		n, _ := jsonSize(v, maxBytes+1)
		if baseBytes+n > maxBytes {
			return 0, limitErrorf("item %d is %d bytes of JSON: its batch would exceed MaxInputBytesPerBatch (%d bytes)", i, n, maxBytes)
		}
		if count > 0 && (count == maxItems || size+1+n > maxBytes) {
			ends = append(ends, i)
			size, count = baseBytes, 0
		}
		if count > 0 {
			size++ // the comma
		}
		size += n
		count++
	}
	if count > 0 {
		ends = append(ends, len(list))
	}
	mr.BatchEnds = ends
	return len(ends), nil
}

// batchInput resolves the ItemBatcher's BatchInput (nil without one): a payload template, or in a
// JSONata state a JSONata value, which must give an object.
func (s *stepper) batchInput(st *State, effective any) (map[string]any, error) {
	if jf := st.JSONata; jf != nil && jf.BatchInput != nil {
		v, err := jf.BatchInput.eval(s.newEnv(nil), "ItemBatcher/BatchInput")
		if err != nil {
			return nil, err
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, queryErrorf("The JSONata expression '%s' specified for the field 'ItemBatcher/BatchInput' returned %s, not an object.", jf.BatchInput.Expression(), shortJSON(v))
		}
		if _, err := s.payload("BatchInput", m); err != nil {
			return nil, err
		}
		return m, nil
	}
	if st.ItemBatcher.BatchInput == nil {
		return nil, nil
	}
	v, err := s.resolve(st.ItemBatcher.BatchInput, "BatchInput", effective, s.context())
	if err != nil {
		return nil, err
	}
	m, _ := v.(map[string]any)
	return m, nil
}

// itemValue is item i of a Map state as its iteration (or batch) receives it: the item, or what
// ItemSelector makes of it ($$.Map.Item.Index and $$.Map.Item.Value are the item's).
func (s *stepper) itemValue(st *State, effective any, list []any, i int) (any, error) {
	return s.itemInput(st, effective, list[i], i)
}

// iterationInput is the input of iteration i of a Map state: an item, or with ItemBatcher the
// batch {"Items": [...], <BatchInput's fields>}.
func (s *stepper) iterationInput(st *State, effective any, list []any, i int) (any, error) {
	if st.ItemBatcher == nil || s.run.Map == nil {
		return s.itemValue(st, effective, list, i)
	}
	start, end := batchBounds(s.run.Map, i, len(list))
	items := make([]any, 0, end-start)
	for j := start; j < end; j++ {
		v, err := s.itemValue(st, effective, list, j)
		if err != nil {
			return nil, err
		}
		items = append(items, v)
	}
	base, err := s.batchInput(st, effective)
	if err != nil {
		return nil, err
	}
	batch := make(map[string]any, len(base)+1)
	for k, v := range base {
		batch[k] = v
	}
	batch["Items"] = items
	return s.payload("the batch", batch)
}

// batchBounds are the items [start, end) of batch b of n items.
func batchBounds(mr *MapRun, b, n int) (int, int) {
	if mr.BatchEnds != nil {
		start := 0
		if b > 0 {
			start = mr.BatchEnds[b-1]
		}
		return min(start, n), min(mr.BatchEnds[b], n)
	}
	size := max(mr.BatchSize, 1)
	return min(b*size, n), min((b+1)*size, n)
}

// tolerate applies the Map state's tolerated failure threshold to a failed iteration: tolerated,
// the iteration's result is {"Error", "Cause"} and the state goes on; beyond the threshold, the
// state fails with States.ExceedToleratedFailureThreshold (exceeded). Without a threshold,
// neither: the iteration's error fails the state, as it always did.
func (s *stepper) tolerate(c Run) (tolerated bool, exceeded *Run) {
	mr := s.run.Map
	if mr == nil || (mr.ToleratedCount == nil && mr.ToleratedPercentage == nil) {
		return false, nil
	}
	next := *mr
	next.Failures++
	s.run.Map = &next
	total := max(s.run.ItemsTotal, 1)
	over := ""
	switch {
	case next.ToleratedCount != nil && next.Failures > *next.ToleratedCount:
		over = fmt.Sprintf("more than the tolerated %d", *next.ToleratedCount)
	case next.ToleratedPercentage != nil && float64(next.Failures)*100 > *next.ToleratedPercentage*float64(total):
		over = fmt.Sprintf("more than the tolerated %g%%", *next.ToleratedPercentage)
	}
	if over != "" {
		return false, &Run{Status: Failed, Error: ErrExceedToleratedFailureThreshold,
			Cause: fmt.Sprintf("%d of %d iterations failed, %s (the last: %s: %s)", next.Failures, s.run.ItemsTotal, over, c.Error, c.Cause)}
	}
	next.FailedItems = append(slices.Clip(next.FailedItems), c.Item)
	errOut := map[string]any{"Error": c.Error, "Cause": c.Cause}
	if len(s.run.Results) <= c.Item {
		s.run.Results = append(s.run.Results, make([]any, c.Item+1-len(s.run.Results))...)
	}
	s.run.Results[c.Item] = errOut
	n, _ := jsonSize(errOut, DefaultMaxPayloadBytes)
	s.run.ResultBytes += n
	return true, nil
}

// taskAt is a stepper for the running Task at path (like TaskInput's walk), for the values a
// controller must compute again when it sends the task after a restart.
func (m *Machine) taskAt(run Run, path []int, opt Options) (*stepper, *State, error) {
	d, err := m.descend(run, path, true)
	if err != nil {
		return nil, nil, err
	}
	mach, sub, visit := d.mach, d.run, d.visit
	st := mach.States[sub.State]
	if st == nil || st.Type != "Task" {
		return nil, nil, fmt.Errorf("state %q is not a task", sub.State)
	}
	opt = opt.withDefaults()
	opt.path, opt.visit = slices.Clone(path), visit
	opt.tree = &tree{}
	return &stepper{m: mach, run: sub, opt: opt}, st, nil
}

// TaskCredentials evaluates the Credentials of the running task at path (nil for a task without
// them), for a controller that must send the task again after a restart. Millrace assumes no
// role: the credentials are carried to the task's message.
func (m *Machine) TaskCredentials(run Run, path []int, opt Options) (any, error) {
	s, st, err := m.taskAt(run, path, opt)
	if err != nil || st.Credentials == nil {
		return nil, err
	}
	effective, err := s.inputOf(st)
	if err != nil {
		return nil, err
	}
	return st.Credentials.Resolve(effective, s.context())
}

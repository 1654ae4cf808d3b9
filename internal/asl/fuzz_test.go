package asl

import (
	"encoding/json"
	"testing"
	"time"
)

// The fuzz targets feed the engine what a tenant controls: a definition, and an input with task
// results. Their seed corpus (testdata/fuzz/...) runs with every `go test`; `go test -fuzz
// FuzzRun ./internal/asl/` searches for more. Each run is bounded: inputs are cut at
// maxFuzzBytes and a run at maxFuzzSteps steps, each of which the engine's budget bounds.
const (
	maxFuzzBytes = 64 << 10
	maxFuzzSteps = 200
)

func FuzzParse(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed.def)
	}
	f.Fuzz(func(t *testing.T, def []byte) {
		if len(def) > maxFuzzBytes {
			return
		}
		m, errs := Parse(def)
		if (m == nil) == (len(errs) == 0) {
			t.Fatalf("Parse returned a machine %v with %d errors", m != nil, len(errs))
		}
	})
}

func FuzzRun(f *testing.F) {
	for _, seed := range fuzzSeeds() {
		f.Add(seed.def, seed.input)
	}
	f.Fuzz(func(t *testing.T, def, input []byte) {
		if len(def) > maxFuzzBytes || len(input) > maxFuzzBytes {
			return
		}
		m, errs := Parse(def)
		var in any
		if len(errs) > 0 || json.Unmarshal(input, &in) != nil {
			return
		}
		check := func(s stepStats) {
			if s.history > DefaultMaxHistory {
				t.Fatalf("a step returned %d transitions", s.history)
			}
			if _, err := json.Marshal(s.run); err != nil {
				t.Fatalf("the run cannot be persisted: %v", err)
			}
		}
		run := drive(m, in, maxFuzzSteps, check)
		// A run that failed is redriven once, and driven again (with tasks that fail as before).
		if at := run.Stopped; Redrivable(run, at) == nil {
			budget := NewBudget()
			next, pending, hist, err := m.Redrive(run, at, Options{Budget: budget})
			if err != nil {
				t.Fatalf("a redrivable run was refused: %v", err)
			}
			check(stepStats{run: next, history: len(hist), budget: *budget})
			driveFrom(m, next, pending, at, maxFuzzSteps, check)
		}
	})
}

// stepStats describes one step of a driven run.
type stepStats struct {
	run     Run
	history int
	budget  Budget
}

// drive runs a machine with simulated tasks and time, one event per step, for at most maxSteps
// steps, calling each with every step's outcome. A task answers its input, except every third,
// which fails (so that Retry and Catch run too).
func drive(m *Machine, input any, maxSteps int, each func(stepStats)) Run {
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	budget := NewBudget()
	run, pending, hist := m.Step(Run{}, Event{Kind: EventStart, At: clock, Input: input}, Options{Budget: budget})
	each(stepStats{run: run, history: len(hist), budget: *budget})
	return driveFrom(m, run, pending, clock, maxSteps, each)
}

// driveFrom is drive from a run and its pending effects.
func driveFrom(m *Machine, run Run, pending []Effect, clock time.Time, maxSteps int, each func(stepStats)) Run {
	var hist []Transition
	tasks := 0
	for steps := 1; steps < maxSteps && run.Status == Running && len(pending) > 0; steps++ {
		e := pending[0]
		pending = pending[1:]
		ev := Event{Kind: EventContinue, At: clock, Path: e.Path}
		switch e.Kind {
		case EffectTimer:
			clock = latest(clock, e.Until)
			ev = Event{Kind: EventTimer, At: clock, Path: e.Path}
		case EffectRunTask:
			tasks++
			ev = Event{Kind: EventTaskSucceeded, At: clock, Path: e.Path, Attempt: e.Attempt, Output: e.Input}
			if tasks%3 == 0 {
				ev = Event{Kind: EventTaskFailed, At: clock, Path: e.Path, Attempt: e.Attempt, Error: "Fuzz.Failed"}
			}
		}
		budget := NewBudget()
		var next []Effect
		run, next, hist = m.Step(run, ev, Options{Budget: budget})
		pending = append(pending, next...)
		each(stepStats{run: run, history: len(hist), budget: *budget})
	}
	return run
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

type fuzzSeed struct{ def, input []byte }

// fuzzSeeds are the in-code seeds: the attacks of issue 12 and a machine of each state type.
// testdata/fuzz holds more, in the fuzzer's own format.
func fuzzSeeds() []fuzzSeed {
	nested, rows := nestedMaps(200, 200)
	rowsJSON, _ := json.Marshal(rows)
	return []fuzzSeed{
		{[]byte(nested), rowsJSON},
		{[]byte(`{"StartAt":"A","States":{"A":{"Type":"Pass","Next":"B"},"B":{"Type":"Choice","Choices":[{"Variable":"$.stop","IsPresent":true,"Next":"Z"}],"Default":"A"},"Z":{"Type":"Succeed"}}}`), []byte(`{"x":1}`)},
		{[]byte(`{"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.items","MaxConcurrencyPath":"$.c","ToleratedFailurePercentagePath":"$.p","ToleratedFailureCount":2,
			"ItemSelector":{"i.$":"$$.Map.Item.Index","v.$":"$$.Map.Item.Value"},"ItemBatcher":{"MaxItemsPerBatchPath":"$.n","MaxInputBytesPerBatch":200,"BatchInput":{"k.$":"$.c"}},
			"ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"EXPRESS"},"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:r",
				"TimeoutSecondsPath":"$.Items[0].i","Credentials":{"RoleArn.$":"States.Format('arn:{}', $.k)"},"End":true}}},"End":true}}}`),
			[]byte(`{"c":2,"p":50,"n":3,"items":[1,"two",{"three":3},[4],5,6,7]}`)},
		{[]byte(`{"StartAt":"S","States":{"S":{"Type":"Pass","Parameters":{"a.$":"States.StringSplit($.s, $.sep)","u.$":"States.ArrayUnique($.list)","d.$":"$..*"},"End":true}}}`),
			[]byte(`{"s":"a,b;c","sep":",;","list":[1,1,{"a":2},{"a":2}],"deep":[[[[1]]]]}`)},
		{[]byte(`{"StartAt":"W","States":{"W":{"Type":"Wait","SecondsPath":"$.s","Next":"T"},"T":{"Type":"Task","Resource":"test:r","TimeoutSeconds":5,"HeartbeatSeconds":2,
			"Retry":[{"ErrorEquals":["States.ALL"],"IntervalSeconds":1,"BackoffRate":1000,"MaxAttempts":3}],"Catch":[{"ErrorEquals":["States.ALL"],"Next":"F"}],"End":true},
			"F":{"Type":"Fail","ErrorPath":"$.Error","CausePath":"States.Format('{}', $.Cause)"}}}`), []byte(`{"s":1e12}`)},
		{[]byte(`{"StartAt":"P","States":{"P":{"Type":"Parallel","End":true,"Branches":[
			{"StartAt":"M","States":{"M":{"Type":"Map","MaxConcurrency":3,"ItemSelector":{"v.$":"$$.Map.Item.Value","i.$":"$$.Map.Item.Index"},"End":true,
				"ItemProcessor":{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"test:r","ResultSelector":{"r.$":"$"},"End":true}}}}}},
			{"StartAt":"S","States":{"S":{"Type":"Succeed","OutputPath":"$[0]"}}}]}}}`), []byte(`[1,2,3,4,5,6,7]`)},
	}
}

package asl

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// MockConfig is the mock file of AWS Step Functions Local's mocked service integrations:
//
//	{"StateMachines": {"<name>": {"TestCases": {"<case>": {"<state>": "<response>"}}}},
//	 "MockedResponses": {"<response>": {"0": {"Return": ...}, "1-2": {"Throw": {"Error": "...", "Cause": "..."}}}}}
type MockConfig struct {
	StateMachines map[string]struct {
		TestCases map[string]map[string]string `json:"TestCases"`
	} `json:"StateMachines"`
	MockedResponses map[string]map[string]MockedResponse `json:"MockedResponses"`
}

// MockedResponse is one invocation's answer: a Return value or a Throw.
type MockedResponse struct {
	Return any `json:"Return"`
	Throw  *struct {
		Error string `json:"Error"`
		Cause string `json:"Cause"`
	} `json:"Throw"`
}

// LoadMockConfig reads a mock config file.
func LoadMockConfig(path string) (*MockConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c MockConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("mock config %s: %w", path, err)
	}
	return &c, nil
}

// TestCase selects a state machine's test case: state name -> mocked response name.
func (c *MockConfig) TestCase(machine, testCase string) (map[string]string, error) {
	if machine == "" {
		if len(c.StateMachines) != 1 {
			return nil, fmt.Errorf("the mock config has %d state machines; choose one with --name", len(c.StateMachines))
		}
		for name := range c.StateMachines {
			machine = name
		}
	}
	sm, ok := c.StateMachines[machine]
	if !ok {
		return nil, fmt.Errorf("the mock config has no state machine %q", machine)
	}
	tc, ok := sm.TestCases[testCase]
	if !ok {
		return nil, fmt.Errorf("state machine %q has no test case %q", machine, testCase)
	}
	return tc, nil
}

// Response returns the mocked answer of a state's n-th invocation (0-based), matching single
// indexes ("0") and ranges ("1-2").
func (c *MockConfig) Response(name string, n int) (MockedResponse, bool) {
	for key, r := range c.MockedResponses[name] {
		lo, hi, found := strings.Cut(key, "-")
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b := a
		var err2 error
		if found {
			b, err2 = strconv.Atoi(strings.TrimSpace(hi))
		}
		if err1 == nil && err2 == nil && n >= a && n <= b {
			return r, true
		}
	}
	return MockedResponse{}, false
}

// TaskFunc executes a task locally: it returns the task's output or an error name and cause.
type TaskFunc func(ctx context.Context, e Effect) (output any, errName, cause string)

// MockTasks answers tasks from a mock config test case, by state name whatever the Resource.
func MockTasks(c *MockConfig, testCase map[string]string) TaskFunc {
	calls := map[string]int{}
	return func(_ context.Context, e Effect) (any, string, string) {
		resp, ok := testCase[e.State]
		if !ok {
			return nil, ErrTaskFailed, fmt.Sprintf("no mocked response for state %q in this test case", e.State)
		}
		n := calls[e.State]
		calls[e.State]++
		r, ok := c.Response(resp, n)
		if !ok {
			return nil, ErrTaskFailed, fmt.Sprintf("mocked response %q has no answer for invocation %d", resp, n)
		}
		if r.Throw != nil {
			return nil, r.Throw.Error, r.Throw.Cause
		}
		return r.Return, "", ""
	}
}

// RunLocally runs a machine to its end in this process: tasks through run, Wait states and retry
// delays really wait (through sleep), the machine's TimeoutSeconds is enforced.
func (m *Machine) RunLocally(ctx context.Context, input any, name string, run TaskFunc, now func() time.Time, sleep func(context.Context, time.Duration) error) Run {
	start := now()
	r, effects, _ := m.Step(Run{}, Event{Kind: EventStart, At: start, Input: input, Execution: Execution{ID: "local:" + name, Name: name}}, Options{})
	var timers []Effect
	deadline := time.Time{}
	if m.TimeoutSeconds > 0 {
		deadline = start.Add(time.Duration(m.TimeoutSeconds) * time.Second)
	}
	for r.Status == Running {
		if len(effects) == 0 {
			if len(timers) == 0 {
				r.Status, r.Error, r.Cause = Failed, ErrRuntime, "the run is blocked with nothing to wait for"
				break
			}
			earliest := 0
			for i, t := range timers {
				if t.Until.Before(timers[earliest].Until) {
					earliest = i
				}
			}
			t := timers[earliest]
			timers = append(timers[:earliest], timers[earliest+1:]...)
			wake := t.Until
			if !deadline.IsZero() && deadline.Before(wake) {
				wake = deadline
			}
			if err := sleep(ctx, wake.Sub(now())); err != nil {
				r.Status, r.Error, r.Cause = Failed, ErrRuntime, err.Error()
				break
			}
			if !deadline.IsZero() && !now().Before(deadline) {
				r, _, _ = m.Step(r, Event{Kind: EventTimeout, At: now()}, Options{})
				break
			}
			var next []Effect
			r, next, _ = m.Step(r, Event{Kind: EventTimer, At: now(), Path: t.Path}, Options{})
			effects = append(effects, next...)
			continue
		}
		e := effects[0]
		effects = effects[1:]
		var next []Effect
		switch e.Kind {
		case EffectTimer:
			timers = append(timers, e)
		case EffectContinue:
			r, next, _ = m.Step(r, Event{Kind: EventContinue, At: now(), Path: e.Path}, Options{})
		case EffectRunTask:
			out, errName, cause := run(ctx, e)
			ev := Event{Kind: EventTaskSucceeded, At: now(), Output: out, Attempt: e.Attempt, Path: e.Path}
			if errName != "" {
				ev = Event{Kind: EventTaskFailed, At: now(), Error: errName, Cause: cause, Attempt: e.Attempt, Path: e.Path}
			}
			r, next, _ = m.Step(r, ev, Options{})
		}
		effects = append(effects, next...)
	}
	return r
}

package asl

import (
	"fmt"
	"time"
)

// JSONataFields are the fields of a JSONata state that hold JSONata values. A numeric or string
// field (TimeoutSeconds, Seconds, Error...) is set here only when it is an expression; a
// constant stays in the State's own field.
type JSONataFields struct {
	Arguments, Output, Items, ItemSelector *Value

	TimeoutSeconds, HeartbeatSeconds *Value
	Seconds, Timestamp               *Value
	Error, Cause                     *Value
	MaxConcurrency                   *Value
	// A Map's tolerated failure threshold and ItemBatcher maximums, where expressions give them,
	// and its ItemBatcher's BatchInput.
	ToleratedFailureCount, ToleratedFailurePercentage *Value
	MaxItemsPerBatch, MaxInputBytesPerBatch           *Value
	BatchInput                                        *Value
}

// runMapLimit is mapLimit with a MaxConcurrency a JSONata expression gave (kept in the run).
func runMapLimit(st *State, run Run, opt Options) int {
	limit := mapLimit(st, run, opt)
	if run.MaxConcurrency > 0 {
		limit = min(limit, run.MaxConcurrency)
	}
	return limit
}

// executeJSONata runs the current (non-started) state of a JSONata state.
func (s *stepper) executeJSONata(st *State) {
	env := s.newEnv(nil)
	jf := st.JSONata
	switch st.Type {
	case "Pass":
		s.exitJSONata(st, env, st.Next, jf.Output, st.Assign)
	case "Succeed":
		out, err := s.outputJSONata(st, env, jf.Output, "Output")
		if err != nil {
			s.fail(st, errorName(err, ErrQueryEvaluation), err.Error())
			return
		}
		s.record(st.Name, "Exited", "")
		s.finish(Succeeded, out, "", "")
	case "Fail":
		errName, cause := st.Error, st.Cause
		var err error
		if jf.Error != nil {
			errName, err = jf.Error.evalString(env, "Error")
		}
		if err == nil && jf.Cause != nil {
			cause, err = jf.Cause.evalString(env, "Cause")
		}
		if err != nil {
			errName, cause = errorName(err, ErrQueryEvaluation), err.Error()
		}
		s.finish(Failed, nil, errName, cause)
	case "Choice":
		for i, r := range st.Choices {
			ok, err := r.condition(env, fmt.Sprintf("Choices[%d]/Condition", i))
			if err != nil {
				s.fail(st, errorName(err, ErrQueryEvaluation), err.Error())
				return
			}
			if ok {
				s.exitJSONata(st, env, r.Next, r.Output, r.Assign)
				return
			}
		}
		if st.Default != "" {
			s.exitJSONata(st, env, st.Default, jf.Output, st.Assign)
			return
		}
		s.fail(st, ErrNoChoiceMatched, "no choice rule matched and there is no Default")
	case "Wait":
		until, err := s.waitUntilJSONata(st, env)
		if err != nil {
			s.fail(st, errorName(err, ErrQueryEvaluation), err.Error())
			return
		}
		if !until.After(s.now) {
			s.exitJSONata(st, s.newEnv(nil), st.Next, jf.Output, st.Assign)
			return
		}
		s.run.Waiting = &until
		s.effects = append(s.effects, Effect{Kind: EffectTimer, State: st.Name, Until: until})
	case "Task":
		s.run.Attempt = 1
		s.startTask(st)
	case "Parallel":
		input, err := s.argumentsJSONata(st, env)
		if err != nil {
			s.fail(st, errorName(err, ErrQueryEvaluation), err.Error())
			return
		}
		s.startBranches(st, input)
	case "Map":
		list, err := s.itemsJSONata(st, env)
		if err == nil && jf.MaxConcurrency != nil {
			s.run.MaxConcurrency, err = jf.MaxConcurrency.evalInt(env, "MaxConcurrency", 0, MaxTimeoutSeconds)
		}
		if err != nil {
			s.fail(st, errorName(err, ErrQueryEvaluation), err.Error())
			return
		}
		if s.opt.tree.mapItems += len(list); s.opt.tree.mapItems > MaxMapItemsPerRun {
			s.fail(st, ErrDataLimitExceeded, fmt.Sprintf("the run's Map states would start %d iterations (limit %d per run)", s.opt.tree.mapItems, MaxMapItemsPerRun))
			return
		}
		total, mapRun, err := s.startMap(st, s.run.Input, list)
		if err != nil {
			s.fail(st, errorName(err, ErrQueryEvaluation), err.Error())
			return
		}
		s.run.Attempt = 1
		s.resetChildren(total)
		s.run.Map = mapRun
		s.childrenChanged(st)
	default:
		s.fail(st, ErrRuntime, fmt.Sprintf("%s states are not supported by this engine yet", st.Type))
	}
}

// exitJSONata ends a JSONata state: its Output (or the result, or the input) is the state output,
// its Assign is evaluated with the variables as they were on entry, then applied, and the run
// moves to next (or ends when next is "" and the state is an End state).
func (s *stepper) exitJSONata(st *State, env *jenv, next string, output *Value, a *Assign) {
	out, err := s.outputJSONata(st, env, output, "Output")
	var vals map[string]any
	if err == nil && a != nil {
		vals, err = s.evalAssign(a, nil, env)
	}
	if err == nil {
		err = s.applyAssign(vals)
	}
	if err != nil {
		s.fail(st, errorName(err, ErrQueryEvaluation), err.Error())
		return
	}
	s.record(st.Name, "Exited", next)
	if next == "" {
		s.finish(Succeeded, out, "", "")
		return
	}
	s.enter(next, out)
}

// outputJSONata is a state's output: its Output evaluated, or else its result (Task, Parallel,
// Map) or its input.
func (s *stepper) outputJSONata(st *State, env *jenv, output *Value, field string) (any, error) {
	if output == nil {
		if env.hasResult {
			return env.result, nil
		}
		return env.input, nil
	}
	v, err := output.eval(env, field)
	if err != nil {
		return nil, err
	}
	return s.payload("the output of "+st.Name, v)
}

// argumentsJSONata is the input of a Task or of a Parallel state's branches: Arguments
// evaluated, or the state input.
func (s *stepper) argumentsJSONata(st *State, env *jenv) (any, error) {
	if st.JSONata.Arguments == nil {
		return env.input, nil
	}
	v, err := st.JSONata.Arguments.eval(env, "Arguments")
	if err != nil {
		return nil, err
	}
	return s.payload("Arguments", v)
}

// startTaskJSONata starts an attempt of a JSONata Task: its Arguments and its timeouts, where
// they are expressions, are evaluated as it starts (the timeouts are kept in the run).
func (s *stepper) startTaskJSONata(st *State) {
	env := s.newEnv(s.taskContext(st))
	input, err := s.argumentsJSONata(st, env)
	timeout, heartbeat := st.TimeoutSeconds, st.HeartbeatSeconds
	if err == nil && st.JSONata.TimeoutSeconds != nil {
		timeout, err = st.JSONata.TimeoutSeconds.evalInt(env, "TimeoutSeconds", 1, MaxTimeoutSeconds)
	}
	if err == nil && st.JSONata.HeartbeatSeconds != nil {
		heartbeat, err = st.JSONata.HeartbeatSeconds.evalInt(env, "HeartbeatSeconds", 1, MaxTimeoutSeconds)
	}
	if err == nil && timeout > 0 && heartbeat >= timeout {
		err = queryErrorf("HeartbeatSeconds (%d) must be smaller than TimeoutSeconds (%d)", heartbeat, timeout)
	}
	if err != nil {
		s.run.Attempt = 0
		s.fail(st, errorName(err, ErrQueryEvaluation), err.Error())
		return
	}
	s.run.TaskTimeout, s.run.TaskHeartbeat = 0, 0
	if st.JSONata.TimeoutSeconds != nil {
		s.run.TaskTimeout = timeout
	}
	if st.JSONata.HeartbeatSeconds != nil {
		s.run.TaskHeartbeat = heartbeat
	}
	s.effects = append(s.effects, Effect{Kind: EffectRunTask, State: st.Name, Resource: st.Resource, Input: input,
		Attempt: s.run.Attempt, TimeoutSeconds: timeout, HeartbeatSeconds: heartbeat})
}

// taskContext is the context object of a Task attempt: with $$.Task.Token when the caller issues
// tokens.
func (s *stepper) taskContext(st *State) map[string]any {
	ctx := s.contextMap().(map[string]any)
	if s.opt.TaskToken != nil {
		ctx["Task"] = map[string]any{"Token": s.opt.TaskToken(st.Name, s.opt.path, s.run.Attempt, visitOf(s.opt.visit, s.run), s.run.Entered)}
	}
	return ctx
}

// resultJSONata ends a JSONata Task, Parallel or Map state with its result.
func (s *stepper) resultJSONata(st *State, result any) {
	s.run.Attempt = 0
	env := s.newEnv(nil)
	env.result, env.hasResult = result, true
	next := st.Next
	s.exitJSONata(st, env, next, st.JSONata.Output, st.Assign)
}

// itemsJSONata is a JSONata Map state's items: Items (an array, or an expression giving one), or
// the state input, which must then be an array.
func (s *stepper) itemsJSONata(st *State, env *jenv) ([]any, error) {
	items := env.input
	if st.JSONata.Items != nil {
		var err error
		if items, err = st.JSONata.Items.eval(env, "Items"); err != nil {
			return nil, err
		}
		if items, err = s.payload("Items", items); err != nil {
			return nil, err
		}
	}
	list, ok := items.([]any)
	if !ok {
		if st.JSONata.Items != nil {
			return nil, queryErrorf("The field 'Items' gave %s, not an array.", shortJSON(items))
		}
		return nil, fmt.Errorf("the Map state's input is not an array, and it has no Items")
	}
	return list, nil
}

// itemInput is the input of item i of a Map state: its ItemSelector (JSONPath payload template or
// JSONata value), evaluated with the item in the context object ($$.Map.Item), or the item.
func (s *stepper) itemInput(st *State, effective, item any, i int) (any, error) {
	var selector *Value
	if st.JSONata != nil {
		selector = st.JSONata.ItemSelector
	}
	if st.Selector == nil && selector == nil {
		return item, nil
	}
	ctx := s.contextMap().(map[string]any)
	ctx["Map"] = map[string]any{"Item": map[string]any{"Index": float64(i), "Value": item}}
	if selector == nil {
		return s.resolve(st.Selector, "ItemSelector", effective, s.withVars(ctx))
	}
	v, err := selector.eval(s.newEnv(ctx), "ItemSelector")
	if err != nil {
		return nil, err
	}
	return s.payload("ItemSelector", v)
}

// items is a Map state's item array, in either query language; on failure the state has failed.
func (s *stepper) items(st *State, effective any) ([]any, bool) {
	if st.QueryLanguage == QueryJSONata {
		list, err := s.itemsJSONata(st, s.newEnv(nil))
		if err != nil {
			s.failFanOut(st, errorName(err, ErrQueryEvaluation), err.Error(), nil)
			return nil, false
		}
		return list, true
	}
	list, cause := s.mapItems(st, effective)
	if cause != "" {
		s.failFanOut(st, ErrRuntime, cause, nil)
		return nil, false
	}
	return list, true
}

// waitUntilJSONata is when a JSONata Wait state ends: Seconds or Timestamp, constants or
// expressions.
func (s *stepper) waitUntilJSONata(st *State, env *jenv) (time.Time, error) {
	jf := st.JSONata
	switch {
	case jf.Seconds != nil:
		n, err := jf.Seconds.evalInt(env, "Seconds", 0, MaxWaitSeconds)
		if err != nil {
			return time.Time{}, err
		}
		return s.waitFor(float64(n))
	case jf.Timestamp != nil:
		ts, err := jf.Timestamp.evalString(env, "Timestamp")
		if err != nil {
			return time.Time{}, err
		}
		if _, err := parseTimestamp(ts); err != nil {
			return time.Time{}, queryErrorf("The field 'Timestamp' gave %q, not an RFC3339 timestamp.", ts)
		}
		t, err := s.waitTill(ts)
		if err != nil {
			return t, &QueryError{Msg: err.Error()}
		}
		return t, nil
	}
	return s.waitUntil(st, nil)
}

// condition evaluates a JSONata Choice rule's Condition: true, false, or an expression giving one.
func (r *ChoiceRule) condition(env *jenv, field string) (bool, error) {
	v, err := r.Condition.eval(env, field)
	if err != nil {
		return false, err
	}
	b, ok := v.(bool)
	if !ok {
		return false, queryErrorf("The JSONata expression '%s' specified for the field '%s' returned %s, not a boolean.", r.Condition.Expression(), field, shortJSON(v))
	}
	return b, nil
}

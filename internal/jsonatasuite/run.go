package jsonatasuite

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"
)

// ErrUndefined is what an Evaluator returns for JSONata's undefined result (no match), which
// is not an error in JSONata but has no JSON value.
var ErrUndefined = errors.New("undefined result")

// Evaluator compiles and evaluates one expression with one implementation. The input is
// undefined (not null) when undefined is true.
type Evaluator func(expr string, input any, undefined bool, bindings map[string]any) (any, error)

// Status is the outcome of one case.
type Status string

const (
	// Pass: the expected result, undefined, or an error carrying the expected code.
	Pass Status = "pass"
	// PassLenient: an error was expected and one was raised, without the expected code.
	PassLenient Status = "pass-lenient"
	// Fail: a wrong result, a result where an error was expected, or undefined where a value was.
	Fail Status = "fail"
	// Errored: an error where a result was expected.
	Errored Status = "error"
	// Panicked: the implementation panicked (recovered).
	Panicked Status = "panic"
	// Crashed: the process died evaluating the case (e.g. a fatal Go stack overflow, which no
	// recover catches); the harness records it from outside and goes on with the next case.
	Crashed Status = "crash"
	// TimedOut: no answer within the case's time budget.
	TimedOut Status = "timeout"
)

// Outcome is a case's status with a short explanation.
type Outcome struct {
	Status Status
	Detail string
}

// Budget is the time a case gets: its own timelimit where the suite sets a larger one.
func Budget(c Case, base time.Duration) time.Duration {
	if d := time.Duration(c.TimeLimitMS) * time.Millisecond; d > base {
		return d
	}
	return base
}

// RunCase evaluates one case in its own goroutine, recovering panics. A case that exceeds its
// budget is reported as TimedOut while its goroutine keeps running: none of the candidates can be
// cancelled, so a caller that times out should not trust the process's CPU and memory afterwards.
func RunCase(ev Evaluator, c Case, budget time.Duration) Outcome {
	type answer struct {
		v     any
		err   error
		panic string
	}
	done := make(chan answer, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- answer{panic: fmt.Sprintf("%v\n%s", p, firstFrames(debug.Stack()))}
			}
		}()
		v, err := ev(c.Expr, c.Input, c.Undefined, c.Bindings)
		done <- answer{v: v, err: err}
	}()
	timer := time.NewTimer(budget)
	defer timer.Stop()
	select {
	case a := <-done:
		if a.panic != "" {
			return Outcome{Panicked, a.panic}
		}
		return Judge(c, a.v, a.err)
	case <-timer.C:
		return Outcome{TimedOut, budget.String()}
	}
}

// Judge compares an evaluation's answer with what the case expects.
func Judge(c Case, v any, err error) Outcome {
	switch {
	case c.ExpectsError():
		if err == nil || errors.Is(err, ErrUndefined) {
			return Outcome{Fail, fmt.Sprintf("want error %s, got %s", c.Code, short(v, err))}
		}
		if strings.Contains(err.Error(), c.Code) {
			return Outcome{Pass, ""}
		}
		return Outcome{PassLenient, fmt.Sprintf("want %s, got %q", c.Code, clip(err.Error()))}
	case c.UndefinedResult:
		if errors.Is(err, ErrUndefined) {
			return Outcome{Pass, ""}
		}
		if err != nil {
			return Outcome{Errored, clip(err.Error())}
		}
		return Outcome{Fail, "want undefined, got " + short(v, nil)}
	default:
		if errors.Is(err, ErrUndefined) {
			return Outcome{Fail, "want " + short(c.Result, nil) + ", got undefined"}
		}
		if err != nil {
			return Outcome{Errored, clip(err.Error())}
		}
		if Equal(v, c.Result, c.Unordered) {
			return Outcome{Pass, ""}
		}
		return Outcome{Fail, "want " + short(c.Result, nil) + ", got " + short(v, nil)}
	}
}

func short(v any, err error) string {
	if err != nil {
		return clip(err.Error())
	}
	return clip(fmt.Sprintf("%v", v))
}

func clip(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

// firstFrames keeps the panicking frames of a stack, enough to name the function that panicked.
func firstFrames(stack []byte) string {
	lines := strings.Split(string(stack), "\n")
	var keep []string
	for i := 0; i < len(lines) && len(keep) < 6; i++ {
		if strings.Contains(lines[i], "panic(") {
			keep = keep[:0]
			continue
		}
		if strings.HasPrefix(lines[i], "\t") || strings.HasPrefix(lines[i], "goroutine") {
			continue
		}
		keep = append(keep, strings.TrimSpace(lines[i]))
	}
	return strings.Join(keep, " < ")
}

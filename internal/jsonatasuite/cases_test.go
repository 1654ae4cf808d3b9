package jsonatasuite

import (
	"errors"
	"testing"
	"time"
)

const suiteDir = "../asl/testdata/jsonata-suite"

func TestLoadReadsEveryCaseOfThePinnedSuite(t *testing.T) {
	cases, err := Load(suiteDir)
	if err != nil {
		t.Fatal(err)
	}
	applicable, expectError := 0, 0
	for _, c := range cases {
		if c.Applicable() {
			applicable++
		}
		if c.ExpectsError() {
			expectError++
		}
	}
	// The counts of jsonata-js v2.0.6's test/test-suite; docs/design.md quotes them.
	if len(cases) != 1625 || applicable != 1614 || expectError != 284 {
		t.Fatalf("cases %d, applicable %d, expecting an error %d", len(cases), applicable, expectError)
	}
}

func TestJudge(t *testing.T) {
	num := Case{Result: 2.0, HasResult: true}
	code := Case{Code: "T2001"}
	tests := []struct {
		name string
		c    Case
		v    any
		err  error
		want Status
	}{
		{"an equal number passes", num, 2, nil, Pass},
		{"a different number fails", num, 3, nil, Fail},
		{"an error where a result is expected is an error", num, nil, errors.New("boom"), Errored},
		{"undefined where a result is expected fails", num, nil, ErrUndefined, Fail},
		{"an error naming the expected code passes", code, nil, errors.New("T2001: not a number"), Pass},
		{"an error with another code passes leniently", code, nil, errors.New("left side must be a number"), PassLenient},
		{"a result where an error is expected fails", code, 1.0, nil, Fail},
		{"undefined where an error is expected fails", code, nil, ErrUndefined, Fail},
		{"undefined where undefined is expected passes", Case{UndefinedResult: true}, nil, ErrUndefined, Pass},
		{"null where undefined is expected fails", Case{UndefinedResult: true}, nil, nil, Fail},
		{"an unordered array in another order passes",
			Case{Result: []any{"a", "b"}, HasResult: true, Unordered: true}, []string{"b", "a"}, nil, Pass},
		{"an ordered array in another order fails",
			Case{Result: []any{"a", "b"}, HasResult: true}, []string{"b", "a"}, nil, Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Judge(tt.c, tt.v, tt.err); got.Status != tt.want {
				t.Fatalf("got %+v, want %s", got, tt.want)
			}
		})
	}
}

func TestRunCaseSurvivesPanicsAndLoops(t *testing.T) {
	c := Case{Result: 1.0, HasResult: true}
	panics := func(string, any, bool, map[string]any) (any, error) { panic("index out of range") }
	if got := RunCase(panics, c, time.Second); got.Status != Panicked {
		t.Fatalf("panic: got %+v", got)
	}
	stop := make(chan struct{})
	defer close(stop)
	loops := func(string, any, bool, map[string]any) (any, error) { <-stop; return nil, nil }
	if got := RunCase(loops, c, 10*time.Millisecond); got.Status != TimedOut {
		t.Fatalf("loop: got %+v", got)
	}
}

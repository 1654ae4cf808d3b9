package asl

import "testing"

// BenchmarkJSONata10States is BenchmarkInterpreter's machine written in JSONata, with an Assign
// on each Pass state (testdata/bench-10-states-jsonata.json), against the same baseline:
// aws-local-stepfunctions running the JSONPath machine (it has no JSONata).
func BenchmarkJSONata10States(b *testing.B) {
	benchTenStates(b, "testdata/bench-10-states-jsonata.json", map[string]any{"n": 5.0, "last": 4.0})
}

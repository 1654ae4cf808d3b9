// Package jsonatasuite measures JSONata implementations against the official JSONata test suite
// (a pinned copy of jsonata-js's test/test-suite under internal/asl/testdata/jsonata-suite) and on
// the expressions Step Functions users write. It is a measurement, not a dependency of the engine.
// Our own internal/jsonata is always a candidate; the external ones (blues/jsonata-go,
// xiatechs/jsonata-go) are compiled only into the test binary built with the jsonatasuite tag.
//
//	go test -tags jsonatasuite -run TestSuite -v ./internal/jsonatasuite
//	go test -tags jsonatasuite -run '^$' -bench . -benchmem ./internal/jsonatasuite
package jsonatasuite

// Package jsonata is Millrace's own implementation of the JSONata 2.0.6 query and transformation
// language (docs.jsonata.org), the language of Step Functions' JSONata states. It is written from
// the language's documentation and held to the official test suite pinned under
// internal/asl/testdata/jsonata-suite.
//
// Tenants write these expressions and the shared manager evaluates them, so every evaluation is
// bounded: a step budget, a maximum nesting depth (checked before recursing, so no expression can
// overflow the Go stack), a maximum size for the strings, arrays and objects it builds, and the
// caller's context. A compiled Expression is immutable; bindings live in one evaluation, so one
// Expression serves concurrent evaluations.
package jsonata

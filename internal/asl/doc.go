// Package asl is Millrace's Amazon States Language engine: it parses and validates state machine
// definitions (reporting the JSON path of every offending field), evaluates paths, payload
// templates, intrinsic functions and Choice rules, and runs a machine as a pure interpreter —
// (definition, run state, event) -> (new run state, effects) — shared by the Workflow controller
// and the millrace CLI.
//
// Documents are the values encoding/json produces for `any`: map[string]any, []any, string,
// float64 (numbers), bool and nil.
package asl

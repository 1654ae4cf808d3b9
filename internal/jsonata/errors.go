package jsonata

import (
	"errors"
	"fmt"
)

// Error is a JSONata error: its code (S0xxx syntax, T0xxx/T1xxx/T2xxx type, D1xxx-D3xxx dynamic,
// U1xxx limits), the character offset in the expression where it was found, and a message.
type Error struct {
	Code     string
	Position int
	Token    string
	Message  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s at position %d: %s", e.Code, e.Position, e.Message)
}

// Codes of the limits an evaluation can exceed. JSONata defines U1001 for a stack overflow; the
// others are ours, in the same family.
const (
	CodeDepth     = "U1001"
	CodeSteps     = "U1002"
	CodeSize      = "U1003"
	CodeCancelled = "U1004"
	// CodeInternal: the evaluator failed (a bug); the evaluation fails instead of the process.
	CodeInternal = "U1005"
)

// IsLimit reports whether err is an evaluation that exceeded one of its Options or was cancelled.
func IsLimit(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case CodeDepth, CodeSteps, CodeSize, CodeCancelled:
		return true
	}
	return false
}

func newErr(code string, pos int, format string, args ...any) *Error {
	return &Error{Code: code, Position: pos, Message: fmt.Sprintf(format, args...)}
}

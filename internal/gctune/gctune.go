// Package gctune sets the Go garbage collector of Millrace's data-path processes (the dispatcher
// sidecar, the gateway). They allocate fast and keep little: with Go's default (GOGC=100) the
// collector runs every few milliseconds and takes a fifth of their CPU. A higher GOGC trades a
// little memory for that CPU, and a soft memory limit under the container's keeps the trade safe:
// near the limit the collector works harder instead of letting the heap grow.
package gctune

import (
	"os"
	"runtime/debug"
)

// Apply sets GC percent and the soft memory limit (bytes), each unless the environment sets it
// (GOGC, GOMEMLIMIT: an operator's choice wins). It returns a function restoring the previous
// settings.
func Apply(gcPercent int, memoryLimit int64) (restore func()) {
	prevGC, prevLimit := -2, int64(-1)
	if os.Getenv("GOGC") == "" {
		prevGC = debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		prevLimit = debug.SetMemoryLimit(memoryLimit)
	}
	return func() {
		if prevGC != -2 {
			debug.SetGCPercent(prevGC)
		}
		if prevLimit >= 0 {
			debug.SetMemoryLimit(prevLimit)
		}
	}
}

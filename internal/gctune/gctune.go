// Package gctune sets the Go garbage collector of Millrace's data-path processes (the dispatcher
// sidecar, the gateway). They allocate fast and keep little: with Go's default (GOGC=100) the
// collector runs every few milliseconds and takes a fifth of their CPU. A higher GOGC trades a
// little memory for that CPU, and a soft memory limit under the container's keeps the trade safe:
// near the limit the collector works harder instead of letting the heap grow.
package gctune

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// Cgroup files holding the container's memory limit (v2, then v1).
var cgroupFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// Apply sets GC percent and the soft memory limit, each unless the environment sets it (GOGC,
// GOMEMLIMIT: an operator's choice wins). The limit is three quarters of the container's memory
// limit, or fallback (bytes) outside a container with one. It returns a function restoring the
// previous settings.
func Apply(gcPercent int, fallback int64) (restore func()) {
	prevGC, prevLimit := -2, int64(-1)
	if os.Getenv("GOGC") == "" {
		prevGC = debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		var contents []string
		for _, f := range cgroupFiles {
			raw, _ := os.ReadFile(f)
			contents = append(contents, string(raw))
		}
		prevLimit = debug.SetMemoryLimit(Limit(contents, fallback))
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

// unlimited is where cgroup v1 reports "no limit" (a page-rounded MaxInt64).
const unlimited = int64(1) << 60

// Limit is the soft limit for the cgroup files' contents (the first with a limit wins): three
// quarters of the container's limit, else fallback.
func Limit(cgroupContents []string, fallback int64) int64 {
	for _, c := range cgroupContents {
		n, err := strconv.ParseInt(strings.TrimSpace(c), 10, 64)
		if err == nil && n > 0 && n < unlimited {
			return n / 4 * 3
		}
	}
	return fallback
}

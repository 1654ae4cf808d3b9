package gctune

import (
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	gc, limit := debug.SetGCPercent(-1), debug.SetMemoryLimit(-1)
	debug.SetGCPercent(gc)
	restore := Apply(400, 96<<20)
	if got := debug.SetGCPercent(400); got != 400 {
		t.Errorf("GC percent %d, want 400", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 96<<20 {
		t.Errorf("memory limit %d, want %d", got, 96<<20)
	}
	restore()
	if got := debug.SetGCPercent(gc); got != gc {
		t.Errorf("restored GC percent %d, want %d", got, gc)
	}
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Errorf("restored memory limit %d, want %d", got, limit)
	}

	// The environment wins.
	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "1GiB")
	before := debug.SetGCPercent(gc)
	restore = Apply(400, 96<<20)
	if got := debug.SetGCPercent(before); got != before {
		t.Errorf("with GOGC set, GC percent changed to %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != limit {
		t.Errorf("with GOMEMLIMIT set, memory limit changed to %d", got)
	}
	restore()
}

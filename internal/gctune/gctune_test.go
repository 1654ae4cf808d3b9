package gctune

import (
	"runtime/debug"
	"testing"
)

func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		contents []string
		want     int64
	}{
		{"cgroup v2 limit", []string{"134217728\n", ""}, 96 << 20},
		{"cgroup v2 without limit, v1 absent", []string{"max\n", ""}, 7},
		{"cgroup v1 limit", []string{"", "268435456\n"}, 192 << 20},
		{"cgroup v1 without limit", []string{"", "9223372036854771712\n"}, 7},
		{"no cgroup files", []string{"", ""}, 7},
	} {
		if got := Limit(tc.contents, 7); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestApply(t *testing.T) {
	cgroupFiles = nil // this machine's limit must not matter
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

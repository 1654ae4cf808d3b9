package asl

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkLargestStep measures the most CPU time and memory one Step of one run takes with the
// engine's limits, over the fuzz corpus and the attacks of issue 12 (the nested Map, heavy
// payloads and queries): the figures docs/benchmarks.md and docs/security.md quote. Each case runs
// for at most 30 steps (every step after the first few is alike: its budget bounds it).
// `go test ./internal/asl -run '^$' -bench LargestStep -benchtime 1x`
func BenchmarkLargestStep(b *testing.B) {
	cases := measuredCases(b)
	runtime.LockOSThread() // thread CPU time is the step's, whatever else the machine runs
	defer runtime.UnlockOSThread()
	var worst struct {
		cpu            time.Duration
		alloc, live    uint64
		cpuAt, allocAt string
	}
	for range b.N {
		for _, c := range cases {
			m, errs := Parse(c.def)
			var in any
			if len(errs) > 0 || json.Unmarshal(c.input, &in) != nil {
				continue
			}
			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			measure(m, in, func(cpu time.Duration, alloc uint64, live uint64) {
				if cpu > worst.cpu {
					worst.cpu, worst.cpuAt = cpu, c.name
				}
				if alloc > worst.alloc {
					worst.alloc, worst.allocAt = alloc, c.name
				}
				worst.live = max(worst.live, live-min(live, base.HeapAlloc))
			})
		}
	}
	b.ReportMetric(float64(worst.cpu.Microseconds())/1000, "max-step-cpu-ms")
	b.ReportMetric(float64(worst.alloc)/(1<<20), "max-step-alloc-MiB")
	b.ReportMetric(float64(worst.live)/(1<<20), "max-live-MiB")
	b.Logf("%d cases; slowest step in %q, most allocating in %q", len(cases), worst.cpuAt, worst.allocAt)
}

// measure drives a run (see drive) and reports each step's thread CPU time, bytes allocated,
// and the live heap after it (the run's state included).
func measure(m *Machine, input any, each func(cpu time.Duration, alloc, live uint64)) {
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := threadCPU()
	drive(m, input, 30, func(stepStats) {
		cpu := threadCPU() - start
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		alloc := after.TotalAlloc - before.TotalAlloc
		runtime.GC()
		runtime.ReadMemStats(&after)
		each(cpu, alloc, after.HeapAlloc)
		runtime.ReadMemStats(&before)
		start = threadCPU()
	})
}

func threadCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(1, &ru) // RUSAGE_THREAD
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

type measuredCase struct {
	name       string
	def, input []byte
}

// measuredCases are the fuzz seeds, the seed corpus files and the heaviest attacks.
func measuredCases(b *testing.B) []measuredCase {
	var out []measuredCase
	for i, s := range fuzzSeeds() {
		out = append(out, measuredCase{fmt.Sprintf("seed %d", i), s.def, s.input})
	}
	files, _ := filepath.Glob("testdata/fuzz/FuzzRun/*")
	for _, f := range files {
		args, err := readCorpusFile(f)
		if err != nil || len(args) != 2 {
			b.Fatalf("%s: %v", f, err)
		}
		out = append(out, measuredCase{filepath.Base(f), args[0], args[1]})
	}
	nested, rows := nestedMaps(1000, 1000)
	rowsJSON, _ := json.Marshal(rows)
	big := fmt.Sprintf(`{"s":%q,"deep":%s}`, strings.Repeat("x", 200<<10), strings.Repeat("[", 5000)+strings.Repeat("]", 5000))
	loop := func(state string) []byte {
		return []byte(`{"StartAt":"A","States":{"A":{` + state + `,"Next":"B"},"B":{"Type":"Choice","Choices":[{"Variable":"$.stop","IsPresent":true,"Next":"E"}],"Default":"A"},"E":{"Type":"Succeed"}}}`)
	}
	// The heaviest single state the per-state limit allows: intrinsics over the input just under
	// DefaultStepBytes in all.
	fields := map[string]any{}
	for i := range 33 {
		fields[fmt.Sprintf("u%d.$", i)] = "States.ArrayLength(States.ArrayUnique($.list))"
	}
	params, _ := json.Marshal(fields)
	list := make([]any, 60000)
	for i := range list {
		list[i] = float64(i % 7)
	}
	listJSON, _ := json.Marshal(map[string]any{"list": list})
	return append(out,
		measuredCase{"nested Map 1000 x 1000", []byte(nested), rowsJSON},
		measuredCase{"a state of 33 ArrayUnique over 120 KB", loop(`"Type":"Pass","ResultPath":"$.n","Parameters":` + string(params)), listJSON},
		measuredCase{"loop copying 200 KiB", loop(`"Type":"Pass","Parameters":{"s.$":"$.s","deep.$":"$.deep"}`), []byte(big)},
		measuredCase{"loop of descendant queries", loop(`"Type":"Pass","Parameters":{"n.$":"States.ArrayLength($..nothing)"},"ResultPath":"$.n"`), []byte(big)},
		measuredCase{"loop of ArrayUnique and StringSplit", loop(`"Type":"Pass","Parameters":{"u.$":"States.ArrayLength(States.ArrayUnique(States.StringSplit($.s, 'x')))"},"ResultPath":"$.n"`), []byte(big)},
	)
}

// readCorpusFile reads a file of the fuzzer's format: a "go test fuzz v1" line, then one
// []byte("...") per argument.
func readCorpusFile(path string) ([][]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var args [][]byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "[]byte(")
		if !ok {
			continue
		}
		s, err := strconv.Unquote(strings.TrimSuffix(line, ")"))
		if err != nil {
			return nil, err
		}
		args = append(args, []byte(s))
	}
	return args, sc.Err()
}

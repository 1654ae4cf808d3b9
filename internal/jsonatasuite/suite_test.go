//go:build jsonatasuite

package jsonatasuite

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The parent test runs each candidate in child processes (this test binary again, running
// TestWorker), because a candidate can end the process in ways no recover catches: a Go stack
// overflow from unbounded recursion, or running out of the child's memory limit. The child writes
// a line before and after each case; when it dies, the parent records the case that had started as
// Crashed and starts a new child at the next case. A timed-out case makes the child exit too, so
// the evaluation it could not cancel stops burning CPU.
const (
	envCandidate = "JSONATASUITE_CANDIDATE"
	envSet       = "JSONATASUITE_SET"
	envFrom      = "JSONATASUITE_FROM"
	envTo        = "JSONATASUITE_TO"
	envOut       = "JSONATASUITE_OUT"
	// envReport names a file the suite test writes every case's outcome to, as JSON.
	envReport = "JSONATASUITE_REPORT"

	caseBudget  = 5 * time.Second
	childStack  = 256 << 20 // bytes of goroutine stack before Go's fatal "stack overflow"
	childMemory = 3 << 30   // bytes of address space (RLIMIT_AS) a child may map
)

type record struct {
	I      int    `json:"i"`
	Start  bool   `json:"start,omitempty"`
	Status Status `json:"status,omitempty"`
	Detail string `json:"detail,omitempty"`
	Millis int64  `json:"ms,omitempty"`
}

func casesOf(t testing.TB, set string) []Case {
	if set == "hostile" {
		return hostileCases
	}
	cases, err := Load(suiteDir)
	if err != nil {
		t.Fatal(err)
	}
	return cases
}

// TestWorker is the child: it runs cases [from, to) of one set with one candidate.
func TestWorker(t *testing.T) {
	name := os.Getenv(envCandidate)
	if name == "" {
		t.Skip("runs only as the child of TestSuite or TestHostile")
	}
	cand := candidateNamed(name)
	cases := casesOf(t, os.Getenv(envSet))
	from, _ := strconv.Atoi(os.Getenv(envFrom))
	to, _ := strconv.Atoi(os.Getenv(envTo))
	debug.SetMaxStack(childStack)
	if err := syscall.Setrlimit(syscall.RLIMIT_AS, &syscall.Rlimit{Cur: childMemory, Max: childMemory}); err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(os.Getenv(envOut), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	write := func(r record) {
		b, _ := json.Marshal(r)
		if _, err := out.Write(append(b, '\n')); err != nil {
			t.Fatal(err)
		}
	}
	for i := from; i < to && i < len(cases); i++ {
		write(record{I: i, Start: true})
		start := time.Now()
		o := RunCase(cand.eval, cases[i], Budget(cases[i], caseBudget))
		write(record{I: i, Status: o.Status, Detail: o.Detail, Millis: time.Since(start).Milliseconds()})
		if o.Status == TimedOut {
			os.Exit(0)
		}
	}
}

// childResult is what one child process reported, and how it ended.
type childResult struct {
	records []record
	stderr  string
	maxRSS  int64 // KiB
}

func runChild(t testing.TB, cand, set string, from, to int) childResult {
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWorker$", "-test.count=1", "-test.timeout=0")
	cmd.Env = append(os.Environ(), envCandidate+"="+cand, envSet+"="+set, envFrom+"="+strconv.Itoa(from),
		envTo+"="+strconv.Itoa(to), envOut+"="+f.Name(), "GOTRACEBACK=single")
	var stderr bytes.Buffer
	cmd.Stderr, cmd.Stdout = &stderr, &stderr
	_ = cmd.Run() // a crash is data: it shows in the records
	res := childResult{stderr: stderr.String()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.maxRSS = ru.Maxrss
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		res.records = append(res.records, r)
	}
	return res
}

// crashReason is the first line of the child's fatal error ("fatal error: stack overflow", "fatal
// error: out of memory", "runtime: out of memory: ...").
func crashReason(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "fatal error:") || strings.HasPrefix(l, "runtime:") || strings.HasPrefix(l, "panic:") {
			return l
		}
	}
	return "child exited without finishing the case"
}

// runSet runs cases [0, n) of a set with one candidate, restarting children after crashes and
// timeouts, and returns every case's outcome.
func runSet(t testing.TB, cand, set string, n int) []record {
	out := make([]record, n)
	for from := 0; from < n; {
		res := runChild(t, cand, set, from, n)
		next := from
		for _, r := range res.records {
			if r.Start {
				out[r.I] = record{I: r.I, Status: Crashed, Detail: crashReason(res.stderr)}
				next = r.I + 1
				continue
			}
			out[r.I] = r
		}
		if next == from {
			t.Fatalf("%s: the child made no progress at case %d: %s", cand, from, res.stderr)
		}
		from = next
	}
	return out
}

type tally struct {
	cases, pass, lenient, fail, errored, panicked, crashed, timedOut int
	errorCases, errorPass, errorLenient                              int
}

func (s *tally) add(c Case, st Status) {
	s.cases++
	if c.ExpectsError() {
		s.errorCases++
	}
	switch st {
	case Pass:
		s.pass++
		s.lenient++
		if c.ExpectsError() {
			s.errorPass++
			s.errorLenient++
		}
	case PassLenient:
		s.lenient++
		s.errorLenient++
	case Fail:
		s.fail++
	case Errored:
		s.errored++
	case Panicked:
		s.panicked++
	case Crashed:
		s.crashed++
	case TimedOut:
		s.timedOut++
	}
}

func pct(n, of int) float64 { return 100 * float64(n) / float64(of) }

// TestSuite runs every case of the pinned suite against every candidate and logs the counts that
// docs/design.md quotes. It passes whatever the counts are: it measures.
func TestSuite(t *testing.T) {
	if os.Getenv(envCandidate) != "" {
		t.Skip("child")
	}
	cases := casesOf(t, "suite")
	report := map[string][]record{}
	for _, cand := range candidates {
		t.Run(cand.name, func(t *testing.T) {
			start := time.Now()
			recs := runSet(t, cand.name, "suite", len(cases))
			report[cand.name] = recs
			var all, applicable, boxed tally
			groups := map[string]*tally{}
			for i, c := range cases {
				all.add(c, recs[i].Status)
				if !c.Applicable() {
					boxed.add(c, recs[i].Status)
					continue
				}
				applicable.add(c, recs[i].Status)
				if groups[c.Group] == nil {
					groups[c.Group] = &tally{}
				}
				groups[c.Group].add(c, recs[i].Status)
			}
			a := applicable
			t.Logf("%s: %d cases, %d applicable to JSONata 2.0.6 (%d expect an error), in %s",
				cand.name, all.cases, a.cases, a.errorCases, time.Since(start).Round(time.Second))
			t.Logf("  applicable: strict %d passed (%.1f%%), lenient %d passed (%.1f%%); "+
				"failed %d, errored %d, panicked %d, crashed %d, timed out %d",
				a.pass, pct(a.pass, a.cases), a.lenient, pct(a.lenient, a.cases),
				a.fail, a.errored, a.panicked, a.crashed, a.timedOut)
			t.Logf("  error cases: %d raise the expected code, %d raise some error, of %d",
				a.errorPass, a.errorLenient, a.errorCases)
			t.Logf("  time-boxed cases (not applicable): %d passed leniently of %d; failed %d, errored %d, "+
				"panicked %d, crashed %d, timed out %d", boxed.lenient, boxed.cases, boxed.fail,
				boxed.errored, boxed.panicked, boxed.crashed, boxed.timedOut)
			names := make([]string, 0, len(groups))
			for g := range groups {
				names = append(names, g)
			}
			sort.Slice(names, func(i, j int) bool {
				gi, gj := groups[names[i]], groups[names[j]]
				if li, lj := gi.cases-gi.lenient, gj.cases-gj.lenient; li != lj {
					return li > lj
				}
				return names[i] < names[j]
			})
			for _, g := range names[:10] {
				s := groups[g]
				t.Logf("  group %-28s %3d/%3d lenient (fail %d, error %d, panic %d, crash %d, timeout %d)",
					g, s.lenient, s.cases, s.fail, s.errored, s.panicked, s.crashed, s.timedOut)
			}
			for i, c := range cases {
				if st := recs[i].Status; st == Panicked || st == Crashed || st == TimedOut {
					t.Logf("  %s %s: %s [%s]", st, c.Name, clip(c.Expr), clip(recs[i].Detail))
				}
			}
		})
	}
	if path := os.Getenv(envReport); path != "" {
		type row struct {
			Name, Expr string
			Applicable bool
			Outcomes   map[string]record
		}
		rows := make([]row, len(cases))
		for i, c := range cases {
			rows[i] = row{Name: c.Name, Expr: c.Expr, Applicable: c.Applicable(), Outcomes: map[string]record{}}
			for name, recs := range report {
				rows[i].Outcomes[name] = recs[i]
			}
		}
		b, _ := json.MarshalIndent(rows, "", " ")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// hostileCases are expressions a tenant could write to exhaust the manager that evaluates them.
// Each runs alone in a child process, so the log shows its time and peak memory.
var hostileCases = []Case{
	{Name: "unbounded non-tail recursion", Expr: "($f := function($n){ $n + $f($n+1) }; $f(0))", Code: "U1001"},
	{Name: "unbounded tail recursion", Expr: "($f := function($n){ $f($n+1) }; $f(0))", Code: "U1001"},
	{Name: "mutual recursion", Expr: "($a := function($n){ $b($n) }; $b := function($n){ $a($n) }; $a(0))", Code: "U1001"},
	{Name: "range of 1e8 items", Expr: "$count([1..100000000])", Code: "D2014"},
	{Name: "range of 1e7 items", Expr: "$count([1..10000000])", Result: 1e7, HasResult: true},
	{Name: "1e4 ranges of 1e4 items", Expr: "$count([1..10000].[1..10000])", Result: 1e8, HasResult: true},
	{Name: "string doubling", Expr: "$length($reduce([1..40], function($s, $i){ $s & $s }, 'x'))", Code: "budget"},
	{Name: "pad to 1e9", Expr: "$length($pad('x', 1000000000))", Result: 1e9, HasResult: true},
	{Name: "catastrophic regex", Expr: "$contains('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!', /^(a+)+$/)", Result: false, HasResult: true},
	{Name: "10000 nested parentheses", Expr: strings.Repeat("(", 10000) + "1" + strings.Repeat(")", 10000), Result: 1.0, HasResult: true},
	{Name: "1e6 nested parentheses", Expr: strings.Repeat("(", 1000000) + "1" + strings.Repeat(")", 1000000), Result: 1.0, HasResult: true},
	{Name: "1e3 sums of 1e7 items (CPU)", Expr: "$sum([1..1000].($reduce([1..10000000], function($a, $v){ $a + $v })))", Code: "budget"},
	{Name: "sort of 1e6 items", Expr: "$count($sort([1..1000000], function($a, $b){ $a < $b }))", Result: 1e6, HasResult: true},
}

// TestHostile runs each hostile expression in its own child and logs the outcome, the time and
// the child's peak resident memory.
func TestHostile(t *testing.T) {
	if os.Getenv(envCandidate) != "" {
		t.Skip("child")
	}
	for _, cand := range candidates {
		for i, c := range hostileCases {
			start := time.Now()
			res := runChild(t, cand.name, "hostile", i, i+1)
			r := record{Status: Crashed, Detail: crashReason(res.stderr)}
			if len(res.records) == 2 {
				r = res.records[1]
			}
			t.Logf("%-16s %-30s %-8s %6.1fs %5d MiB  %s", cand.name, c.Name, r.Status,
				time.Since(start).Seconds(), res.maxRSS/1024, clip(r.Detail))
		}
	}
}

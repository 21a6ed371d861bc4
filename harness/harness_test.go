package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/internal/runtest"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/sandbox"
	"github.com/kanbanchaos/kanbanchaos/schedule"
	"golang.org/x/sync/errgroup"
)

func TestMain(m *testing.M) { runtest.Main(m, "harness") }

func build(t testing.TB, scenario, variant string, seed uint64) schedule.Schedule {
	t.Helper()
	return runtest.Build(t, scenario, variant, seed)
}

// TestIssue30896 is the reproducer itself: hermes-0.14 breaks the spawn
// limit, with the evidence counted from the ledger; the run's files are kept.
func TestIssue30896(t *testing.T) {
	t.Parallel()
	arts := t.TempDir()
	s := build(t, "issue-30896", "hermes-0.15", 7)
	res, err := Run(context.Background(), s, Options{ArtifactsDir: arts, Replay: "kanbanchaos run issue-30896 --seed 7"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict.Status != oracle.Fail || !slices.Contains(res.Verdict.Failed(), oracle.Spawns) {
		t.Fatalf("verdict %s %v, want fail with %s", res.Verdict.Status, res.Verdict.Failed(), oracle.Spawns)
	}
	v := res.Verdict.Violations[slices.IndexFunc(res.Verdict.Violations, func(v oracle.Violation) bool { return v.Invariant == oracle.Spawns })]
	if v.Task != s.Tasks[0].ID || v.Evidence["limit"] != 2 || v.Evidence["spawns"].(int) <= 2 || v.AtMs <= 0 {
		t.Fatalf("evidence must name the task, the ledger count and the limit: %+v", v)
	}
	// The store: <time>-<scenario>-<seed>/, latest linking to it, one
	// index line naming it.
	want := res.Artifacts
	if ok, _ := regexp.MatchString(`^\d{8}-\d{6}-issue-30896-7$`, filepath.Base(want)); !ok || filepath.Dir(want) != arts {
		t.Fatalf("artifacts in %q, want %s/<time>-issue-30896-7", want, arts)
	}
	if latest, err := filepath.EvalSymlinks(filepath.Join(arts, "latest")); err != nil || latest != want {
		t.Errorf("latest → %q, %v; want %s", latest, err, want)
	}
	index, err := os.ReadFile(filepath.Join(arts, StoreIndex))
	var e StoreEntry
	if err != nil || json.Unmarshal(index, &e) != nil || e.Dir != filepath.Base(want) || e.Status != "fail" || e.Seed != 7 || !slices.Contains(e.Failed, oracle.Spawns) {
		t.Errorf("index: %s %v; want one line naming the run, its status and failed invariants", index, err)
	}
	for _, f := range []string{"home/kanban.db", "ledger.jsonl", "trace.jsonl", "verdict.json", "schedule.json", "repro.sh", "worker.json"} {
		if _, err := os.Stat(filepath.Join(want, f)); err != nil {
			t.Errorf("artifact %s: %v", f, err)
		}
	}
	// Self-contained: HERMES_BIN is the binary, not a link into a cache.
	if fi, err := os.Lstat(filepath.Join(want, "bin", "hermes")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("bin/hermes in the kept run: %v, %v; want a regular file", fi, err)
	}
	h, err := ledger.Read(filepath.Join(want, "ledger.jsonl"))
	if err != nil || len(h.Starts()[s.Tasks[0].ID]) != v.Evidence["spawns"].(int) {
		t.Fatalf("the kept ledger must hold the counted starts: %v %v", err, len(h.Starts()[s.Tasks[0].ID]))
	}
	assertNoneAlive(t, h)
}

// TestFixedHoldsSeeds1To20: the fixed variant passes issue-30896 for seeds
// 1–20, and removes the sandboxes of passing runs.
func TestFixedHoldsSeeds1To20(t *testing.T) {
	runtest.Long(t, "20 runs of 4 s")
	// The runs are light on CPU (the ticks sleep), so five at a time keep the
	// test short without starving the workers.
	var g errgroup.Group
	g.SetLimit(5)
	for seed := uint64(1); seed <= 20; seed++ {
		g.Go(func() error {
			res, err := Run(context.Background(), build(t, "issue-30896", "fixed", seed), Options{})
			switch {
			case err != nil:
				return fmt.Errorf("seed %d: %w", seed, err)
			case res.Verdict.Status != oracle.Pass:
				return fmt.Errorf("seed %d: %s: %+v %v (kept in %s)", seed, res.Verdict.Status, res.Verdict.Violations, res.Verdict.Unknowns, res.Artifacts)
			case res.Artifacts != "":
				return fmt.Errorf("seed %d: a passing run keeps nothing unless asked, got %s", seed, res.Artifacts)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestIssue30417: one dispatcher; hermes-0.14 breaks "breaker holds", fixed
// keeps it.
func TestIssue30417(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		variant string
		want    oracle.Status
	}{{"hermes-0.15", oracle.Fail}, {"fixed", oracle.Pass}} {
		t.Run(c.variant, func(t *testing.T) {
			t.Parallel()
			res, err := Run(context.Background(), build(t, "issue-30417", c.variant, 3), Options{ArtifactsDir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			if res.Verdict.Status != c.want {
				t.Fatalf("%s: %s %+v", c.variant, res.Verdict.Status, res.Verdict.Violations)
			}
			if c.want == oracle.Fail && !slices.Contains(res.Verdict.Failed(), oracle.BreakerHolds) {
				t.Fatalf("want %s among %v", oracle.BreakerHolds, res.Verdict.Failed())
			}
		})
	}
}

// TestNothingOutlivesTheRun: a run ended early by its caller's deadline,
// with workers that hang until killed, leaves no process alive, and its
// verdict says it could not decide.
//
// Not parallel: both hanging workers must start within the 700 ms
// deadline, which the parallel tests' hundreds of processes can stretch.
func TestNothingOutlivesTheRun(t *testing.T) {
	checkInterruptedRun(t, context.Background(), "", 700*time.Millisecond)
}

// checkInterruptedRun runs hanging workers on engine ("" = this one) and
// cuts the run off after a while: the verdict must be unknown, both workers
// must have started, and none may be alive afterwards.
func checkInterruptedRun(t *testing.T, ctx context.Context, engine string, after time.Duration) {
	t.Helper()
	s := build(t, "issue-30896", "hermes-0.14", 11)
	s.Engine = engine
	s.Profiles[0].Worker = schedule.Behaviour{Mode: schedule.ModeHang}
	s.Tasks = append(s.Tasks, schedule.Task{ID: "t_0000beef", Title: "second", Assignee: s.Profiles[0].Name})
	s.DurationMs, s.QuietMs = 60_000, 0
	ctx, cancel := context.WithTimeout(ctx, after)
	defer cancel()
	res, err := Run(ctx, s, Options{ArtifactsDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res.Verdict.Status != oracle.Unknown {
		t.Fatalf("an interrupted run must be unknown, got %s %+v", res.Verdict.Status, res.Verdict.Violations)
	}
	h, err := ledger.Read(filepath.Join(res.Artifacts, "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Entries) < 2 {
		t.Fatalf("want both hanging workers started, ledger has %d entries", len(h.Entries))
	}
	assertNoneAlive(t, h)
}

// TestPanicKillsWorkers: a panic in the harness's own goroutine still runs
// the deferred KillAll (the panic is injected through the log writer).
func TestPanicKillsWorkers(t *testing.T) {
	t.Parallel()
	s := build(t, "issue-30896", "hermes-0.14", 12)
	s.Profiles[0].Worker = schedule.Behaviour{Mode: schedule.ModeHang}
	s.DurationMs, s.QuietMs = 500, 500
	ledgerDir := make(chan string, 1)
	w := panicWriter{dir: ledgerDir}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("expected the injected panic")
			}
		}()
		Run(context.Background(), s, Options{Log: w})
	}()
	dir := <-ledgerDir
	defer os.RemoveAll(dir)
	h, err := ledger.Read(filepath.Join(dir, "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Entries) == 0 {
		t.Fatal("no worker started before the panic")
	}
	assertNoneAlive(t, h)
}

// panicWriter remembers the sandbox from the first log line and panics in
// the harness's own goroutine when the quiet phase begins, while workers hang.
type panicWriter struct{ dir chan string }

func (p panicWriter) Write(b []byte) (int, error) {
	line := string(b)
	if dir, ok := cutPrefix(line, "sandbox "); ok {
		p.dir <- dir
		return len(b), nil
	}
	if _, ok := cutPrefix(line, "quiet phase"); ok {
		panic("injected: " + line)
	}
	return len(b), nil
}

func cutPrefix(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || s[:len(prefix)] != prefix {
		return "", false
	}
	rest := s[len(prefix):]
	if n := len(rest); n > 0 && rest[n-1] == '\n' {
		rest = rest[:n-1]
	}
	return rest, true
}

func assertNoneAlive(t *testing.T, h ledger.History) {
	t.Helper()
	for _, e := range h.Entries {
		if e.Kind != ledger.Start {
			continue
		}
		// A zombie is dead: only its parent (or init, for an orphan) has
		// yet to collect its status.
		if dispatcher.Alive(e.PID) {
			t.Errorf("worker pid %d (task %s run %d) is still alive after the run", e.PID, e.Task, e.Run)
		}
	}
}

// assertSandboxEmpty: no process of the run kept in dir — an external
// subject's orphaned workers included — survived it.
func assertSandboxEmpty(t *testing.T, dir string) {
	t.Helper()
	if left, _ := (sandbox.Dir{Root: dir}).Scan(); len(left) > 0 {
		t.Fatalf("processes %v of the subject survived the run", left)
	}
}

// TestDispatcherPanicIsAnError: a panic inside a dispatcher goroutine (here
// in the tick callback) becomes an internal error of the run, and the
// workers still die.
func TestDispatcherPanicIsAnError(t *testing.T) {
	t.Parallel()
	s := build(t, "issue-30896", "hermes-0.14", 13)
	s.Profiles[0].Worker = schedule.Behaviour{Mode: schedule.ModeHang}
	s.DurationMs, s.QuietMs = 1000, 0
	ticks := 0
	res, err := Run(context.Background(), s, Options{Keep: true, OnTick: func(tk dispatcher.Tick) {
		if tk.Dispatcher == "d1" {
			if ticks++; ticks == 5 {
				panic("injected in d1")
			}
		}
	}})
	if err == nil || !strings.Contains(err.Error(), "dispatcher d1 panicked: injected in d1") {
		t.Fatalf("want the panic as an error, got %v", err)
	}
	defer os.RemoveAll(res.Artifacts)
	h, err := ledger.Read(filepath.Join(res.Artifacts, "ledger.jsonl"))
	if err != nil || len(h.Entries) == 0 {
		t.Fatalf("ledger: %v, %d entries", err, len(h.Entries))
	}
	assertNoneAlive(t, h)
}

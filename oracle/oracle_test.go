package oracle

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// ---- helpers ----

// openBoard creates a board at a fresh path with a deterministic clock that
// advances one second per reading, starting after 1000.
func openBoard(t *testing.T, o kanban.Options) (*kanban.Board, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "board", "kanban.db")
	b, err := kanban.Connect(context.Background(), path, o)
	if err != nil {
		t.Fatalf("Connect(%s): %v", path, err)
	}
	t.Cleanup(func() { b.Close() })
	clock := 1000.0
	b.SetClock(func() float64 { clock++; return clock })
	return b, path
}

func closeBoard(t *testing.T, b *kanban.Board) {
	t.Helper()
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func create(t *testing.T, b *kanban.Board, id, assignee string) string {
	t.Helper()
	got, err := b.CreateTask(context.Background(), kanban.NewTask{ID: id, Title: "task " + id, Assignee: assignee})
	if err != nil {
		t.Fatalf("CreateTask(%s): %v", id, err)
	}
	return got
}

func claim(t *testing.T, b *kanban.Board, id, lock string) int64 {
	t.Helper()
	run, ok, err := b.Claim(context.Background(), id, lock, 900)
	if err != nil || !ok || run <= 0 {
		t.Fatalf("Claim(%s) = %d, %v, %v; want a run", id, run, ok, err)
	}
	return run
}

func exec(t *testing.T, b *kanban.Board, query string, args ...any) {
	t.Helper()
	if _, err := b.DB().Exec(query, args...); err != nil {
		t.Fatalf("%s %v: %v", query, args, err)
	}
}

func check(t *testing.T, in Input) Verdict {
	t.Helper()
	v, err := Check(context.Background(), in)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return v
}

// violations returns the violations of one invariant (and task, if not "").
func violations(v Verdict, invariant, task string) []Violation {
	var out []Violation
	for _, x := range v.Violations {
		if x.Invariant == invariant && (task == "" || x.Task == task) {
			out = append(out, x)
		}
	}
	return out
}

func one(t *testing.T, v Verdict, invariant, task string) Violation {
	t.Helper()
	got := violations(v, invariant, task)
	if len(got) != 1 {
		t.Fatalf("%d %s violations for %q, want 1; verdict %+v", len(got), invariant, task, v)
	}
	return got[0]
}

func wantStatus(t *testing.T, v Verdict, want Status) {
	t.Helper()
	if v.Status != want {
		t.Fatalf("status %s, want %s; violations %+v unknowns %q", v.Status, want, v.Violations, v.Unknowns)
	}
}

func start(task string, run int64, pid int, mono int64) ledger.Entry {
	return ledger.Entry{Kind: ledger.Start, PID: pid, Task: task, Run: run, Profile: "p", Mono: mono, Wall: 1}
}

func mustBehaviour(t *testing.T, s string) schedule.Behaviour {
	t.Helper()
	b, err := schedule.ParseBehaviour(s)
	if err != nil {
		t.Fatalf("ParseBehaviour(%q): %v", s, err)
	}
	return b
}

// emptyBoard is a closed board that holds the given ready tasks.
func emptyBoard(t *testing.T, assignee string, ids ...string) string {
	t.Helper()
	b, path := openBoard(t, kanban.DefaultOptions())
	for _, id := range ids {
		create(t, b, id, assignee)
	}
	closeBoard(t, b)
	return path
}

// crashLoopBoard is a closed board on which spawnTask (assigned to ghost)
// crashed n times, each failure counted atomically with its reclaim, with
// the breaker tripping (gave_up) at limit: what a correct dispatcher
// leaves after n starts of a crash-at-once worker.
func crashLoopBoard(t *testing.T, n, limit int) string {
	t.Helper()
	ctx := context.Background()
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, spawnTask, "ghost")
	for i := range min(n, limit) {
		run := claim(t, b, spawnTask, "lock-1")
		if err := b.SetWorkerPID(ctx, spawnTask, run, 5000+i); err != nil {
			t.Fatal(err)
		}
		rec, err := b.ReclaimCrashed(ctx, []kanban.Crash{{Task: spawnTask, RunID: run, PID: 5000 + i, Lock: "lock-1",
			Outcome: kanban.OutcomeCrashed, Error: "exit 1", Count: true, Limit: limit}}, true)
		if err != nil || len(rec) != 1 || rec[0].Failure == nil || rec[0].Failure.Tripped != (i+1 == limit) {
			t.Fatalf("crash %d: ReclaimCrashed = %+v, %v", i+1, rec, err)
		}
	}
	closeBoard(t, b)
	return path
}

// reference is what the in-process reference dispatcher can be observed
// doing: everything.
var reference = Observability{Name: "reference", Ticks: true, Commits: true, Errors: true, FDs: true, Alarms: true}

// wantStates checks that every run invariant is in exactly one state, and
// that the not-checked ones are exactly notChecked.
func wantStates(t *testing.T, v Verdict, notChecked ...string) {
	t.Helper()
	var skipped []string
	for _, x := range v.NotChecked {
		skipped = append(skipped, x.Invariant)
		if x.Why == "" {
			t.Errorf("%s not checked without a why", x.Invariant)
		}
		if slices.Contains(v.Checked, x.Invariant) {
			t.Errorf("%s is both checked and not checked", x.Invariant)
		}
	}
	for _, inv := range RunInvariants() {
		if !slices.Contains(v.Checked, inv) && !slices.Contains(skipped, inv) {
			t.Errorf("%s is neither checked nor not checked", inv)
		}
	}
	slices.Sort(skipped)
	want := slices.Sorted(slices.Values(notChecked))
	if !slices.Equal(skipped, want) {
		t.Errorf("not checked %q, want %q (%+v)", skipped, want, v.NotChecked)
	}
}

// ---- pass ----

func TestHealthyBoardPasses(t *testing.T) {
	ctx := context.Background()
	b, path := openBoard(t, kanban.DefaultOptions())
	const done, crashed, idle = "t_000000a1", "t_000000b2", "t_000000c3"
	create(t, b, done, "coder")
	if _, err := b.CreateTask(ctx, kanban.NewTask{ID: crashed, Title: "crashes", Assignee: "ghost", MaxRetries: 1}); err != nil {
		t.Fatal(err)
	}
	create(t, b, idle, "coder")

	r1 := claim(t, b, done, "lock-1")
	if err := b.SetWorkerPID(ctx, done, r1, 4001); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(ctx, done, r1, "lock-1", 900); err != nil {
		t.Fatal(err)
	}
	if err := b.Complete(ctx, done, r1, "ok"); err != nil {
		t.Fatal(err)
	}
	r2 := claim(t, b, crashed, "lock-2")
	if err := b.SetWorkerPID(ctx, crashed, r2, 4002); err != nil {
		t.Fatal(err)
	}
	rec, err := b.ReclaimCrashed(ctx, []kanban.Crash{{Task: crashed, RunID: r2, PID: 4002, Lock: "lock-2",
		Outcome: kanban.OutcomeCrashed, Error: "exit 1", Count: true}}, true)
	if err != nil || len(rec) != 1 || rec[0].Failure == nil || !rec[0].Failure.Tripped {
		t.Fatalf("ReclaimCrashed = %+v, %v; want the breaker tripped at max_retries 1", rec, err)
	}
	closeBoard(t, b)

	s := schedule.Schedule{
		Dispatchers: 1,
		Profiles:    []schedule.Profile{{Name: "coder", Worker: mustBehaviour(t, "complete")}, {Name: "ghost", Worker: mustBehaviour(t, "exit-now:1")}},
		Tasks:       []schedule.Task{{ID: done, Assignee: "coder"}, {ID: crashed, Assignee: "ghost", MaxRetries: 1}, {ID: idle, Assignee: "coder"}},
	}
	h := ledger.History{Entries: []ledger.Entry{
		{Kind: ledger.Commit, Who: "d1", Op: "claim", Task: done, Run: r1, Mono: 1e9 + 5e5},
		start(done, r1, 4001, 1e9+1e6),
		{Kind: ledger.Commit, Who: "d1", Op: "claim", Task: crashed, Run: r2, Mono: 1e9 + 15e5},
		start(crashed, r2, 4002, 1e9+2e6),
	}}
	v := check(t, Input{DBPath: path, Schedule: s, RunStartMono: 1e9, RunStartWall: 1000, Subject: reference, Ticks: 5, Ledger: h})
	wantStatus(t, v, Pass)
	if len(v.Violations) != 0 || len(v.Unknowns) != 0 {
		t.Fatalf("violations %+v unknowns %q, want none", v.Violations, v.Unknowns)
	}
	want := []string{Integrity, Spawns, BreakerHolds, RunBookkeeping, NoLostRuns, NoLostWrites, SQLiteErrors, Sidecars, DispatcherProgress}
	got := slices.Clone(v.Checked)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("Checked = %q, want every invariant that applies %q", v.Checked, want)
	}
	if held := v.Held(); len(held) != len(v.Checked) {
		t.Errorf("Held = %q, want all of Checked %q on a pass", held, v.Checked)
	}
	// What does not apply to this schedule is listed, with why.
	wantStates(t, v, RateLimit, ProtocolBudget, BoardRouting, NoSilentRecreation, OneWriterPerTick, AssigneeSurfaced, NoFalseAlarm, NoSurvivors)
	if v.Subject != reference {
		t.Errorf("Subject = %+v, want the input's", v.Subject)
	}
	if v.Spawns[done] != 1 || v.Spawns[crashed] != 1 || len(v.Spawns) != 2 {
		t.Errorf("Spawns = %v, want 1 each for %s and %s", v.Spawns, done, crashed)
	}
	if v.FirstViolationMs() != -1 || len(v.Failed()) != 0 {
		t.Errorf("FirstViolationMs = %v, Failed = %q on a pass", v.FirstViolationMs(), v.Failed())
	}

	// The same run by a subject that records nothing of its own: the
	// invariants that need it are not checked, never held.
	v = check(t, Input{DBPath: path, Schedule: s, RunStartMono: 1e9, RunStartWall: 1000, Subject: Observability{Name: "exec:sleep 1000"},
		Ledger: ledger.History{Entries: []ledger.Entry{start(done, r1, 4001, 1e9+1e6), start(crashed, r2, 4002, 1e9+2e6)}}})
	wantStatus(t, v, Pass)
	wantStates(t, v, RateLimit, ProtocolBudget, BoardRouting, NoSilentRecreation, OneWriterPerTick, AssigneeSurfaced, NoFalseAlarm, NoSurvivors,
		NoLostWrites, SQLiteErrors, Sidecars, DispatcherProgress)
	for _, x := range v.NotChecked {
		if x.Invariant == NoLostWrites && x.Why != "the subject (exec:sleep 1000) records none of its own commits: only the workers' 0 acknowledged commits were checked" {
			t.Errorf("no-lost-writes why = %q", x.Why)
		}
	}
}

// ---- spawns ----

const spawnTask = "t_0000f00d"

func spawnSchedule(t *testing.T, worker string) schedule.Schedule {
	return schedule.Schedule{
		Profiles: []schedule.Profile{{Name: "ghost", Worker: mustBehaviour(t, worker)}},
		Tasks:    []schedule.Task{{ID: spawnTask, Title: "misrouted", Assignee: "ghost"}},
	}
}

// spawnLedger has n starts of spawnTask at +10ms, +20ms, +35.5ms, +50ms …
// after runStart; run 0, so no-lost-runs does not look at them.
func spawnLedger(n int, runStart int64) ledger.History {
	offsets := []int64{10_000_000, 20_000_000, 35_500_000, 50_000_000, 60_000_000, 70_000_000}
	var h ledger.History
	for i := range n {
		h.Entries = append(h.Entries, start(spawnTask, 0, 5000+i, runStart+offsets[i]))
	}
	return h
}

func TestSpawnsOverDefaultLimitFail(t *testing.T) {
	path := emptyBoard(t, "ghost", spawnTask)
	const runStart = int64(7_000_000_000)
	v := check(t, Input{DBPath: path, Schedule: spawnSchedule(t, "exit-now:1"), Ledger: spawnLedger(3, runStart), RunStartMono: runStart})
	wantStatus(t, v, Fail)
	x := one(t, v, Spawns, spawnTask)
	if x.Evidence["spawns"] != 3 || x.Evidence["limit"] != 2 || x.Evidence["limit_source"] != "default" {
		t.Errorf("evidence %v, want spawns=3 limit=2 limit_source=default", x.Evidence)
	}
	if x.AtMs != 35.5 {
		t.Errorf("AtMs = %v, want 35.5 (the third start)", x.AtMs)
	}
	if got := v.FirstViolationMs(); got != 35.5 {
		t.Errorf("FirstViolationMs = %v, want 35.5", got)
	}
	if times, _ := x.Evidence["start_ms"].([]float64); !slices.Equal(times, []float64{10, 20, 35.5}) {
		t.Errorf("start_ms = %v, want [10 20 35.5]", x.Evidence["start_ms"])
	}
	if x.Evidence["worker"] != "exit-now:1" {
		t.Errorf("worker evidence %v, want exit-now:1", x.Evidence["worker"])
	}
	if !strings.Contains(x.Message, "3 worker starts") || !strings.Contains(x.Message, "limit 2") {
		t.Errorf("message %q does not give the count and limit", x.Message)
	}
	if v.Spawns[spawnTask] != 3 {
		t.Errorf("Spawns = %v, want 3", v.Spawns)
	}
	if !slices.Equal(v.Failed(), []string{Spawns}) {
		t.Errorf("Failed = %q, want only spawns", v.Failed())
	}
}

func TestSpawnsAtLimitPass(t *testing.T) {
	path := crashLoopBoard(t, 2, 2)
	v := check(t, Input{DBPath: path, Schedule: spawnSchedule(t, "exit-now:1"), Ledger: spawnLedger(2, 1e9), RunStartMono: 1e9})
	wantStatus(t, v, Pass)
	if !slices.Contains(v.Held(), Spawns) || !slices.Contains(v.Held(), BreakerHolds) {
		t.Errorf("Held = %q, want spawns and breaker-holds: the task started its limit of times and the breaker tripped", v.Held())
	}
}

// Below its limit "starts ≤ limit" holds for any dispatcher: spawns is not
// checked, and a task that never got to its breaker decision leaves the run
// unknown.
func TestSpawnsBelowLimitIsNotChecked(t *testing.T) {
	path := crashLoopBoard(t, 1, 2)
	v := check(t, Input{DBPath: path, Schedule: spawnSchedule(t, "exit-now:1"), Ledger: spawnLedger(1, 1e9), RunStartMono: 1e9})
	wantStatus(t, v, Unknown)
	if slices.Contains(v.Checked, Spawns) || slices.Contains(v.Checked, BreakerHolds) {
		t.Errorf("Checked = %q: spawns or breaker-holds held below the limit", v.Checked)
	}
	i := slices.IndexFunc(v.NotChecked, func(x Skip) bool { return x.Invariant == Spawns })
	if i < 0 || !strings.Contains(v.NotChecked[i].Why, "closest: t_0000f00d, 1 of 2") {
		t.Errorf("NotChecked = %+v, want spawns with the closest task", v.NotChecked)
	}
	if len(v.Unknowns) != 1 || !strings.Contains(v.Unknowns[0], "no breaker decision was ever reached: no gave_up for any of the 1 task(s) whose worker fails (closest: t_0000f00d, worker exit-now:1, 1 of its limit 2 worker starts)") {
		t.Errorf("Unknowns = %q, want the missing breaker decision", v.Unknowns)
	}
}

func TestSpawnsConfiguredFailureLimit(t *testing.T) {
	path := crashLoopBoard(t, 4, 4)
	s := spawnSchedule(t, "exit-now:1")
	s.FailureLimit = 4
	h := spawnLedger(4, 1e9)
	for i := range h.Entries {
		h.Entries[i].Run = int64(i + 1) // the board's runs 1..4: the ledger covers its spawns
	}
	v := check(t, Input{DBPath: path, Schedule: s, Ledger: h, RunStartMono: 1e9})
	wantStatus(t, v, Pass)

	v = check(t, Input{DBPath: path, Schedule: s, Ledger: spawnLedger(5, 1e9), RunStartMono: 1e9})
	x := one(t, v, Spawns, spawnTask)
	if x.Evidence["limit"] != 4 || x.Evidence["limit_source"] != "configured failure_limit" || x.AtMs != 60 {
		t.Errorf("5 starts with failure_limit 4: evidence %v at %v, want limit 4 (configured failure_limit) at 60 (the fifth start)", x.Evidence, x.AtMs)
	}
}

func TestSpawnsTaskMaxRetries(t *testing.T) {
	path := emptyBoard(t, "ghost", spawnTask)
	s := spawnSchedule(t, "exit-now:1")
	s.FailureLimit = 4 // max_retries wins over the configured limit
	s.Tasks[0].MaxRetries = 1
	v := check(t, Input{DBPath: path, Schedule: s, Ledger: spawnLedger(2, 1e9), RunStartMono: 1e9})
	wantStatus(t, v, Fail)
	x := one(t, v, Spawns, spawnTask)
	if x.Evidence["limit"] != 1 || x.Evidence["limit_source"] != "task max_retries" || x.Evidence["spawns"] != 2 {
		t.Errorf("evidence %v, want spawns=2 limit=1 limit_source=task max_retries", x.Evidence)
	}
	if x.AtMs != 20 {
		t.Errorf("AtMs = %v, want 20 (the second start)", x.AtMs)
	}
}

func TestSpawnsRateLimitedWorkerIsNeverBounded(t *testing.T) {
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, spawnTask, "ghost")
	run := claim(t, b, spawnTask, "lock-1")
	if err := b.SetWorkerPID(context.Background(), spawnTask, run, 5000); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ReclaimCrashed(context.Background(), []kanban.Crash{{Task: spawnTask, RunID: run, PID: 5000, Lock: "lock-1",
		Outcome: kanban.OutcomeRateLimited, Error: "exit 75"}}, true); err != nil {
		t.Fatal(err)
	}
	closeBoard(t, b)
	v := check(t, Input{DBPath: path, Schedule: spawnSchedule(t, "exit-75"), Ledger: spawnLedger(6, 1e9), RunStartMono: 1e9})
	wantStatus(t, v, Pass)
	if v.Spawns[spawnTask] != 6 {
		t.Errorf("Spawns = %v, want 6 counted even when not bounded", v.Spawns)
	}
}

func TestSpawnsWithoutRunStartAreUntimed(t *testing.T) {
	path := emptyBoard(t, "ghost", spawnTask)
	v := check(t, Input{DBPath: path, Schedule: spawnSchedule(t, "exit-now:1"), Ledger: spawnLedger(3, 1e9)})
	x := one(t, v, Spawns, spawnTask)
	if x.AtMs != 0 || v.FirstViolationMs() != -1 {
		t.Errorf("AtMs = %v, FirstViolationMs = %v; want 0 and -1 without RunStartMono", x.AtMs, v.FirstViolationMs())
	}
}

// ---- integrity ----

func deleteMode() kanban.Options {
	return kanban.Options{JournalMode: "DELETE", Synchronous: "OFF", BusyTimeoutMs: 5000}
}

// bigBoard writes a board of several hundred tasks in DELETE journal mode and
// closes it, so the whole DB is in the one file.
func bigBoard(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	b, path := openBoard(t, deleteMode())
	for i := range 300 {
		id := fmt.Sprintf("t_%08x", i+1)
		if _, err := b.CreateTask(ctx, kanban.NewTask{ID: id, Title: strings.Repeat("title ", 10) + id, Assignee: "coder"}); err != nil {
			t.Fatal(err)
		}
	}
	var mode string
	if err := b.DB().QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || !strings.EqualFold(mode, "delete") {
		t.Fatalf("journal_mode = %q, %v; want delete", mode, err)
	}
	closeBoard(t, b)
	for _, side := range []string{"-wal", "-journal"} {
		if _, err := os.Stat(path + side); err == nil {
			t.Fatalf("%s%s still exists after Close", path, side)
		}
	}
	return path
}

func overwrite(t *testing.T, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestIntegrityIntactBigBoardPasses(t *testing.T) {
	path := bigBoard(t)
	v := check(t, Input{DBPath: path})
	wantStatus(t, v, Pass)
}

func TestIntegrityCorruptPageFails(t *testing.T) {
	path := bigBoard(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < 4096*8 {
		t.Fatalf("board is only %d bytes; want many pages", fi.Size())
	}
	garbage := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(42, 42))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	overwrite(t, path, 4096*3, garbage)

	v := check(t, Input{DBPath: path})
	wantStatus(t, v, Fail)
	got := violations(v, Integrity, "")
	if len(got) == 0 {
		t.Fatalf("no integrity violation: %+v", v)
	}
	if !strings.Contains(got[0].Message, "integrity_check") {
		t.Errorf("first integrity message %q does not come from integrity_check", got[0].Message)
	}
	for _, inv := range []string{BreakerHolds, RunBookkeeping, NoLostRuns} {
		if slices.Contains(v.Checked, inv) {
			t.Errorf("Checked = %q: %s was checked on a corrupt DB", v.Checked, inv)
		}
	}
}

func TestIntegrityGarbageHeaderFails(t *testing.T) {
	path := bigBoard(t)
	overwrite(t, path, 0, []byte(strings.Repeat("this is not sqlite ", 6)[:100]))
	v := check(t, Input{DBPath: path})
	wantStatus(t, v, Fail)
	x := violations(v, Integrity, "")
	if len(x) == 0 {
		t.Fatalf("no integrity violation: %+v", v)
	}
	if !strings.Contains(x[0].Message, "not a database") {
		t.Errorf("message %q, want SQLite's NOTADB (file is not a database)", x[0].Message)
	}
}

func TestMissingDBIsUnknown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nowhere", "kanban.db")
	v := check(t, Input{DBPath: path})
	wantStatus(t, v, Unknown)
	if len(v.Unknowns) != 1 || !strings.Contains(v.Unknowns[0], "board DB not readable") {
		t.Errorf("Unknowns = %q, want one reason naming the unreadable DB", v.Unknowns)
	}
	if slices.Contains(v.Checked, Integrity) {
		t.Errorf("Checked = %q includes integrity for a missing DB", v.Checked)
	}
	if _, err := os.Stat(filepath.Dir(path)); err == nil {
		t.Errorf("the oracle created %s", filepath.Dir(path))
	}
}

func TestMissingDBStillReportsSpawnViolations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanban.db")
	v := check(t, Input{DBPath: path, Schedule: spawnSchedule(t, "exit-now:1"), Ledger: spawnLedger(3, 1e9), RunStartMono: 1e9})
	wantStatus(t, v, Fail)
	one(t, v, Spawns, spawnTask)
	if len(v.Unknowns) == 0 {
		t.Errorf("the unreadable DB is not recorded as an unknown")
	}
}

// ---- breaker ----

// trippedBoard creates one task and trips its breaker with two recorded
// failures (default limit 2).
func trippedBoard(t *testing.T, id string) (*kanban.Board, string) {
	t.Helper()
	ctx := context.Background()
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, id, "ghost")
	for i := 1; i <= 2; i++ {
		f, err := b.RecordTaskFailure(ctx, id, kanban.OutcomeCrashed, "exit 1", 0)
		if err != nil {
			t.Fatal(err)
		}
		if f.Tripped != (i == 2) {
			t.Fatalf("failure %d: Tripped = %v", i, f.Tripped)
		}
	}
	return b, path
}

func eventTime(t *testing.T, b *kanban.Board, id, kind string) float64 {
	t.Helper()
	var at float64
	if err := b.DB().QueryRow(`SELECT created_at FROM task_events WHERE task_id=? AND kind=? ORDER BY id DESC LIMIT 1`, id, kind).Scan(&at); err != nil {
		t.Fatalf("%s event of %s: %v", kind, id, err)
	}
	return at
}

func TestBreakerRepromotedAfterGaveUpFails(t *testing.T) {
	const id = "t_0000beef"
	b, path := trippedBoard(t, id)
	promoted, err := b.RecomputeReady(context.Background(), kanban.RecomputePolicy{RepromoteTripped: true})
	if err != nil || !slices.Equal(promoted, []string{id}) {
		t.Fatalf("RecomputeReady = %v, %v; want %s promoted", promoted, err, id)
	}
	gaveUp, promotedAt := eventTime(t, b, id, kanban.EventGaveUp), eventTime(t, b, id, kanban.EventPromoted)
	closeBoard(t, b)

	v := check(t, Input{DBPath: path, RunStartWall: 1000})
	wantStatus(t, v, Fail)
	x := one(t, v, BreakerHolds, id)
	if x.Evidence["reopened_by"] != kanban.EventPromoted || x.Evidence["in_quiet_phase"] != false {
		t.Errorf("evidence %v, want reopened_by=promoted in_quiet_phase=false", x.Evidence)
	}
	if want := round((promotedAt - 1000) * 1000); x.AtMs != want || x.AtMs <= 0 {
		t.Errorf("AtMs = %v, want %v (the promoted event)", x.AtMs, want)
	}
	if strings.Contains(x.Message, "quiet phase") {
		t.Errorf("message %q mentions the quiet phase without QuietStartWall", x.Message)
	}
	if !strings.Contains(x.Message, "failures=2, limit=2") || !strings.Contains(x.Message, "promoted") {
		t.Errorf("message %q does not carry the gave_up payload", x.Message)
	}
	if gp, _ := x.Evidence["gave_up"].(map[string]any); gp == nil || gp["effective_limit"] != float64(2) {
		t.Errorf("gave_up evidence %v, want the event payload", x.Evidence["gave_up"])
	}

	// The same board with the quiet phase starting between gave_up and promoted.
	quiet := (gaveUp + promotedAt) / 2
	v = check(t, Input{DBPath: path, RunStartWall: 1000, QuietStartWall: quiet})
	x = one(t, v, BreakerHolds, id)
	if !strings.Contains(x.Message, "in the quiet phase") || x.Evidence["in_quiet_phase"] != true {
		t.Errorf("quiet from %v: message %q evidence %v, want the quiet phase noted", quiet, x.Message, x.Evidence)
	}
	// … and starting after it.
	v = check(t, Input{DBPath: path, RunStartWall: 1000, QuietStartWall: promotedAt + 1})
	x = one(t, v, BreakerHolds, id)
	if strings.Contains(x.Message, "quiet phase") || x.Evidence["in_quiet_phase"] != false {
		t.Errorf("quiet after the promotion: message %q evidence %v", x.Message, x.Evidence)
	}
}

// TestCoarseClockTimesAreWindows: a subject that stamps whole seconds
// (Hermes) writes a time up to a second before the event, possibly before
// the run began. The evidence prints the window the event is in, never a
// time before the run ("+-755ms", as 0.19.0's runs read), and times the
// violation at the window's end, so it counts as the first violation.
func TestCoarseClockTimesAreWindows(t *testing.T) {
	const id = "t_0000beef"
	b, path := trippedBoard(t, id)
	if _, err := b.RecomputeReady(context.Background(), kanban.RecomputePolicy{RepromoteTripped: true}); err != nil {
		t.Fatal(err)
	}
	promotedAt := eventTime(t, b, id, kanban.EventPromoted)
	closeBoard(t, b)

	// The run began 0.25 s after the stamp, inside the stamp's second.
	start := promotedAt + 0.25
	v := check(t, Input{DBPath: path, RunStartWall: start, ClockResolution: 1})
	x := one(t, v, BreakerHolds, id)
	if x.AtMs != 750 {
		t.Errorf("AtMs = %v, want 750 (the end of the stamp's second)", x.AtMs)
	}
	// trippedBoard's gave_up is stamped a second before the promotion:
	// its whole second ended before the run began.
	if want := "promoted at +0–750ms after gave_up at -1250 to -250ms (before the run began)"; !strings.Contains(x.Message, want) {
		t.Errorf("message %q, want %q", x.Message, want)
	}
	if first := v.FirstViolationMs(); first != 750 {
		t.Errorf("first violation at %v ms, want 750", first)
	}

	// An exact clock prints the time itself.
	v = check(t, Input{DBPath: path, RunStartWall: promotedAt - 0.5})
	x = one(t, v, BreakerHolds, id)
	if want := "promoted at +500ms after gave_up at -500ms (before the run began)"; !strings.Contains(x.Message, want) {
		t.Errorf("exact clock: message %q, want %q", x.Message, want)
	}
}

func TestBreakerHeldByFixedRecomputePasses(t *testing.T) {
	const id = "t_0000beef"
	b, path := trippedBoard(t, id)
	promoted, err := b.RecomputeReady(context.Background(), kanban.RecomputePolicy{})
	if err != nil || len(promoted) != 0 {
		t.Fatalf("RecomputeReady = %v, %v; want nothing promoted", promoted, err)
	}
	closeBoard(t, b)
	wantStatus(t, check(t, Input{DBPath: path}), Pass)
}

// TestBreakerTrippedAtTheEndIsNotChecked: a trip that came less than two
// ticks before the run stopped was never tested (a tick cut between
// gave_up and recompute_ready promotes nothing): breaker-holds is not
// checked, never held; with the ticks after it, it holds.
func TestBreakerTrippedAtTheEndIsNotChecked(t *testing.T) {
	const id = "t_0000beef"
	b, path := trippedBoard(t, id)
	gaveUp := eventTime(t, b, id, kanban.EventGaveUp)
	closeBoard(t, b)
	s := schedule.Schedule{TickMs: 20, DurationMs: 800, QuietMs: 300,
		Profiles: []schedule.Profile{{Name: "ghost", Worker: mustBehaviour(t, "exit-now:1")}}, Tasks: []schedule.Task{{ID: id, Assignee: "ghost"}}}
	starts := ledger.History{Entries: []ledger.Entry{start(id, 1, 4001, 1e9+1e6), start(id, 2, 4002, 1e9+2e6)}}
	late := check(t, Input{DBPath: path, Schedule: s, Ledger: starts, RunStartWall: gaveUp - 1.090}) // the trip at +1090 ms of 1100
	if slices.Contains(late.Checked, BreakerHolds) || !strings.Contains(whyNotChecked(late, BreakerHolds), "no tick after it tested") {
		t.Errorf("a trip 10 ms before the end: checked %q, why %q", late.Checked, whyNotChecked(late, BreakerHolds))
	}
	// Its danger untested, the run is undecided (this synthetic board's
	// runs are missing, which fails it besides), never a pass.
	if late.Status == Pass || !slices.ContainsFunc(late.Unknowns, func(u string) bool { return strings.Contains(u, "no breaker decision was tested") }) {
		t.Errorf("a trip 10 ms before the end: status %s, unknowns %q", late.Status, late.Unknowns)
	}
	early := check(t, Input{DBPath: path, Schedule: s, Ledger: starts, RunStartWall: gaveUp - 0.5})
	if !slices.Contains(early.Held(), BreakerHolds) || slices.ContainsFunc(early.Unknowns, func(u string) bool { return strings.Contains(u, "breaker") }) {
		t.Errorf("a trip 600 ms before the end: held %q, unknowns %q; want breaker-holds held", early.Held(), early.Unknowns)
	}
	// The stop the harness recorded wins over the schedule's end.
	cut := check(t, Input{DBPath: path, Schedule: s, RunStartWall: gaveUp - 0.5, RunStartMono: 1e9, RunStopMono: 1e9 + 510e6})
	if slices.Contains(cut.Checked, BreakerHolds) {
		t.Errorf("a trip 10 ms before the recorded stop: checked %q", cut.Checked)
	}
}

// reopen puts a tripped task back to ready behind the dispatcher's back
// (no event), optionally recording a reset event first, then claims it.
func reopenAndClaim(t *testing.T, resetKind string) Verdict {
	t.Helper()
	const id = "t_0000cafe"
	b, path := trippedBoard(t, id)
	if resetKind != "" {
		exec(t, b, `INSERT INTO task_events (task_id, kind, payload, created_at) VALUES (?,?,NULL,?)`, id, resetKind, b.Now())
	}
	exec(t, b, `UPDATE tasks SET status='ready', consecutive_failures=0 WHERE id=?`, id)
	run := claim(t, b, id, "lock-again")
	if err := b.Complete(context.Background(), id, run, "done at last"); err != nil {
		t.Fatal(err)
	}
	closeBoard(t, b)
	return check(t, Input{DBPath: path})
}

func TestBreakerClaimedAfterGaveUpFails(t *testing.T) {
	v := reopenAndClaim(t, "")
	wantStatus(t, v, Fail)
	x := one(t, v, BreakerHolds, "t_0000cafe")
	if x.Evidence["reopened_by"] != kanban.EventClaimed {
		t.Errorf("reopened_by = %v, want claimed", x.Evidence["reopened_by"])
	}
}

func TestBreakerResetByCompletedPasses(t *testing.T) {
	v := reopenAndClaim(t, kanban.EventCompleted)
	wantStatus(t, v, Pass)
}

func TestBreakerResetByUnblockedPasses(t *testing.T) {
	v := reopenAndClaim(t, kanban.EventUnblocked)
	wantStatus(t, v, Pass)
}

func TestBreakerOneViolationPerTask(t *testing.T) {
	const id = "t_0000beef"
	b, path := trippedBoard(t, id)
	ctx := context.Background()
	if _, err := b.RecomputeReady(ctx, kanban.RecomputePolicy{RepromoteTripped: true}); err != nil {
		t.Fatal(err)
	}
	claim(t, b, id, "lock-x") // promoted, then claimed: still one violation
	closeBoard(t, b)
	v := check(t, Input{DBPath: path})
	x := one(t, v, BreakerHolds, id)
	if x.Evidence["reopened_by"] != kanban.EventPromoted {
		t.Errorf("reopened_by = %v, want the first reopening (promoted)", x.Evidence["reopened_by"])
	}
}

// ---- run bookkeeping ----

func TestBookkeepingCorruptions(t *testing.T) {
	const id = "t_00000b0b"
	cases := []struct {
		name    string
		corrupt func(t *testing.T, b *kanban.Board, run int64)
		want    string // in the violation message
	}{
		{"two open runs", func(t *testing.T, b *kanban.Board, run int64) {
			exec(t, b, `INSERT INTO task_runs (task_id, status, started_at) VALUES (?, 'running', ?)`, id, b.Now())
		}, "2 open runs"},
		{"current_run_id NULL with an open run", func(t *testing.T, b *kanban.Board, run int64) {
			exec(t, b, `UPDATE tasks SET current_run_id=NULL WHERE id=?`, id)
		}, "current_run_id is NULL but run"},
		{"current_run_id names a closed run", func(t *testing.T, b *kanban.Board, run int64) {
			exec(t, b, `UPDATE task_runs SET status='ended', ended_at=?, outcome='crashed' WHERE id=?`, b.Now(), run)
		}, "but that run is not open"},
		{"running without claim_lock", func(t *testing.T, b *kanban.Board, run int64) {
			exec(t, b, `UPDATE tasks SET claim_lock=NULL WHERE id=?`, id)
		}, "running without claim_lock"},
		{"running without claim_expires", func(t *testing.T, b *kanban.Board, run int64) {
			exec(t, b, `UPDATE tasks SET claim_expires=NULL WHERE id=?`, id)
		}, "running without claim_lock/claim_expires"},
		{"done with a current run of another task", func(t *testing.T, b *kanban.Board, run int64) {
			exec(t, b, `UPDATE tasks SET status='done', claim_lock=NULL, claim_expires=NULL WHERE id=?`, id)
			exec(t, b, `UPDATE task_runs SET task_id='t_99999999' WHERE id=?`, run)
		}, "but that run is not open"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, path := openBoard(t, kanban.DefaultOptions())
			create(t, b, id, "coder")
			create(t, b, "t_00000c0c", "coder") // an innocent bystander
			run := claim(t, b, id, "lock-1")
			tc.corrupt(t, b, run)
			closeBoard(t, b)

			v := check(t, Input{DBPath: path})
			wantStatus(t, v, Fail)
			got := violations(v, RunBookkeeping, "")
			if len(got) == 0 {
				t.Fatalf("no run-bookkeeping violation: %+v", v)
			}
			found := false
			for _, x := range got {
				if x.Task != id {
					t.Errorf("violation names %q, want %s: %+v", x.Task, id, x)
				}
				found = found || strings.Contains(x.Message, tc.want)
			}
			if !found {
				t.Errorf("no message contains %q: %+v", tc.want, got)
			}
			if !slices.Equal(v.Failed(), []string{RunBookkeeping}) {
				t.Errorf("Failed = %q, want only run-bookkeeping", v.Failed())
			}
		})
	}
}

func TestBookkeepingRunningClaimIsFine(t *testing.T) {
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, "t_00000b0b", "coder")
	claim(t, b, "t_00000b0b", "lock-1")
	closeBoard(t, b)
	wantStatus(t, check(t, Input{DBPath: path}), Pass)
}

// ---- no lost runs ----

func TestLostRunMissingFromDB(t *testing.T) {
	const id = "t_00001ee7"
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, id, "coder")
	run := claim(t, b, id, "lock-1")
	closeBoard(t, b)
	h := ledger.History{Entries: []ledger.Entry{start(id, run, 6001, 2e9+5e6), start(id, 999, 6002, 2e9+7e6)}}
	v := check(t, Input{DBPath: path, Ledger: h, RunStartMono: 2e9})
	wantStatus(t, v, Fail)
	x := one(t, v, NoLostRuns, id)
	if x.Evidence["pid"] != 6002 || x.Evidence["run"] != int64(999) {
		t.Errorf("evidence %v, want pid 6002 run 999", x.Evidence)
	}
	if !strings.Contains(x.Message, "999") || !strings.Contains(x.Message, "6002") {
		t.Errorf("message %q does not name the run and pid", x.Message)
	}
	if x.AtMs != 7 {
		t.Errorf("AtMs = %v, want 7", x.AtMs)
	}
}

func TestLostRunBelongsToAnotherTask(t *testing.T) {
	const a, other = "t_0000000a", "t_0000000b"
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, a, "coder")
	create(t, b, other, "coder")
	run := claim(t, b, a, "lock-a")
	closeBoard(t, b)
	v := check(t, Input{DBPath: path, Ledger: ledger.History{Entries: []ledger.Entry{start(other, run, 6003, 0)}}})
	wantStatus(t, v, Fail)
	x := one(t, v, NoLostRuns, other)
	if !strings.Contains(x.Message, a) || !strings.Contains(x.Message, other) {
		t.Errorf("message %q does not name both %s and %s", x.Message, a, other)
	}
}

func TestLostRunsIgnoresRunlessStartsAndOtherKinds(t *testing.T) {
	path := emptyBoard(t, "coder", "t_0000000a")
	h := ledger.History{Entries: []ledger.Entry{
		start("t_0000000a", 0, 1, 0),
		{Kind: ledger.SQLiteError, PID: 2, Task: "t_0000000a", Run: 12345, Code: 5}, // SQLITE_BUSY: contention, not damage
	}}
	wantStatus(t, check(t, Input{DBPath: path, Ledger: h}), Pass)
}

// ---- verdict ----

func TestMalformedLedgerIsUnknown(t *testing.T) {
	path := emptyBoard(t, "coder", "t_0000000a")
	v := check(t, Input{DBPath: path, Ledger: ledger.History{Malformed: 2}})
	wantStatus(t, v, Unknown)
	if len(v.Unknowns) != 1 || !strings.Contains(v.Unknowns[0], "2 malformed") {
		t.Errorf("Unknowns = %q, want the malformed count", v.Unknowns)
	}
	if !slices.Contains(v.Checked, Integrity) || !slices.Contains(v.Checked, RunBookkeeping) {
		t.Errorf("Checked = %q: a malformed ledger must not stop the DB checks", v.Checked)
	}
}

func TestMalformedLedgerDoesNotHideFailure(t *testing.T) {
	path := crashLoopBoard(t, 2, 2)
	h := spawnLedger(3, 1e9)
	h.Malformed = 1
	v := check(t, Input{DBPath: path, Schedule: spawnSchedule(t, "exit-now:1"), Ledger: h, RunStartMono: 1e9})
	wantStatus(t, v, Fail)
	if len(v.Unknowns) != 1 {
		t.Errorf("Unknowns = %q, want the malformed line kept as evidence", v.Unknowns)
	}
}

func TestAddUnknown(t *testing.T) {
	var v Verdict
	v.AddUnknown("dispatcher did not stop")
	if v.Status != Unknown || len(v.Unknowns) != 1 {
		t.Fatalf("after AddUnknown on an empty verdict: %+v", v)
	}
	failed := Verdict{Status: Fail, Violations: []Violation{{Invariant: Spawns, Message: "x"}}}
	failed.AddUnknown("processes [1] did not die")
	failed.AddUnknown("another")
	if failed.Status != Fail {
		t.Errorf("AddUnknown turned a fail into %s", failed.Status)
	}
	if len(failed.Unknowns) != 2 {
		t.Errorf("Unknowns = %q, want both reasons kept", failed.Unknowns)
	}

	// A real verdict from Check, passed, then an unknown added afterwards.
	path := emptyBoard(t, "coder", "t_0000000a")
	pass := check(t, Input{DBPath: path})
	wantStatus(t, pass, Pass)
	pass.AddUnknown("left running")
	if pass.Status != Unknown {
		t.Errorf("pass + AddUnknown = %s, want unknown", pass.Status)
	}
}

func TestFailedDedups(t *testing.T) {
	v := Verdict{Violations: []Violation{
		{Invariant: Spawns, Task: "a"}, {Invariant: Integrity}, {Invariant: Spawns, Task: "b"},
		{Invariant: NoLostRuns}, {Invariant: Integrity},
	}}
	if got, want := v.Failed(), []string{Spawns, Integrity, NoLostRuns}; !slices.Equal(got, want) {
		t.Errorf("Failed = %q, want %q", got, want)
	}
	if got := (Verdict{}).Failed(); len(got) != 0 {
		t.Errorf("Failed of no violations = %q", got)
	}
}

func TestFirstViolationMs(t *testing.T) {
	cases := []struct {
		at   []float64
		want float64
	}{
		{nil, -1},
		{[]float64{0}, -1},
		{[]float64{0, 50, 20.5, 30}, 20.5},
		{[]float64{90, 0, 40}, 40},
		{[]float64{7}, 7},
	}
	for _, tc := range cases {
		var v Verdict
		for _, at := range tc.at {
			v.Violations = append(v.Violations, Violation{Invariant: Spawns, AtMs: at})
		}
		if got := v.FirstViolationMs(); got != tc.want {
			t.Errorf("FirstViolationMs(%v) = %v, want %v", tc.at, got, tc.want)
		}
	}
}

// The oracle never writes: the DB file is byte-for-byte the same after a check.
func TestCheckDoesNotWrite(t *testing.T) {
	path := bigBoard(t)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	check(t, Input{DBPath: path})
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Errorf("the DB changed during Check")
	}
}

// An index whose recorded definition no longer matches its content: every
// page is well formed, so integrity_check answers with rows, not an error.
func TestIntegrityIndexMismatchReportsRows(t *testing.T) {
	path := bigBoard(t)
	b, err := kanban.Connect(context.Background(), path, deleteMode())
	if err != nil {
		t.Fatal(err)
	}
	exec(t, b, `PRAGMA writable_schema=ON`)
	exec(t, b, `UPDATE sqlite_schema SET sql='CREATE INDEX idx_tasks_status ON tasks(title)' WHERE name='idx_tasks_status'`)
	closeBoard(t, b)

	v := check(t, Input{DBPath: path})
	wantStatus(t, v, Fail)
	x := violations(v, Integrity, "")
	if len(x) == 0 {
		t.Fatalf("no integrity violation: %+v", v)
	}
	if len(x) != 1 {
		t.Errorf("%d integrity violations, want 1 (quick_check does not compare index content): %+v", len(x), x)
	}
	ev := x[0].Evidence
	msgs, _ := ev["messages"].([]string)
	total, _ := ev["total"].(int)
	if ev["pragma"] != "integrity_check" || len(msgs) != 10 || total < 10 {
		t.Errorf("evidence %v, want pragma integrity_check, the first 10 messages and the total", ev)
	}
	if !strings.Contains(x[0].Message, "missing from index idx_tasks_status") || !strings.HasPrefix(x[0].Message, "PRAGMA integrity_check: ") {
		t.Errorf("message %q, want integrity_check's own rows", x[0].Message)
	}
	if slices.Contains(v.Checked, RunBookkeeping) {
		t.Errorf("Checked = %q: tables of a corrupt DB were read", v.Checked)
	}
}

// A breaker that trips again before the reopening is still judged from its
// first gave_up.
func TestBreakerEvidenceIsTheFirstGaveUp(t *testing.T) {
	const id = "t_0000beef"
	ctx := context.Background()
	b, path := trippedBoard(t, id)
	var first int64
	if err := b.DB().QueryRow(`SELECT id FROM task_events WHERE task_id=? AND kind='gave_up'`, id).Scan(&first); err != nil {
		t.Fatal(err)
	}
	if f, err := b.RecordTaskFailure(ctx, id, kanban.OutcomeCrashed, "exit 1 again", 0); err != nil || !f.Tripped || f.Failures != 3 {
		t.Fatalf("third failure = %+v, %v; want a second trip", f, err)
	}
	if _, err := b.RecomputeReady(ctx, kanban.RecomputePolicy{RepromoteTripped: true}); err != nil {
		t.Fatal(err)
	}
	closeBoard(t, b)
	x := one(t, check(t, Input{DBPath: path}), BreakerHolds, id)
	if x.Evidence["gave_up_event"] != first || !strings.Contains(x.Message, "failures=2") {
		t.Errorf("evidence %v message %q, want the first gave_up (event %d, failures=2)", x.Evidence, x.Message, first)
	}
}

// TestFalseAlarm: a schedule that expects no-false-alarm fails on a
// corruption alarm when the board is intact, holds without one, cannot tell
// an alarm false on a damaged board, and holds nothing for a subject that
// records no alarms of its own.
func TestFalseAlarm(t *testing.T) {
	ctx := context.Background()
	b, path := openBoard(t, kanban.DefaultOptions())
	const task = "t_000000a1"
	create(t, b, task, "coder")
	r1 := claim(t, b, task, "lock-1")
	if err := b.SetWorkerPID(ctx, task, r1, 4001); err != nil {
		t.Fatal(err)
	}
	if err := b.Complete(ctx, task, r1, "ok"); err != nil {
		t.Fatal(err)
	}
	closeBoard(t, b)
	s := schedule.Schedule{Dispatchers: 1, Expect: []string{NoFalseAlarm},
		Profiles: []schedule.Profile{{Name: "coder", Worker: mustBehaviour(t, "complete")}},
		Tasks:    []schedule.Task{{ID: task, Assignee: "coder"}}}
	base := []ledger.Entry{{Kind: ledger.Commit, Who: "d1", Op: "claim", Task: task, Run: r1, Mono: 1e9 + 5e5}, start(task, r1, 4001, 1e9+1e6)}
	alarm := ledger.Entry{Kind: ledger.Alarm, Who: "worker", PID: 4001, Task: task, Op: "comment", Mono: 1e9 + 2e6,
		Message: "comment: kanban_comment: torn-extend detected: page count mismatch"}
	in := func(extra ...ledger.Entry) Input {
		return Input{DBPath: path, Schedule: s, RunStartMono: 1e9, RunStartWall: 1000, Subject: reference, Ticks: 5,
			Ledger: ledger.History{Entries: slices.Concat(base, extra)}}
	}

	v := check(t, in())
	if !slices.Contains(v.Held(), NoFalseAlarm) {
		t.Errorf("no alarm: held %q, want no-false-alarm among them", v.Held())
	}
	v = check(t, in(alarm))
	wantStatus(t, v, Fail)
	if !slices.Equal(v.Failed(), []string{NoFalseAlarm}) || !strings.Contains(v.Violations[0].Message, "1 by worker") ||
		!strings.Contains(v.Violations[0].Message, "torn-extend detected") || v.Violations[0].AtMs != 2 {
		t.Errorf("an alarm on an intact board: %+v", v.Violations)
	}
	// A commit the board does not hold: damage, so the alarm may be true.
	lost := ledger.Entry{Kind: ledger.Commit, Who: "worker", PID: 4001, Op: "comment", Task: task, Comments: []int64{99}, Mono: 1e9 + 3e6}
	v = check(t, in(alarm, lost))
	if slices.Contains(v.Failed(), NoFalseAlarm) || !strings.Contains(whyNotChecked(v, NoFalseAlarm), "damaged (no-lost-writes)") {
		t.Errorf("an alarm beside a lost write: failed %q, why %q", v.Failed(), whyNotChecked(v, NoFalseAlarm))
	}
	// A subject that records no alarms of its own: no alarm is no evidence
	// (not checked, never held), a worker's alarm is one all the same.
	silent := in()
	silent.Subject = Observability{Name: "exec:x", Ticks: true, Commits: true, Errors: true}
	if why := whyNotChecked(check(t, silent), NoFalseAlarm); !strings.Contains(why, "records none of its own corruption alarms") {
		t.Errorf("a subject that records no alarms: why %q", why)
	}
	silent = in(alarm)
	silent.Subject = Observability{Name: "exec:x", Ticks: true, Commits: true, Errors: true}
	if v := check(t, silent); !slices.Equal(v.Failed(), []string{NoFalseAlarm}) {
		t.Errorf("a worker's alarm beside a subject that records none: failed %q", v.Failed())
	}
	s.Expect = nil
	if why := whyNotChecked(check(t, in(alarm)), NoFalseAlarm); !strings.Contains(why, "opt-in") {
		t.Errorf("not expected: why %q", why)
	}
}

func whyNotChecked(v Verdict, inv string) string {
	for _, x := range v.NotChecked {
		if x.Invariant == inv {
			return x.Why
		}
	}
	return ""
}

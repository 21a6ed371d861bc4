package oracle

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

func audit(t *testing.T, path string, o AuditOptions) (Verdict, BoardSummary) {
	t.Helper()
	v, sum, err := Audit(context.Background(), path, o)
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	return v, sum
}

// crashRun claims task id, records a worker, and books its end with outcome
// (crashed, protocol_violation, rate_limited) counting it as Hermes v0.14
// does: in a transaction of its own after the reclaim.
func crashRun(t *testing.T, b *kanban.Board, id, outcome string) {
	t.Helper()
	ctx := context.Background()
	run := claim(t, b, id, "h:1")
	if err := b.SetWorkerPID(ctx, id, run, 4242); err != nil {
		t.Fatal(err)
	}
	c := kanban.Crash{Task: id, RunID: run, PID: 4242, Lock: "h:1", Outcome: outcome, Error: "boom", Count: outcome != kanban.OutcomeRateLimited}
	if _, err := b.ReclaimCrashed(ctx, []kanban.Crash{c}, false); err != nil {
		t.Fatal(err)
	}
	if c.Count {
		// A huge limit: the test decides when a trip happens, not the board.
		if _, err := b.RecordTaskFailure(ctx, id, outcome, "boom", 99); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAuditHealthyBoardPasses(t *testing.T) {
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, "t_00000001", "p")
	crashRun(t, b, "t_00000001", kanban.OutcomeCrashed)
	run := claim(t, b, "t_00000001", "h:1")
	b.SetWorkerPID(context.Background(), "t_00000001", run, 4243)
	if err := b.Complete(context.Background(), "t_00000001", run, "done"); err != nil {
		t.Fatal(err)
	}
	closeBoard(t, b)
	v, sum := audit(t, path, AuditOptions{})
	wantStatus(t, v, Pass)
	if sum.Tasks != 1 || sum.Runs != 2 || sum.Status["done"] != 1 {
		t.Errorf("summary %+v, want 1 task (done), 2 runs", sum)
	}
	if held := v.Held(); !slices.Equal(held, []string{Integrity, RunBookkeeping, SpawnLimit}) {
		t.Errorf("held %q, want integrity, run-bookkeeping, spawn-limit", held)
	}
	// Nothing tripped, nothing was rate limited, nothing quit or went
	// unattended: those are not checked, with why — never held.
	var skipped []string
	for _, x := range v.NotChecked {
		skipped = append(skipped, x.Invariant+": "+x.Why)
	}
	want := []string{
		"breaker-holds: no task's breaker tripped (no gave_up event on the board)",
		"rate-limit: no run on the board is booked rate_limited (exit 75)",
		"protocol-budget: no run on the board is booked protocol_violation (exit 0 without completing)",
		"unrecorded-workers: no run ended for want of news from its worker (reclaimed, stale, timed out)",
	}
	if !slices.Equal(skipped, want) {
		t.Errorf("not checked:\n%s\nwant:\n%s", strings.Join(skipped, "\n"), strings.Join(want, "\n"))
	}

	// A board whose breaker tripped and held has breaker-holds checked.
	b, path = trippedBoard(t, "t_0000beef")
	closeBoard(t, b)
	v, _ = audit(t, path, AuditOptions{})
	wantStatus(t, v, Pass)
	if !slices.Contains(v.Held(), BreakerHolds) {
		t.Errorf("held %q lacks breaker-holds after a trip that held", v.Held())
	}
}

// TestAuditSpawnLimit: spawned runs count between resets, against the
// task's effective limit.
func TestAuditSpawnLimit(t *testing.T) {
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, "t_0000000a", "p")
	create(t, b, "t_0000000b", "p")
	for i := 0; i < 3; i++ {
		crashRun(t, b, "t_0000000a", kanban.OutcomeCrashed)
	}
	crashRun(t, b, "t_0000000b", kanban.OutcomeCrashed)
	crashRun(t, b, "t_0000000b", kanban.OutcomeCrashed)
	exec(t, b, `INSERT INTO task_events (task_id, kind, created_at) VALUES ('t_0000000b', 'unblocked', 5000)`)
	crashRun(t, b, "t_0000000b", kanban.OutcomeCrashed) // a fresh budget after the reset
	closeBoard(t, b)

	v, _ := audit(t, path, AuditOptions{})
	x := one(t, v, SpawnLimit, "t_0000000a")
	if !strings.Contains(x.Message, "3 spawned runs between counter resets > limit 2 (default); spawn #3 (run 3)") {
		t.Errorf("message %q", x.Message)
	}
	if got := violations(v, SpawnLimit, "t_0000000b"); len(got) != 0 {
		t.Errorf("a reset did not restart the count: %+v", got)
	}
	v, _ = audit(t, path, AuditOptions{FailureLimit: 3})
	if got := violations(v, SpawnLimit, ""); len(got) != 0 {
		t.Errorf("limit 3: %+v", got)
	}
}

// TestAuditRateLimit: a respawn before the cooldown, and a breaker trip by
// exit 75, both fail; rate-limited runs are not spawns that count.
func TestAuditRateLimit(t *testing.T) {
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, "t_00000075", "p")
	for i := 0; i < 4; i++ {
		crashRun(t, b, "t_00000075", kanban.OutcomeRateLimited)
	}
	closeBoard(t, b)
	v, _ := audit(t, path, AuditOptions{}) // the clock moves 1 s per reading: far below 300 s
	x := one(t, v, RateLimit, "t_00000075")
	if !strings.Contains(x.Message, "exited 75 (rate limited); the cooldown is 5m0s") {
		t.Errorf("message %q", x.Message)
	}
	if got := violations(v, SpawnLimit, ""); len(got) != 0 {
		t.Errorf("rate-limited runs counted as spawns: %+v", got)
	}
	v, _ = audit(t, path, AuditOptions{Cooldown: time.Second})
	wantStatus(t, v, Pass)

	b, path = openBoard(t, kanban.DefaultOptions())
	create(t, b, "t_00000076", "p")
	crashRun(t, b, "t_00000076", kanban.OutcomeRateLimited)
	if _, err := b.RecordTaskFailure(context.Background(), "t_00000076", kanban.OutcomeRateLimited, "429", 1); err != nil {
		t.Fatal(err)
	}
	closeBoard(t, b)
	v, _ = audit(t, path, AuditOptions{})
	if x := one(t, v, RateLimit, "t_00000076"); !strings.Contains(x.Message, "tripped the breaker") {
		t.Errorf("message %q", x.Message)
	}
}

// TestAuditProtocolBudget: exits 0 without completing beyond the budget.
func TestAuditProtocolBudget(t *testing.T) {
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, "t_00000000", "p")
	for i := 0; i < 3; i++ {
		crashRun(t, b, "t_00000000", kanban.OutcomeProtocol)
	}
	closeBoard(t, b)
	v, _ := audit(t, path, AuditOptions{})
	if x := one(t, v, ProtocolBudget, "t_00000000"); !strings.Contains(x.Message, "3 protocol violations (exit 0 without completing) between counter resets > budget 2 (default)") {
		t.Errorf("message %q", x.Message)
	}
	v, _ = audit(t, path, AuditOptions{FailureLimit: 3})
	wantStatus(t, v, Pass)
}

// TestAuditUnrecordedWorkers: a claim whose pid never reached the board and
// that was reclaimed is reported; a spawn failure is not.
func TestAuditUnrecordedWorkers(t *testing.T) {
	ctx := context.Background()
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, "t_00035202", "p")
	create(t, b, "t_0000f417", "p")
	claim(t, b, "t_00035202", "h:1")
	if _, _, err := b.ReleaseClaim(ctx, "t_00035202", "h:1", kanban.OutcomeReclaimed, "claim expired", false, 0); err != nil {
		t.Fatal(err)
	}
	run := claim(t, b, "t_0000f417", "h:1")
	if _, err := b.RecordSpawnFailure(ctx, "t_0000f417", run, "exec: no such file", 0); err != nil {
		t.Fatal(err)
	}
	closeBoard(t, b)
	v, _ := audit(t, path, AuditOptions{})
	if x := one(t, v, UnrecordedWorkers, "t_00035202"); !strings.Contains(x.Message, "1 run(s) ended with no worker ever recorded") {
		t.Errorf("message %q", x.Message)
	}
	if got := violations(v, UnrecordedWorkers, "t_0000f417"); len(got) != 0 {
		t.Errorf("a spawn failure reported as unrecorded: %+v", got)
	}
}

func TestAuditCorruptBoardFailsIntegrity(t *testing.T) {
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, "t_00000001", "p")
	closeBoard(t, b)
	if err := kanban.DamageIndex(context.Background(), path, 0x5a); err != nil {
		t.Fatal(err)
	}
	v, _ := audit(t, path, AuditOptions{})
	wantStatus(t, v, Fail)
	if x := violations(v, Integrity, ""); len(x) == 0 || !strings.Contains(x[0].Message, "idx_tasks_status") {
		t.Errorf("integrity violations %+v, want the damaged index named", x)
	}
}

func TestAuditNotABoard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	db.Exec(`CREATE TABLE notes (x TEXT)`)
	db.Close()
	if _, _, err := Audit(context.Background(), path, AuditOptions{}); !errors.Is(err, ErrNotABoard) {
		t.Errorf("err = %v, want ErrNotABoard", err)
	}
}

// TestRoutingMisrouteFails: a card a create-on-board:other worker made in
// this board's file is misrouted (#30678).
func TestRoutingMisrouteFails(t *testing.T) {
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, "t_30678000", "router")
	if _, err := b.CreateTask(context.Background(), kanban.NewTask{Title: "card for board other", Assignee: "router", CreatedBy: "router"}); err != nil {
		t.Fatal(err)
	}
	closeBoard(t, b)
	s := schedule.Schedule{TimeScale: 1, Tasks: []schedule.Task{{ID: "t_30678000", Assignee: "router"}},
		Profiles: []schedule.Profile{{Name: "router", Worker: mustBehaviour(t, "create-on-board:other")}}}
	// Its worker started, and completed its own task.
	h := ledger.History{Entries: []ledger.Entry{start("t_30678000", 0, 7, 1),
		{Kind: ledger.Commit, Who: "worker", PID: 7, Op: kanban.EventCompleted, Task: "t_30678000", Mono: 2}}}
	v := check(t, Input{DBPath: path, Schedule: s, Ledger: h})
	if x := one(t, v, BoardRouting, ""); !strings.Contains(x.Message, "1 card(s) that router's worker created with board=other landed in this board's file (default)") {
		t.Errorf("message %q", x.Message)
	}
	s.Profiles[0].Worker = mustBehaviour(t, "create-on-board:default") // its own board: no misroute
	v = check(t, Input{DBPath: path, Schedule: s, Ledger: h})
	wantStatus(t, v, Pass)
	if i := slices.IndexFunc(v.NotChecked, func(x Skip) bool { return x.Invariant == BoardRouting }); i < 0 ||
		v.NotChecked[i].Why != "no worker creates cards on another board" {
		t.Errorf("NotChecked = %+v, want board-routing not checked when no worker creates on another board", v.NotChecked)
	}
}

func commitEntry(who, op string, mono int64) ledger.Entry {
	return ledger.Entry{Kind: ledger.Commit, Who: who, Op: op, Mono: mono, PID: 1}
}

// TestOneWriterPerTick: a dispatcher tick that starts while another is
// still writing fails the opt-in invariant; ticks in turn pass.
func TestOneWriterPerTick(t *testing.T) {
	path := emptyBoard(t, "p")
	s := schedule.Schedule{TimeScale: 1, Expect: []string{OneWriterPerTick}}
	inTurn := []ledger.Entry{commitEntry("d1", "init_schema", 1), commitEntry("d1", "notify_cursor", 2), commitEntry("d1", "claim", 3),
		commitEntry("d2", "notify_cursor", 4), commitEntry("d2", "claim", 5), commitEntry("worker", "comment", 6), commitEntry("d1", "notify_cursor", 7)}
	// The harness saw the ticks (the in-process reference dispatcher writes
	// no tick entries: its ticks start with notify_cursor).
	v := check(t, Input{DBPath: path, Schedule: s, Ledger: ledger.History{Entries: inTurn}, Ticks: 3})
	wantStatus(t, v, Pass)
	if !slices.Contains(v.Held(), OneWriterPerTick) {
		t.Errorf("held %q lacks one-writer-per-tick", v.Held())
	}
	overlap := append(inTurn, commitEntry("d2", "set_worker_pid", 8))
	v = check(t, Input{DBPath: path, Schedule: s, Ledger: ledger.History{Entries: overlap}, RunStartMono: 1, Ticks: 3})
	if x := one(t, v, OneWriterPerTick, ""); x.Evidence["intruder"] != "d1" || x.Evidence["writer"] != "d2" {
		t.Errorf("violation %+v", x)
	}
	// Nobody saw the ticks: the ledger cannot tell one tick from the next.
	v = check(t, Input{DBPath: path, Schedule: s, Ledger: ledger.History{Entries: overlap}})
	wantStatus(t, v, Pass)
	wantSkip(t, v, OneWriterPerTick, "the subject records no ticks: nothing tells one dispatcher tick from the next")
	s.Expect = nil // not asked for: lockless gateways are Hermes' default
	v = check(t, Input{DBPath: path, Schedule: s, Ledger: ledger.History{Entries: overlap}, Ticks: 3})
	wantStatus(t, v, Pass)
	wantSkip(t, v, OneWriterPerTick, "opt-in, and this schedule does not expect it (several lockless gateways are Hermes' default)")
	s.Expect = []string{"no-such-invariant"}
	wantStatus(t, check(t, Input{DBPath: path, Schedule: s}), Unknown)
}

// wantSkip checks that invariant is not checked for why.
func wantSkip(t *testing.T, v Verdict, invariant, why string) {
	t.Helper()
	i := slices.IndexFunc(v.NotChecked, func(x Skip) bool { return x.Invariant == invariant })
	if i < 0 || v.NotChecked[i].Why != why {
		t.Errorf("NotChecked = %+v, want %s not checked: %s", v.NotChecked, invariant, why)
	}
	if slices.Contains(v.Checked, invariant) {
		t.Errorf("%s is both checked and not checked", invariant)
	}
}

package oracle

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// ---- verdict states ----

func TestVerdictStatesAreExclusive(t *testing.T) {
	var v Verdict
	v.check(Integrity, Spawns, SQLiteErrors, NoLostWrites)
	v.skip(NoLostWrites, "the subject records none of its own commits") // not checked beats held
	v.skip(SQLiteErrors, "the subject records none of its own errors")
	v.Violations = append(v.Violations, Violation{Invariant: SQLiteErrors, Message: "a worker saw SQLITE_CORRUPT"}) // violated beats not checked
	v.skip(RateLimit, "no worker exited 75")
	v.skip(RateLimit, "a second reason") // the first reason stays
	v.settle()
	if v.Status != Fail {
		t.Errorf("status %s, want fail", v.Status)
	}
	// Listed in the verdicts' order (RunInvariants), whatever the order
	// they were decided in.
	if want := []string{Spawns, SQLiteErrors, Integrity}; !slices.Equal(v.Checked, want) {
		t.Errorf("Checked = %q, want %q", v.Checked, want)
	}
	if want := []string{Spawns, Integrity}; !slices.Equal(v.Held(), want) {
		t.Errorf("Held = %q, want %q", v.Held(), want)
	}
	want := []Skip{{NoLostWrites, "the subject records none of its own commits"}, {RateLimit, "no worker exited 75"}}
	if !slices.Equal(v.NotChecked, want) {
		t.Errorf("NotChecked = %+v, want %+v", v.NotChecked, want)
	}
	// Not checked alone never makes a run unknown.
	p := Verdict{}
	p.skip(Sidecars, "not watched")
	p.settle()
	if p.Status != Pass {
		t.Errorf("a verdict with only not-checked invariants is %s, want pass", p.Status)
	}
}

// A violation found among the workers' lines counts even when the
// subject's own lines are not observed.
func TestWorkerSQLiteErrorFailsAnUnobservedSubject(t *testing.T) {
	path := emptyBoard(t, "p")
	h := ledger.History{Entries: []ledger.Entry{{Kind: ledger.SQLiteError, PID: 9, Who: "worker", Code: 11, Message: "database disk image is malformed"}}}
	v := check(t, Input{DBPath: path, Ledger: h})
	wantStatus(t, v, Fail)
	one(t, v, SQLiteErrors, "")
	if slices.ContainsFunc(v.NotChecked, func(x Skip) bool { return x.Invariant == SQLiteErrors }) {
		t.Errorf("sqlite-errors is violated and not checked: %+v", v.NotChecked)
	}
	v = check(t, Input{DBPath: path})
	wantSkip(t, v, SQLiteErrors, "the subject records none of its own SQLite errors: only the workers' were looked at")
	v = check(t, Input{DBPath: path, Subject: Observability{Errors: true}})
	if !slices.Contains(v.Held(), SQLiteErrors) {
		t.Errorf("held %q lacks sqlite-errors for a subject that records its errors", v.Held())
	}
}

// ---- rate limit from the workers' exit codes ----

const throttled = "t_00000075"

func exitEntry(task string, run int64, pid, code int, mono int64) ledger.Entry {
	return ledger.Entry{Kind: ledger.Exit, PID: pid, Task: task, Run: run, Profile: "p", Who: "worker", Exit: ledger.ExitCode(code), Mono: mono, Wall: 1}
}

// bookedBoard books n runs of task: each claimed, its worker pid recorded
// (6001, 6002 …), then ended by book.
func bookedBoard(t *testing.T, task string, n int, book func(b *kanban.Board, run int64, pid int)) string {
	t.Helper()
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, task, "p")
	for i := range n {
		run := claim(t, b, task, "h:1")
		if err := b.SetWorkerPID(context.Background(), task, run, 6001+i); err != nil {
			t.Fatal(err)
		}
		book(b, run, 6001+i)
	}
	closeBoard(t, b)
	return path
}

func reclaim(t *testing.T, task, outcome, msg string, count bool, limit int) func(*kanban.Board, int64, int) {
	return func(b *kanban.Board, run int64, pid int) {
		if _, err := b.ReclaimCrashed(context.Background(), []kanban.Crash{{Task: task, RunID: run, PID: pid, Lock: "h:1",
			Outcome: outcome, Error: msg, Count: count, Limit: limit}}, true); err != nil {
			t.Fatal(err)
		}
	}
}

// throttledLedger: two workers that exited 75, the second started gapMs
// after the first exited.
func throttledLedger(gapMs int64) ledger.History {
	return ledger.History{Entries: []ledger.Entry{
		start(throttled, 1, 6001, 1e9), exitEntry(throttled, 1, 6001, 75, 1e9+1e6),
		start(throttled, 2, 6002, 1e9+1e6+gapMs*1e6), exitEntry(throttled, 2, 6002, 75, 1e9+2e6+gapMs*1e6),
	}}
}

func throttledSchedule(t *testing.T) schedule.Schedule {
	return schedule.Schedule{Profiles: []schedule.Profile{{Name: "p", Worker: mustBehaviour(t, "exit-75")}},
		Tasks: []schedule.Task{{ID: throttled, Assignee: "p"}}}
}

func TestRateLimitFromExitCodes(t *testing.T) {
	// The board's clock moves 1 s per reading: with a 0.5 s cooldown the
	// board's own times never respawn too soon.
	const cooldown = 0.5
	cases := []struct {
		name  string
		book  func(t *testing.T) func(*kanban.Board, int64, int)
		gapMs int64
		want  Status
		inMsg string // in the one rate-limit violation
	}{
		{"booked rate_limited, respawned after the cooldown", func(t *testing.T) func(*kanban.Board, int64, int) {
			return reclaim(t, throttled, kanban.OutcomeRateLimited, "exit 75", false, 0)
		}, 600, Pass, ""},
		// A one-shot dispatch_once is not the workers' parent: it books every
		// dead worker crashed, "pid N not alive", and exit 75 counts.
		{"one-shot books exit 75 as crashed", func(t *testing.T) func(*kanban.Board, int64, int) {
			return func(b *kanban.Board, run int64, pid int) {
				reclaim(t, throttled, kanban.OutcomeCrashed, "pid "+strconv.Itoa(pid)+" not alive", true, 0)(b, run, pid)
			}
		}, 600, Fail, `worker pid 6001 of run 1 exited 75 (rate limited, ledger), but the run is booked crashed ("pid 6001 not alive")`},
		{"respawned within the cooldown (ledger)", func(t *testing.T) func(*kanban.Board, int64, int) {
			return reclaim(t, throttled, kanban.OutcomeRateLimited, "exit 75", false, 0)
		}, 100, Fail, "worker pid 6002 started 100ms after pid 6001 of the same task exited 75 (rate limited, ledger); the cooldown is 500ms"},
		// A run the board never heard back from is reclaimed and counted: its
		// worker exited 75 all the same.
		{"a gave_up counts an exit-75 run", func(t *testing.T) func(*kanban.Board, int64, int) {
			return func(b *kanban.Board, run int64, pid int) {
				if _, _, err := b.ReleaseClaim(context.Background(), throttled, "h:1", kanban.OutcomeReclaimed, "claim expired", true, 2); err != nil {
					t.Fatal(err)
				}
			}
		}, 600, Fail, `counted run 1, whose worker pid 6001 exited 75 (rate limited, ledger; booked "reclaimed")`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := bookedBoard(t, throttled, 2, tc.book(t))
			v := check(t, Input{DBPath: path, Schedule: throttledSchedule(t), Ledger: throttledLedger(tc.gapMs), RunStartMono: 1e9, Cooldown: cooldown})
			wantStatus(t, v, tc.want)
			if tc.want == Pass {
				if !slices.Contains(v.Held(), RateLimit) {
					t.Errorf("held %q lacks rate-limit", v.Held())
				}
				return
			}
			x := one(t, v, RateLimit, throttled)
			if !strings.Contains(x.Message, tc.inMsg) {
				t.Errorf("message %q, want %q", x.Message, tc.inMsg)
			}
		})
	}
}

func TestRateLimitNotCheckedWithoutExit75(t *testing.T) {
	path := crashLoopBoard(t, 2, 2)
	v := check(t, Input{DBPath: path, Schedule: spawnSchedule(t, "exit-now:1"), Ledger: spawnLedger(2, 1e9)})
	wantSkip(t, v, RateLimit, "no worker exited 75 (rate limited), and no run is booked rate_limited")
}

// ---- protocol budget from the workers' exit codes ----

const quitter = "t_00000000"

func TestProtocolBudgetFromExitCodes(t *testing.T) {
	s := schedule.Schedule{Profiles: []schedule.Profile{{Name: "p", Worker: mustBehaviour(t, "exit-0-without-completing")}},
		Tasks: []schedule.Task{{ID: quitter, Assignee: "p"}}}
	quits := func(walls ...float64) ledger.History {
		var h ledger.History
		for i, w := range walls {
			run, pid := int64(i+1), 7001+i
			h.Entries = append(h.Entries, start(quitter, run, pid, int64(i+1)*1e9), exitEntry(quitter, run, pid, 0, int64(i+1)*1e9+5e6))
			h.Entries[len(h.Entries)-1].Wall = w
		}
		return h
	}
	// A one-shot dispatcher books the quits crashed (no protocol_violation
	// on the board); the workers' exit codes still spend the budget.
	path := bookedBoard(t, quitter, 3, reclaim(t, quitter, kanban.OutcomeCrashed, "pid not alive", true, 99))
	v := check(t, Input{DBPath: path, Schedule: s, Ledger: quits(1, 2, 3), RunStartMono: 0})
	x := one(t, v, ProtocolBudget, quitter)
	for _, want := range []string{"3 workers exited 0 without completing (ledger) between counter resets > budget 2 (default)",
		"#3 (pid 7003)", "the board booked them crashed ×3"} {
		if !strings.Contains(x.Message, want) {
			t.Errorf("message %q lacks %q", x.Message, want)
		}
	}

	// A reset (unblocked) between them starts a fresh budget.
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, quitter, "p")
	for i := range 4 {
		run := claim(t, b, quitter, "h:1")
		if err := b.SetWorkerPID(context.Background(), quitter, run, 7001+i); err != nil {
			t.Fatal(err)
		}
		reclaim(t, quitter, kanban.OutcomeProtocol, "exit 0", true, 99)(b, run, 7001+i)
		if i == 1 {
			exec(t, b, `INSERT INTO task_events (task_id, kind, created_at) VALUES (?, 'unblocked', 5000)`, quitter)
			exec(t, b, `UPDATE tasks SET consecutive_failures=0 WHERE id=?`, quitter)
		}
	}
	closeBoard(t, b)
	s.Tasks[0].MaxRetries = 2
	v = check(t, Input{DBPath: path, Schedule: s, Ledger: quits(4000, 4001, 6000, 6001)})
	if got := violations(v, ProtocolBudget, ""); len(got) != 0 {
		t.Errorf("a reset did not restart the ledger's count: %+v", got)
	}
	if !slices.Contains(v.Checked, ProtocolBudget) {
		t.Errorf("Checked = %q lacks protocol-budget", v.Checked)
	}
	v = check(t, Input{DBPath: path, Schedule: s, Ledger: quits(4000, 4001, 4002, 6000)})
	if x := one(t, v, ProtocolBudget, quitter); !strings.Contains(x.Message, "3 workers exited 0") {
		t.Errorf("message %q, want 3 quits before the reset", x.Message)
	}
}

// A worker that completed and then exited 0 did not quit.
func TestCompletingWorkerExit0IsNotAQuit(t *testing.T) {
	ctx := context.Background()
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, "t_000000d0", "coder")
	run := claim(t, b, "t_000000d0", "h:1")
	if err := b.Complete(ctx, "t_000000d0", run, "ok"); err != nil {
		t.Fatal(err)
	}
	closeBoard(t, b)
	s := schedule.Schedule{Profiles: []schedule.Profile{{Name: "coder", Worker: mustBehaviour(t, "complete")}},
		Tasks: []schedule.Task{{ID: "t_000000d0", Assignee: "coder"}}}
	for name, h := range map[string]ledger.History{
		"its completing commit": {Entries: []ledger.Entry{start("t_000000d0", 0, 8001, 1),
			{Kind: ledger.Commit, Who: "worker", PID: 8001, Op: kanban.EventCompleted, Task: "t_000000d0", Mono: 2}, exitEntry("t_000000d0", 0, 8001, 0, 3)}},
		"its run completed on the board": {Entries: []ledger.Entry{start("t_000000d0", run, 8001, 1), exitEntry("t_000000d0", run, 8001, 0, 3)}},
	} {
		v := check(t, Input{DBPath: path, Schedule: s, Ledger: h})
		wantStatus(t, v, Pass)
		if !slices.ContainsFunc(v.NotChecked, func(x Skip) bool {
			return x.Invariant == ProtocolBudget && x.Why == "no worker exited 0 without completing, and no run is booked protocol_violation"
		}) {
			t.Errorf("%s: NotChecked = %+v, want protocol-budget not checked: no quit", name, v.NotChecked)
		}
	}
}

// ---- ticks ----

func tickEntry(who string, began, end int64, op string) ledger.Entry {
	return ledger.Entry{Kind: ledger.Tick, PID: 1, Who: who, Board: "default", Began: began, Mono: end, Op: op}
}

func TestDispatcherProgressFromTickEntries(t *testing.T) {
	path := emptyBoard(t, "p")
	s := schedule.Schedule{TickMs: 20, Dispatchers: 2} // limit max(2 s, 100 × 20 ms) = 2 s
	const start = int64(10e9)
	steady := func(who string, from, to, step int64) []ledger.Entry {
		var out []ledger.Entry
		for at := from; at <= to; at += step {
			out = append(out, tickEntry(who, start+at-5e6, start+at, ""))
		}
		return out
	}
	// d1 ticks every 100 ms, then nothing from +1 s to +4.5 s; d2 stops at
	// +1 s for good (without the moment the subject was stopped, its last
	// stretch is not judged).
	h := ledger.History{Entries: append(append(steady("d1", 1e8, 1e9, 1e8), steady("d1", 4.5e9, 5e9, 1e8)...), steady("d2", 1e8, 1e9, 1e8)...)}
	v := check(t, Input{DBPath: path, Schedule: s, Ledger: h, RunStartMono: start})
	wantStatus(t, v, Fail)
	x := one(t, v, DispatcherProgress, "")
	if x.Evidence["dispatcher"] != "d1" || x.Evidence["gap_ms"] != 3500.0 || x.AtMs != 1000 ||
		!strings.Contains(x.Message, "dispatcher d1 finished no tick and had no COMMIT acknowledged for 3.5s (from +1000ms, ledger tick and commit entries); limit 2s") {
		t.Errorf("violation %+v", x)
	}
	// A long tick whose work goes on — d1 acknowledges a COMMIT every
	// 800 ms (a claim, a spawn's pid) — is progress; a worker's commits are
	// not d1's, and d2's are not d1's.
	working := ledger.History{Entries: slices.Clone(h.Entries)}
	for at := int64(1.8e9); at < 4.5e9; at += 8e8 {
		working.Entries = append(working.Entries, ledger.Entry{Kind: ledger.Commit, Who: "d1", Op: "_set_worker_pid", Began: start + at - 1e6, Mono: start + at})
	}
	wantStatus(t, check(t, Input{DBPath: path, Schedule: s, Ledger: working, RunStartMono: start}), Pass)
	others := ledger.History{Entries: slices.Clone(h.Entries)}
	for at := int64(1.8e9); at < 4.5e9; at += 8e8 {
		others.Entries = append(others.Entries, ledger.Entry{Kind: ledger.Commit, Who: "worker", Op: "complete_task", Mono: start + at},
			ledger.Entry{Kind: ledger.Commit, Who: "d2", Op: "claim_task", Mono: start + at})
	}
	if x := one(t, check(t, Input{DBPath: path, Schedule: s, Ledger: others, RunStartMono: start}), DispatcherProgress, ""); x.Evidence["gap_ms"] != 3500.0 {
		t.Errorf("others' commits: violation %+v, want d1's 3.5 s gap", x)
	}
	// d2 stopped ticking at +1 s: with the moment the harness stopped the
	// subject known (+5 s), its 4 s without progress to the end is a stall
	// too.
	v = check(t, Input{DBPath: path, Schedule: s, Ledger: h, RunStartMono: start, RunStopMono: start + 5e9})
	var stalled []string
	for _, x := range v.Violations {
		if x.Invariant == DispatcherProgress {
			stalled = append(stalled, fmt.Sprint(x.Evidence["dispatcher"], " ", x.Evidence["gap_ms"]))
		}
	}
	if want := []string{"d1 3500", "d2 4000"}; !slices.Equal(stalled, want) {
		t.Errorf("stalls %q with the stop known, want %q", stalled, want)
	}
	// … and a dispatcher ticking to the end holds.
	v = check(t, Input{DBPath: path, Schedule: s, Ledger: ledger.History{Entries: steady("d1", 1e8, 5e9, 1e8)}, RunStartMono: start, RunStopMono: start + 5.05e9})
	wantStatus(t, v, Pass)
	// From the run's start to the first tick counts too …
	late := ledger.History{Entries: steady("d1", 3e9, 4e9, 1e8)}
	one(t, check(t, Input{DBPath: path, Schedule: s, Ledger: late, RunStartMono: start}), DispatcherProgress, "")
	// … unless the dispatcher says when it started (after loading its
	// release): then from there.
	late.Entries = append([]ledger.Entry{{Kind: ledger.Settings, Who: "d1", Mono: start + 2.5e9, Message: "{}"}}, late.Entries...)
	wantStatus(t, check(t, Input{DBPath: path, Schedule: s, Ledger: late, RunStartMono: start}), Pass)
	// Steady ticks hold; a subject whose Ticks flag is off is still held to
	// the tick entries it writes.
	v = check(t, Input{DBPath: path, Schedule: s, Ledger: ledger.History{Entries: steady("d1", 1e8, 5e9, 1e8)}, RunStartMono: start})
	wantStatus(t, v, Pass)
	if !slices.Contains(v.Held(), DispatcherProgress) {
		t.Errorf("held %q lacks dispatcher-progress", v.Held())
	}
	// No tick entries and no harness ticks: not checked.
	v = check(t, Input{DBPath: path, Schedule: s, Subject: Observability{Name: "exec:hermes kanban dispatch"}})
	wantStatus(t, v, Pass)
	wantSkip(t, v, DispatcherProgress, "the subject (exec:hermes kanban dispatch) records no ticks")
	// Ticks observed but none happened: not checked, and the run is unknown.
	v = check(t, Input{DBPath: path, Schedule: s, Subject: reference})
	wantStatus(t, v, Unknown)
	wantSkip(t, v, DispatcherProgress, "no dispatcher tick finished")
	if len(v.Unknowns) != 1 || !strings.Contains(v.Unknowns[0], "no dispatcher tick finished: the subject (reference)'s ticks are observed, but none was seen") {
		t.Errorf("Unknowns = %q", v.Unknowns)
	}
	// The harness's own tick count is enough for the reference dispatcher.
	v = check(t, Input{DBPath: path, Schedule: s, Subject: reference, Ticks: 40})
	wantStatus(t, v, Pass)
	if !slices.Contains(v.Held(), DispatcherProgress) {
		t.Errorf("held %q lacks dispatcher-progress with 40 harness ticks", v.Held())
	}
}

func TestOneWriterPerTickFromTickSpans(t *testing.T) {
	path := emptyBoard(t, "p")
	s := schedule.Schedule{TimeScale: 1, Dispatchers: 2, Expect: []string{OneWriterPerTick}}
	commit := func(who, op string, began, mono int64) ledger.Entry {
		return ledger.Entry{Kind: ledger.Commit, Who: who, Op: op, Began: began, Mono: mono, PID: 1}
	}
	d1 := []ledger.Entry{
		commit("d1", "init_schema", 10, 20), // before its first tick: belongs to none
		commit("d1", "notify_cursor", 110, 120), commit("d1", "claim", 180, 190), tickEntry("d1", 100, 200, ""),
		commit("d1", "notify_cursor", 310, 320), tickEntry("d1", 300, 400, ""),
	}
	cases := []struct {
		name string
		d2   []ledger.Entry
		fail bool
	}{
		{"d2 writes inside d1's tick", []ledger.Entry{commit("d2", "notify_cursor", 150, 160), commit("d2", "claim", 165, 170), tickEntry("d2", 140, 250, "")}, true},
		{"d2 writes between d1's ticks", []ledger.Entry{commit("d2", "notify_cursor", 210, 220), tickEntry("d2", 140, 250, "")}, false},
		{"d2 skipped while d1 held the lock", []ledger.Entry{tickEntry("d2", 150, 160, ledger.SkippedLocked), commit("d2", "notify_cursor", 410, 420), tickEntry("d2", 405, 430, "")}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := check(t, Input{DBPath: path, Schedule: s, Ledger: ledger.History{Entries: append(slices.Clone(d1), tc.d2...)}})
			if !tc.fail {
				wantStatus(t, v, Pass)
				if !slices.Contains(v.Held(), OneWriterPerTick) {
					t.Errorf("held %q lacks one-writer-per-tick", v.Held())
				}
				return
			}
			x := one(t, v, OneWriterPerTick, "")
			if x.Evidence["writer"] != "d1" || x.Evidence["intruder"] != "d2" || x.Evidence["intruder_first_commit"] != "notify_cursor" ||
				x.Evidence["writer_commits"] != 2 {
				t.Errorf("evidence %v", x.Evidence)
			}
		})
	}
	// Without the dispatchers' own commits there is nothing to compare.
	v := check(t, Input{DBPath: path, Schedule: s, Ledger: ledger.History{Entries: []ledger.Entry{tickEntry("d1", 1, 2, ""), tickEntry("d2", 1, 2, "")}}})
	wantSkip(t, v, OneWriterPerTick, "the subject records none of its own commits: there are no dispatcher writes to tell apart")
}

// ---- target state ----

func TestTargetNoWorkerEverStarted(t *testing.T) {
	path := emptyBoard(t, "ghost", spawnTask)
	v := check(t, Input{DBPath: path, Schedule: spawnSchedule(t, "exit-now:1"), Subject: Observability{Name: "exec:sleep 1000"}})
	wantStatus(t, v, Unknown)
	if len(v.Unknowns) != 1 || v.Unknowns[0] != "no worker ever started: exec:sleep 1000 never spawned a worker for any of the 1 task(s) "+
		"assigned to registered profiles (first: t_0000f00d, profile ghost)" {
		t.Errorf("Unknowns = %q", v.Unknowns)
	}
	// An unregistered assignee is never spawned: no target — but a task
	// left silently in ready for it is a violation of its own.
	s := spawnSchedule(t, "exit-now:1")
	s.Profiles[0].Unregistered = true
	v = check(t, Input{DBPath: path, Schedule: s})
	wantStatus(t, v, Fail)
	if !slices.Equal(v.Failed(), []string{AssigneeSurfaced}) || len(v.Unknowns) != 0 {
		t.Errorf("want only %s failing, got %+v %q", AssigneeSurfaced, v.Violations, v.Unknowns)
	}
}

func TestTargetCrashNeverClassified(t *testing.T) {
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, spawnTask, "ghost")
	run := claim(t, b, spawnTask, "h:1") // the worker died; nobody ever ended the run
	closeBoard(t, b)
	h := ledger.History{Entries: []ledger.Entry{start(spawnTask, run, 5000, 1)}}
	h.Entries[0].Wall = 1500
	v := check(t, Input{DBPath: path, Schedule: spawnSchedule(t, "exit-now:1"), Ledger: h})
	wantStatus(t, v, Unknown)
	if len(v.Unknowns) != 1 || !strings.Contains(v.Unknowns[0], "no crash of task t_0000f00d (worker exit-now:1) was ever classified: 1 worker start(s), and the dispatcher ended none of its runs") {
		t.Errorf("Unknowns = %q", v.Unknowns)
	}
	// A start in the quiet phase may not be classified before the run ends:
	// then only the missing breaker decision is reported.
	if len(v.Unknowns) != 1 {
		t.Fatalf("Unknowns = %q", v.Unknowns)
	}
	v = check(t, Input{DBPath: path, Schedule: spawnSchedule(t, "exit-now:1"), Ledger: h, QuietStartWall: 1400})
	if len(v.Unknowns) != 1 || !strings.Contains(v.Unknowns[0], "no breaker decision was ever reached") {
		t.Errorf("Unknowns = %q", v.Unknowns)
	}
}

func TestTargetExit75NeverEnded(t *testing.T) {
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, throttled, "p")
	run := claim(t, b, throttled, "h:1")
	closeBoard(t, b)
	h := ledger.History{Entries: []ledger.Entry{start(throttled, run, 6001, 1), exitEntry(throttled, run, 6001, 75, 2)}}
	v := check(t, Input{DBPath: path, Schedule: throttledSchedule(t), Ledger: h})
	wantStatus(t, v, Unknown)
	if len(v.Unknowns) != 1 || v.Unknowns[0] != "no exit-75 run of task t_00000075 was ever ended by the dispatcher: 1 worker start(s)" {
		t.Errorf("Unknowns = %q", v.Unknowns)
	}
}

func TestTargetNothingCompleted(t *testing.T) {
	b, path := openBoard(t, kanban.DefaultOptions())
	create(t, b, "t_0000c001", "coder")
	create(t, b, "t_0000c002", "coder")
	closeBoard(t, b)
	s := schedule.Schedule{Profiles: []schedule.Profile{{Name: "coder", Worker: mustBehaviour(t, "write-complete:20")}},
		Tasks: []schedule.Task{{ID: "t_0000c001", Assignee: "coder"}, {ID: "t_0000c002", Assignee: "coder"}}}
	h := ledger.History{Entries: []ledger.Entry{start("t_0000c001", 0, 1, 1)}}
	v := check(t, Input{DBPath: path, Schedule: s, Ledger: h})
	wantStatus(t, v, Unknown)
	if len(v.Unknowns) != 1 || v.Unknowns[0] != "no task whose worker completes ever completed: 2 such task(s) (first: t_0000c001, worker write-complete:20), 1 worker start(s)" {
		t.Errorf("Unknowns = %q", v.Unknowns)
	}
	// One completion is the target: a capped fan-out board is not meant to
	// finish every card.
	h.Entries = append(h.Entries, ledger.Entry{Kind: ledger.Commit, Who: "worker", PID: 1, Op: kanban.EventCompleted, Task: "t_0000c001", Mono: 2})
	wantStatus(t, check(t, Input{DBPath: path, Schedule: s, Ledger: h}), Pass)
}

// r5-crash-loop's shape: 40 crash-looping cards with max_retries 50 and 40
// completing ones under max_spawn 2 cannot all reach a breaker decision in
// 5.5 s of 20 ms ticks; the run is judged on what it can reach.
func TestTargetBreakerDecisionNeedsRoom(t *testing.T) {
	s := schedule.Schedule{Dispatchers: 2, TickMs: 20, DurationMs: 5000, QuietMs: 500, MaxSpawn: 2,
		Profiles: []schedule.Profile{{Name: "ghost", Worker: mustBehaviour(t, "kill-in-txn")}, {Name: "coder", Worker: mustBehaviour(t, "write-complete:20")}}}
	for i := range 80 {
		task := schedule.Task{ID: fmt.Sprintf("t_%08x", i), Assignee: "ghost", MaxRetries: 50}
		if i%2 == 1 {
			task.Assignee = "coder"
		}
		s.Tasks = append(s.Tasks, task)
	}
	if why := breakerRoom(s); why != "the schedule leaves no room for a breaker decision: with max_spawn 2 the first needs at least 10.2s of worker runs (2040 runs), the run lasts 5.5s" {
		t.Errorf("breakerRoom = %q", why)
	}
	s.MaxSpawn = 0
	if why := breakerRoom(s); why != "" {
		t.Errorf("without a cap 50 crashes of ≥ 10 ms fit in 5.5 s; breakerRoom = %q", why)
	}
	s.MaxSpawn, s.Tasks = 2, s.Tasks[:2]
	if why := breakerRoom(s); why != "" {
		t.Errorf("one crash-looping card fits; breakerRoom = %q", why)
	}
	// A worker that takes 200 ms before it crashes needs 50 × 200 ms.
	s.Profiles[0].Worker.DelayMs = 200
	if why := breakerRoom(s); !strings.Contains(why, "the first needs at least 10s of worker runs (51 runs)") {
		t.Errorf("breakerRoom with a 200 ms delay = %q", why)
	}
	s.Profiles = s.Profiles[1:] // no failing worker: nothing to decide
	if why := breakerRoom(s); why != "" {
		t.Errorf("no failing task: breakerRoom = %q", why)
	}
}

// TestAssigneeSurfaced: a task for a profile that does not exist held when
// the dispatcher blocked it or said why on it, violated when left silently
// in ready (every real release so far).
func TestAssigneeSurfaced(t *testing.T) {
	s := spawnSchedule(t, "exit-now:1")
	s.Profiles[0].Unregistered = true
	for _, c := range []struct {
		name, sql string
		want      Status
	}{
		{"silent", "", Fail},
		{"blocked", `UPDATE tasks SET status = 'blocked', last_failure_error = 'no such profile'`, Pass},
		{"an event says why", `INSERT INTO task_events (task_id, kind, payload, created_at) VALUES ('` + spawnTask + `', 'skipped_nonspawnable', '{}', 1)`, Pass},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, path := openBoard(t, kanban.DefaultOptions())
			create(t, b, spawnTask, "ghost")
			if c.sql != "" {
				if _, err := b.DB().Exec(c.sql); err != nil {
					t.Fatal(err)
				}
			}
			closeBoard(t, b)
			v := check(t, Input{DBPath: path, Schedule: s})
			wantStatus(t, v, c.want)
			if !slices.Contains(v.Checked, AssigneeSurfaced) {
				t.Errorf("%s not checked: %+v", AssigneeSurfaced, v.NotChecked)
			}
		})
	}
}

// max-runtime's shape: a hanging worker on a task with max_runtime_seconds
// is timed out after it, not after the stale-heartbeat backstop: four 1 s
// runs fit in 10.5 s (the backstop's 4.5 s each would not).
func TestTargetBreakerRoomKnowsMaxRuntime(t *testing.T) {
	s := schedule.Schedule{Dispatchers: 1, TickMs: 100, TimeScale: 0.001, DurationMs: 9000, QuietMs: 1500, FailureLimit: 4,
		Profiles: []schedule.Profile{{Name: "slowpoke", Worker: mustBehaviour(t, "hang")}},
		Tasks:    []schedule.Task{{ID: "t_00000001", Assignee: "slowpoke"}}}
	if why := breakerRoom(s); !strings.Contains(why, "no room for a breaker decision") {
		t.Errorf("a hang ended by the backstop only: breakerRoom = %q", why)
	}
	s.Tasks[0].MaxRuntimeS = 1000
	if why := breakerRoom(s); why != "" {
		t.Errorf("timed out after 1 s: breakerRoom = %q", why)
	}
}

// TestRateLimitNotCheckedWhenPIDsAreLost: with the fault lose_pid no
// dispatcher ever learns a worker's pid, so a worker's exit 75 that a
// reclaim counted is not held against it — rate-limit is not checked, and
// says why (before: a violation on every such run of the fixed variant).
func TestRateLimitNotCheckedWhenPIDsAreLost(t *testing.T) {
	path := bookedBoard(t, throttled, 2, func(b *kanban.Board, run int64, pid int) {
		if _, _, err := b.ReleaseClaim(context.Background(), throttled, "h:1", kanban.OutcomeReclaimed, "claim expired", true, 2); err != nil {
			t.Fatal(err)
		}
	})
	lost := throttledSchedule(t)
	lost.Knobs = map[string]string{"lose_pid": "true"}
	v := check(t, Input{DBPath: path, Schedule: lost, Ledger: throttledLedger(600), RunStartMono: 1e9, Cooldown: 0.5})
	wantSkip(t, v, RateLimit, "the spawn returned no worker pid (fault lose_pid, #35202): no dispatcher can read a worker's exit code, so an exit 75 cannot be told from a crash")
	// The same board and ledger without the fault: the counted exit 75 is
	// a violation.
	v = check(t, Input{DBPath: path, Schedule: throttledSchedule(t), Ledger: throttledLedger(600), RunStartMono: 1e9, Cooldown: 0.5})
	one(t, v, RateLimit, throttled)
}

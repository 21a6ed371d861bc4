package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// TestStopEarlySameViolation: a run that stops once its verdict is decided
// reports the violation a full run of the same schedule reports — same
// invariant, same task, same limit — and every invariant it finds
// violated, the full run finds violated too.
func TestStopEarlySameViolation(t *testing.T) {
	t.Parallel()
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			s := build(t, "issue-30896", "hermes-0.15", seed)
			s.DurationMs, s.QuietMs = 1000, 300 // the full run's length; the early one stops long before
			early, err := Run(context.Background(), s, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer early.Discard()
			full, err := Run(context.Background(), s, Options{FullDuration: true})
			if err != nil {
				t.Fatal(err)
			}
			defer full.Discard()
			if early.Verdict.Status != oracle.Fail || full.Verdict.Status != oracle.Fail {
				t.Fatalf("want both to fail: early %s, full %s", early.Verdict.Status, full.Verdict.Status)
			}
			d := early.Decided
			if d == nil {
				t.Fatalf("the early run ran its whole schedule (%v)", early.Elapsed)
			}
			if full.Decided != nil {
				t.Fatalf("--full-duration stopped early: %+v", full.Decided)
			}
			if early.Elapsed >= full.Elapsed {
				t.Errorf("early run took %v, full %v", early.Elapsed, full.Elapsed)
			}
			want := spawnViolation(full.Verdict, d.Task)
			got := spawnViolation(early.Verdict, d.Task)
			if d.Invariant != oracle.Spawns || want == nil || got == nil {
				t.Fatalf("decided by %+v; early %v, full %v", d, early.Verdict.Failed(), full.Verdict.Failed())
			}
			if got.Evidence["limit"] != want.Evidence["limit"] || got.Evidence["limit_source"] != want.Evidence["limit_source"] {
				t.Errorf("limits differ: early %v, full %v", got.Evidence, want.Evidence)
			}
			for _, inv := range early.Verdict.Failed() {
				if !slices.Contains(full.Verdict.Failed(), inv) {
					t.Errorf("the early run reports %s, the full run does not (%v)", inv, full.Verdict.Failed())
				}
			}
			if slices.Contains(early.Verdict.Held(), oracle.BreakerHolds) {
				t.Errorf("breaker-holds held without a quiet phase: %+v", early.Verdict)
			}
		})
	}
}

func spawnViolation(v oracle.Verdict, task string) *oracle.Violation {
	for i, x := range v.Violations {
		if x.Invariant == oracle.Spawns && x.Task == task {
			return &v.Violations[i]
		}
	}
	return nil
}

// TestPassingRunRunsItsSchedule: nothing decides a run in which no
// decidable invariant is violated (fixed holds the spawn limit), so it runs
// its dispatch and quiet phases to the end — whatever else a loaded machine
// makes of it (a stall, a breaker decision not reached in time).
func TestPassingRunRunsItsSchedule(t *testing.T) {
	t.Parallel()
	s := build(t, "issue-30896", "fixed", 4)
	s.DurationMs, s.QuietMs = 600, 200
	res, err := Run(context.Background(), s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Discard()
	for _, inv := range oracle.Decidable() {
		if slices.Contains(res.Verdict.Failed(), inv) {
			t.Fatalf("fixed violated %s: %+v", inv, res.Verdict.Violations)
		}
	}
	if res.Decided != nil {
		t.Fatalf("stopped early on %+v", res.Decided)
	}
	if res.Elapsed < 800*time.Millisecond {
		t.Fatalf("a run nothing decided stopped after %v of its 800ms (%s)", res.Elapsed, res.Verdict.Status)
	}
}

// TestExecSubjectStopsEarlyLeavesNothing: an external subject whose workers
// break the spawn limit and hang is stopped once that is established, long
// before its schedule ends, and neither it nor any worker survives.
func TestExecSubjectStopsEarlyLeavesNothing(t *testing.T) {
	t.Parallel()
	s, cmd := orphaningSubject(t, 22, 3, 20000)
	res, err := Run(context.Background(), s, Options{Keep: true, Subject: schedule.Subject{Exec: cmd}, StopGrace: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(res.Artifacts)
	if res.Decided == nil || res.Decided.Invariant != oracle.Spawns {
		t.Fatalf("want a stop on spawns, got %+v (elapsed %v, verdict %s)", res.Decided, res.Elapsed, res.Verdict.Status)
	}
	if res.Elapsed > 10*time.Second {
		t.Errorf("stopping took until %v of a 20s schedule", res.Elapsed)
	}
	h, err := ledger.Read(filepath.Join(res.Artifacts, "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	assertNoneAlive(t, h)
	assertSandboxEmpty(t, res.Artifacts)
	if res.Verdict.Status != oracle.Fail || !slices.Contains(res.Verdict.Failed(), oracle.Spawns) {
		t.Fatalf("want spawns violated, got %s %v", res.Verdict.Status, res.Verdict.Failed())
	}
}

// TestWatchDecision: the watcher reads complete lines only, decides on the
// start that breaks the limit, and only for the invariants it is told to.
func TestWatchDecision(t *testing.T) {
	t.Parallel()
	s := build(t, "issue-30896", "hermes-0.15", 1)
	task := s.Tasks[0].ID
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	start := ledger.MonoNow()
	for i := range 3 {
		if err := ledger.Append(path, ledger.Entry{Kind: ledger.Start, Task: task, PID: 100 + i, Who: "worker"}); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if d, ok := watchDecision(ctx, path, s, start, []string{oracle.SQLiteErrors}, time.Millisecond); ok {
		t.Fatalf("decided on %+v though told to stop on sqlite-errors only", d)
	}
	d, ok := watchDecision(context.Background(), path, s, start, nil, time.Millisecond)
	if !ok || d.Invariant != oracle.Spawns || d.Task != task {
		t.Fatalf("want spawns for %s decided, got %+v %v", task, d, ok)
	}

	// A line half written is not read until it is complete.
	half := filepath.Join(t.TempDir(), "ledger.jsonl")
	os.WriteFile(half, []byte(`{"kind":"start","task":"`+task+`"`), 0o644)
	tail := ledgerTail{path: half}
	var h ledger.History
	if fresh, err := tail.read(&h); err != nil || fresh || h.Malformed != 0 {
		t.Fatalf("half a line: fresh=%v malformed=%d err=%v", fresh, h.Malformed, err)
	}
	f, _ := os.OpenFile(half, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`,"pid":7}` + "\n")
	f.Close()
	if fresh, err := tail.read(&h); err != nil || !fresh || len(h.Entries) != 1 || h.Malformed != 0 {
		t.Fatalf("completed line: fresh=%v entries=%d malformed=%d err=%v", fresh, len(h.Entries), h.Malformed, err)
	}
}

// TestMarkCut: a run cut on a violation loses its breaker-holds "held"
// (no quiet phase), and a cut run whose full audit does not confirm the
// violation it was cut on is undecided — never a pass.
func TestMarkCut(t *testing.T) {
	s := schedule.Schedule{DurationMs: 3000}
	cut := Decision{Invariant: oracle.Spawns, Task: "t_1", AtMs: 60, StoppedMs: 100}

	confirmed := oracle.Verdict{Status: oracle.Fail, Checked: []string{oracle.Spawns, oracle.BreakerHolds},
		Violations: []oracle.Violation{{Invariant: oracle.Spawns, Task: "t_1"}}}
	markCut(&confirmed, cut, s)
	if confirmed.Status != oracle.Fail || len(confirmed.Unknowns) != 0 {
		t.Fatalf("a confirmed cut: %s, unknowns %q; want FAIL and none", confirmed.Status, confirmed.Unknowns)
	}
	if slices.Contains(confirmed.Held(), oracle.BreakerHolds) {
		t.Fatalf("a cut run held breaker-holds without its quiet phase: %q", confirmed.Held())
	}

	unconfirmed := oracle.Verdict{Status: oracle.Pass, Checked: []string{oracle.Spawns}}
	markCut(&unconfirmed, cut, s)
	if unconfirmed.Status != oracle.Unknown || len(unconfirmed.Unknowns) != 1 {
		t.Fatalf("an unconfirmed cut: %s, unknowns %q; want UNKNOWN, saying why", unconfirmed.Status, unconfirmed.Unknowns)
	}
}

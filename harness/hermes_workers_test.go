package harness

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
	"github.com/kanbanchaos/kanbanchaos/subject"
)

// workerTasks is a small board for one dispatcher whose Hermes workers
// play one behaviour each: calm enough that the release has no reason to
// lose a write, so what the ledger and board say is the worker's doing.
func workerTasks(t *testing.T, release string) schedule.Schedule {
	s := build(t, "issue-35240", "", 1)
	s.Dispatchers, s.DispatcherOffsetsMs = 1, nil
	s.DurationMs, s.QuietMs = 5000, 1000
	s.Expect = nil
	s.Profiles = []schedule.Profile{
		{Name: "writer", Worker: schedule.Behaviour{Mode: schedule.ModeWriteComplete, Writes: 3}},
		{Name: "killer", Worker: schedule.Behaviour{Mode: schedule.ModeKillInTxn, Writes: 2}},
		{Name: "quitter", Worker: schedule.Behaviour{Mode: schedule.ModeOpenBoardExit, Exit: 3}},
	}
	s.Tasks = []schedule.Task{
		{ID: "t_aaaa0001", Title: "write and complete", Assignee: "writer"},
		{ID: "t_aaaa0002", Title: "die inside a write transaction", Assignee: "killer", MaxRetries: 1},
		{ID: "t_aaaa0003", Title: "read the task, then crash", Assignee: "quitter", MaxRetries: 1},
	}
	s.Subject = schedule.Subject{Hermes: release, Workers: hermes.WorkersHermes}
	return s
}

// TestHermesWorkers: with --workers hermes each worker start runs the
// release's own kanban tools, and appends its start, its acknowledged
// commits (named as the Go worker names them) and its exit to the ledger —
// so the oracle checks them unchanged.
func TestHermesWorkers(t *testing.T) {
	for _, release := range hermes.Defaults {
		t.Run(release, func(t *testing.T) {
			releaseOrSkip(t, release)
			// Not parallel: three releases' Python workers at once would starve
			// the tick loops TestRealHermes measures beside them.
			s := workerTasks(t, release)
			// The whole schedule: a run stopped at its first violation (the
			// quitter's breaker on 0.15.0, within 1.5 s) cuts the other
			// workers short, and their acts are what is asserted.
			res, err := Run(context.Background(), s, Options{Keep: true, ArtifactsDir: t.TempDir(), FullDuration: true})
			if err != nil {
				t.Fatal(err)
			}
			// The verdict is the release's business (0.19.0 may not decide a
			// killed worker's crash within the run); what is asserted is that
			// the workers were Hermes' and their acts are in the ledger.
			t.Logf("hermes:%s with Hermes workers: %s %v %v", release, res.Verdict.Status, res.Verdict.Failed(), res.Verdict.Unknowns)
			if res.Settings.Workers != hermes.WorkersHermes || len(res.Settings.WorkerSQLite) != 1 ||
				res.Settings.WorkerSQLite[0] != res.Settings.Reported[0].SQLite {
				t.Errorf("the workers' SQLite is not recorded or differs from the driver's: %+v", res.Settings)
			}
			h, err := ledger.Read(filepath.Join(res.Artifacts, "ledger.jsonl"))
			if err != nil {
				t.Fatal(err)
			}
			assertNoneAlive(t, h)
			ops := map[string][]string{}
			kinds := map[string][]string{} // event kinds the workers' commits wrote, per task
			exits := map[string][]int{}
			for _, e := range h.Entries {
				switch {
				case e.Kind == ledger.Commit && e.Who == "worker":
					ops[e.Task] = append(ops[e.Task], e.Op)
					kinds[e.Task] = append(kinds[e.Task], e.EventKinds...)
				case e.Kind == ledger.Exit:
					code, _ := e.ExitStatus()
					exits[e.Task] = append(exits[e.Task], code)
				case e.Kind == ledger.Start && !strings.HasPrefix(e.Message, "hermes worker sqlite "):
					t.Errorf("start line %+v is not a Hermes worker's", e)
				}
			}
			// A tool call the release failed (its own damage to the board, on
			// 0.15.0/0.19.0 with SQLite < 3.51) ends a worker with exit 1: then
			// only its start and exit lines are asserted.
			toolFailed := func(task string) bool {
				if slices.Contains(exits[task], 1) {
					t.Logf("task %s: a worker's tool call failed (exit 1): see its log", task)
					return true
				}
				return false
			}
			// write-complete:3 — each worker: heartbeat (claim + worker
			// event), 3 comments, completed, exit 0. The task may run more
			// than once: 0.15.0 on SQLite < 3.51 can lose its completion's
			// commit (no-lost-writes) and start the card again.
			if got, done := ops["t_aaaa0001"], countOf(exits["t_aaaa0001"], 0); !toolFailed("t_aaaa0001") &&
				(done < 1 || countOf(got, "comment") != 3*done || countOf(got, kanban.EventCompleted) < done || countOf(got, "heartbeat") < done) {
				t.Errorf("write-complete worker's commits %v, exits %v", got, exits["t_aaaa0001"])
			}
			// kill-in-txn: 2 comments acknowledged, the third never committed,
			// no exit line, never a completion. (A commit named "completed" can
			// still be booked to its task: on 0.15.0 the writer's completion
			// runs recompute_ready, which re-promotes the killer's gave_up task
			// and writes its promoted event — what the kinds say, not the op.)
			if got := ops["t_aaaa0002"]; !toolFailed("t_aaaa0002") && (countOf(got, "comment") < 2 || slices.Contains(kinds["t_aaaa0002"], kanban.EventCompleted) || len(exits["t_aaaa0002"]) != 0) {
				t.Errorf("kill-in-txn worker's commits %v, exits %v (a worker killed inside its transaction writes no exit line)", got, exits["t_aaaa0002"])
			}
			if got := exits["t_aaaa0003"]; len(got) == 0 || (!toolFailed("t_aaaa0003") && slices.ContainsFunc(got, func(c int) bool { return c != 3 })) {
				t.Errorf("open-board-then-exit:3 exits: %v", got)
			}
		})
	}
}

func countOf[T comparable](xs []T, x T) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// TestHermesWorkersRefuse: a behaviour the release's tools cannot express
// is refused before the run, saying why; Hermes workers need Hermes.
func TestHermesWorkersRefuse(t *testing.T) {
	s := build(t, "issue-35240", "", 1)
	s.Subject = schedule.Subject{Workers: hermes.WorkersHermes}
	if err := subject.CheckWorkers(context.Background(), s); err == nil || !strings.Contains(err.Error(), "needs a hermes: subject") {
		t.Errorf("--workers hermes without a release: %v", err)
	}
	releaseOrSkip(t, hermes.Release30896)
	s = build(t, "issue-30678", "", 1) // create-on-board
	s.Subject = schedule.Subject{Hermes: hermes.Release30896, Workers: hermes.WorkersHermes}
	if err := subject.CheckWorkers(context.Background(), s); err == nil || !strings.Contains(err.Error(), "no board argument") {
		t.Errorf("0.14.0's kanban_create takes no board: want a refusal saying so, got %v", err)
	}
}

// TestPythonSQLite: --python-sqlite VERSION really changes the SQLite the
// release's Python (driver and Hermes workers) runs on.
//
// Not parallel, as TestHermesWorkers: a real release's Python driver and
// workers, which the parallel tests' processes would starve.
func TestPythonSQLite(t *testing.T) {
	const version = "3.53.4"
	releaseOrSkip(t, hermes.Newest)
	if _, err := hermes.LocateSQLite(version); err != nil {
		t.Skipf("%v", err)
	}
	s := workerTasks(t, hermes.Newest)
	s.Subject.PythonSQLite = version
	res, err := Run(context.Background(), s, Options{})
	if err != nil {
		t.Fatal(err)
	}
	st := res.Settings
	if st == nil || len(st.Reported) != 1 || st.Reported[0].SQLite != version || !slices.Equal(st.WorkerSQLite, []string{version}) {
		t.Fatalf("asked for SQLite %s, the driver reported %+v and the workers %v", version, st.Reported, st.WorkerSQLite)
	}
}

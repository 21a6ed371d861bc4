package oracle

import (
	"database/sql"
	"fmt"
	"slices"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// streamBoard writes rows straight into a board's tables: what a real
// board can hold that our own dispatcher never writes (a task's event
// naming another task's run, events of a task id with no row), with event
// ids interleaved across tasks.
func streamBoard(t *testing.T, exec func(db *sql.DB)) string {
	t.Helper()
	b, path := openBoard(t, kanban.DefaultOptions())
	closeBoard(t, b)
	db, err := sql.Open("sqlite", kanban.FileURI(path))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	exec(db)
	return path
}

// TestAuditStreamsTaskByTask: Audit judges the board one task at a time
// (stream.go), yet what one task's rows say of another's is still seen,
// and violations keep the order a whole-board read gave them.
func TestAuditStreamsTaskByTask(t *testing.T) {
	path := streamBoard(t, func(db *sql.DB) {
		must := func(q string, args ...any) {
			t.Helper()
			if _, err := db.Exec(q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		for _, id := range []string{"t_a", "t_b", "t_c", "t_d", "t_e", "t_f", "t_y", "t_z"} {
			must(`INSERT INTO tasks (id, title, status, created_at, max_retries) VALUES (?, '', 'blocked', 1, 1)`, id)
		}
		run := func(id int64, task, outcome string, pid any, started, ended float64) {
			must(`INSERT INTO task_runs (id, task_id, status, started_at, ended_at, outcome, worker_pid) VALUES (?,?,?,?,?,?,?)`,
				id, task, "ended", started, ended, outcome, pid)
		}
		event := func(task string, run any, kind string) {
			must(`INSERT INTO task_events (task_id, run_id, kind, payload, created_at) VALUES (?,?,?,'{}',10)`, task, run, kind)
		}
		// t_a's run was reclaimed with no pid; its spawned event is booked
		// under t_b: it had a worker. t_c's and t_f's runs never did.
		run(1, "t_a", kanban.OutcomeReclaimed, nil, 1, 2)
		run(2, "t_c", kanban.OutcomeReclaimed, nil, 1, 2)
		run(3, "t_f", kanban.OutcomeReclaimed, nil, 1, 2)
		// t_e's run 4 was rate limited; t_d's spawned event for it does
		// not count toward t_d's limit of 1, its own run 5's does.
		run(4, "t_e", kanban.OutcomeRateLimited, 9, 1, 2)
		run(5, "t_d", kanban.OutcomeCrashed, 9, 3, 4)
		// Early respawns after a rate-limited run: t_z's (run 6) comes
		// before t_y's (run 8) by run id, though t_y sorts first.
		run(6, "t_z", kanban.OutcomeRateLimited, 9, 10, 11)
		run(7, "t_z", kanban.OutcomeCrashed, 9, 12, 13)
		run(8, "t_y", kanban.OutcomeRateLimited, 9, 10, 11)
		run(9, "t_y", kanban.OutcomeCrashed, 9, 12, 13)
		// Two spawned runs of t_f's own (limit 1): over.
		run(10, "t_f", kanban.OutcomeCrashed, 9, 3, 4)
		run(11, "t_f", kanban.OutcomeCrashed, 9, 5, 6)
		for _, e := range []struct {
			task string
			run  any
			kind string
		}{
			{"t_d", 4, kanban.EventSpawned}, {"t_b", 1, kanban.EventSpawned}, {"t_f", 10, kanban.EventSpawned},
			{"t_d", 5, kanban.EventSpawned}, {"t_ghost", nil, kanban.EventGaveUp}, {"t_f", 11, kanban.EventSpawned},
			{"t_ghost", nil, kanban.EventClaimed},
		} {
			event(e.task, e.run, e.kind)
		}
	})
	v, sum := audit(t, path, AuditOptions{Cooldown: 60e9})
	var got []string
	for _, x := range v.Violations {
		got = append(got, x.Invariant+" "+x.Task)
	}
	want := []string{
		BreakerHolds + " t_ghost",              // a task id without a row is still judged
		RateLimit + " t_z", RateLimit + " t_y", // by the rate-limited run's id
		SpawnLimit + " t_f",                                    // not t_d: run 4 was rate limited
		UnrecordedWorkers + " t_c", UnrecordedWorkers + " t_f", // not t_a: t_b's event recorded it
	}
	if !slices.Equal(got, want) {
		t.Errorf("violations %q, want %q", got, want)
	}
	if sum.Tasks != 8 || sum.Runs != 11 || sum.Events != 7 || sum.Status["blocked"] != 8 {
		t.Errorf("summary %+v, want 8 blocked tasks, 11 runs, 7 events", sum)
	}
	if msg := fmt.Sprint(v.Violations[len(v.Violations)-1].Evidence["runs"]); msg != "[3]" {
		t.Errorf("t_f's unrecorded runs %s, want [3]", msg)
	}
}

// TestAuditOrdersIdsAsText: a task id stored as a BLOB sorts after every
// TEXT id in SQLite but by its bytes in Go; the merge reads ids as text in
// both, so such a board is judged, never an "out of order" internal error
// (exit 4 on check before).
func TestAuditOrdersIdsAsText(t *testing.T) {
	path := streamBoard(t, func(db *sql.DB) {
		for _, q := range []string{
			`INSERT INTO tasks (id, title, status, created_at) VALUES ('t_a', '', 'ready', 1)`,
			`INSERT INTO tasks (id, title, status, created_at) VALUES (CAST('00' AS BLOB), '', 'ready', 1)`,
			`INSERT INTO task_events (task_id, kind, payload, created_at) VALUES (CAST('0' AS BLOB), 'created', '{}', 1)`,
			`INSERT INTO task_events (task_id, kind, payload, created_at) VALUES ('t_a', 'created', '{}', 1)`,
		} {
			if _, err := db.Exec(q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	})
	v, sum, err := Audit(t.Context(), path, AuditOptions{})
	if err != nil {
		t.Fatalf("Audit: %v", err)
	}
	if sum.Tasks != 2 || v.Status != Pass {
		t.Errorf("tasks %d, verdict %s %v: want 2 tasks judged, a pass", sum.Tasks, v.Status, v.Failed())
	}
}

package kanban_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// ---- helpers ----

func openAt(t *testing.T, path string, o kanban.Options) *kanban.Board {
	t.Helper()
	b, err := kanban.Connect(context.Background(), path, o)
	if err != nil {
		t.Fatalf("Connect(%s): %v", path, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// openBoard opens a fresh board with a deterministic clock that advances one
// second per reading.
func openBoard(t *testing.T) *kanban.Board {
	t.Helper()
	b := openAt(t, filepath.Join(t.TempDir(), "kanban.db"), kanban.DefaultOptions())
	clock := 1000.0
	b.SetClock(func() float64 { clock++; return clock })
	return b
}

func create(t *testing.T, b *kanban.Board, nt kanban.NewTask) string {
	t.Helper()
	id, err := b.CreateTask(context.Background(), nt)
	if err != nil {
		t.Fatalf("CreateTask(%+v): %v", nt, err)
	}
	return id
}

func claim(t *testing.T, b *kanban.Board, id, lock string) int64 {
	t.Helper()
	run, ok, err := b.Claim(context.Background(), id, lock, 900)
	if err != nil || !ok || run <= 0 {
		t.Fatalf("Claim(%s, %s) = %d, %v, %v; want a run", id, lock, run, ok, err)
	}
	return run
}

func count(t *testing.T, b *kanban.Board, query string, args ...any) int {
	t.Helper()
	var n int
	if err := b.DB().QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// row reads one row of query as column → value.
func row(t *testing.T, b *kanban.Board, query string, args ...any) map[string]any {
	t.Helper()
	rows := dump(t, b, query, args...)
	if len(rows) != 1 {
		t.Fatalf("%s %v: %d rows, want 1", query, args, len(rows))
	}
	return rows[0]
}

func dump(t *testing.T, b *kanban.Board, query string, args ...any) []map[string]any {
	t.Helper()
	rows, err := b.DB().Query(query, args...)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		m := map[string]any{}
		for i, c := range cols {
			if bs, ok := vals[i].([]byte); ok {
				vals[i] = string(bs)
			}
			m[c] = vals[i]
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func task(t *testing.T, b *kanban.Board, id string) map[string]any {
	t.Helper()
	return row(t, b, `SELECT * FROM tasks WHERE id=?`, id)
}

// snapshot renders every row of every table, to prove an operation wrote
// nothing.
func snapshot(t *testing.T, b *kanban.Board) string {
	t.Helper()
	var sb strings.Builder
	for _, table := range []string{"tasks", "task_runs", "task_events", "task_links"} {
		for _, r := range dump(t, b, `SELECT * FROM `+table+` ORDER BY rowid`) {
			fmt.Fprintf(&sb, "%s %v\n", table, r)
		}
	}
	return sb.String()
}

// changed lists the columns whose values differ between two rows.
func changed(before, after map[string]any) []string {
	var out []string
	for k, v := range before {
		if !reflect.DeepEqual(v, after[k]) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func eventKinds(t *testing.T, b *kanban.Board, id string) []string {
	t.Helper()
	var kinds []string
	for _, r := range dump(t, b, `SELECT kind FROM task_events WHERE task_id=? ORDER BY id`, id) {
		kinds = append(kinds, r["kind"].(string))
	}
	return kinds
}

// lastEvent returns the latest event of kind for id, with its payload decoded.
func lastEvent(t *testing.T, b *kanban.Board, id, kind string) (runID any, payload map[string]any) {
	t.Helper()
	r := row(t, b, `SELECT run_id, payload FROM task_events WHERE task_id=? AND kind=? ORDER BY id DESC LIMIT 1`, id, kind)
	if p, ok := r["payload"].(string); ok {
		if err := json.Unmarshal([]byte(p), &payload); err != nil {
			t.Fatalf("%s payload %q: %v", kind, p, err)
		}
	}
	return r["run_id"], payload
}

func asInt(t *testing.T, v any) int64 {
	t.Helper()
	switch n := v.(type) {
	case int64:
		return n
	case float64:
		return int64(n)
	}
	t.Fatalf("%v (%T) is not a number", v, v)
	return 0
}

// running creates a task, claims it under lock and records pid 4242.
func running(t *testing.T, b *kanban.Board, nt kanban.NewTask, lock string) (string, int64) {
	t.Helper()
	id := create(t, b, nt)
	run := claim(t, b, id, lock)
	if err := b.SetWorkerPID(context.Background(), id, run, 4242); err != nil {
		t.Fatal(err)
	}
	return id, run
}

// ---- claim ----

func TestClaimOpensRun(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	id := create(t, b, kanban.NewTask{Title: "a", Assignee: "worker"})
	run, ok, err := b.Claim(ctx, id, "host:1:lockA", 900)
	if err != nil || !ok || run <= 0 {
		t.Fatalf("Claim = %d, %v, %v", run, ok, err)
	}
	tk := task(t, b, id)
	if tk["status"] != kanban.StatusRunning || tk["claim_lock"] != "host:1:lockA" || asInt(t, tk["current_run_id"]) != run {
		t.Fatalf("task after claim: %v", tk)
	}
	if tk["claim_expires"].(float64) <= tk["started_at"].(float64) {
		t.Errorf("claim_expires %v not after started_at %v", tk["claim_expires"], tk["started_at"])
	}
	r := row(t, b, `SELECT * FROM task_runs WHERE id=?`, run)
	if r["task_id"] != id || r["status"] != kanban.StatusRunning || r["claim_lock"] != "host:1:lockA" || r["profile"] != "worker" || r["ended_at"] != nil {
		t.Errorf("run after claim: %v", r)
	}
	runID, p := lastEvent(t, b, id, kanban.EventClaimed)
	if asInt(t, runID) != run || p["lock"] != "host:1:lockA" {
		t.Errorf("claimed event run %v payload %v", runID, p)
	}

	// A second claim of the now running task loses and writes nothing.
	before := snapshot(t, b)
	run2, ok, err := b.Claim(ctx, id, "host:1:lockB", 900)
	if err != nil || ok || run2 != 0 {
		t.Fatalf("second Claim = %d, %v, %v; want 0, false, nil", run2, ok, err)
	}
	if after := snapshot(t, b); after != before {
		t.Errorf("losing claim wrote:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestClaimClosesLeftoverRun(t *testing.T) {
	b := openBoard(t)
	id := create(t, b, kanban.NewTask{Title: "x", Assignee: "w"})
	res, err := b.DB().Exec(`INSERT INTO task_runs (task_id, status, started_at) VALUES (?, 'running', 1)`, id)
	if err != nil {
		t.Fatal(err)
	}
	old, _ := res.LastInsertId()
	run := claim(t, b, id, "L")
	if r := row(t, b, `SELECT status, outcome, ended_at FROM task_runs WHERE id=?`, old); r["status"] != "ended" || r["outcome"] != kanban.OutcomeStale || r["ended_at"] == nil {
		t.Errorf("leftover run after claim %v, want ended as stale", r)
	}
	if n := count(t, b, `SELECT count(*) FROM task_runs WHERE task_id=? AND ended_at IS NULL`, id); n != 1 {
		t.Errorf("%d open runs after claim, want 1 (run %d)", n, run)
	}
}

func TestClaimIsCompareAndSwapAcrossConnections(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kanban.db")
	boards := []*kanban.Board{openAt(t, path, kanban.DefaultOptions()), openAt(t, path, kanban.DefaultOptions())}
	const rounds = 25
	for round := range rounds {
		id := create(t, boards[round%2], kanban.NewTask{Title: fmt.Sprint("round ", round), Assignee: "w"})
		events := count(t, boards[0], `SELECT count(*) FROM task_events`)
		runs := count(t, boards[0], `SELECT count(*) FROM task_runs`)

		type result struct {
			run int64
			ok  bool
			err error
		}
		var results [2]result
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, b := range boards {
			wg.Go(func() {
				<-start
				r, ok, err := b.Claim(ctx, id, fmt.Sprintf("lock-%d-%d", round, i), 900)
				results[i] = result{r, ok, err}
			})
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, r := range results {
			if r.err != nil {
				t.Fatalf("round %d: board %d: %v", round, i, r.err)
			}
			if r.ok {
				if winner >= 0 {
					t.Fatalf("round %d: both claims won: %+v", round, results)
				}
				winner = i
			} else if r.run != 0 {
				t.Errorf("round %d: loser got run %d", round, r.run)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no claim won: %+v", round, results)
		}
		lock := fmt.Sprintf("lock-%d-%d", round, winner)
		if got := count(t, boards[0], `SELECT count(*) FROM task_events`); got != events+1 {
			t.Errorf("round %d: %d new events, want 1 (the winner's claimed)", round, got-events)
		}
		if got := count(t, boards[1], `SELECT count(*) FROM task_runs`); got != runs+1 {
			t.Errorf("round %d: %d new runs, want 1", round, got-runs)
		}
		tk := task(t, boards[0], id)
		if tk["status"] != kanban.StatusRunning || tk["claim_lock"] != lock || asInt(t, tk["current_run_id"]) != results[winner].run {
			t.Errorf("round %d: task %v, want running under %s with run %d", round, tk, lock, results[winner].run)
		}
		if n := count(t, boards[0], `SELECT count(*) FROM task_runs WHERE task_id=? AND claim_lock=? AND id=?`, id, lock, results[winner].run); n != 1 {
			t.Errorf("round %d: winner's run not found", round)
		}
		runID, p := lastEvent(t, boards[0], id, kanban.EventClaimed)
		if asInt(t, runID) != results[winner].run || p["lock"] != lock {
			t.Errorf("round %d: claimed event run %v payload %v", round, runID, p)
		}
	}
}

func TestClaimWithUndoneParentDemotesToTodo(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	parent := create(t, b, kanban.NewTask{Title: "parent", Assignee: "w"})
	child := create(t, b, kanban.NewTask{Title: "child", Assignee: "w"})
	if _, err := b.DB().Exec(`INSERT INTO task_links (parent_id, child_id) VALUES (?,?)`, parent, child); err != nil {
		t.Fatal(err)
	}
	run, ok, err := b.Claim(ctx, child, "lock", 900)
	if err != nil || ok || run != 0 {
		t.Fatalf("Claim(child) = %d, %v, %v; want 0, false, nil", run, ok, err)
	}
	tk := task(t, b, child)
	if tk["status"] != kanban.StatusTodo || tk["claim_lock"] != nil || tk["current_run_id"] != nil {
		t.Errorf("child after rejected claim: %v", tk)
	}
	if n := count(t, b, `SELECT count(*) FROM task_runs WHERE task_id=?`, child); n != 0 {
		t.Errorf("rejected claim opened %d runs", n)
	}
	if got, want := eventKinds(t, b, child), []string{kanban.EventCreated, kanban.EventClaimRejected}; !slices.Equal(got, want) {
		t.Errorf("child events %v, want %v", got, want)
	}
	_, p := lastEvent(t, b, child, kanban.EventClaimRejected)
	if asInt(t, p["undone_parents"]) != 1 {
		t.Errorf("claim_rejected payload %v", p)
	}

	// Claiming the demoted child again writes nothing: it is no longer ready.
	before := snapshot(t, b)
	if run, ok, err := b.Claim(ctx, child, "lock", 900); err != nil || ok || run != 0 {
		t.Fatalf("second Claim(child) = %d, %v, %v", run, ok, err)
	}
	if snapshot(t, b) != before {
		t.Error("claiming a todo child wrote")
	}

	// Once the parent is done, recompute promotes the child and it can be
	// claimed.
	prun := claim(t, b, parent, "plock")
	if err := b.Complete(ctx, parent, prun, "ok"); err != nil {
		t.Fatal(err)
	}
	promoted, err := b.RecomputeReady(ctx, kanban.RecomputePolicy{})
	if err != nil || !slices.Equal(promoted, []string{child}) {
		t.Fatalf("RecomputeReady = %v, %v; want [%s]", promoted, err, child)
	}
	claim(t, b, child, "lock")
}

// ---- failure accounting ----

func TestRecordTaskFailureLimitResolution(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	for _, tc := range []struct {
		name       string
		maxRetries int
		limit      int
		wantLimit  int
		wantSource string
	}{
		{"max_retries beats passed limit", 3, 5, 3, "task"},
		{"max_retries beats default", 4, 0, 4, "task"},
		{"passed limit beats default", 0, 5, 5, "configured"},
		{"default", 0, 0, kanban.DefaultFailureLimit, "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := create(t, b, kanban.NewTask{Title: tc.name, Assignee: "w", MaxRetries: tc.maxRetries})
			f, err := b.RecordTaskFailure(ctx, id, kanban.OutcomeCrashed, "boom", tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			want := kanban.Failure{Task: id, Failures: 1, Limit: tc.wantLimit, Source: tc.wantSource, Tripped: tc.wantLimit <= 1}
			if f != want {
				t.Errorf("RecordTaskFailure = %+v, want %+v", f, want)
			}
		})
	}
}

func TestRecordTaskFailureBelowLimitTouchesOnlyCounterAndError(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	id := create(t, b, kanban.NewTask{Title: "x", Assignee: "w", MaxRetries: 3})
	for i := 1; i <= 2; i++ {
		before := task(t, b, id)
		events := count(t, b, `SELECT count(*) FROM task_events`)
		msg := fmt.Sprint("failure ", i)
		f, err := b.RecordTaskFailure(ctx, id, kanban.OutcomeCrashed, msg, 0)
		if err != nil {
			t.Fatal(err)
		}
		if f.Tripped || f.Failures != i {
			t.Fatalf("failure %d: %+v", i, f)
		}
		after := task(t, b, id)
		if got, want := changed(before, after), []string{"consecutive_failures", "last_failure_error"}; !slices.Equal(got, want) {
			t.Errorf("failure %d changed %v, want %v", i, got, want)
		}
		if asInt(t, after["consecutive_failures"]) != int64(i) || after["last_failure_error"] != msg {
			t.Errorf("failure %d: task %v", i, after)
		}
		if got := count(t, b, `SELECT count(*) FROM task_events`); got != events {
			t.Errorf("failure %d below limit wrote %d events", i, got-events)
		}
	}
}

func TestRecordTaskFailureTripsAtLimit(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		maxRetries int
		limit      int
		wantLimit  int
		wantSource string
	}{
		{"default", 0, 0, 2, "default"},
		{"configured", 0, 3, 3, "configured"},
		{"task", 1, 3, 1, "task"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := openBoard(t)
			id := create(t, b, kanban.NewTask{Title: "x", Assignee: "w", MaxRetries: tc.maxRetries})
			var f kanban.Failure
			for i := 1; i <= tc.wantLimit; i++ {
				if got := task(t, b, id)["status"]; got != kanban.StatusReady {
					t.Fatalf("before failure %d: status %v, want ready", i, got)
				}
				var err error
				f, err = b.RecordTaskFailure(ctx, id, kanban.OutcomeProtocol, fmt.Sprint("err ", i), tc.limit)
				if err != nil {
					t.Fatal(err)
				}
				if f.Tripped != (i == tc.wantLimit) {
					t.Fatalf("failure %d/%d: Tripped = %v", i, tc.wantLimit, f.Tripped)
				}
			}
			if f.Failures != tc.wantLimit || f.Limit != tc.wantLimit || f.Source != tc.wantSource {
				t.Errorf("tripping failure %+v", f)
			}
			tk := task(t, b, id)
			if tk["status"] != kanban.StatusBlocked || asInt(t, tk["consecutive_failures"]) != int64(tc.wantLimit) || tk["claim_lock"] != nil {
				t.Errorf("tripped task %v", tk)
			}
			if n := count(t, b, `SELECT count(*) FROM task_events WHERE task_id=? AND kind=?`, id, kanban.EventGaveUp); n != 1 {
				t.Fatalf("%d gave_up events, want 1", n)
			}
			_, p := lastEvent(t, b, id, kanban.EventGaveUp)
			if asInt(t, p["failures"]) != int64(tc.wantLimit) || asInt(t, p["effective_limit"]) != int64(tc.wantLimit) ||
				p["limit_source"] != tc.wantSource || p["trigger_outcome"] != kanban.OutcomeProtocol {
				t.Errorf("gave_up payload %v", p)
			}
		})
	}
}

func TestRecordTaskFailureTruncatesError(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	id := create(t, b, kanban.NewTask{Title: "x", Assignee: "w", MaxRetries: 2})
	long := strings.Repeat("0123456789", 60) // 600 bytes
	if _, err := b.RecordTaskFailure(ctx, id, kanban.OutcomeCrashed, long, 0); err != nil {
		t.Fatal(err)
	}
	if got := task(t, b, id)["last_failure_error"].(string); got != long[:500] {
		t.Errorf("last_failure_error has %d bytes, want the first 500", len(got))
	}
	short := strings.Repeat("y", 500)
	if _, err := b.RecordTaskFailure(ctx, id, kanban.OutcomeCrashed, short, 0); err != nil {
		t.Fatal(err)
	}
	if got := task(t, b, id)["last_failure_error"].(string); got != short {
		t.Errorf("500-byte error stored as %d bytes", len(got))
	}
	_, p := lastEvent(t, b, id, kanban.EventGaveUp)
	if p["error"] != short {
		t.Errorf("gave_up error %v", p["error"])
	}
}

func TestRecordTaskFailureUnknownTask(t *testing.T) {
	b := openBoard(t)
	if _, err := b.RecordTaskFailure(context.Background(), "t_nothere", kanban.OutcomeCrashed, "x", 0); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("RecordTaskFailure(unknown) = %v, want sql.ErrNoRows", err)
	}
}

// ---- crash reclaim ----

func TestReclaimCrashedCASKey(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		pid  int
		lock string
	}{
		{"wrong pid", 4243, "L"},
		{"wrong lock", 4242, "M"},
		{"no pid", 0, "L"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := openBoard(t)
			id, run := running(t, b, kanban.NewTask{Title: "x", Assignee: "w"}, "L")
			before := snapshot(t, b)
			out, err := b.ReclaimCrashed(ctx, []kanban.Crash{{Task: id, RunID: run, PID: tc.pid, Lock: tc.lock,
				Outcome: kanban.OutcomeCrashed, Error: "dead", Count: true}}, true)
			if err != nil || len(out) != 0 {
				t.Fatalf("ReclaimCrashed = %v, %v; want nothing reclaimed", out, err)
			}
			if after := snapshot(t, b); after != before {
				t.Errorf("a CAS miss wrote:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	t.Run("not running", func(t *testing.T) {
		b := openBoard(t)
		id, run := running(t, b, kanban.NewTask{Title: "x", Assignee: "w"}, "L")
		if _, err := b.DB().Exec(`UPDATE tasks SET status='blocked' WHERE id=?`, id); err != nil {
			t.Fatal(err)
		}
		out, err := b.ReclaimCrashed(ctx, []kanban.Crash{{Task: id, RunID: run, PID: 4242, Lock: "L", Outcome: kanban.OutcomeCrashed, Count: true}}, true)
		if err != nil || len(out) != 0 {
			t.Fatalf("ReclaimCrashed of a blocked task = %v, %v", out, err)
		}
	})
}

func TestReclaimCrashedAtomicity(t *testing.T) {
	ctx := context.Background()
	for _, atomic := range []bool{true, false} {
		t.Run(fmt.Sprint("atomic=", atomic), func(t *testing.T) {
			b := openBoard(t)
			id, run := running(t, b, kanban.NewTask{Title: "x", Assignee: "w"}, "L")
			c := kanban.Crash{Task: id, RunID: run, PID: 4242, Lock: "L", Outcome: kanban.OutcomeCrashed, Error: "exit 1", Count: true, Limit: 3}
			out, err := b.ReclaimCrashed(ctx, []kanban.Crash{c}, atomic)
			if err != nil || len(out) != 1 {
				t.Fatalf("ReclaimCrashed = %v, %v; want one", out, err)
			}
			if out[0].Crash != c {
				t.Errorf("Reclaimed.Crash = %+v, want %+v", out[0].Crash, c)
			}
			tk := task(t, b, id)
			if tk["status"] != kanban.StatusReady || tk["claim_lock"] != nil || tk["worker_pid"] != nil || tk["current_run_id"] != nil {
				t.Errorf("reclaimed task %v", tk)
			}
			wantCount := int64(0)
			if atomic {
				wantCount = 1
				want := kanban.Failure{Task: id, Failures: 1, Limit: 3, Source: "configured"}
				if out[0].Failure == nil || *out[0].Failure != want {
					t.Errorf("Failure = %+v, want %+v", out[0].Failure, want)
				}
				if tk["last_failure_error"] != "exit 1" {
					t.Errorf("last_failure_error %v", tk["last_failure_error"])
				}
			} else if out[0].Failure != nil {
				t.Errorf("non-atomic reclaim recorded a failure: %+v", *out[0].Failure)
			}
			if got := asInt(t, tk["consecutive_failures"]); got != wantCount {
				t.Errorf("consecutive_failures = %d, want %d", got, wantCount)
			}
			r := row(t, b, `SELECT status, outcome, error, ended_at FROM task_runs WHERE id=?`, run)
			if r["status"] != "ended" || r["outcome"] != kanban.OutcomeCrashed || r["error"] != "exit 1" || r["ended_at"] == nil {
				t.Errorf("run after reclaim %v", r)
			}
			runID, p := lastEvent(t, b, id, kanban.EventCrashed)
			if asInt(t, runID) != run || asInt(t, p["pid"]) != 4242 {
				t.Errorf("crashed event run %v payload %v", runID, p)
			}
			// The same crash again is a CAS miss.
			before := snapshot(t, b)
			if out, err := b.ReclaimCrashed(ctx, []kanban.Crash{c}, atomic); err != nil || len(out) != 0 {
				t.Errorf("second ReclaimCrashed = %v, %v; want nothing", out, err)
			}
			if snapshot(t, b) != before {
				t.Error("second ReclaimCrashed wrote")
			}
		})
	}
}

func TestReclaimCrashedAtomicTrips(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	id, run := running(t, b, kanban.NewTask{Title: "x", Assignee: "w", MaxRetries: 1}, "L")
	out, err := b.ReclaimCrashed(ctx, []kanban.Crash{{Task: id, RunID: run, PID: 4242, Lock: "L", Outcome: kanban.OutcomeProtocol, Count: true}}, true)
	if err != nil || len(out) != 1 || out[0].Failure == nil || !out[0].Failure.Tripped {
		t.Fatalf("ReclaimCrashed = %+v, %v; want a tripped failure", out, err)
	}
	if got := task(t, b, id)["status"]; got != kanban.StatusBlocked {
		t.Errorf("status %v, want blocked", got)
	}
	if got, want := eventKinds(t, b, id), []string{"created", "claimed", "spawned", "protocol_violation", "gave_up"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

func TestReclaimCrashedRateLimited(t *testing.T) {
	ctx := context.Background()
	for _, atomic := range []bool{true, false} {
		t.Run(fmt.Sprint("atomic=", atomic), func(t *testing.T) {
			b := openBoard(t)
			id := create(t, b, kanban.NewTask{Title: "x", Assignee: "w"})
			if _, err := b.RecordTaskFailure(ctx, id, kanban.OutcomeCrashed, "earlier", 0); err != nil {
				t.Fatal(err)
			}
			run := claim(t, b, id, "L")
			if err := b.SetWorkerPID(ctx, id, run, 4242); err != nil {
				t.Fatal(err)
			}
			// Count false, as the dispatcher builds rate-limited crashes.
			out, err := b.ReclaimCrashed(ctx, []kanban.Crash{{Task: id, RunID: run, PID: 4242, Lock: "L",
				Outcome: kanban.OutcomeRateLimited, Error: "worker exited 75 (rate limited)"}}, atomic)
			if err != nil || len(out) != 1 || out[0].Failure != nil {
				t.Fatalf("ReclaimCrashed = %+v, %v", out, err)
			}
			tk := task(t, b, id)
			if tk["status"] != kanban.StatusReady || asInt(t, tk["consecutive_failures"]) != 1 ||
				tk["last_failure_error"] != "worker exited 75 (rate limited)" {
				t.Errorf("task after rate-limited reclaim %v; want ready, counter 1, error stamped", tk)
			}
			r := row(t, b, `SELECT outcome, ended_at FROM task_runs WHERE id=?`, run)
			if r["outcome"] != kanban.OutcomeRateLimited || r["ended_at"] == nil {
				t.Errorf("run %v", r)
			}
			if n := count(t, b, `SELECT count(*) FROM task_events WHERE task_id=? AND kind=?`, id, kanban.EventRateLimited); n != 1 {
				t.Errorf("%d rate_limited events", n)
			}
		})
	}
}

func TestReclaimCrashedSeveral(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	a, ra := running(t, b, kanban.NewTask{Title: "a", Assignee: "w"}, "LA")
	c, rc := running(t, b, kanban.NewTask{Title: "c", Assignee: "w"}, "LC")
	out, err := b.ReclaimCrashed(ctx, []kanban.Crash{
		{Task: a, RunID: ra, PID: 4242, Lock: "LA", Outcome: kanban.OutcomeCrashed, Count: true},
		{Task: c, RunID: rc, PID: 1, Lock: "LC", Outcome: kanban.OutcomeCrashed, Count: true}, // miss
	}, true)
	if err != nil || len(out) != 1 || out[0].Task != a {
		t.Fatalf("ReclaimCrashed = %+v, %v; want only %s", out, err, a)
	}
	if got := task(t, b, c)["status"]; got != kanban.StatusRunning {
		t.Errorf("missed task %s is %v", c, got)
	}
}

func TestRecordSpawnFailure(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	id := create(t, b, kanban.NewTask{Title: "x", Assignee: "w"})
	run := claim(t, b, id, "L")
	f, err := b.RecordSpawnFailure(ctx, id, run, "exec: no such file", 0)
	if err != nil || f != (kanban.Failure{Task: id, Failures: 1, Limit: 2, Source: "default"}) {
		t.Fatalf("RecordSpawnFailure = %+v, %v", f, err)
	}
	tk := task(t, b, id)
	if tk["status"] != kanban.StatusReady || tk["claim_lock"] != nil || tk["current_run_id"] != nil || asInt(t, tk["consecutive_failures"]) != 1 {
		t.Errorf("task after spawn failure %v", tk)
	}
	if r := row(t, b, `SELECT outcome, error, ended_at FROM task_runs WHERE id=?`, run); r["outcome"] != kanban.OutcomeSpawnFailed || r["error"] != "exec: no such file" || r["ended_at"] == nil {
		t.Errorf("run after spawn failure %v", r)
	}
	run2 := claim(t, b, id, "L2")
	f, err = b.RecordSpawnFailure(ctx, id, run2, "exec: no such file", 0)
	if err != nil || !f.Tripped {
		t.Fatalf("second RecordSpawnFailure = %+v, %v; want tripped", f, err)
	}
	if got := task(t, b, id)["status"]; got != kanban.StatusBlocked {
		t.Errorf("status %v, want blocked", got)
	}
	if r := row(t, b, `SELECT outcome FROM task_runs WHERE id=?`, run2); r["outcome"] != kanban.OutcomeGaveUp {
		t.Errorf("tripping run %v, want outcome gave_up", r)
	}
	if runID, _ := lastEvent(t, b, id, kanban.EventGaveUp); asInt(t, runID) != run2 {
		t.Errorf("gave_up event run %v, want %d", runID, run2)
	}
	if got, want := eventKinds(t, b, id), []string{"created", "claimed", "spawn_failed", "claimed", "spawn_failed", "gave_up"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
}

func TestExtendClaim(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	id, _ := running(t, b, kanban.NewTask{Title: "x", Assignee: "w"}, "L")
	before := snapshot(t, b)
	if err := b.ExtendClaim(ctx, id, "other", 99999, "alive"); err != nil {
		t.Fatal(err)
	}
	if snapshot(t, b) != before {
		t.Error("ExtendClaim with the wrong lock wrote")
	}
	if err := b.ExtendClaim(ctx, id, "L", 99999, "alive"); err != nil {
		t.Fatal(err)
	}
	if got := task(t, b, id)["claim_expires"]; got != 99999.0 {
		t.Errorf("claim_expires %v, want 99999", got)
	}
	if _, p := lastEvent(t, b, id, kanban.EventClaimExtended); p["reason"] != "alive" {
		t.Errorf("claim_extended payload %v", p)
	}
}

// ---- release, auto-block ----

func TestReleaseClaim(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		outcome, event string
		count          bool
	}{
		{kanban.OutcomeReclaimed, kanban.EventReclaimed, true},
		{kanban.OutcomeReclaimed, kanban.EventReclaimed, false},
		{kanban.OutcomeTimedOut, kanban.EventTimedOut, true},
		{kanban.OutcomeTimedOut, kanban.EventTimedOut, false},
	} {
		t.Run(fmt.Sprintf("%s count=%v", tc.outcome, tc.count), func(t *testing.T) {
			b := openBoard(t)
			id, run := running(t, b, kanban.NewTask{Title: "x", Assignee: "w"}, "L")

			before := snapshot(t, b)
			released, f, err := b.ReleaseClaim(ctx, id, "other", tc.outcome, "stale", tc.count, 0)
			if err != nil || released || f != nil {
				t.Fatalf("ReleaseClaim(wrong lock) = %v, %v, %v", released, f, err)
			}
			if snapshot(t, b) != before {
				t.Fatal("ReleaseClaim with the wrong lock wrote")
			}

			released, f, err = b.ReleaseClaim(ctx, id, "L", tc.outcome, "stale", tc.count, 5)
			if err != nil || !released {
				t.Fatalf("ReleaseClaim = %v, %v, %v", released, f, err)
			}
			tk := task(t, b, id)
			if tk["status"] != kanban.StatusReady || tk["claim_lock"] != nil || tk["current_run_id"] != nil || tk["worker_pid"] != nil {
				t.Errorf("released task %v", tk)
			}
			wantCount := int64(0)
			if tc.count {
				wantCount = 1
				want := kanban.Failure{Task: id, Failures: 1, Limit: 5, Source: "configured"}
				if f == nil || *f != want {
					t.Errorf("Failure = %+v, want %+v", f, want)
				}
			} else if f != nil {
				t.Errorf("count=false recorded %+v", *f)
			}
			if got := asInt(t, tk["consecutive_failures"]); got != wantCount {
				t.Errorf("consecutive_failures %d, want %d", got, wantCount)
			}
			r := row(t, b, `SELECT status, outcome, error, ended_at FROM task_runs WHERE id=?`, run)
			if r["status"] != "ended" || r["outcome"] != tc.outcome || r["error"] != "stale" || r["ended_at"] == nil {
				t.Errorf("run %v", r)
			}
			if runID, _ := lastEvent(t, b, id, tc.event); asInt(t, runID) != run {
				t.Errorf("%s event run %v", tc.event, runID)
			}
		})
	}
}

func TestReleaseClaimCountedTrips(t *testing.T) {
	b := openBoard(t)
	id, _ := running(t, b, kanban.NewTask{Title: "x", Assignee: "w", MaxRetries: 1}, "L")
	released, f, err := b.ReleaseClaim(context.Background(), id, "L", kanban.OutcomeTimedOut, "too long", true, 0)
	if err != nil || !released || f == nil || !f.Tripped {
		t.Fatalf("ReleaseClaim = %v, %+v, %v", released, f, err)
	}
	if got := task(t, b, id)["status"]; got != kanban.StatusBlocked {
		t.Errorf("status %v, want blocked", got)
	}
}

func TestAutoBlock(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	id := create(t, b, kanban.NewTask{Title: "x", Assignee: "ghost"})
	if err := b.AutoBlock(ctx, id, "assignee ghost is not a profile"); err != nil {
		t.Fatal(err)
	}
	tk := task(t, b, id)
	if tk["status"] != kanban.StatusBlocked || tk["last_failure_error"] != "assignee ghost is not a profile" || tk["block_kind"] != "auto_blocked" {
		t.Errorf("auto-blocked task %v", tk)
	}
	_, p := lastEvent(t, b, id, kanban.EventBlocked)
	if p["auto_blocked"] != true || p["reason"] != "assignee ghost is not a profile" {
		t.Errorf("blocked payload %v", p)
	}
	// Sticky: recompute without re-promotion leaves it blocked.
	if promoted, err := b.RecomputeReady(ctx, kanban.RecomputePolicy{}); err != nil || len(promoted) != 0 {
		t.Errorf("RecomputeReady = %v, %v; want nothing promoted", promoted, err)
	}
	// A running task is not auto-blocked.
	rid, _ := running(t, b, kanban.NewTask{Title: "r", Assignee: "w"}, "L")
	before := snapshot(t, b)
	if err := b.AutoBlock(ctx, rid, "nope"); err != nil {
		t.Fatal(err)
	}
	if snapshot(t, b) != before {
		t.Error("AutoBlock of a running task wrote")
	}
}

// ---- recompute ----

func TestRecomputeReady(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	// Tripped by the breaker at the configured limit of 3 used below.
	tripped := create(t, b, kanban.NewTask{Title: "tripped", Assignee: "w"})
	for range 3 {
		if _, err := b.RecordTaskFailure(ctx, tripped, kanban.OutcomeCrashed, "boom", 3); err != nil {
			t.Fatal(err)
		}
	}
	// Blocked by its worker: sticky.
	sticky := create(t, b, kanban.NewTask{Title: "sticky", Assignee: "w"})
	if err := b.Block(ctx, sticky, claim(t, b, sticky, "L"), "need input"); err != nil {
		t.Fatal(err)
	}
	// Tripped at a limit of 1; below the configured limit of 3 used below.
	below := create(t, b, kanban.NewTask{Title: "below", Assignee: "w"})
	if f, err := b.RecordTaskFailure(ctx, below, kanban.OutcomeCrashed, "boom", 1); err != nil || !f.Tripped {
		t.Fatalf("RecordTaskFailure = %+v, %v", f, err)
	}
	// At its own max_retries (2), below the configured limit of 3: it stays
	// blocked only if max_retries beats the configured limit.
	atTask := create(t, b, kanban.NewTask{Title: "at task limit", Assignee: "w", MaxRetries: 2})
	for range 2 {
		if _, err := b.RecordTaskFailure(ctx, atTask, kanban.OutcomeCrashed, "boom", 3); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{tripped, sticky, below, atTask} {
		if got := task(t, b, id)["status"]; got != kanban.StatusBlocked {
			t.Fatalf("setup: %s is %v, want blocked", id, got)
		}
	}

	promoted, err := b.RecomputeReady(ctx, kanban.RecomputePolicy{FailureLimit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(promoted, []string{below}) {
		t.Errorf("RepromoteTripped=false promoted %v, want only %s (below the limit, not sticky)", promoted, below)
	}
	for _, id := range []string{tripped, sticky, atTask} {
		if got := task(t, b, id)["status"]; got != kanban.StatusBlocked {
			t.Errorf("%s is %v, want still blocked", task(t, b, id)["title"], got)
		}
	}
	if got := task(t, b, below)["status"]; got != kanban.StatusReady {
		t.Errorf("below-limit task is %v, want ready", got)
	}
	_, p := lastEvent(t, b, below, kanban.EventPromoted)
	if p["from"] != kanban.StatusBlocked {
		t.Errorf("promoted payload %v", p)
	}

	// A later `unblocked` event lifts the stickiness.
	if _, err := b.DB().Exec(`INSERT INTO task_events (task_id, kind, created_at) VALUES (?, 'unblocked', 5000)`, sticky); err != nil {
		t.Fatal(err)
	}
	promoted, err = b.RecomputeReady(ctx, kanban.RecomputePolicy{FailureLimit: 3})
	if err != nil || !slices.Equal(promoted, []string{sticky}) {
		t.Errorf("after unblocked: promoted %v, %v; want [%s]", promoted, err, sticky)
	}

	// Hermes v0.15: every non-sticky blocked task with done parents is promoted.
	promoted, err = b.RecomputeReady(ctx, kanban.RecomputePolicy{RepromoteTripped: true})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(promoted)
	want := []string{tripped, atTask}
	sort.Strings(want)
	if !slices.Equal(promoted, want) {
		t.Errorf("RepromoteTripped=true promoted %v, want %v", promoted, want)
	}
	for _, id := range want {
		if got := task(t, b, id)["status"]; got != kanban.StatusReady {
			t.Errorf("%s is %v after re-promotion", id, got)
		}
		if n := count(t, b, `SELECT count(*) FROM task_events WHERE task_id=? AND kind='promoted'`, id); n != 1 {
			t.Errorf("%s: %d promoted events", id, n)
		}
	}
	// Nothing left to promote.
	if promoted, err := b.RecomputeReady(ctx, kanban.RecomputePolicy{RepromoteTripped: true}); err != nil || len(promoted) != 0 {
		t.Errorf("second recompute promoted %v, %v", promoted, err)
	}
}

func TestRecomputeReadyNeverPromotesStickyBlock(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	id := create(t, b, kanban.NewTask{Title: "x", Assignee: "w", MaxRetries: 10})
	if err := b.Block(ctx, id, claim(t, b, id, "L"), "waiting"); err != nil {
		t.Fatal(err)
	}
	if promoted, err := b.RecomputeReady(ctx, kanban.RecomputePolicy{}); err != nil || len(promoted) != 0 {
		t.Errorf("sticky block promoted: %v, %v", promoted, err)
	}
	// No release re-promotes a sticky block, not even v0.15 (_has_sticky_block).
	if promoted, err := b.RecomputeReady(ctx, kanban.RecomputePolicy{RepromoteTripped: true}); err != nil || len(promoted) != 0 {
		t.Errorf("RepromoteTripped=true promoted %v, %v; want nothing (sticky)", promoted, err)
	}
}

func TestRecomputeReadyWaitsForParents(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	parent := create(t, b, kanban.NewTask{Title: "p", Assignee: "w"})
	child := create(t, b, kanban.NewTask{Title: "c", Assignee: "w"})
	if _, err := b.DB().Exec(`INSERT INTO task_links (parent_id, child_id) VALUES (?,?)`, parent, child); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DB().Exec(`UPDATE tasks SET status='todo' WHERE id=?`, child); err != nil {
		t.Fatal(err)
	}
	if promoted, err := b.RecomputeReady(ctx, kanban.RecomputePolicy{RepromoteTripped: true}); err != nil || len(promoted) != 0 {
		t.Fatalf("promoted %v, %v with the parent undone", promoted, err)
	}
	if _, err := b.DB().Exec(`UPDATE tasks SET status='archived' WHERE id=?`, parent); err != nil {
		t.Fatal(err)
	}
	if promoted, err := b.RecomputeReady(ctx, kanban.RecomputePolicy{}); err != nil || !slices.Equal(promoted, []string{child}) {
		t.Fatalf("promoted %v, %v with the parent archived; want [%s]", promoted, err, child)
	}
	_, p := lastEvent(t, b, child, kanban.EventPromoted)
	if p["from"] != kanban.StatusTodo {
		t.Errorf("promoted payload %v", p)
	}
}

// ---- worker writes ----

func TestStaleRunChangesNothing(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	id, run := running(t, b, kanban.NewTask{Title: "x", Assignee: "w"}, "L")
	stale := run + 1000
	for name, op := range map[string]func() error{
		"Complete":         func() error { return b.Complete(ctx, id, stale, "done") },
		"Block":            func() error { return b.Block(ctx, id, stale, "stuck") },
		"Heartbeat run":    func() error { return b.Heartbeat(ctx, id, stale, "L", 900) },
		"Heartbeat lock":   func() error { return b.Heartbeat(ctx, id, run, "not-mine", 900) },
		"Complete unknown": func() error { return b.Complete(ctx, "t_nothere", run, "done") },
	} {
		before := snapshot(t, b)
		if err := op(); !errors.Is(err, kanban.ErrStaleRun) {
			t.Errorf("%s = %v, want ErrStaleRun", name, err)
		}
		if after := snapshot(t, b); after != before {
			t.Errorf("%s with a stale run wrote:\nbefore:\n%s\nafter:\n%s", name, before, after)
		}
	}

	// After a reclaim and a new claim, the first worker's run is stale.
	if _, _, err := b.ReleaseClaim(ctx, id, "L", kanban.OutcomeReclaimed, "stale", false, 0); err != nil {
		t.Fatal(err)
	}
	run2 := claim(t, b, id, "L2")
	before := snapshot(t, b)
	if err := b.Complete(ctx, id, run, "late"); !errors.Is(err, kanban.ErrStaleRun) {
		t.Errorf("Complete with the reclaimed run = %v, want ErrStaleRun", err)
	}
	if snapshot(t, b) != before {
		t.Error("stale Complete wrote")
	}
	if err := b.Heartbeat(ctx, id, run2, "L2", 900); err != nil {
		t.Errorf("Heartbeat with the current run: %v", err)
	}
}

func TestHeartbeat(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	b.SetClock(func() float64 { return 2000 })
	id, run := running(t, b, kanban.NewTask{Title: "x", Assignee: "w"}, "L")
	b.SetClock(func() float64 { return 2100 })
	if err := b.Heartbeat(ctx, id, run, "L", 60); err != nil {
		t.Fatal(err)
	}
	tk := task(t, b, id)
	if tk["last_heartbeat_at"] != 2100.0 || tk["claim_expires"] != 2160.0 {
		t.Errorf("task after heartbeat %v", tk)
	}
	r := row(t, b, `SELECT last_heartbeat_at, claim_expires FROM task_runs WHERE id=?`, run)
	if r["last_heartbeat_at"] != 2100.0 || r["claim_expires"] != 2160.0 {
		t.Errorf("run after heartbeat %v", r)
	}
	if runID, _ := lastEvent(t, b, id, kanban.EventHeartbeat); asInt(t, runID) != run {
		t.Errorf("heartbeat event run %v", runID)
	}
}

func TestCompleteResetsCounterAndClosesRun(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	id := create(t, b, kanban.NewTask{Title: "x", Assignee: "w", MaxRetries: 5})
	for range 3 {
		if _, err := b.RecordTaskFailure(ctx, id, kanban.OutcomeCrashed, "boom", 0); err != nil {
			t.Fatal(err)
		}
	}
	run := claim(t, b, id, "L")
	if err := b.Complete(ctx, id, run, "all good"); err != nil {
		t.Fatal(err)
	}
	tk := task(t, b, id)
	if tk["status"] != kanban.StatusDone || asInt(t, tk["consecutive_failures"]) != 0 || tk["current_run_id"] != nil ||
		tk["claim_lock"] != nil || tk["completed_at"] == nil || tk["result"] != "all good" {
		t.Errorf("completed task %v", tk)
	}
	r := row(t, b, `SELECT status, outcome, summary, ended_at FROM task_runs WHERE id=?`, run)
	if r["status"] != "ended" || r["outcome"] != kanban.OutcomeCompleted || r["summary"] != "all good" || r["ended_at"] == nil {
		t.Errorf("completed run %v", r)
	}
	if runID, p := lastEvent(t, b, id, kanban.EventCompleted); asInt(t, runID) != run || p["text"] != "all good" {
		t.Errorf("completed event run %v payload %v", runID, p)
	}
	// Completing twice is stale.
	if err := b.Complete(ctx, id, run, "again"); !errors.Is(err, kanban.ErrStaleRun) {
		t.Errorf("second Complete = %v, want ErrStaleRun", err)
	}
}

func TestBlockKeepsCounter(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	id := create(t, b, kanban.NewTask{Title: "x", Assignee: "w", MaxRetries: 5})
	if _, err := b.RecordTaskFailure(ctx, id, kanban.OutcomeCrashed, "boom", 0); err != nil {
		t.Fatal(err)
	}
	run := claim(t, b, id, "L")
	if err := b.Block(ctx, id, run, "need a human"); err != nil {
		t.Fatal(err)
	}
	tk := task(t, b, id)
	if tk["status"] != kanban.StatusBlocked || asInt(t, tk["consecutive_failures"]) != 1 || tk["current_run_id"] != nil || tk["completed_at"] != nil {
		t.Errorf("blocked task %v", tk)
	}
	if r := row(t, b, `SELECT outcome FROM task_runs WHERE id=?`, run); r["outcome"] != kanban.OutcomeBlocked {
		t.Errorf("blocked run %v", r)
	}
}

// ---- spawn candidates, running ----

func TestSpawnCandidatesOrder(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	// The board clock advances per reading, so creation order is age order.
	a := create(t, b, kanban.NewTask{Title: "a", Assignee: "w", Priority: 0})
	bb := create(t, b, kanban.NewTask{Title: "b", Assignee: "w", Priority: 5})
	c := create(t, b, kanban.NewTask{Title: "c", Assignee: "w", Priority: 5})
	d := create(t, b, kanban.NewTask{Title: "d", Assignee: "w", Priority: -1})
	e := create(t, b, kanban.NewTask{Title: "e", Assignee: "w", Priority: 10})
	f := create(t, b, kanban.NewTask{Title: "f", Assignee: "w", Priority: 7})
	g := create(t, b, kanban.NewTask{Title: "g", Assignee: "w", Priority: 1})
	claim(t, b, e, "L")                              // running: excluded
	if err := b.AutoBlock(ctx, f, "x"); err != nil { // blocked: excluded
		t.Fatal(err)
	}
	// Ready but claimed (a lock without running): excluded.
	if _, err := b.DB().Exec(`UPDATE tasks SET claim_lock='orphan' WHERE id=?`, g); err != nil {
		t.Fatal(err)
	}
	got, err := b.SpawnCandidates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, cand := range got {
		ids = append(ids, cand.ID)
	}
	if want := []string{bb, c, a, d}; !slices.Equal(ids, want) {
		t.Errorf("SpawnCandidates = %v, want %v (b, c, a, d)", ids, want)
	}
}

func TestSpawnCandidatesLastRun(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	id, _ := running(t, b, kanban.NewTask{Title: "x", Assignee: "alice"}, "L")
	b.SetClock(func() float64 { return 3000 })
	if _, _, err := b.ReleaseClaim(ctx, id, "L", kanban.OutcomeTimedOut, "slow", true, 0); err != nil {
		t.Fatal(err)
	}
	got, err := b.SpawnCandidates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []kanban.Candidate{{ID: id, Assignee: "alice", ConsecutiveFailures: 1, LastRunEnded: 3000, LastRunOutcome: kanban.OutcomeTimedOut}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SpawnCandidates = %+v, want %+v", got, want)
	}
}

func TestRunningAndCount(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	create(t, b, kanban.NewTask{Title: "idle", Assignee: "w"})
	id, run := running(t, b, kanban.NewTask{Title: "x", Assignee: "alice"}, "host:L")
	n, err := b.CountRunning(ctx)
	if err != nil || n != 1 {
		t.Fatalf("CountRunning = %d, %v", n, err)
	}
	rs, err := b.Running(ctx)
	if err != nil || len(rs) != 1 {
		t.Fatalf("Running = %+v, %v", rs, err)
	}
	r := rs[0]
	if r.ID != id || r.Assignee != "alice" || r.PID != 4242 || r.Lock != "host:L" || r.RunID != run || r.RunStartedAt == 0 || r.LastHeartbeat != 0 {
		t.Errorf("Running[0] = %+v", r)
	}
}

func TestCreateTask(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	id := create(t, b, kanban.NewTask{Title: "hello", Assignee: "w", Priority: 3, CreatedBy: "me"})
	if !strings.HasPrefix(id, "t_") || len(id) != 10 {
		t.Errorf("generated id %q", id)
	}
	tk := task(t, b, id)
	if tk["status"] != kanban.StatusReady || tk["max_retries"] != nil || asInt(t, tk["priority"]) != 3 || tk["created_by"] != "me" {
		t.Errorf("created task %v", tk)
	}
	if _, err := b.CreateTask(ctx, kanban.NewTask{ID: id, Title: "dup"}); err == nil {
		t.Error("CreateTask with a duplicate id succeeded")
	}
	tr, err := b.Task(ctx, id)
	if err != nil || tr != (kanban.TaskRow{ID: id, Title: "hello", Assignee: "w", Status: kanban.StatusReady}) {
		t.Errorf("Task = %+v, %v", tr, err)
	}
}

// ---- connect ----

func journalMode(t *testing.T, b *kanban.Board) string {
	t.Helper()
	var m string
	if err := b.DB().QueryRow(`PRAGMA journal_mode`).Scan(&m); err != nil {
		t.Fatal(err)
	}
	return strings.ToLower(m)
}

func TestConnectJournalMode(t *testing.T) {
	dir := t.TempDir()
	lazy := kanban.DefaultOptions()
	lazy.WALEveryConnect = false

	// An existing WAL file stays WAL when the pragma is skipped.
	wal := filepath.Join(dir, "wal.db")
	b := openAt(t, wal, kanban.DefaultOptions())
	if m := journalMode(t, b); m != "wal" {
		t.Fatalf("default Connect: journal_mode %s, want wal", m)
	}
	b.Close()
	b = openAt(t, wal, lazy)
	if m := journalMode(t, b); m != "wal" {
		t.Errorf("WALEveryConnect=false on a WAL file: journal_mode %s", m)
	}
	b.Close()

	// The skip only applies when the mode already matches.
	fresh := filepath.Join(dir, "fresh.db")
	b = openAt(t, fresh, kanban.Options{BusyTimeoutMs: 1000})
	if m := journalMode(t, b); m != "delete" {
		t.Fatalf("no journal mode: %s, want delete", m)
	}
	b.Close()
	b = openAt(t, fresh, lazy)
	if m := journalMode(t, b); m != "wal" {
		t.Errorf("WALEveryConnect=false on a DELETE file: journal_mode %s, want wal", m)
	}
	b.Close()
	toDelete := lazy
	toDelete.JournalMode = "DELETE"
	b = openAt(t, fresh, toDelete)
	if m := journalMode(t, b); m != "delete" {
		t.Errorf("JournalMode=DELETE on a WAL file: journal_mode %s, want delete", m)
	}
}

func TestConnectNotADatabase(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	b := openAt(t, good, kanban.DefaultOptions())
	create(t, b, kanban.NewTask{Title: "x", Assignee: "w"})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) < 100 || !strings.HasPrefix(string(data), "SQLite format 3\x00") {
		t.Fatalf("closed board is not a SQLite file (%d bytes)", len(data))
	}
	copy(data, strings.Repeat("garbage!", 13)) // over the 100-byte header
	bad := filepath.Join(dir, "bad.db")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	nb, err := kanban.Connect(context.Background(), bad, kanban.DefaultOptions())
	if err == nil {
		nb.Close()
		t.Fatal("Connect on a garbage header succeeded")
	}
	if !kanban.IsCorrupt(err) {
		t.Errorf("IsCorrupt(%v) = false", err)
	}
	if code, ok := kanban.Code(err); !ok || code != 26 {
		t.Errorf("Code(%v) = %d, %v; want 26 (SQLITE_NOTADB)", err, code, ok)
	}
	if !kanban.IsCorrupt(fmt.Errorf("wrapped: %w", err)) {
		t.Error("IsCorrupt does not see through wrapping")
	}
}

func TestCodeOfOtherErrors(t *testing.T) {
	for _, err := range []error{nil, errors.New("plain"), kanban.ErrStaleRun, sql.ErrNoRows} {
		if code, ok := kanban.Code(err); ok || code != 0 {
			t.Errorf("Code(%v) = %d, %v", err, code, ok)
		}
		if kanban.IsCorrupt(err) {
			t.Errorf("IsCorrupt(%v) = true", err)
		}
	}
	// A real SQLite error that is not corruption.
	b := openBoard(t)
	_, err := b.DB().Exec(`INSERT INTO tasks (id, created_at) VALUES ('t_00000001', 1), ('t_00000001', 2)`)
	if err == nil {
		t.Fatal("duplicate primary key accepted")
	}
	code, ok := kanban.Code(err)
	if !ok || code&0xff != 19 { // SQLITE_CONSTRAINT
		t.Errorf("Code(%v) = %d, %v; want SQLITE_CONSTRAINT", err, code, ok)
	}
	if kanban.IsCorrupt(err) {
		t.Errorf("IsCorrupt(constraint violation) = true")
	}
}

func TestNewTaskID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := kanban.NewTaskID()
		if len(id) != 10 || !strings.HasPrefix(id, "t_") || strings.Trim(id[2:], "0123456789abcdef") != "" {
			t.Fatalf("NewTaskID() = %q", id)
		}
		if seen[id] {
			t.Fatalf("NewTaskID repeated %q", id)
		}
		seen[id] = true
	}
}

// ---- known bugs (skipped) ----

func TestConnectPathWithURICharacters(t *testing.T) {
	for _, name := range []string{"a#b", "a?b", "a%41b"} {
		parent := t.TempDir()
		dir := filepath.Join(parent, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "kanban.db")
		b, err := kanban.Connect(context.Background(), path, kanban.DefaultOptions())
		if err != nil {
			t.Errorf("Connect(%q): %v", path, err)
			continue
		}
		b.Close()
		if _, err := os.Stat(path); err != nil {
			t.Errorf("Connect(%q) did not create that file: %v", path, err)
		}
		if _, err := os.Stat(filepath.Join(parent, "a")); err == nil {
			t.Errorf("Connect(%q) created %s instead", path, filepath.Join(parent, "a"))
		}
	}
}

func TestLastFailureErrorStaysValidUTF8(t *testing.T) {
	b := openBoard(t)
	id := create(t, b, kanban.NewTask{Title: "x", Assignee: "w", MaxRetries: 5})
	msg := strings.Repeat("€", 200) // 3 bytes each: byte 500 is inside a rune
	if _, err := b.RecordTaskFailure(context.Background(), id, kanban.OutcomeCrashed, msg, 0); err != nil {
		t.Fatal(err)
	}
	got := task(t, b, id)["last_failure_error"].(string)
	if !utf8.ValidString(got) || len(got) > 500 || !strings.HasPrefix(msg, got) {
		t.Errorf("last_failure_error is %d bytes, valid UTF-8 %v; want a rune-aligned prefix of at most 500 bytes", len(got), utf8.ValidString(got))
	}
}

// TestRecomputeReadyTodoOnly is Hermes v0.14.0: recompute_ready looks at
// todo rows only, so a breaker block below any limit still holds.
func TestRecomputeReadyTodoOnly(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	below := create(t, b, kanban.NewTask{Title: "below", Assignee: "w"})
	if f, err := b.RecordTaskFailure(ctx, below, kanban.OutcomeCrashed, "boom", 1); err != nil || !f.Tripped {
		t.Fatalf("RecordTaskFailure = %+v, %v", f, err)
	}
	todo := create(t, b, kanban.NewTask{Title: "todo", Assignee: "w"})
	if _, err := b.DB().Exec(`UPDATE tasks SET status='todo' WHERE id=?`, todo); err != nil {
		t.Fatal(err)
	}
	promoted, err := b.RecomputeReady(ctx, kanban.RecomputePolicy{TodoOnly: true, RepromoteTripped: true, FailureLimit: 5})
	if err != nil || !slices.Equal(promoted, []string{todo}) {
		t.Fatalf("TodoOnly promoted %v, %v; want only [%s]", promoted, err, todo)
	}
	if got := task(t, b, below)["status"]; got != kanban.StatusBlocked {
		t.Errorf("tripped task is %v, want still blocked", got)
	}
}

// TestRecomputeReadyResetCounter is Hermes v0.15.x: the re-promotion also
// zeroes consecutive_failures, so the next crash never reaches the limit.
func TestRecomputeReadyResetCounter(t *testing.T) {
	ctx := context.Background()
	b := openBoard(t)
	id := create(t, b, kanban.NewTask{Title: "x", Assignee: "w"})
	for range 2 {
		if _, err := b.RecordTaskFailure(ctx, id, kanban.OutcomeCrashed, "boom", 0); err != nil {
			t.Fatal(err)
		}
	}
	promoted, err := b.RecomputeReady(ctx, kanban.RecomputePolicy{RepromoteTripped: true, ResetCounter: true})
	if err != nil || !slices.Equal(promoted, []string{id}) {
		t.Fatalf("promoted %v, %v", promoted, err)
	}
	if tk := task(t, b, id); tk["status"] != kanban.StatusReady || asInt(t, tk["consecutive_failures"]) != 0 {
		t.Errorf("after a resetting re-promotion: %v; want ready, counter 0", tk)
	}
	if f, err := b.RecordTaskFailure(ctx, id, kanban.OutcomeCrashed, "boom", 0); err != nil || f.Tripped || f.Failures != 1 {
		t.Errorf("next failure = %+v, %v; want 1, not tripped", f, err)
	}
}

// TestProtocolViolationStreak is v0.19's rule: exit 0 is requeued without
// counting until the third violation in a row, which forces a trip that adds
// one to the counter; the fourth trips again (counter 2).
func TestProtocolViolationStreak(t *testing.T) {
	ctx := context.Background()
	for _, atomic := range []bool{true, false} {
		t.Run(fmt.Sprint("atomic=", atomic), func(t *testing.T) {
			b := openBoard(t)
			id := create(t, b, kanban.NewTask{Title: "x", Assignee: "w"})
			for i := 1; i <= 4; i++ {
				run := claim(t, b, id, "L")
				if err := b.SetWorkerPID(ctx, id, run, 4000+i); err != nil {
					t.Fatal(err)
				}
				c := kanban.Crash{Task: id, RunID: run, PID: 4000 + i, Lock: "L", Outcome: kanban.OutcomeProtocol,
					Error: "exit 0", Count: true, Limit: 1, Streak: 3}
				out, err := b.ReclaimCrashed(ctx, []kanban.Crash{c}, atomic)
				if err != nil || len(out) != 1 {
					t.Fatalf("violation %d: ReclaimCrashed = %+v, %v", i, out, err)
				}
				f := out[0].Failure
				if !atomic {
					if f, err = b.RecordCrashFailure(ctx, c); err != nil {
						t.Fatal(err)
					}
				}
				wantFails := map[int]int64{1: 0, 2: 0, 3: 1, 4: 2}[i]
				if tripped := f != nil && f.Tripped; tripped != (i >= 3) {
					t.Fatalf("violation %d: failure %+v; want a trip from the 3rd on", i, f)
				}
				if got := asInt(t, task(t, b, id)["consecutive_failures"]); got != wantFails {
					t.Fatalf("violation %d: counter %d, want %d", i, got, wantFails)
				}
				if _, err := b.DB().Exec(`UPDATE tasks SET status='ready' WHERE id=?`, id); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestRespawnGuarded(t *testing.T) {
	b := openBoard(t)
	id := create(t, b, kanban.NewTask{Title: "x", Assignee: "w"})
	for range 2 {
		if err := b.RespawnGuarded(context.Background(), id, "rate_limit_cooldown"); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(t, b, `SELECT count(*) FROM task_events WHERE task_id=? AND kind=?`, id, kanban.EventRespawnGuarded); n != 2 {
		t.Errorf("%d respawn_guarded events, want one per call", n)
	}
}

package oracle

// How Audit reads a board of any size: one task at a time. A real board
// holds months of history (the 1 GB bench board: 143 k tasks, 161 k runs,
// 1.84 M events); holding it all in memory made check's peak RSS grow with
// the board (603 MB for 1 GB). Instead three ordered reads — tasks by id,
// task_runs and task_events by (task_id, id) — are merged on the task id,
// and each task's history is judged as soon as the next task's rows begin.
// Only what the verdict needs across tasks is kept: a few flags (did any
// breaker trip, any run end rate limited …), the violations found, and the
// runs that may lack a worker until the one event that could record them,
// possibly another task's, is looked for (resolveUnrecorded). Memory is
// bounded by the largest task and the violations found, not the board
// (39 MB peak RSS for check on the 1 GB board).
//
// Each of the three reads is a full scan of its table sorted by SQLite's
// external sorter (NOT INDEXED … ORDER BY): its memory is bounded by the
// connection's page cache (2 MB by default), past which sorted runs spill
// to temporary files (SQLite's temporary directory — SQLITE_TMPDIR,
// TMPDIR, else /var/tmp —, unlinked when opened; 73 MB at most for the
// 1 GB board) and are merged back. On the 1 GB bench board that is
// faster than walking idx_events_task (task_id, created_at) and sorting
// each task's rows by id — the index order costs a table look-up per event
// (measured with the sqlite3 shell: 2.3 s against 1.8 s for the 1.84 M
// events; tasks 0.49 against 0.32 s, runs 0.55 against 0.23 s) — and it
// does not depend on which indexes a Hermes release created. Ids are
// sorted as text (CAST … AS TEXT): SQLite would put a BLOB id after every
// TEXT one, where the merge compares them as Go strings, byte by byte.
// Rows that still arrive out of the order the merge relies on are an
// error, never a wrong verdict.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// taskHistory is everything the board holds about one task that the
// per-task judgement reads: its row (nil when the board has runs or events
// for a task id without a row), its runs and its events, each by id.
type taskHistory struct {
	id     string
	row    *taskRow
	runs   []histRun
	events []eventRow
}

// The three reads and the look-up the merge makes. Only a gave_up event's
// payload is ever read (the breaker's count and limit, its trigger).
const (
	tasksInOrder = `SELECT id, status, claim_lock, claim_expires, current_run_id, consecutive_failures, max_retries
		FROM tasks NOT INDEXED ORDER BY CAST(id AS TEXT)`
	runsInOrder = `SELECT id, task_id, COALESCE(outcome,''), started_at, COALESCE(ended_at,0), ended_at IS NOT NULL,
		COALESCE(worker_pid,0), worker_pid IS NOT NULL, COALESCE(error,'') FROM task_runs NOT INDEXED ORDER BY CAST(task_id AS TEXT), id`
	eventsInOrder = `SELECT id, task_id, run_id, kind, CASE WHEN kind = ? THEN COALESCE(payload,'') ELSE '' END, created_at
		FROM task_events NOT INDEXED ORDER BY CAST(task_id AS TEXT), id`
	runOutcome = `SELECT COALESCE(outcome,'') FROM task_runs WHERE id = ?`
)

// cursor is one ordered read of the merge: the row at hand and its task id.
type cursor[T any] struct {
	what string                                     // the table, for errors
	scan func(*sql.Rows, string) (T, string, error) // the row and its task id (given the current one, to reuse its string)
	rows *sql.Rows
	row  T
	key  string
	ok   bool // a row is at hand
}

// open runs the read and moves to its first row.
func (c *cursor[T]) open(ctx context.Context, db *sql.DB, query string, args ...any) error {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	c.rows = rows
	return c.advance()
}

func (c *cursor[T]) close() {
	if c.rows != nil {
		c.rows.Close()
	}
}

func (c *cursor[T]) advance() error {
	if !c.rows.Next() {
		c.ok = false
		return c.rows.Err()
	}
	row, key, err := c.scan(c.rows, c.key)
	if err != nil {
		return err
	}
	if c.ok && key < c.key {
		return fmt.Errorf("oracle: %s rows out of task order (%q after %q)", c.what, key, c.key)
	}
	c.row, c.key, c.ok = row, key, true
	return nil
}

// take appends every row of task id.
func (c *cursor[T]) take(id string, into []T) ([]T, error) {
	for c.ok && c.key == id {
		into = append(into, c.row)
		if err := c.advance(); err != nil {
			return into, err
		}
	}
	return into, nil
}

// before reports whether the cursor is at a row whose task id comes
// before key (or at any row, when there is no key yet).
func (c *cursor[T]) before(key string, found bool) bool {
	return c.ok && (!found || c.key < key)
}

// histories is the merge of the three reads on the task id.
type histories struct {
	tasks  *cursor[taskRow]
	runs   *cursor[histRun]
	events *cursor[eventRow]
}

func (m histories) more() bool { return m.tasks.ok || m.runs.ok || m.events.ok }

// next takes the rows of the smallest task id any read is at.
func (m histories) next() (taskHistory, error) {
	var h taskHistory
	found := false
	if m.tasks.before(h.id, found) {
		h.id, found = m.tasks.key, true
	}
	if m.runs.before(h.id, found) {
		h.id, found = m.runs.key, true
	}
	if m.events.before(h.id, found) {
		h.id = m.events.key
	}
	if m.tasks.ok && m.tasks.key == h.id {
		row := m.tasks.row
		h.row = &row
		if err := m.tasks.advance(); err != nil {
			return h, err
		}
	}
	var err error
	if h.runs, err = m.runs.take(h.id, nil); err != nil {
		return h, err
	}
	h.events, err = m.events.take(h.id, nil)
	return h, err
}

// streamHistories calls judge with each task's history in task id order:
// every task id that has a row, runs or events.
func streamHistories(ctx context.Context, db *sql.DB, judge func(taskHistory)) error {
	// Three reads at once and the run-outcome look-up need four
	// connections to the private copy.
	db.SetMaxOpenConns(4)
	m := histories{
		tasks:  &cursor[taskRow]{what: "tasks", scan: scanTask},
		runs:   &cursor[histRun]{what: "task_runs", scan: scanRun},
		events: &cursor[eventRow]{what: "task_events", scan: eventScanner()},
	}
	defer m.tasks.close()
	defer m.runs.close()
	defer m.events.close()
	for _, err := range []error{
		m.tasks.open(ctx, db, tasksInOrder),
		m.runs.open(ctx, db, runsInOrder),
		m.events.open(ctx, db, eventsInOrder, kanban.EventGaveUp),
	} {
		if err != nil {
			return err
		}
	}
	// A spawned event naming a run its task does not have (another task's,
	// or none) asks the board for that run's outcome; the others use the
	// task's own runs (a look-up per spawned event cost 1.8 s on the 1 GB
	// board).
	outcome, err := db.PrepareContext(ctx, runOutcome)
	if err != nil {
		return err
	}
	defer outcome.Close()
	for m.more() {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := m.next()
		if err != nil {
			return err
		}
		if err := spawnedRunOutcomes(ctx, outcome, h); err != nil {
			return err
		}
		judge(h)
	}
	return nil
}

// spawnedRunOutcomes sets each spawned event's runOutcome (whether the
// run counts toward the spawn limit): from the task's own runs, else from
// the board (lookup), "" for a run it does not have.
func spawnedRunOutcomes(ctx context.Context, lookup *sql.Stmt, h taskHistory) error {
	for i := range h.events {
		e := &h.events[i]
		if e.kind != kanban.EventSpawned || !e.run.Valid {
			continue
		}
		if k, own := slices.BinarySearchFunc(h.runs, e.run.Int64, func(r histRun, id int64) int { return cmpInt(r.id, id) }); own {
			e.runOutcome = h.runs[k].outcome
			continue
		}
		err := lookup.QueryRowContext(ctx, e.run.Int64).Scan(&e.runOutcome)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
	}
	return nil
}

func scanTask(rows *sql.Rows, _ string) (taskRow, string, error) {
	var t taskRow
	err := rows.Scan(&t.id, &t.status, &t.lock, &t.expires, &t.currentRun, &t.failures, &t.maxRetries)
	return t, t.id, err
}

func scanRun(rows *sql.Rows, current string) (histRun, string, error) {
	var r histRun
	var task sql.RawBytes
	if err := rows.Scan(&r.id, &task, &r.outcome, &r.started, &r.ended, &r.isEnded, &r.pid, &r.hasPID, &r.err); err != nil {
		return r, "", err
	}
	r.task = current
	if string(task) != current {
		r.task = string(task)
	}
	return r, r.task, nil
}

// eventScanner scans event rows, holding each event kind's string once.
func eventScanner() func(*sql.Rows, string) (eventRow, string, error) {
	kinds := map[string]string{}
	return func(rows *sql.Rows, current string) (eventRow, string, error) {
		var e eventRow
		var task, kind sql.RawBytes
		if err := rows.Scan(&e.id, &task, &e.run, &kind, &e.payload, &e.at); err != nil {
			return e, "", err
		}
		if e.kind = kinds[string(kind)]; e.kind == "" {
			e.kind = string(kind)
			kinds[e.kind] = e.kind
		}
		e.task = current
		if string(task) != current {
			e.task = string(task)
		}
		return e, e.task, nil
	}
}

// historyJudge decides the audit's invariants one task at a time
// (streamHistories), keeping only what the verdict needs across tasks.
type historyJudge struct {
	in       Input
	limits   limitFunc
	cooldown float64
	sum      BoardSummary

	tripped     bool // some task's breaker tripped (gave_up)
	rateLimited bool // some run ended rate_limited, or a rate-limited run tripped a breaker
	protocol    bool // some task row has a protocol_violation event
	spawned     bool // some spawned event
	unattended  bool // some run ended for want of news from its worker

	breaker, bookkeeping, gaveUps, overBudget, overLimit []Violation
	late                                                 []earlyRun
	// unrecorded are the runs ended for want of news with no pid and no
	// worker recorded by their own task's events, in task and id order;
	// resolveUnrecorded looks for the other tasks' events.
	unrecorded []histRun
}

func newHistoryJudge(in Input, limits limitFunc, cooldown float64) *historyJudge {
	return &historyJudge{in: in, limits: limits, cooldown: cooldown, sum: BoardSummary{Status: map[string]int{}}}
}

// judge holds one task's history to every audit invariant.
func (j *historyJudge) judge(t taskHistory) {
	j.sum.Runs += len(t.runs)
	j.sum.Events += len(t.events)
	j.tripped = j.tripped || hasGaveUp(t.events)
	if x := breakerReopened(j.in, t.id, t.events); x != nil {
		j.breaker = append(j.breaker, *x)
	}
	j.rateLimited = j.rateLimited || hasRateLimitedRun(t.runs)
	if x, ok := earlyRespawn(j.in, t.runs, j.cooldown); ok {
		j.late = append(j.late, x)
	}
	j.spawned = j.spawned || hasSpawned(t.events)
	j.judgeWorkers(t)
	if t.row == nil {
		return // the invariants below hold task rows
	}
	j.sum.Tasks++
	j.sum.Status[t.row.status]++
	var open []int64
	for _, r := range t.runs {
		if !r.isEnded {
			open = append(open, r.id)
		}
	}
	j.bookkeeping = append(j.bookkeeping, bookkeepingViolations(*t.row, open)...)
	gaveUps := rateLimitedGaveUps(j.in, t.id, t.events)
	j.rateLimited = j.rateLimited || len(gaveUps) > 0
	j.gaveUps = append(j.gaveUps, gaveUps...)
	peak, x := protocolOverBudget(j.in, *t.row, t.events, j.limits)
	j.protocol = j.protocol || peak > 0
	if x != nil {
		j.overBudget = append(j.overBudget, *x)
	}
	if x := spawnsOverLimit(j.in, *t.row, t.events, j.limits); x != nil {
		j.overLimit = append(j.overLimit, *x)
	}
}

// judgeWorkers keeps the task's runs ended for want of news that neither a
// pid nor the task's own spawned/spawn_failed events record.
func (j *historyJudge) judgeWorkers(t taskHistory) {
	var recorded map[int64]bool
	for _, r := range t.runs {
		if !unattended(r) {
			continue
		}
		j.unattended = true
		if r.hasPID {
			continue
		}
		if recorded == nil {
			recorded = map[int64]bool{}
			for _, e := range t.events {
				if e.run.Valid && (e.kind == kanban.EventSpawned || e.kind == kanban.EventSpawnFailed) {
					recorded[e.run.Int64] = true
				}
			}
		}
		if !recorded[r.id] {
			j.unrecorded = append(j.unrecorded, r)
		}
	}
}

// resolveUnrecorded drops the runs another task's spawned or spawn_failed
// event records: one more pass over the events, only when some run is
// still unrecorded.
func (j *historyJudge) resolveUnrecorded(ctx context.Context, db *sql.DB) error {
	if len(j.unrecorded) == 0 {
		return nil
	}
	pending := map[int64]bool{}
	for _, r := range j.unrecorded {
		pending[r.id] = true
	}
	rows, err := db.QueryContext(ctx, `SELECT run_id FROM task_events WHERE run_id IS NOT NULL AND kind IN (?, ?)`,
		kanban.EventSpawned, kanban.EventSpawnFailed)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var run sql.NullInt64
		if err := rows.Scan(&run); err != nil {
			return err
		}
		delete(pending, run.Int64)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	kept := j.unrecorded[:0]
	for _, r := range j.unrecorded {
		if pending[r.id] {
			kept = append(kept, r)
		}
	}
	j.unrecorded = kept
	return nil
}

// decideBoard records what the board's own history says of breaker-holds,
// run-bookkeeping, rate-limit and protocol-budget, for a board without a
// ledger: the workers' exits cannot be looked at.
func (j *historyJudge) decideBoard(v *Verdict) {
	decideBreaker(v, j.tripped, j.breaker)
	v.check(RunBookkeeping) // every task row is held to it, runs or not
	v.Violations = append(v.Violations, j.bookkeeping...)
	v.Violations = append(v.Violations, j.gaveUps...)
	v.Violations = append(v.Violations, inRunOrder(j.late)...)
	if j.rateLimited {
		v.check(RateLimit)
	} else {
		v.skip(RateLimit, noRateLimitedRun)
	}
	v.Violations = append(v.Violations, j.overBudget...)
	if j.protocol {
		v.check(ProtocolBudget)
	} else {
		v.skip(ProtocolBudget, noProtocolViolation)
	}
}

// decideAudit records the audit's own invariants: spawn-limit and
// unrecorded-workers.
func (j *historyJudge) decideAudit(v *Verdict) {
	if j.spawned {
		v.check(SpawnLimit)
		v.Violations = append(v.Violations, j.overLimit...)
	} else {
		v.skip(SpawnLimit, "no spawned event on the board: no worker to count")
	}
	if !j.unattended {
		v.skip(UnrecordedWorkers, "no run ended for want of news from its worker (reclaimed, stale, timed out)")
		return
	}
	v.check(UnrecordedWorkers)
	for i := 0; i < len(j.unrecorded); {
		n := i + 1
		for n < len(j.unrecorded) && j.unrecorded[n].task == j.unrecorded[i].task {
			n++
		}
		v.Violations = append(v.Violations, unrecordedViolation(j.in, j.unrecorded[i:n]))
		i = n
	}
}

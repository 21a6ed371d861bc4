package kanban

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ErrStaleRun is returned when a worker's expected run id is not the task's
// current run: its claim was lost and it must not write.
var ErrStaleRun = errors.New("kanban: stale run: the task's current run is not the caller's")

// NewTask is what CreateTask inserts.
type NewTask struct {
	ID         string // empty: a fresh t_xxxxxxxx id
	Title      string
	Assignee   string
	Priority   int
	MaxRetries int // 0: NULL (use the configured or default limit)
	// MaxRuntime is max_runtime_seconds as stored (0: NULL, no limit).
	MaxRuntime float64
	CreatedBy  string
}

// CreateTask inserts a ready task and its `created` event.
func (b *Board) CreateTask(ctx context.Context, t NewTask) (string, error) {
	if t.ID == "" {
		t.ID = NewTaskID()
	}
	var maxRetries, maxRuntime any
	if t.MaxRetries > 0 {
		maxRetries = t.MaxRetries
	}
	if t.MaxRuntime > 0 {
		maxRuntime = t.MaxRuntime
	}
	err := b.write(ctx, "create", t.ID, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO tasks (id, title, assignee, status, priority, created_by, created_at, max_retries, max_runtime_seconds)
			VALUES (?,?,?,?,?,?,?,?,?)`, t.ID, t.Title, t.Assignee, StatusReady, t.Priority, t.CreatedBy, b.now(), maxRetries, maxRuntime)
		if err != nil {
			return err
		}
		return b.event(ctx, tx, t.ID, 0, EventCreated, map[string]any{"assignee": t.Assignee})
	})
	if err != nil {
		return "", fmt.Errorf("kanban: create task %s: %w", t.ID, err)
	}
	return t.ID, nil
}

// Claim is the dispatcher's claim_task: a compare-and-swap from ready with no
// claim to running under lock, which opens a run and emits `claimed`. ok is
// false when another claimer won or the task is not claimable; the loser
// writes nothing. A task with an undone parent is demoted to todo instead.
func (b *Board) Claim(ctx context.Context, id, lock string, ttl float64) (run int64, ok bool, err error) {
	err = b.write(ctx, "claim", id, func(tx *sql.Tx) error {
		var undone int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM task_links l JOIN tasks p ON p.id = l.parent_id
			WHERE l.child_id = ? AND p.status NOT IN ('done','archived')`, id).Scan(&undone); err != nil {
			return err
		}
		if undone > 0 {
			res, err := tx.ExecContext(ctx, `UPDATE tasks SET status='todo' WHERE id=? AND status='ready' AND claim_lock IS NULL`, id)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				return b.event(ctx, tx, id, 0, EventClaimRejected, map[string]any{"reason": "undone parent", "undone_parents": undone})
			}
			return nil
		}
		now := b.now()
		res, err := tx.ExecContext(ctx, `UPDATE tasks SET status='running', claim_lock=?, claim_expires=?,
			started_at=COALESCE(started_at, ?), worker_pid=NULL, last_heartbeat_at=NULL
			WHERE id=? AND status='ready' AND claim_lock IS NULL`, lock, now+ttl, now, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		// A run left open by an earlier, interrupted attempt is closed first,
		// so a task never has two open runs.
		if _, err := tx.ExecContext(ctx, `UPDATE task_runs SET status='ended', ended_at=?, outcome=?
			WHERE task_id=? AND ended_at IS NULL`, now, OutcomeStale, id); err != nil {
			return err
		}
		var assignee sql.NullString
		if err := tx.QueryRowContext(ctx, `SELECT assignee FROM tasks WHERE id=?`, id).Scan(&assignee); err != nil {
			return err
		}
		r, err := tx.ExecContext(ctx, `INSERT INTO task_runs (task_id, profile, status, claim_lock, claim_expires, started_at)
			VALUES (?,?,?,?,?,?)`, id, assignee.String, StatusRunning, lock, now+ttl, now)
		if err != nil {
			return err
		}
		run, err = r.LastInsertId()
		if err != nil {
			return err
		}
		b.pending.Run = run
		if _, err := tx.ExecContext(ctx, `UPDATE tasks SET current_run_id=? WHERE id=?`, run, id); err != nil {
			return err
		}
		ok = true
		return b.event(ctx, tx, id, run, EventClaimed, map[string]any{"lock": lock, "expires": now + ttl})
	})
	if err != nil {
		return 0, false, fmt.Errorf("kanban: claim %s: %w", id, err)
	}
	return run, ok, nil
}

// SetWorkspacePath records where the worker runs (its own transaction, as in
// Hermes).
func (b *Board) SetWorkspacePath(ctx context.Context, id, path string) error {
	return wrap("set workspace of "+id, b.write(ctx, "set_workspace", id, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE tasks SET workspace_path=? WHERE id=?`, path, id)
		return err
	}))
}

// SetWorkerPID is Hermes' _set_worker_pid: record the spawned pid on the task
// and its run and emit `spawned`.
func (b *Board) SetWorkerPID(ctx context.Context, id string, run int64, pid int) error {
	return wrap("set worker pid of "+id, b.write(ctx, "set_worker_pid", id, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE tasks SET worker_pid=? WHERE id=? AND current_run_id=?`, pid, id, run); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE task_runs SET worker_pid=? WHERE id=?`, pid, run); err != nil {
			return err
		}
		return b.event(ctx, tx, id, run, EventSpawned, map[string]any{"pid": pid})
	}))
}

// Failure is the result of recording one failure against a task.
type Failure struct {
	Task     string
	Failures int    // consecutive_failures after this one
	Limit    int    // effective limit applied
	Source   string // where the limit came from: task, configured, default
	Tripped  bool   // the breaker tripped: the task is blocked with gave_up
}

// DefaultFailureLimit is Hermes' DEFAULT_FAILURE_LIMIT.
const DefaultFailureLimit = 2

// RecordTaskFailure is Hermes' _record_task_failure in its own transaction:
// consecutive_failures += 1 and, at the effective limit, blocked + gave_up.
// limit > 0 is the limit passed by the caller; 0 means "None" (the default).
func (b *Board) RecordTaskFailure(ctx context.Context, id, outcome, errMsg string, limit int) (Failure, error) {
	var f Failure
	err := b.write(ctx, "record_failure", id, func(tx *sql.Tx) (err error) {
		f, err = b.recordFailure(ctx, tx, id, 0, outcome, errMsg, limit, false)
		return err
	})
	return f, wrap("record failure of "+id, err)
}

// RecordCrashFailure is the crash path's _record_task_failure for one
// reclaimed crash, in its own transaction (the non-atomic path): c.Limit as
// in RecordTaskFailure, and with c.Streak > 0 a protocol violation is first
// held to the streak rule (see Crash.Streak). It returns nil when nothing
// was counted.
func (b *Board) RecordCrashFailure(ctx context.Context, c Crash) (*Failure, error) {
	var f *Failure
	err := b.write(ctx, "record_failure", c.Task, func(tx *sql.Tx) (err error) {
		f, err = b.crashFailure(ctx, tx, c)
		return err
	})
	return f, wrap("record failure of "+c.Task, err)
}

// crashFailure counts one crash: with the protocol-violation streak rule
// (v0.19's _protocol_violation_streak) a violation is requeued uncounted
// while the trailing violations number fewer than max_retries ?? c.Streak,
// and at that streak the breaker is forced to trip (the counter still goes
// up by one only).
func (b *Board) crashFailure(ctx context.Context, tx *sql.Tx, c Crash) (*Failure, error) {
	if c.Outcome != OutcomeProtocol || c.Streak <= 0 {
		f, err := b.recordFailure(ctx, tx, c.Task, 0, c.Outcome, c.Error, c.Limit, false)
		return &f, err
	}
	var maxRetries sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT max_retries FROM tasks WHERE id=?`, c.Task).Scan(&maxRetries); err != nil {
		return nil, err
	}
	limit := c.Streak
	if maxRetries.Valid && maxRetries.Int64 > 0 {
		limit = int(maxRetries.Int64)
	}
	streak, err := protocolStreak(ctx, tx, c.Task)
	if err != nil || streak < limit {
		return nil, err
	}
	f, err := b.recordFailure(ctx, tx, c.Task, 0, c.Outcome, c.Error, limit, true)
	return &f, err
}

// protocolStreak counts the task's trailing ended runs booked
// protocol_violation, skipping rate_limited ones.
func protocolStreak(ctx context.Context, tx *sql.Tx, id string) (int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT COALESCE(outcome,'') FROM task_runs WHERE task_id=? AND ended_at IS NOT NULL ORDER BY id DESC`, id)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var outcome string
		if err := rows.Scan(&outcome); err != nil {
			return 0, err
		}
		if outcome == OutcomeRateLimited {
			continue
		}
		if outcome != OutcomeProtocol {
			break
		}
		n++
	}
	return n, rows.Err()
}

// recordFailure increments the counter and trips the breaker at the limit
// (always, with force: v0.19's force_trip). With spawnRun > 0 (the spawn
// path) it also releases the claim and closes that run, as
// _record_spawn_failure does.
func (b *Board) recordFailure(ctx context.Context, tx *sql.Tx, id string, spawnRun int64, outcome, errMsg string, limit int, force bool) (Failure, error) {
	f := Failure{Task: id}
	var maxRetries sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT consecutive_failures, max_retries FROM tasks WHERE id=?`, id).Scan(&f.Failures, &maxRetries); err != nil {
		return f, err
	}
	f.Failures++
	switch {
	case maxRetries.Valid && maxRetries.Int64 > 0:
		f.Limit, f.Source = int(maxRetries.Int64), "task"
	case limit > 0:
		f.Limit, f.Source = limit, "configured"
	default:
		f.Limit, f.Source = DefaultFailureLimit, "default"
	}
	if force {
		f.Limit, f.Source = limit, "protocol_violation_streak"
	}
	f.Tripped = force || f.Failures >= f.Limit
	now := b.now()
	errMsg = truncate(errMsg, 500)
	if spawnRun > 0 {
		runOutcome := outcome
		if f.Tripped {
			runOutcome = OutcomeGaveUp
		}
		if _, err := tx.ExecContext(ctx, `UPDATE task_runs SET status='ended', ended_at=?, outcome=?, error=? WHERE id=? AND ended_at IS NULL`,
			now, runOutcome, errMsg, spawnRun); err != nil {
			return f, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tasks SET status='ready', claim_lock=NULL, claim_expires=NULL, worker_pid=NULL,
			current_run_id=NULL WHERE id=? AND current_run_id=?`, id, spawnRun); err != nil {
			return f, err
		}
	}
	if !f.Tripped {
		_, err := tx.ExecContext(ctx, `UPDATE tasks SET consecutive_failures=?, last_failure_error=? WHERE id=?`, f.Failures, errMsg, id)
		return f, err
	}
	// The trip writes its status unconditionally, as Hermes does: in the
	// non-atomic crash path the task may already have been claimed again.
	if _, err := tx.ExecContext(ctx, `UPDATE tasks SET status='blocked', consecutive_failures=?, last_failure_error=?,
		claim_lock=NULL, claim_expires=NULL WHERE id=?`, f.Failures, errMsg, id); err != nil {
		return f, err
	}
	return f, b.event(ctx, tx, id, spawnRun, EventGaveUp, map[string]any{
		"failures": f.Failures, "effective_limit": f.Limit, "limit_source": f.Source,
		"error": errMsg, "trigger_outcome": outcome,
	})
}

// RecordSpawnFailure is _record_spawn_failure: the spawn itself failed, so the
// claim is released, the run closed as spawn_failed and a failure counted.
func (b *Board) RecordSpawnFailure(ctx context.Context, id string, run int64, errMsg string, limit int) (Failure, error) {
	var f Failure
	err := b.write(ctx, "record_spawn_failure", id, func(tx *sql.Tx) (err error) {
		if err := b.event(ctx, tx, id, run, EventSpawnFailed, map[string]any{"error": truncate(errMsg, 500)}); err != nil {
			return err
		}
		f, err = b.recordFailure(ctx, tx, id, run, OutcomeSpawnFailed, errMsg, limit, false)
		return err
	})
	return f, wrap("record spawn failure of "+id, err)
}

// RunningTask is a task the dispatcher believes has a live worker.
type RunningTask struct {
	ID            string
	Assignee      string
	PID           int // 0: no pid recorded yet
	Lock          string
	ClaimExpires  float64
	StartedAt     float64 // first-ever start (COALESCE'd, as Hermes)
	RunID         int64
	RunStartedAt  float64
	LastHeartbeat float64 // 0: never
	MaxRuntime    float64 // seconds; 0: none
}

// Running lists running tasks.
func (b *Board) Running(ctx context.Context) ([]RunningTask, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT t.id, COALESCE(t.assignee,''), COALESCE(t.worker_pid,0), COALESCE(t.claim_lock,''),
		COALESCE(t.claim_expires,0), COALESCE(t.started_at,0), COALESCE(t.current_run_id,0), COALESCE(r.started_at,0),
		COALESCE(t.last_heartbeat_at,0), COALESCE(t.max_runtime_seconds,0)
		FROM tasks t LEFT JOIN task_runs r ON r.id = t.current_run_id WHERE t.status='running' ORDER BY t.id`)
	if err != nil {
		return nil, fmt.Errorf("kanban: list running: %w", err)
	}
	defer rows.Close()
	var out []RunningTask
	for rows.Next() {
		var r RunningTask
		if err := rows.Scan(&r.ID, &r.Assignee, &r.PID, &r.Lock, &r.ClaimExpires, &r.StartedAt, &r.RunID, &r.RunStartedAt,
			&r.LastHeartbeat, &r.MaxRuntime); err != nil {
			return nil, fmt.Errorf("kanban: list running: %w", err)
		}
		out = append(out, r)
	}
	return out, wrap("list running", rows.Err())
}

// Crash describes a worker that ended while its task was running.
type Crash struct {
	Task    string
	RunID   int64
	PID     int
	Lock    string
	Outcome string // OutcomeCrashed, OutcomeProtocol or OutcomeRateLimited
	Error   string
	// Count says whether the crash counts toward the breaker, and Limit is
	// the limit to apply (0: the default), when it is recorded atomically.
	Count bool
	Limit int
	// Streak > 0 applies v0.19's protocol-violation streak rule to an
	// OutcomeProtocol crash: requeued without counting until that many
	// trailing runs (max_retries, if set) were violations, then a forced
	// trip. 0: the violation counts at Limit like any crash.
	Streak int
}

// Reclaimed is what happened to one Crash.
type Reclaimed struct {
	Crash
	Failure *Failure // set when the failure was recorded in the same transaction
	// Recorded says the failure was dealt with in the same transaction
	// (Failure is nil if the streak rule requeued it uncounted).
	Recorded bool
}

// ReclaimCrashed is the write half of detect_crashed_workers: in one
// transaction, each crashed task flips running → ready (a CAS keyed on id,
// status, pid and lock), its run is closed with the outcome and the event is
// emitted. With atomic, each counted crash also records its failure in the
// same transaction, so no reader ever sees `ready` with a stale counter (the
// fix); without it the caller records failures afterwards (Hermes v0.14).
func (b *Board) ReclaimCrashed(ctx context.Context, crashes []Crash, atomic bool) ([]Reclaimed, error) {
	var out []Reclaimed
	err := b.write(ctx, "reclaim_crashed", "", func(tx *sql.Tx) error {
		out = out[:0]
		now := b.now()
		for _, c := range crashes {
			res, err := tx.ExecContext(ctx, `UPDATE tasks SET status='ready', claim_lock=NULL, claim_expires=NULL, worker_pid=NULL,
				current_run_id=NULL WHERE id=? AND status='running' AND worker_pid=? AND claim_lock=?`, c.Task, c.PID, c.Lock)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				continue // someone else reclaimed it first
			}
			if _, err := tx.ExecContext(ctx, `UPDATE task_runs SET status='ended', ended_at=?, outcome=?, error=? WHERE id=? AND ended_at IS NULL`,
				now, c.Outcome, truncate(c.Error, 500), c.RunID); err != nil {
				return err
			}
			if c.Outcome == OutcomeRateLimited {
				if _, err := tx.ExecContext(ctx, `UPDATE tasks SET last_failure_error=? WHERE id=?`, truncate(c.Error, 500), c.Task); err != nil {
					return err
				}
			}
			if err := b.event(ctx, tx, c.Task, c.RunID, c.Outcome, map[string]any{"pid": c.PID, "error": c.Error}); err != nil {
				return err
			}
			r := Reclaimed{Crash: c}
			if atomic && c.Count {
				f, err := b.crashFailure(ctx, tx, c)
				if err != nil {
					return err
				}
				r.Failure, r.Recorded = f, true
			}
			out = append(out, r)
		}
		return nil
	})
	return out, wrap("reclaim crashed workers", err)
}

// ExtendClaim pushes a live worker's claim forward (`claim_extended`).
func (b *Board) ExtendClaim(ctx context.Context, id, lock string, expires float64, reason string) error {
	return wrap("extend claim of "+id, b.write(ctx, "extend_claim", id, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tasks SET claim_expires=? WHERE id=? AND status='running' AND claim_lock=?`, expires, id, lock)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		return b.event(ctx, tx, id, 0, EventClaimExtended, map[string]any{"expires": expires, "reason": reason})
	}))
}

// ReleaseClaim ends a running task's claim without a live worker: the task
// goes back to ready and its run is closed with outcome (reclaimed after a
// stale claim, timed_out after max runtime). With count, a failure is
// recorded in the same transaction (limit as in RecordTaskFailure).
func (b *Board) ReleaseClaim(ctx context.Context, id, lock, outcome, errMsg string, count bool, limit int) (released bool, f *Failure, err error) {
	err = b.write(ctx, "release_claim", id, func(tx *sql.Tx) error {
		released, f = false, nil
		var run sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT current_run_id FROM tasks WHERE id=? AND status='running' AND claim_lock=?`, id, lock).Scan(&run); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tasks SET status='ready', claim_lock=NULL, claim_expires=NULL, worker_pid=NULL,
			current_run_id=NULL WHERE id=?`, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE task_runs SET status='ended', ended_at=?, outcome=?, error=? WHERE id=? AND ended_at IS NULL`,
			b.now(), outcome, truncate(errMsg, 500), run.Int64); err != nil {
			return err
		}
		kind := EventReclaimed
		if outcome == OutcomeTimedOut {
			kind = EventTimedOut
		}
		if err := b.event(ctx, tx, id, run.Int64, kind, map[string]any{"error": errMsg}); err != nil {
			return err
		}
		released = true
		if count {
			ff, err := b.recordFailure(ctx, tx, id, 0, outcome, errMsg, limit, false)
			if err != nil {
				return err
			}
			f = &ff
		}
		return nil
	})
	return released, f, wrap("release claim of "+id, err)
}

// RecomputePolicy says which blocked tasks recompute_ready may promote.
type RecomputePolicy struct {
	// A sticky block (latest blocked/unblocked event is `blocked`) always
	// stays blocked. RepromoteTripped promotes every other blocked task
	// whose parents are done, breaker-tripped ones at or over their limit
	// included (Hermes v0.15.x, the #30417 loop). Off: a task at or over its
	// limit stays blocked (v0.16+, #35072).
	RepromoteTripped bool
	FailureLimit     int // configured limit for the at-limit check; 0 = default
	// TodoOnly promotes todo tasks only: no blocked task is ever promoted,
	// so a breaker block holds (Hermes v0.14.0).
	TodoOnly bool
	// ResetCounter sets consecutive_failures to 0 on every blocked task it
	// promotes (Hermes v0.15.x: with RepromoteTripped, an unbounded loop).
	ResetCounter bool
}

// RecomputeReady promotes todo and blocked tasks whose parents are all done
// or archived, emitting `promoted`. It returns the promoted task ids.
func (b *Board) RecomputeReady(ctx context.Context, p RecomputePolicy) ([]string, error) {
	var promoted []string
	err := b.write(ctx, "recompute_ready", "", func(tx *sql.Tx) error {
		promoted = promoted[:0]
		rows, err := tx.QueryContext(ctx, `SELECT t.id, t.status, t.consecutive_failures, COALESCE(t.max_retries,0),
			COALESCE((SELECT e.kind FROM task_events e WHERE e.task_id=t.id AND e.kind IN ('blocked','unblocked') ORDER BY e.id DESC LIMIT 1),'')
			FROM tasks t WHERE t.status IN ('todo','blocked')
			AND NOT EXISTS (SELECT 1 FROM task_links l JOIN tasks p ON p.id=l.parent_id WHERE l.child_id=t.id AND p.status NOT IN ('done','archived'))
			ORDER BY t.priority DESC, t.created_at`)
		if err != nil {
			return err
		}
		type cand struct {
			id, status, lastBlock string
			failures, maxRetries  int
		}
		var cands []cand
		for rows.Next() {
			var c cand
			if err := rows.Scan(&c.id, &c.status, &c.failures, &c.maxRetries, &c.lastBlock); err != nil {
				rows.Close()
				return err
			}
			cands = append(cands, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, c := range cands {
			if c.status == StatusBlocked && p.TodoOnly {
				continue
			}
			if c.status == StatusBlocked && c.lastBlock == EventBlocked {
				continue // sticky: no release re-promotes it (_has_sticky_block)
			}
			if c.status == StatusBlocked && !p.RepromoteTripped && c.failures >= EffectiveLimit(c.maxRetries, p.FailureLimit) {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE tasks SET status='ready' WHERE id=? AND status=?`, c.id, c.status); err != nil {
				return err
			}
			if c.status == StatusBlocked && p.ResetCounter {
				if _, err := tx.ExecContext(ctx, `UPDATE tasks SET consecutive_failures=0 WHERE id=?`, c.id); err != nil {
					return err
				}
			}
			if err := b.event(ctx, tx, c.id, 0, EventPromoted, map[string]any{"from": c.status}); err != nil {
				return err
			}
			promoted = append(promoted, c.id)
		}
		return nil
	})
	return promoted, wrap("recompute ready", err)
}

// RespawnGuarded records that check_respawn_guard held a ready task back
// this tick (one transaction and one event per task per tick, as v0.16+
// does: no dedupe).
func (b *Board) RespawnGuarded(ctx context.Context, id, reason string) error {
	return wrap("respawn guard of "+id, b.write(ctx, "respawn_guarded", id, func(tx *sql.Tx) error {
		return b.event(ctx, tx, id, 0, EventRespawnGuarded, map[string]any{"reason": reason})
	}))
}

// EffectiveLimit resolves max_retries, else the configured limit, else 2.
func EffectiveLimit(maxRetries, configured int) int {
	switch {
	case maxRetries > 0:
		return maxRetries
	case configured > 0:
		return configured
	}
	return DefaultFailureLimit
}

// Candidate is a ready, unclaimed task the spawn phase may start.
type Candidate struct {
	ID                  string
	Assignee            string
	ConsecutiveFailures int
	LastRunEnded        float64 // 0: no ended run
	LastRunOutcome      string
}

// SpawnCandidates lists ready, unclaimed tasks by priority, then age.
func (b *Board) SpawnCandidates(ctx context.Context) ([]Candidate, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT t.id, COALESCE(t.assignee,''), t.consecutive_failures,
		COALESCE((SELECT r.ended_at FROM task_runs r WHERE r.task_id=t.id AND r.ended_at IS NOT NULL ORDER BY r.id DESC LIMIT 1),0),
		COALESCE((SELECT r.outcome FROM task_runs r WHERE r.task_id=t.id AND r.ended_at IS NOT NULL ORDER BY r.id DESC LIMIT 1),'')
		FROM tasks t WHERE t.status='ready' AND t.claim_lock IS NULL ORDER BY t.priority DESC, t.created_at ASC`)
	if err != nil {
		return nil, fmt.Errorf("kanban: spawn candidates: %w", err)
	}
	defer rows.Close()
	var out []Candidate
	for rows.Next() {
		var c Candidate
		if err := rows.Scan(&c.ID, &c.Assignee, &c.ConsecutiveFailures, &c.LastRunEnded, &c.LastRunOutcome); err != nil {
			return nil, fmt.Errorf("kanban: spawn candidates: %w", err)
		}
		out = append(out, c)
	}
	return out, wrap("spawn candidates", rows.Err())
}

// CountRunning counts running tasks (the live part of the max_spawn cap).
func (b *Board) CountRunning(ctx context.Context) (int, error) {
	var n int
	err := b.db.QueryRowContext(ctx, `SELECT count(*) FROM tasks WHERE status='running'`).Scan(&n)
	return n, wrap("count running", err)
}

// AutoBlock parks a ready task that can never be spawned (e.g. an assignee
// that is not a profile) with a sticky `blocked` event and a clear error.
func (b *Board) AutoBlock(ctx context.Context, id, reason string) error {
	return wrap("auto-block "+id, b.write(ctx, "auto_block", id, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE tasks SET status='blocked', last_failure_error=?, block_kind='auto_blocked'
			WHERE id=? AND status='ready' AND claim_lock IS NULL`, truncate(reason, 500), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return nil
		}
		return b.event(ctx, tx, id, 0, EventBlocked, map[string]any{"auto_blocked": true, "reason": reason})
	}))
}

// TaskRow is the part of a task a worker reads.
type TaskRow struct {
	ID, Title, Assignee, Status string
	CurrentRunID                int64
	ConsecutiveFailures         int
}

// Task reads one task.
func (b *Board) Task(ctx context.Context, id string) (TaskRow, error) {
	var t TaskRow
	err := b.db.QueryRowContext(ctx, `SELECT id, title, COALESCE(assignee,''), status, COALESCE(current_run_id,0), consecutive_failures
		FROM tasks WHERE id=?`, id).Scan(&t.ID, &t.Title, &t.Assignee, &t.Status, &t.CurrentRunID, &t.ConsecutiveFailures)
	return t, wrap("read task "+id, err)
}

// Heartbeat is a worker's heartbeat: it extends the claim it holds
// (HERMES_KANBAN_CLAIM_LOCK) for the run it was started for.
func (b *Board) Heartbeat(ctx context.Context, id string, run int64, lock string, ttl float64) error {
	return wrap("heartbeat "+id, b.write(ctx, "heartbeat", id, func(tx *sql.Tx) error {
		now := b.now()
		res, err := tx.ExecContext(ctx, `UPDATE tasks SET last_heartbeat_at=?, claim_expires=? WHERE id=? AND status='running'
			AND current_run_id=? AND claim_lock=?`, now, now+ttl, id, run, lock)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrStaleRun
		}
		if _, err := tx.ExecContext(ctx, `UPDATE task_runs SET last_heartbeat_at=?, claim_expires=? WHERE id=?`, now, now+ttl, run); err != nil {
			return err
		}
		return b.event(ctx, tx, id, run, EventHeartbeat, nil)
	}))
}

// Complete finishes the task for expectedRun; a stale run id is refused
// (ErrStaleRun). It resets the failure counter.
func (b *Board) Complete(ctx context.Context, id string, expectedRun int64, result string) error {
	return b.finish(ctx, id, expectedRun, StatusDone, OutcomeCompleted, EventCompleted, result)
}

// Block parks the task for expectedRun with a sticky `blocked` event.
func (b *Board) Block(ctx context.Context, id string, expectedRun int64, reason string) error {
	return b.finish(ctx, id, expectedRun, StatusBlocked, OutcomeBlocked, EventBlocked, reason)
}

func (b *Board) finish(ctx context.Context, id string, expectedRun int64, status, outcome, kind, text string) error {
	return wrap(kind+" "+id, b.write(ctx, kind, id, func(tx *sql.Tx) error {
		now := b.now()
		var completedAt any
		if status == StatusDone {
			completedAt = now
		}
		res, err := tx.ExecContext(ctx, `UPDATE tasks SET status=?, result=?, completed_at=COALESCE(?, completed_at),
			consecutive_failures=CASE WHEN ?='done' THEN 0 ELSE consecutive_failures END,
			claim_lock=NULL, claim_expires=NULL, worker_pid=NULL, current_run_id=NULL
			WHERE id=? AND status='running' AND current_run_id=?`, status, text, completedAt, status, id, expectedRun)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return ErrStaleRun
		}
		if _, err := tx.ExecContext(ctx, `UPDATE task_runs SET status='ended', ended_at=?, outcome=?, summary=? WHERE id=?`,
			now, outcome, text, expectedRun); err != nil {
			return err
		}
		return b.event(ctx, tx, id, expectedRun, kind, map[string]any{"text": text})
	}))
}

func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrStaleRun) {
		return err
	}
	return fmt.Errorf("kanban: %s: %w", what, err)
}

// Comment is a worker's progress note: a task_comments row plus a
// `commented` event, in one transaction, for the run it works on. Workers
// write these in bulk, which splits pages as real agent output does.
func (b *Board) Comment(ctx context.Context, id string, run int64, author, body string) error {
	return b.CommentThen(ctx, id, run, author, body, nil)
}

// CommentThen is Comment with beforeCommit called inside the transaction,
// after the writes and before COMMIT: a fake worker kills itself there to
// die holding the write lock with a half-done transaction.
func (b *Board) CommentThen(ctx context.Context, id string, run int64, author, body string, beforeCommit func()) error {
	return wrap("comment on "+id, b.write(ctx, "comment", id, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO task_comments (task_id, author, body, created_at) VALUES (?,?,?,?)`, id, author, body, b.now())
		if err != nil {
			return err
		}
		cid, err := res.LastInsertId()
		if err != nil {
			return err
		}
		b.pending.Comments = append(b.pending.Comments, cid)
		if err := b.event(ctx, tx, id, run, EventCommented, map[string]any{"comment": cid, "bytes": len(body)}); err != nil {
			return err
		}
		if beforeCommit != nil {
			beforeCommit()
		}
		return nil
	}))
}

// AdvanceNotifyCursor is the gateway notifier's bookkeeping: move the
// subscriber's cursor to the newest event. A long-lived connection doing
// this every tick is the lock holder mechanism M1 preys on.
func (b *Board) AdvanceNotifyCursor(ctx context.Context, chat string) error {
	return wrap("advance notify cursor", b.write(ctx, "notify_cursor", "", func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO kanban_notify_subs (task_id, platform, chat_id, last_event_id)
			VALUES ('*', 'gateway', ?, (SELECT COALESCE(max(id),0) FROM task_events))
			ON CONFLICT (task_id, platform, chat_id, thread_id) DO UPDATE SET last_event_id=excluded.last_event_id`, chat)
		return err
	}))
}

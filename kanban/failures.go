package kanban

// Failures: recording a worker's failure against its task, the crash path
// that reclaims dead workers' claims, and the effective failure limit.

import (
	"context"
	"database/sql"
)

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

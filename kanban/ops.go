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

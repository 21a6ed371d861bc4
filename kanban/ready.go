package kanban

// Readiness and spawning: recompute_ready's promotions, the respawn guard,
// the spawn candidates and the max_spawn count, auto-blocking.

import (
	"context"
	"database/sql"
	"fmt"
)

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

package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// boardVersion names the generator: a change to what it writes makes new
// cache files instead of reusing old ones.
const boardVersion = 1

// cachedBoard returns a generated board of about mb megabytes, made once
// and kept under the cache dir.
func cachedBoard(mb int) (string, error) {
	dir := os.Getenv("KANBANCHAOS_CACHE")
	if dir == "" {
		home, err := os.UserCacheDir()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(home, "kanbanchaos")
	}
	dir = filepath.Join(dir, "bench")
	path := filepath.Join(dir, fmt.Sprintf("board-v%d-%dMB", boardVersion, mb), "kanban.db")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	tmp := filepath.Dir(path) + ".tmp"
	os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	if err := generateBoard(filepath.Join(tmp, "kanban.db"), int64(mb)<<20); err != nil {
		return "", fmt.Errorf("generate %d MB board: %w", mb, err)
	}
	if err := os.Rename(tmp, filepath.Dir(path)); err != nil {
		return "", err
	}
	return path, nil
}

// generateBoard writes a Hermes board of about size bytes that looks like
// months of real use: tasks with bodies of a few KB, each with its runs
// (mostly completed, some crashed and retried), the events a dispatcher
// books for them (created, promoted, claimed, spawned, heartbeats,
// crashed, completed) and comments — consistent, so check audits every
// row instead of stopping at the first broken one. The schema is
// kanban's own (Hermes'); rows go in through one prepared statement per
// table, in large transactions, with the journal off: the board is a
// fixture, not a run.
func generateBoard(path string, size int64) error {
	ctx := context.Background()
	b, err := kanban.Connect(ctx, path, kanban.DefaultOptions())
	if err != nil {
		return err
	}
	if err := b.Close(); err != nil {
		return err
	}
	db, err := sql.Open("sqlite", kanban.FileURI(path)+"?_pragma=journal_mode(OFF)&_pragma=synchronous(OFF)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rng := rand.New(rand.NewPCG(1, uint64(size)))
	words := strings.Fields("the dispatcher worker board task claim crash retry breaker failure limit profile assignee " +
		"review deploy migrate schema index cache backup restore gateway heartbeat timeout cooldown budget queue " +
		"release patch branch merge test build lint docs agent skill prompt model token context summary")
	text := func(n int) string {
		var sb strings.Builder
		for sb.Len() < n {
			sb.WriteString(words[rng.IntN(len(words))])
			sb.WriteByte(' ')
		}
		return sb.String()
	}
	const batch = 500
	t0 := 1.75e9 // Unix seconds, mid-2025
	for task := 0; ; task += batch {
		if st, err := os.Stat(path); err == nil && st.Size() >= size {
			break
		}
		if err := insertTasks(ctx, db, rng, text, task, batch, t0); err != nil {
			return err
		}
	}
	_, err = db.ExecContext(ctx, `PRAGMA journal_mode=WAL`)
	return err
}

func insertTasks(ctx context.Context, db *sql.DB, rng *rand.Rand, text func(int) string, first, n int, t0 float64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	taskStmt, err := tx.PrepareContext(ctx, `INSERT INTO tasks (id, title, body, assignee, status, priority, created_by, created_at,
		started_at, completed_at, workspace_kind, result, consecutive_failures, last_failure_error) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return err
	}
	runStmt, err := tx.PrepareContext(ctx, `INSERT INTO task_runs (task_id, profile, status, worker_pid, started_at, ended_at, outcome, summary, metadata, error)
		VALUES (?,?,?,?,?,?,?,?,?,?)`)
	if err != nil {
		return err
	}
	eventStmt, err := tx.PrepareContext(ctx, `INSERT INTO task_events (task_id, run_id, kind, payload, created_at) VALUES (?,?,?,?,?)`)
	if err != nil {
		return err
	}
	commentStmt, err := tx.PrepareContext(ctx, `INSERT INTO task_comments (task_id, author, body, created_at) VALUES (?,?,?,?)`)
	if err != nil {
		return err
	}
	profiles := []string{"coder", "reviewer", "writer", "ops", "researcher"}
	payload := func(m map[string]any) string { data, _ := json.Marshal(m); return string(data) }
	for i := first; i < first+n; i++ {
		id := fmt.Sprintf("t_%08x", uint32(i)*2654435761)
		profile := profiles[rng.IntN(len(profiles))]
		at := t0 + float64(i)*37
		event := func(run any, kind string, p map[string]any) error {
			at += 1 + rng.Float64()*30
			_, err := eventStmt.ExecContext(ctx, id, run, kind, payload(p), at)
			return err
		}
		// Most tasks are done after a run or two; a few crashed once first.
		crashes := 0
		if rng.IntN(8) == 0 {
			crashes = 1
		}
		if _, err := taskStmt.ExecContext(ctx, id, text(40), text(1000+rng.IntN(3000)), profile, kanban.StatusDone, rng.IntN(3),
			"gateway", at, at+5, at+600, "scratch", text(200), 0, nil); err != nil {
			return err
		}
		if err := event(nil, kanban.EventCreated, map[string]any{"by": "gateway"}); err != nil {
			return err
		}
		for r := 0; r <= crashes; r++ {
			start := at
			ok := r == crashes
			outcome, status, errMsg := "completed", "ended", any(nil)
			if !ok {
				outcome, errMsg = "crashed", "worker exited 1"
			}
			res, err := runStmt.ExecContext(ctx, id, profile, status, 10000+rng.IntN(50000), start, start+300, outcome,
				text(300), payload(map[string]any{"model": "m", "tokens": rng.IntN(50000)}), errMsg)
			if err != nil {
				return err
			}
			run, _ := res.LastInsertId()
			for _, k := range []string{kanban.EventClaimed, kanban.EventSpawned} {
				if err := event(run, k, map[string]any{"run": run, "pid": 10000 + rng.IntN(50000)}); err != nil {
					return err
				}
			}
			for range 4 + rng.IntN(8) {
				if err := event(run, kanban.EventHeartbeat, map[string]any{"note": text(60)}); err != nil {
					return err
				}
			}
			kind := kanban.EventCompleted
			if !ok {
				kind = kanban.EventCrashed
			}
			if err := event(run, kind, map[string]any{"run": run, "summary": text(120)}); err != nil {
				return err
			}
		}
		for range rng.IntN(4) {
			at += 60
			if _, err := commentStmt.ExecContext(ctx, id, "user", text(300+rng.IntN(600)), at); err != nil {
				return err
			}
		}
	}
	return tx.Commit()
}

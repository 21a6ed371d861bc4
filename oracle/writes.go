package oracle

import (
	"context"
	"database/sql"
	"fmt"
	"sort"

	"github.com/kanbanchaos/kanbanchaos/ledger"
)

// More invariant names: what processes saw acknowledged must be there, what
// they saw go wrong must not be corruption, and the sidecar files must not
// have been swapped under open connections (mechanism M1's fingerprints).
const (
	NoLostWrites = "no-lost-writes" // every acknowledged commit's rows are in the DB (#33334)
	SQLiteErrors = "sqlite-errors"  // no process saw CORRUPT, NOTADB, IOERR or PROTOCOL
	Sidecars     = "sidecars"       // no deleted -wal/-shm held open; sidecar inodes stable while connected
	// DispatcherProgress: no dispatcher goes seconds without finishing a
	// tick (stuck on a lock that broken locking left behind).
	DispatcherProgress = "dispatcher-progress"
	// NoSilentRecreation: a board file swapped for an empty one is never
	// given a fresh schema by the dispatcher or its workers (#30687, M6).
	NoSilentRecreation = "no-silent-recreation"
)

func hasSchema(ctx context.Context, db *sql.DB) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type='table' AND name='tasks'`).Scan(&n)
	return n > 0, err
}

// checkRecreation: the swapped-in empty file got a schema, so some process
// silently recreated the board; report how much of the seeded board is
// missing from it.
func checkRecreation(ctx context.Context, v *Verdict, in Input, db *sql.DB) {
	var tasks int
	db.QueryRowContext(ctx, `SELECT count(*) FROM tasks`).Scan(&tasks)
	v.Violations = append(v.Violations, Violation{Invariant: NoSilentRecreation,
		Message: fmt.Sprintf("the board file was replaced by an empty file and a process gave it a fresh schema: it now holds %d tasks, the board had %d",
			tasks, len(in.Schedule.Tasks)),
		Evidence: map[string]any{"tasks_now": tasks, "tasks_seeded": len(in.Schedule.Tasks)}})
}

// Observation is something the harness saw while the run went on, outside
// the DB and the ledger (e.g. its own fds pointing at a deleted -wal).
type Observation struct {
	// Invariant it breaks: Sidecars (the default when empty) or
	// DispatcherProgress.
	Invariant string  `json:"invariant,omitempty"`
	Kind      string  `json:"kind"` // "deleted-sidecar-fd", "sidecar-replaced", "dispatcher-stalled"
	AtMs      float64 `json:"at_ms"`
	Detail    string  `json:"detail"`
}

// primary result codes that mean the file or its locking is broken.
var corruptionCodes = map[int]string{10: "SQLITE_IOERR", 11: "SQLITE_CORRUPT", 15: "SQLITE_PROTOCOL", 26: "SQLITE_NOTADB"}

// checkSQLiteErrors fails the run when any process logged an error whose
// primary code says the DB or its locks are broken. Busy and locked errors
// are contention, not damage, and are not counted. Unless the subject
// records its own errors, only the workers' were looked at: not checked.
func checkSQLiteErrors(v *Verdict, in Input, obs observed) {
	if obs.errors {
		v.check(SQLiteErrors)
	} else {
		v.skip(SQLiteErrors, fmt.Sprintf("%s records none of its own SQLite errors: only the workers' were looked at", obs.name))
	}
	type seen struct {
		count int
		first ledger.Entry
	}
	byCode := map[int]*seen{}
	for _, e := range in.Ledger.Entries {
		if e.Kind != ledger.SQLiteError {
			continue
		}
		if _, bad := corruptionCodes[e.Code&0xff]; !bad {
			continue
		}
		if s, ok := byCode[e.Code]; ok {
			s.count++
			continue
		}
		byCode[e.Code] = &seen{count: 1, first: e}
	}
	codes := make([]int, 0, len(byCode))
	for c := range byCode {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	for _, c := range codes {
		s := byCode[c]
		who := s.first.Who
		v.Violations = append(v.Violations, Violation{Invariant: SQLiteErrors, Task: s.first.Task, AtMs: round(in.monoMs(s.first.Mono)),
			Message: fmt.Sprintf("%s (extended code %d) seen %d×; first by %s pid %d: %s",
				corruptionCodes[c&0xff], c, s.count, who, s.first.PID, s.first.Message),
			Evidence: map[string]any{"code": c, "count": s.count, "pid": s.first.PID, "who": who}})
	}
}

// checkLostWrites holds every commit a process saw acknowledged to the DB:
// its events, comments and run must all be present, for the right task.
// Unless the subject records its own commits, only the workers' were
// checked: not checked (a lost one is a violation all the same).
func checkLostWrites(ctx context.Context, v *Verdict, in Input, db *sql.DB, s snapshot, obs observed) error {
	comments := map[int64]string{}
	if db != nil { // nil: the file has no schema, so no row can be there
		var err error
		if comments, err = commentTasks(ctx, db); err != nil {
			return err
		}
	}
	events, kinds := map[int64]string{}, map[int64]string{}
	for task, es := range s.events {
		for _, e := range es {
			events[e.id], kinds[e.id] = task, e.kind
		}
	}
	reissued := reissuedRows(in.Ledger)
	var acked, lost, lostRows int
	var first *ledger.Entry
	var sample []string
	defer func() {
		switch {
		case !obs.commits:
			v.skip(NoLostWrites, fmt.Sprintf("%s records none of its own commits: only the workers' %d acknowledged commits were checked", obs.name, acked))
		case acked == 0:
			v.skip(NoLostWrites, "no acknowledged commit in the ledger to look for")
		default:
			v.check(NoLostWrites)
		}
	}()
	for i, e := range in.Ledger.Entries {
		// A commit that began before the swap went to the file moved aside;
		// after a power cut only durable commits are owed.
		if e.Kind != ledger.Commit || (in.SwapMono > 0 && min(e.Began, e.Mono) < in.SwapMono) || !in.survivesCut(e.Mono) {
			continue
		}
		acked++
		missing := reissued[i]
		for i, id := range e.Events {
			t, ok := events[id]
			reused := len(e.EventKinds) == len(e.Events) && ok && kinds[id] != e.EventKinds[i]
			if !ok || reused || (e.Task != "" && t != e.Task) {
				missing++
			}
		}
		for _, id := range e.Comments {
			if t, ok := comments[id]; !ok || t != e.Task {
				missing++
			}
		}
		if e.Run > 0 {
			if r, ok := s.runs[e.Run]; !ok || r.task != e.Task {
				missing++
			}
		}
		if missing == 0 {
			continue
		}
		lost++
		lostRows += missing
		if first == nil {
			first = &in.Ledger.Entries[i]
		}
		if len(sample) < 5 {
			sample = append(sample, fmt.Sprintf("%s by %s pid %d (task %s): %d of its rows missing", e.Op, e.Who, e.PID, e.Task, missing))
		}
	}
	if lost == 0 {
		return nil
	}
	v.Violations = append(v.Violations, Violation{Invariant: NoLostWrites, Task: first.Task, AtMs: round(in.monoMs(first.Mono)),
		Message:  fmt.Sprintf("%d of %d acknowledged commits lost %d rows; first: %s", lost, acked, lostRows, sample[0]),
		Evidence: map[string]any{"acknowledged": acked, "lost_commits": lost, "lost_rows": lostRows, "sample": sample}})
	return nil
}

func commentTasks(ctx context.Context, db *sql.DB) (map[int64]string, error) {
	out := map[int64]string{}
	rows, err := db.QueryContext(ctx, `SELECT id, task_id FROM task_comments`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var task string
		if err := rows.Scan(&id, &task); err != nil {
			return nil, err
		}
		out[id] = task
	}
	return out, rows.Err()
}

// checkObservations turns the harness's observations into violations: one
// per kind, with how often it was seen.
func checkObservations(v *Verdict, obs []Observation) {
	count := map[string]int{}
	first := map[string]Observation{}
	var kinds []string
	for _, o := range obs {
		if count[o.Kind] == 0 {
			first[o.Kind] = o
			kinds = append(kinds, o.Kind)
		}
		count[o.Kind]++
	}
	for _, k := range kinds {
		o := first[k]
		inv := o.Invariant
		if inv == "" {
			inv = Sidecars
		}
		msg := fmt.Sprintf("%s seen %d× while connections were open; first at +%.0fms: %s", k, count[k], o.AtMs, o.Detail)
		if count[k] == 1 {
			msg = fmt.Sprintf("%s at +%.0fms: %s", k, o.AtMs, o.Detail)
		}
		v.Violations = append(v.Violations, Violation{Invariant: inv, AtMs: o.AtMs, Message: msg,
			Evidence: map[string]any{"kind": k, "count": count[k], "first": o.Detail}})
	}
}

// reissuedRows finds acknowledged commits whose inserted rows a later
// acknowledged commit inserted again, under the same ids: SQLite hands an
// AUTOINCREMENT id out twice only if the first commit holding it vanished
// (its sqlite_sequence update with it). It returns, per ledger index, how
// many of that commit's rows were reissued. The later commit's rows may
// well be in the board, so a check of the ids alone would miss the loss.
func reissuedRows(h ledger.History) map[int]int {
	type key struct {
		table string
		id    int64
	}
	owner := map[key]int{}
	out := map[int]int{}
	for i, e := range h.Entries {
		if e.Kind != ledger.Commit {
			continue
		}
		claim := func(table string, ids []int64) {
			for _, id := range ids {
				k := key{table, id}
				if j, ok := owner[k]; ok && j != i {
					out[j]++
				}
				owner[k] = i
			}
		}
		claim("task_events", e.Events)
		claim("task_comments", e.Comments)
	}
	return out
}

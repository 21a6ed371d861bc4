package oracle

// The checks of the board a run left: integrity, the breaker after
// gave_up, the runs' bookkeeping, the ledger's starts against the board's
// runs, read from one snapshot of the board's rows.

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
)

func checkIntegrity(ctx context.Context, v *Verdict, db *sql.DB) bool {
	ok := true
	for _, pragma := range []string{"integrity_check", "quick_check"} {
		msgs, err := pragmaRows(ctx, db, pragma)
		if err != nil {
			if kanban.IsCorrupt(err) {
				// What the check listed before it hit damage it cannot walk
				// past is the better evidence.
				shown := strings.Join(msgs[:min(len(msgs), 10)], "; ") + "; then "
				v.Violations = append(v.Violations, Violation{Invariant: Integrity,
					Message:  fmt.Sprintf("PRAGMA %s failed: %s%v", pragma, strings.TrimPrefix(shown, "; then "), err),
					Evidence: map[string]any{"pragma": pragma, "messages": msgs[:min(len(msgs), 10)], "error": err.Error()}})
			} else {
				v.Unknowns = append(v.Unknowns, fmt.Sprintf("PRAGMA %s could not run: %v", pragma, err))
			}
			return false
		}
		if len(msgs) == 1 && msgs[0] == "ok" {
			// quick_check is integrity_check less the UNIQUE and index
			// content checks: after an ok integrity_check it can only say
			// ok again, at the cost of another pass over the whole file
			// (a third of check's time on a 1 GB board). It runs for its
			// own evidence when integrity_check found damage.
			break
		}
		ok = false
		shown := msgs[:min(len(msgs), 10)]
		v.Violations = append(v.Violations, Violation{Invariant: Integrity,
			Message:  fmt.Sprintf("PRAGMA %s: %s", pragma, strings.Join(shown, "; ")),
			Evidence: map[string]any{"pragma": pragma, "messages": shown, "total": len(msgs)}})
	}
	return ok
}

func pragmaRows(ctx context.Context, db *sql.DB, pragma string) ([]string, error) {
	rows, err := db.QueryContext(ctx, "PRAGMA "+pragma)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

type taskRow struct {
	id, status string
	lock       sql.NullString
	expires    sql.NullFloat64
	currentRun sql.NullInt64
	failures   int
	maxRetries sql.NullInt64
}

type runRow struct {
	id      int64
	task    string
	ended   bool
	outcome string
}

type eventRow struct {
	id      int64
	task    string
	run     sql.NullInt64
	kind    string
	payload string
	at      float64
	// runOutcome is the outcome of the run a spawned event names ("" for
	// other events, or a run the board lacks); only the streaming audit
	// reads it (stream.go).
	runOutcome string
}

type snapshot struct {
	tasks  []taskRow
	runs   map[int64]runRow
	events map[string][]eventRow // per task, by id
}

func readSnapshot(ctx context.Context, db *sql.DB) (snapshot, error) {
	s := snapshot{runs: map[int64]runRow{}, events: map[string][]eventRow{}}
	rows, err := db.QueryContext(ctx, `SELECT id, status, claim_lock, claim_expires, current_run_id, consecutive_failures, max_retries FROM tasks ORDER BY id`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var t taskRow
		if err := rows.Scan(&t.id, &t.status, &t.lock, &t.expires, &t.currentRun, &t.failures, &t.maxRetries); err != nil {
			rows.Close()
			return s, err
		}
		s.tasks = append(s.tasks, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s, err
	}
	rows, err = db.QueryContext(ctx, `SELECT id, task_id, ended_at IS NOT NULL, COALESCE(outcome,'') FROM task_runs`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var r runRow
		if err := rows.Scan(&r.id, &r.task, &r.ended, &r.outcome); err != nil {
			rows.Close()
			return s, err
		}
		s.runs[r.id] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s, err
	}
	// Only a gave_up event's payload is ever read (the breaker's count and
	// limit): the others' stay in the DB, and each task id and event kind
	// is held once, so a board of millions of events fits in memory.
	rows, err = db.QueryContext(ctx, `SELECT id, task_id, run_id, kind, CASE WHEN kind = ? THEN COALESCE(payload,'') ELSE '' END, created_at
		FROM task_events ORDER BY id`, kanban.EventGaveUp)
	if err != nil {
		return s, err
	}
	defer rows.Close()
	kinds := map[string]string{}
	var task, kind sql.RawBytes
	for rows.Next() {
		var e eventRow
		if err := rows.Scan(&e.id, &task, &e.run, &kind, &e.payload, &e.at); err != nil {
			return s, err
		}
		if e.kind = kinds[string(kind)]; e.kind == "" {
			e.kind = string(kind)
			kinds[e.kind] = e.kind
		}
		evs, seen := s.events[string(task)]
		if seen && len(evs) > 0 {
			e.task = evs[0].task
		} else {
			e.task = string(task)
		}
		s.events[e.task] = append(evs, e)
	}
	return s, rows.Err()
}

// checkBreaker: once a task's breaker tripped (gave_up), it must not be
// promoted or claimed again until something resets it (completed, unblocked).
func checkBreaker(v *Verdict, in Input, s snapshot) {
	tripped := false
	var found []Violation
	earliestTrip := -1.0 // ms after the start of the earliest task's first trip, the one tested longest; -1: none
	for _, task := range slices.Sorted(maps.Keys(s.events)) {
		es := s.events[task]
		tripped = tripped || hasGaveUp(es)
		if x := breakerReopened(in, task, es); x != nil {
			found = append(found, *x)
		}
		if i := slices.IndexFunc(es, func(e eventRow) bool { return e.kind == kanban.EventGaveUp }); i >= 0 && in.RunStartWall > 0 {
			if ms := in.relMs(es[i].at); earliestTrip < 0 || ms < earliestTrip {
				earliestTrip = ms
			}
		}
	}
	if tripped && len(found) == 0 && earliestTrip >= 0 {
		if why := tripTooLate(in, earliestTrip); why != "" {
			v.skip(BreakerHolds, why)
			return
		}
	}
	decideBreaker(v, tripped, found)
}

// tripTooLate says why a run whose earliest breaker trip came at tripMs
// did not test whether the breaker holds: no dispatcher had two ticks
// after it before the run stopped (a tick cut short between gave_up and
// recompute_ready never promotes). "" when it had.
func tripTooLate(in Input, tripMs float64) string {
	endMs := float64(in.Schedule.DurationMs + in.Schedule.QuietMs)
	if in.RunStopMono > 0 {
		endMs = in.monoMs(in.RunStopMono)
	}
	room := 2 * float64(tickOf(in.Schedule).Milliseconds())
	if endMs <= 0 || tripMs+room <= endMs { // no phases: the run's end is not known
		return ""
	}
	return fmt.Sprintf("the first breaker trip came at +%.0fms, less than two ticks (%.0fms) before the run stopped at +%.0fms: "+
		"no tick after it tested whether it holds", tripMs, room, endMs)
}

// decideBreaker records breaker-holds: checked when some task's breaker
// tripped, with the reopenings found (one per task, in task order).
func decideBreaker(v *Verdict, tripped bool, found []Violation) {
	if tripped {
		v.check(BreakerHolds)
	} else {
		v.skip(BreakerHolds, "no task's breaker tripped (no gave_up event on the board)")
	}
	v.Violations = append(v.Violations, found...)
}

func hasGaveUp(events []eventRow) bool {
	return slices.ContainsFunc(events, func(e eventRow) bool { return e.kind == kanban.EventGaveUp })
}

// breakerReopened is a task's first promotion or claim after its breaker
// tripped with no reset between, or nil: one violation per task is
// evidence enough. events are the task's, by id.
func breakerReopened(in Input, task string, events []eventRow) *Violation {
	var trip *eventRow
	for i, e := range events {
		switch e.kind {
		case kanban.EventGaveUp:
			if trip == nil {
				trip = &events[i]
			}
		case kanban.EventCompleted, kanban.EventUnblocked:
			trip = nil
		case kanban.EventPromoted, kanban.EventClaimed:
			if trip == nil {
				continue
			}
			quiet := in.QuietStartWall > 0 && e.at >= in.QuietStartWall
			var payload map[string]any
			json.Unmarshal([]byte(trip.payload), &payload)
			return &Violation{
				Invariant: BreakerHolds, Task: task, AtMs: round(in.relMs(e.at)),
				Message: fmt.Sprintf("%s at %s after gave_up at %s (failures=%v, limit=%v)%s",
					e.kind, in.when(e.at), in.when(trip.at), orUnknown(payload["failures"]), orUnknown(payload["effective_limit"]), quietNote(quiet)),
				Evidence: map[string]any{"gave_up_event": trip.id, "gave_up": payload, "reopened_by": e.kind,
					"reopened_event": e.id, "in_quiet_phase": quiet},
			}
		}
	}
	return nil
}

func quietNote(quiet bool) string {
	if quiet {
		return ", in the quiet phase"
	}
	return ""
}

func checkBookkeeping(v *Verdict, s snapshot) {
	v.check(RunBookkeeping) // every task row is held to it, runs or not
	open := map[string][]int64{}
	for _, r := range s.runs {
		if !r.ended {
			open[r.task] = append(open[r.task], r.id)
		}
	}
	for _, t := range s.tasks {
		runs := open[t.id]
		slices.Sort(runs)
		v.Violations = append(v.Violations, bookkeepingViolations(t, runs)...)
	}
}

// bookkeepingViolations holds one task row to run-bookkeeping: open are
// the ids of its runs not ended, ascending.
func bookkeepingViolations(t taskRow, open []int64) []Violation {
	var out []Violation
	add := func(msg string, ev map[string]any) {
		out = append(out, Violation{Invariant: RunBookkeeping, Task: t.id, Message: msg, Evidence: ev})
	}
	switch {
	case len(open) > 1:
		add(fmt.Sprintf("%d open runs %v", len(open), open), map[string]any{"open_runs": open})
	case !t.currentRun.Valid && len(open) == 1:
		add(fmt.Sprintf("current_run_id is NULL but run %d is open", open[0]), map[string]any{"open_runs": open, "status": t.status})
	case t.currentRun.Valid && !slices.Contains(open, t.currentRun.Int64):
		add(fmt.Sprintf("current_run_id=%d but that run is not open", t.currentRun.Int64),
			map[string]any{"current_run_id": t.currentRun.Int64, "open_runs": open, "status": t.status})
	}
	if t.status == kanban.StatusRunning && (!t.lock.Valid || !t.expires.Valid || !t.currentRun.Valid) {
		add(fmt.Sprintf("running without claim_lock/claim_expires/current_run_id (lock=%v expires=%v run=%v)",
			t.lock.Valid, t.expires.Valid, t.currentRun.Valid), nil)
	}
	return out
}

// checkLostRuns: every worker that started (ledger) was started for a run
// the DB must still hold.
func checkLostRuns(v *Verdict, in Input, s snapshot) {
	starts, named, owed := 0, 0, 0
	for _, e := range in.Ledger.Entries {
		if e.Kind != ledger.Start {
			continue
		}
		starts++
		if e.Run <= 0 {
			continue
		}
		named++
		if e.Mono < in.SwapMono || !in.survivesCut(e.Mono) {
			continue
		}
		owed++
		r, ok := s.runs[e.Run]
		if ok && r.task == e.Task {
			continue
		}
		msg := fmt.Sprintf("worker pid %d started for run %d, which the DB does not have", e.PID, e.Run)
		if ok {
			msg = fmt.Sprintf("worker pid %d started for run %d of %s, but the DB has that run for %s", e.PID, e.Run, e.Task, r.task)
		}
		v.Violations = append(v.Violations, Violation{Invariant: NoLostRuns, Task: e.Task, AtMs: round(in.monoMs(e.Mono)), Message: msg,
			Evidence: map[string]any{"pid": e.PID, "run": e.Run}})
	}
	switch {
	case owed > 0:
		v.check(NoLostRuns)
	case starts == 0:
		v.skip(NoLostRuns, "no worker started")
	case named == 0:
		v.skip(NoLostRuns, fmt.Sprintf("none of the %d worker starts names its run (HERMES_KANBAN_RUN_ID)", starts))
	default:
		v.skip(NoLostRuns, fmt.Sprintf("all %d worker starts with a run came before the board swap or were lost to the power cut", named))
	}
}

func round(x float64) float64 { return float64(int64(x*10)) / 10 }

// checkLedgerCoverage guards the spawn count itself: it is only as good as
// the workers' ledger. If the DB recorded many spawned workers of which few
// or none wrote their start line, HERMES_BIN is not a kanbanchaos worker
// (or cannot write the ledger), and "spawns ≤ limit" would pass vacuously.
func checkLedgerCoverage(v *Verdict, in Input, s snapshot) {
	started := map[int64]bool{}
	for _, e := range in.Ledger.Entries {
		if e.Kind == ledger.Start {
			started[e.Run] = true
		}
	}
	spawned, missing := 0, 0
	for _, es := range s.events {
		for _, e := range es {
			if e.kind != kanban.EventSpawned || !e.run.Valid {
				continue
			}
			spawned++
			if !started[e.run.Int64] {
				missing++
			}
		}
	}
	// A worker killed by the harness right after its spawn may not have
	// written its line yet; a majority missing is no such accident.
	if spawned >= 3 && missing*2 > spawned {
		v.Unknowns = append(v.Unknowns, fmt.Sprintf("%d of %d spawned workers never wrote their ledger start line: "+
			"is HERMES_BIN a kanbanchaos worker, with %s set? spawn counts cannot be trusted", missing, spawned, "KANBANCHAOS_LEDGER"))
	}
}

// orUnknown is a payload field for a message: "?" when the board's event
// did not say, never "<nil>".
func orUnknown(v any) any {
	if v == nil {
		return "?"
	}
	return v
}

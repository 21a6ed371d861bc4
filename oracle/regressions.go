package oracle

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Invariants of known Hermes regressions that need a run's schedule or
// ledger.
const (
	// BoardRouting: a card a worker creates with an explicit board= never
	// lands in another board's file — it reaches that board or the create
	// fails loudly (#30678, spec I11).
	BoardRouting = "board-routing"
	// OneWriterPerTick: while one dispatcher's tick is writing the board, no
	// other dispatcher starts a tick on it (#35240, spec I14). Opt-in
	// (Schedule.Expect): several lockless gateways are Hermes' default, and
	// the corruption scenarios run them on purpose.
	OneWriterPerTick = "one-writer-per-tick"
	// AssigneeSurfaced: a task assigned to a profile that does not exist
	// is not left silently in ready forever: by the end of the run it is
	// blocked, or an event on it says why it is not spawned (spec §8's
	// last row: Hermes skips it on every tick and tells nobody).
	AssigneeSurfaced = "assignee-surfaced"
	// NoFalseAlarm: no process is told an intact board is corrupt. A
	// release's own checks (the post-commit file-length check's
	// "torn-extend detected", the corrupt-board guard) raise after or
	// instead of a write; when the board is intact at the end —
	// integrity_check ok, every acknowledged commit present, no SQLite
	// corruption error — the alarm was false, and the call it aborted was
	// told a durable write failed (a crash booked but never counted, a
	// comment the agent believes lost). Opt-in (Schedule.Expect): the
	// scenario that aims at it expects it; elsewhere an alarm's
	// consequences are judged by the other invariants.
	NoFalseAlarm = "no-false-alarm"
)

// optIn lists the invariants a schedule may ask for in Expect.
var optIn = []string{OneWriterPerTick, NoFalseAlarm}

// checkRegressions runs the regression invariants that need the board.
func checkRegressions(ctx context.Context, v *Verdict, in Input, db *sql.DB, s snapshot) error {
	if err := checkRunHistory(ctx, v, in, db, s); err != nil {
		return err
	}
	if err := checkRouting(ctx, v, in, db); err != nil {
		return err
	}
	checkAssignees(v, in, s)
	return nil
}

// checkAssignees holds every seeded task whose assignee has no profile to
// being surfaced: not in ready (or todo) at the end, or an event on it
// beyond its creation that a user could see.
func checkAssignees(v *Verdict, in Input, s snapshot) {
	unregistered := map[string]bool{}
	for _, p := range in.Schedule.Profiles {
		if p.Unregistered {
			unregistered[p.Name] = true
		}
	}
	status := map[string]string{}
	for _, t := range s.tasks {
		status[t.id] = t.status
	}
	checked := false
	for _, t := range in.Schedule.Tasks {
		if !unregistered[t.Assignee] {
			continue
		}
		checked = true
		said := slices.ContainsFunc(s.events[t.ID], func(e eventRow) bool { return e.kind != "created" })
		if st := status[t.ID]; (st == "ready" || st == "todo") && !said {
			v.Violations = append(v.Violations, Violation{Invariant: AssigneeSurfaced, Task: t.ID,
				Message: fmt.Sprintf("assigned to %q, which is not a profile, the task is still %s with no event but its creation: "+
					"nothing tells anyone it will never run", t.Assignee, st),
				Evidence: map[string]any{"assignee": t.Assignee, "status": st}})
		}
	}
	if checked {
		v.check(AssigneeSurfaced)
	} else {
		v.skip(AssigneeSurfaced, "no task is assigned to a profile that does not exist")
	}
}

// checkExpected decides the opt-in invariants: checked when the schedule
// expects them (Schedule.Expect), else not checked.
// NoFalseAlarm, once expected, is decided after the board's audit
// (checkFalseAlarms).
func checkExpected(v *Verdict, in Input, obs observed) {
	for _, name := range in.Schedule.Expect {
		if !slices.Contains(optIn, name) {
			v.Unknowns = append(v.Unknowns, fmt.Sprintf("the schedule expects invariant %q, which is not one of %v", name, optIn))
		}
	}
	if slices.Contains(in.Schedule.Expect, OneWriterPerTick) {
		checkOneWriter(v, in, obs)
	} else {
		v.skip(OneWriterPerTick, "opt-in, and this schedule does not expect it (several lockless gateways are Hermes' default)")
	}
	if !slices.Contains(in.Schedule.Expect, NoFalseAlarm) {
		v.skip(NoFalseAlarm, "opt-in, and this schedule does not expect it (torn-extend-checkpoint does)")
	}
}

// checkFalseAlarms decides NoFalseAlarm for a schedule that expects it, once
// the board passed integrity_check and its acknowledged writes were looked
// for: an alarm on a board that is intact is false; on a damaged board it
// cannot be told false (the damage invariants already fail the run).
func checkFalseAlarms(v *Verdict, in Input, obs observed) {
	if !slices.Contains(in.Schedule.Expect, NoFalseAlarm) {
		return
	}
	damaged := slices.DeleteFunc(slices.Clone(v.Failed()), func(inv string) bool {
		return !slices.Contains(append(Damage(), NoLostRuns), inv)
	})
	if len(damaged) > 0 {
		v.skip(NoFalseAlarm, fmt.Sprintf("the board was damaged (%s): an alarm cannot be told false", strings.Join(damaged, ", ")))
		return
	}
	// The workers are ours and record theirs; a subject that does not
	// record its own could have raised one unseen: no alarm is then no
	// evidence, while an alarm seen is one all the same.
	alarms := in.Ledger.Alarms()
	if len(alarms) == 0 && !obs.alarms {
		v.skip(NoFalseAlarm, fmt.Sprintf("%s records none of its own corruption alarms: only the workers' were looked at, and there were none", obs.name))
		return
	}
	v.check(NoFalseAlarm)
	if len(alarms) == 0 {
		return
	}
	byWho := map[string]int{}
	for _, a := range alarms {
		byWho[whoOf(a)]++
	}
	var counts []string
	for _, who := range slices.Sorted(maps.Keys(byWho)) {
		counts = append(counts, fmt.Sprintf("%d by %s", byWho[who], who))
	}
	first := alarms[0]
	v.Violations = append(v.Violations, Violation{Invariant: NoFalseAlarm, Task: first.Task, AtMs: round(in.monoMs(first.Mono)),
		Message: fmt.Sprintf("%d corruption alarm(s) (%s) on a board that is intact — integrity_check ok, every acknowledged "+
			"commit present, no SQLite corruption error; the first, by %s pid %d in %s: %s",
			len(alarms), strings.Join(counts, ", "), whoOf(first), first.PID, first.Op, first.Message),
		Evidence: map[string]any{"alarms": len(alarms), "by": byWho, "op": first.Op, "pid": first.PID}})
}

// whoOf names an entry's writer: a dispatcher ("d1") or "worker".
func whoOf(e ledger.Entry) string {
	if e.Who == "" {
		return "worker"
	}
	return e.Who
}

// ownBoard is the slug of the board a run dispatches: the harness runs the
// default board.
const ownBoard = "default"

// checkRouting: every card on this board that a create-on-board worker made
// for another board is misrouted. Workers record themselves as created_by,
// so the cards are told apart from the seeded ones without the ledger.
func checkRouting(ctx context.Context, v *Verdict, in Input, db *sql.DB) error {
	target := routingTargets(in.Schedule)
	if len(target) == 0 {
		return nil // not checked (Check said why)
	}
	v.check(BoardRouting)
	seeded := map[string]bool{}
	for _, t := range in.Schedule.Tasks {
		seeded[t.ID] = true
	}
	rows, err := db.QueryContext(ctx, `SELECT id, COALESCE(created_by,''), created_at FROM tasks ORDER BY created_at, id`)
	if err != nil {
		return err
	}
	defer rows.Close()
	type card struct {
		id, by string
		at     float64
	}
	var misrouted []card
	for rows.Next() {
		var c card
		if err := rows.Scan(&c.id, &c.by, &c.at); err != nil {
			return err
		}
		if _, ok := target[c.by]; ok && !seeded[c.id] {
			misrouted = append(misrouted, c)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if len(misrouted) == 0 {
		return nil
	}
	first := misrouted[0]
	var ids []string
	for _, c := range misrouted[:min(len(misrouted), 20)] {
		ids = append(ids, c.id)
	}
	v.Violations = append(v.Violations, Violation{Invariant: BoardRouting, Task: first.id, AtMs: round(in.relMs(first.at)),
		Message: fmt.Sprintf("%d card(s) that %s's worker created with board=%s landed in this board's file (%s) instead; first at %s",
			len(misrouted), first.by, target[first.by], ownBoard, in.when(first.at)),
		Evidence: map[string]any{"cards": ids, "total": len(misrouted), "wanted_board": target[first.by], "profile": first.by}})
	return nil
}

// routingTargets maps each profile whose worker creates cards on another
// board to that board.
func routingTargets(s schedule.Schedule) map[string]string {
	target := map[string]string{}
	for _, p := range s.Profiles {
		if p.Worker.Mode == schedule.ModeCreateOnBoard && p.Worker.Board != ownBoard {
			target[p.Name] = p.Worker.Board
		}
	}
	return target
}

// tickStartOp is the commit every dispatcher tick begins with: the
// notifier's cursor, written right after the tick connects (and, with the
// dispatch lock, right after it took the lock).
const tickStartOp = "notify_cursor"

// checkOneWriter holds the dispatchers to one writer per board per tick,
// from the ledger alone. With tick entries, each tick's write span is
// known (ticks.go); without them — the in-process reference dispatcher
// writes none — each tick starts with a notify_cursor commit (checkTickStarts).
// With neither, or without the dispatchers' own commits, it is not checked.
func checkOneWriter(v *Verdict, in Input, obs observed) {
	switch {
	case in.Schedule.Dispatchers == 1:
		v.skip(OneWriterPerTick, "only one dispatcher ran")
	case !obs.commits:
		v.skip(OneWriterPerTick, fmt.Sprintf("%s records none of its own commits: there are no dispatcher writes to tell apart", obs.name))
	case len(obs.ticks) > 0:
		v.check(OneWriterPerTick)
		checkTickSpans(v, in, obs)
	case in.Ticks == 0:
		v.skip(OneWriterPerTick, fmt.Sprintf("%s records no ticks: nothing tells one dispatcher tick from the next", obs.name))
	case !slices.ContainsFunc(in.Ledger.Entries, func(e ledger.Entry) bool { return e.Kind == ledger.Commit && e.Op == tickStartOp }):
		v.skip(OneWriterPerTick, "no dispatcher commit marks a tick start (notify_cursor)")
	default:
		v.check(OneWriterPerTick)
		checkTickStarts(v, in)
	}
}

// checkTickStarts proves overlapping ticks from the ledger alone: each
// dispatcher's commits are logged after they return, and each of its ticks
// starts with a notify_cursor commit. If dispatcher Y's tick-start commit
// falls after X's tick start and before a later commit of that same X tick,
// both were writing the board at once. Under a working dispatch lock this
// cannot happen: X commits and logs everything before it unlocks, and Y logs
// its tick start only after it locked.
func checkTickStarts(v *Verdict, in Input) {
	var commits []ledger.Entry
	for _, e := range in.Ledger.Entries {
		if e.Kind == ledger.Commit && e.Who != "" && e.Who != "worker" {
			commits = append(commits, e)
		}
	}
	sort.SliceStable(commits, func(i, j int) bool { return commits[i].Mono < commits[j].Mono })
	tickStart := map[string]int64{} // the dispatcher's current tick start
	overlaps := 0
	var first map[string]any
	var firstAt float64
	for _, e := range commits {
		if e.Op == tickStartOp {
			tickStart[e.Who] = e.Mono
			continue
		}
		mine := tickStart[e.Who]
		if mine == 0 {
			continue // before its first tick (the schema init)
		}
		for _, who := range slices.Sorted(maps.Keys(tickStart)) {
			theirs := tickStart[who]
			if who == e.Who || theirs <= mine || theirs >= e.Mono {
				continue
			}
			overlaps++
			if first == nil {
				firstAt = in.monoMs(theirs)
				first = map[string]any{"writer": e.Who, "writer_tick_start_ms": round(in.monoMs(mine)), "writer_commit": e.Op,
					"writer_commit_ms": round(in.monoMs(e.Mono)), "intruder": who, "intruder_tick_start_ms": round(firstAt)}
			}
		}
	}
	if overlaps == 0 {
		return
	}
	v.Violations = append(v.Violations, Violation{Invariant: OneWriterPerTick, AtMs: round(firstAt),
		Message: fmt.Sprintf("%d commit(s) of a dispatcher tick came after another dispatcher had started its tick; first: %s started a tick at +%.0fms "+
			"while %s's tick (from +%.0fms) was still writing (%s at +%.0fms)", overlaps, first["intruder"], firstAt, first["writer"],
			first["writer_tick_start_ms"], first["writer_commit"], first["writer_commit_ms"]),
		Evidence: first})
}

package oracle

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// The workers' own exit codes (ledger exit entries) hold the dispatcher to
// rate-limit and protocol-budget whatever it booked the exits as — which is
// what decides these invariants for a dispatcher that is not the workers'
// parent: a one-shot `dispatch_once` books every dead worker "crashed" with
// "pid N not alive" (spec §9), so exit 75 counts toward the breaker and exit
// 0 is never a protocol violation on the board.

// countedOutcomes are run outcomes that count toward the breaker.
var countedOutcomes = []string{kanban.OutcomeCrashed, kanban.OutcomeGaveUp, kanban.OutcomeProtocol}

// runEndKinds are the events that end a run: after one, the run is in the
// window the next gave_up judges.
var runEndKinds = []string{kanban.EventCrashed, kanban.EventProtocolViolation, kanban.EventRateLimited, kanban.EventTimedOut,
	kanban.EventSpawnFailed, kanban.EventReclaimed, kanban.EventGaveUp}

// checkRateLimitedExits holds every worker that exited 75 (ledger) to the
// rate limit: its run is not booked as a failure (crashed, gave_up,
// protocol_violation), no gave_up counts it in its window, and its task's
// next worker start comes at least the cooldown after the exit. seen says
// whether any worker exited 75.
func checkRateLimitedExits(v *Verdict, in Input, s snapshot, runs map[int64]histRun, cooldown float64) (seen bool) {
	starts := in.Ledger.Starts()
	limited := map[int64]ledger.Entry{} // run → its worker's exit 75
	booked, late := map[string]bool{}, map[string]bool{}
	for _, e := range in.Ledger.Exits() {
		if code, ok := e.ExitStatus(); !ok || code != schedule.RateLimitedExitCode {
			continue
		}
		seen = true
		// A run from before a swap lives in the file moved aside.
		if e.Run > 0 && e.Mono >= in.SwapMono {
			limited[e.Run] = e
			if r, ok := runs[e.Run]; ok && r.task == e.Task && r.isEnded && slices.Contains(countedOutcomes, r.outcome) && !booked[e.Task] {
				booked[e.Task] = true
				said := ""
				if r.err != "" {
					said = fmt.Sprintf(" (%q)", r.err)
				}
				v.Violations = append(v.Violations, Violation{Invariant: RateLimit, Task: e.Task, AtMs: round(in.relMs(r.ended)),
					Message: fmt.Sprintf("worker pid %d of run %d exited 75 (rate limited, ledger), but the run is booked %s%s: "+
						"a rate-limited exit counted toward the breaker", e.PID, e.Run, r.outcome, said),
					Evidence: map[string]any{"pid": e.PID, "run": e.Run, "exit": 75, "outcome": r.outcome, "error": r.err}})
			}
		}
		if late[e.Task] {
			continue
		}
		for _, n := range starts[e.Task] {
			if n.Mono <= e.Mono {
				continue
			}
			if gap := float64(n.Mono-e.Mono) / 1e9; gap < cooldown-max(in.ClockResolution, 1e-3) {
				late[e.Task] = true
				v.Violations = append(v.Violations, Violation{Invariant: RateLimit, Task: e.Task, AtMs: round(in.monoMs(n.Mono)),
					Message: fmt.Sprintf("worker pid %d started %.0fms after pid %d of the same task exited 75 (rate limited, ledger); the cooldown is %s%s",
						n.PID, gap*1000, e.PID, time.Duration(cooldown*float64(time.Second)), resolutionNote(in.ClockResolution)),
					Evidence: map[string]any{"exited_pid": e.PID, "exited_run": e.Run, "next_pid": n.PID, "next_run": n.Run,
						"gap_ms": round(gap * 1000), "cooldown_s": cooldown}})
			}
			break // only the next start
		}
	}
	// A gave_up counts the runs that ended since the last reset: an exit-75
	// run among them that the board did not book rate_limited was counted.
	for _, t := range s.tasks {
		if booked[t.id] {
			continue
		}
		var window []int64
		for _, e := range s.events[t.id] {
			switch {
			case slices.Contains(resetKinds, e.kind):
				window = window[:0]
				continue
			case e.run.Valid && slices.Contains(runEndKinds, e.kind):
				window = append(window, e.run.Int64)
			}
			if e.kind != kanban.EventGaveUp {
				continue
			}
			i := slices.IndexFunc(window, func(id int64) bool {
				_, ok := limited[id]
				return ok && runs[id].outcome != kanban.OutcomeRateLimited
			})
			if i < 0 {
				continue
			}
			x := limited[window[i]]
			v.Violations = append(v.Violations, Violation{Invariant: RateLimit, Task: t.id, AtMs: round(in.relMs(e.at)),
				Message: fmt.Sprintf("gave_up at %s counted run %d, whose worker pid %d exited 75 (rate limited, ledger; booked %q)",
					in.when(e.at), x.Run, x.PID, runs[x.Run].outcome),
				Evidence: map[string]any{"gave_up_event": e.id, "gave_up": e.payload, "run": x.Run, "pid": x.PID}})
			break
		}
	}
	return seen
}

// checkQuitExits counts, per task between counter resets, the workers that
// exited 0 without completing (ledger): no completing commit of theirs in
// the ledger, and their run not completed on the board. More than the
// task's effective limit breaks the protocol budget, whatever the board
// booked them as. seen says whether any worker quit so.
func checkQuitExits(v *Verdict, in Input, s snapshot, limits limitFunc) (seen bool) {
	type worker struct {
		pid  int
		task string
	}
	done := map[worker]bool{}
	for _, e := range in.Ledger.Entries {
		if e.Kind == ledger.Commit && e.Who == "worker" && e.Op == kanban.EventCompleted {
			done[worker{e.PID, e.Task}] = true
		}
	}
	quits := map[string][]ledger.Entry{}
	for _, e := range in.Ledger.Exits() {
		if code, ok := e.ExitStatus(); !ok || code != 0 || done[worker{e.PID, e.Task}] {
			continue
		}
		if r, ok := s.runs[e.Run]; e.Run > 0 && ok && r.task == e.Task && r.outcome == kanban.OutcomeCompleted {
			continue
		}
		quits[e.Task] = append(quits[e.Task], e)
	}
	rows := map[string]taskRow{}
	for _, t := range s.tasks {
		rows[t.id] = t
	}
	for _, task := range slices.Sorted(maps.Keys(quits)) {
		qs := quits[task]
		slices.SortStableFunc(qs, func(a, b ledger.Entry) int { return cmpInt(a.Mono, b.Mono) })
		row, ok := rows[task]
		if !ok {
			row = taskRow{id: task}
		}
		limit, source := limits(row)
		var resets []float64
		for _, e := range s.events[task] {
			if slices.Contains(resetKinds, e.kind) {
				resets = append(resets, e.at)
			}
		}
		windowOf := func(q ledger.Entry) int {
			return len(slices.DeleteFunc(slices.Clone(resets), func(at float64) bool { return at > q.Wall }))
		}
		n, cur := 0, -1
		var window []ledger.Entry
		for _, q := range qs {
			if w := windowOf(q); w != cur {
				n, cur, window = 0, w, nil
			}
			n++
			window = append(window, q)
			if n <= limit {
				continue
			}
			bookings := map[string]int{}
			var pids []int
			for _, x := range window {
				outcome := "not on the board"
				if r, ok := s.runs[x.Run]; ok && r.task == task {
					outcome = r.outcome
					if !r.ended {
						outcome = "still open"
					}
				}
				bookings[outcome]++
				pids = append(pids, x.PID)
			}
			v.Violations = append(v.Violations, Violation{Invariant: ProtocolBudget, Task: task, AtMs: round(in.monoMs(q.Mono)),
				Message: fmt.Sprintf("%d workers exited 0 without completing (ledger) between counter resets > budget %d (%s); #%d (pid %d) at +%.0fms; "+
					"the board booked them %s", n, limit, source, n, q.PID, in.monoMs(q.Mono), bookingText(bookings)),
				Evidence: map[string]any{"limit": limit, "limit_source": source, "pids": pids, "booked": bookings}})
			break
		}
	}
	return len(quits) > 0
}

// bookingText is "crashed ×3, protocol_violation ×1".
func bookingText(b map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(b)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, b[k]))
	}
	return strings.Join(parts, ", ")
}

// resolutionNote says how much slack a coarse subject clock was given.
func resolutionNote(res float64) string {
	if res <= 0 {
		return ""
	}
	return fmt.Sprintf(" (less the %gs resolution of the subject's clock)", res)
}

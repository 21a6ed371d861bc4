package oracle

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// progressLimit is the longest a dispatcher may go without progress:
// max(2 s, 100 ticks). Progress is a tick finished or, inside a long tick,
// a step of its work: a worker started by a dispatcher the harness runs
// itself (subject/observe.go); for a subject, a COMMIT the dispatcher's
// ledger shows acknowledged (each claim, each _set_worker_pid of a spawn).
// A dispatcher stuck on a lock does neither; one that spawns thirty ready
// cards in one tick, at hundreds of ms a Python fork on a busy machine,
// does both (0.19.0's first ticks read as stalls of 2.5–6 s at load 20–38
// when only tick ends counted).
func progressLimit(s schedule.Schedule) time.Duration {
	return max(2*time.Second, 100*tickOf(s))
}

// checkProgress decides dispatcher-progress. The harness reports stalls of
// the dispatchers it runs itself as observations (checkObservations); a
// subject that writes tick entries is held to them here: no dispatcher goes
// longer than progressLimit between its start and its first progress, or
// between two (tick ends and its acknowledged commits). Its start is the
// run's, or, when it wrote a settings entry, that entry: an interpreter
// loading a release (seconds of Python imports on a busy machine) is not a
// dispatcher stuck on a lock. Its last stretch counts up to the moment the harness told it to stop
// (RunStopMono): a dispatcher stuck on a lock from mid-run to the end
// stalled as surely as one stuck between two ticks (the reference
// dispatcher's observer counts it the same way). Without observed ticks, or
// with none finished, it is not checked.
func checkProgress(v *Verdict, in Input, obs observed) {
	switch {
	case !obs.ticked:
		v.skip(DispatcherProgress, fmt.Sprintf("%s records no ticks", obs.name))
		return
	case obs.nTicks == 0:
		v.skip(DispatcherProgress, "no dispatcher tick finished")
		return
	}
	v.check(DispatcherProgress)
	limit := progressLimit(in.Schedule)
	started := map[string]int64{} // a dispatcher's first settings entry
	for _, e := range in.Ledger.Entries {
		if _, ok := started[e.Who]; e.Kind == ledger.Settings && !ok {
			started[e.Who] = e.Mono
		}
	}
	progress := map[string][]int64{}
	for who, ts := range obs.ticks {
		for _, t := range ts {
			progress[who] = append(progress[who], t.Mono)
		}
	}
	for _, e := range in.Ledger.Entries {
		if _, ticks := obs.ticks[e.Who]; ticks && isDispatcherCommit(e) {
			progress[e.Who] = append(progress[e.Who], e.Mono)
		}
	}
	for _, who := range slices.Sorted(maps.Keys(progress)) {
		ts := progress[who]
		slices.Sort(ts)
		prev := in.RunStartMono
		if at, ok := started[who]; ok && prev > 0 && at > prev {
			prev = at
		}
		var gap, from int64
		if in.RunStopMono > 0 {
			ts = append(ts, in.RunStopMono) // the last stretch, up to the stop
		}
		for _, at := range ts {
			if prev > 0 && at-prev > gap {
				gap, from = at-prev, prev
			}
			prev = at
		}
		if time.Duration(gap) <= limit {
			continue
		}
		at := in.monoMs(from)
		v.Violations = append(v.Violations, Violation{Invariant: DispatcherProgress, AtMs: round(at),
			Message: fmt.Sprintf("dispatcher %s finished no tick and had no COMMIT acknowledged for %.1fs (from +%.0fms, "+
				"ledger tick and commit entries); limit %v", who, time.Duration(gap).Seconds(), at, limit),
			Evidence: map[string]any{"dispatcher": who, "gap_ms": round(float64(gap) / 1e6), "from_ms": round(at),
				"limit_ms": limit.Milliseconds(), "ticks": len(obs.ticks[who])}})
	}
}

// tickSpan is what one dispatcher tick wrote: from its first commit's
// begin to its last commit's acknowledgement.
type tickSpan struct {
	who             string
	from, to        int64
	commits         int
	firstOp, lastOp string
}

// checkTickSpans holds one writer per tick with tick entries: a
// dispatcher's commits acknowledged between its tick's Began and Mono
// belong to that tick, and the tick wrote the board from its first
// commit's begin to its last commit's acknowledgement. Two dispatchers'
// write spans that overlap had both writing the board at once. A tick with
// no commits (skipped_locked) wrote nothing and cannot overlap. Under a
// working dispatch lock no two spans overlap: the holder commits and logs
// everything before it unlocks, and the next one begins its first commit
// only after it locked.
func checkTickSpans(v *Verdict, in Input, obs observed) {
	commits := map[string][]ledger.Entry{}
	for _, e := range in.Ledger.Entries {
		if isDispatcherCommit(e) {
			commits[e.Who] = append(commits[e.Who], e)
		}
	}
	var spans []tickSpan
	for _, who := range slices.Sorted(maps.Keys(obs.ticks)) {
		cs := commits[who]
		slices.SortStableFunc(cs, func(a, b ledger.Entry) int { return cmpInt(a.Mono, b.Mono) })
		j := 0
		for _, t := range obs.ticks[who] {
			sp := tickSpan{who: who}
			for ; j < len(cs) && cs[j].Mono <= t.Mono; j++ {
				c := cs[j]
				if c.Mono < t.Began {
					continue // between ticks (the schema init before the first)
				}
				began := c.Began
				if began <= 0 || began > c.Mono {
					began = c.Mono
				}
				if sp.commits == 0 || began < sp.from {
					sp.from, sp.firstOp = began, c.Op
				}
				if c.Mono >= sp.to {
					sp.to, sp.lastOp = c.Mono, c.Op
				}
				sp.commits++
			}
			if sp.commits > 0 {
				spans = append(spans, sp)
			}
		}
	}
	slices.SortStableFunc(spans, func(a, b tickSpan) int { return cmpInt(a.from, b.from) })
	overlaps := 0
	var first map[string]any
	var firstAt float64
	for i, a := range spans {
		for _, b := range spans[i+1:] {
			if b.from >= a.to {
				break
			}
			if b.who == a.who {
				continue
			}
			overlaps++
			if first == nil {
				firstAt = in.monoMs(b.from)
				first = map[string]any{"writer": a.who, "writer_from_ms": round(in.monoMs(a.from)), "writer_to_ms": round(in.monoMs(a.to)),
					"writer_commits": a.commits, "writer_last_commit": a.lastOp, "intruder": b.who, "intruder_from_ms": round(firstAt),
					"intruder_first_commit": b.firstOp}
			}
		}
	}
	if overlaps == 0 {
		return
	}
	v.Violations = append(v.Violations, Violation{Invariant: OneWriterPerTick, AtMs: round(firstAt),
		Message: fmt.Sprintf("%d pair(s) of dispatcher ticks wrote the board at once (ledger tick entries); first: %s began writing (%s) at +%.0fms "+
			"while %s's tick was writing from +%.0fms to +%.0fms (%d commits, last %s)", overlaps, first["intruder"], first["intruder_first_commit"],
			firstAt, first["writer"], first["writer_from_ms"], first["writer_to_ms"], first["writer_commits"], first["writer_last_commit"]),
		Evidence: first})
}

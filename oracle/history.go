package oracle

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Invariants decidable from a board's own history, with no ledger: what
// `kanbanchaos check` holds a real Hermes kanban.db to. RateLimit and
// ProtocolBudget are part of every run's check too; SpawnLimit and
// UnrecordedWorkers only of an audit (a run counts spawns from the ledger,
// and some scenarios lose pids on purpose).
const (
	// SpawnLimit: spawned runs per task between counter resets (completed,
	// unblocked, a new assignee) ≤ the task's effective failure limit;
	// rate-limited runs never count (#30896, #30417, #35202, #63070).
	SpawnLimit = "spawn-limit"
	// RateLimit: exit 75 never counts toward the breaker, and the task is
	// not spawned again before the rate-limit cooldown (spec I7, S8).
	RateLimit = "rate-limit"
	// ProtocolBudget: exits 0 without completing (protocol_violation) per
	// task between resets ≤ its effective limit; the loop of #28712 is
	// what keeps going past it.
	ProtocolBudget = "protocol-budget"
	// UnrecordedWorkers: no run is reclaimed, superseded or timed out
	// without its worker ever recorded (no pid, no spawned event, no spawn
	// failure): such a claim escaped the crash sweep (#35202).
	UnrecordedWorkers = "unrecorded-workers"
)

// DefaultCooldown is Hermes' DEFAULT_RATE_LIMIT_COOLDOWN_SECONDS.
const DefaultCooldown = 300 * time.Second

// resetKinds are the events that reset a task's failure counter.
var resetKinds = []string{kanban.EventCompleted, kanban.EventUnblocked, "assigned", "reassigned"}

// histRun is a task_runs row with its times.
type histRun struct {
	id, pid         int64
	task, outcome   string
	err             string // task_runs.error: what the dispatcher said of the run's end
	started, ended  float64
	isEnded, hasPID bool
}

func readRuns(ctx context.Context, db *sql.DB) (map[int64]histRun, error) {
	rows, err := db.QueryContext(ctx, `SELECT id, task_id, COALESCE(outcome,''), started_at, COALESCE(ended_at,0), ended_at IS NOT NULL,
		COALESCE(worker_pid,0), worker_pid IS NOT NULL, COALESCE(error,'') FROM task_runs`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[int64]histRun{}
	for rows.Next() {
		var r histRun
		if err := rows.Scan(&r.id, &r.task, &r.outcome, &r.started, &r.ended, &r.isEnded, &r.pid, &r.hasPID, &r.err); err != nil {
			return nil, err
		}
		out[r.id] = r
	}
	return out, rows.Err()
}

// limitFunc is a task's effective failure limit and where it comes from.
type limitFunc func(task taskRow) (int, string)

// scheduleLimits is the limit the schedule asked for (what a run's spawns
// check uses), falling back to the board's own max_retries.
func scheduleLimits(s schedule.Schedule) limitFunc {
	tasks := map[string]schedule.Task{}
	for _, t := range s.Tasks {
		tasks[t.ID] = t
	}
	return func(t taskRow) (int, string) {
		if st, ok := tasks[t.id]; ok {
			return s.EffectiveLimit(st)
		}
		return configuredLimits(s.FailureLimit)(t)
	}
}

// configuredLimits is Hermes' rule: max_retries, else the configured
// failure_limit, else 2.
func configuredLimits(configured int) limitFunc {
	return func(t taskRow) (int, string) {
		switch {
		case t.maxRetries.Valid && t.maxRetries.Int64 > 0:
			return int(t.maxRetries.Int64), "task max_retries"
		case configured > 0:
			return configured, "configured failure_limit"
		}
		return schedule.DefaultFailureLimit, "default"
	}
}

// checkRateLimit: no gave_up is triggered by a rate-limited run, and no run
// of a task starts sooner than cooldown after its rate-limited run ended —
// as the board books it, and as the workers' own exit codes in the ledger
// say (exits.go), whatever the board booked them as.
func checkRateLimit(v *Verdict, in Input, s snapshot, runs map[int64]histRun, cooldown float64) {
	byTask := map[string][]histRun{}
	for _, id := range slices.Sorted(maps.Keys(runs)) {
		r := runs[id]
		byTask[r.task] = append(byTask[r.task], r)
	}
	seen := false
	var late []earlyRun
	for _, rs := range byTask {
		seen = seen || hasRateLimitedRun(rs)
		if x, ok := earlyRespawn(in, rs, cooldown); ok {
			late = append(late, x)
		}
	}
	for _, t := range s.tasks {
		gaveUps := rateLimitedGaveUps(in, t.id, s.events[t.id])
		seen = seen || len(gaveUps) > 0
		v.Violations = append(v.Violations, gaveUps...)
	}
	v.Violations = append(v.Violations, inRunOrder(late)...)
	if pidsLost(in.Schedule) {
		// The board's own rate_limited bookings were judged above; the
		// workers' exit codes cannot be held against a dispatcher that was
		// never given their pids.
		if seen {
			v.check(RateLimit)
			return
		}
		v.skip(RateLimit, "the spawn returned no worker pid (fault lose_pid, #35202): no dispatcher can read a worker's exit code, "+
			"so an exit 75 cannot be told from a crash")
		return
	}
	if checkRateLimitedExits(v, in, s, runs, cooldown) {
		seen = true
	}
	if seen {
		v.check(RateLimit)
		return
	}
	if len(in.Ledger.Entries) > 0 {
		v.skip(RateLimit, "no worker exited 75 (rate limited), and no run is booked rate_limited")
	} else {
		v.skip(RateLimit, noRateLimitedRun)
	}
}

// noRateLimitedRun is why rate-limit is not checked on a board without a
// ledger (an audit) that books no run rate_limited.
const noRateLimitedRun = "no run on the board is booked rate_limited (exit 75)"

// hasRateLimitedRun: some run of runs ended booked rate_limited.
func hasRateLimitedRun(runs []histRun) bool {
	return slices.ContainsFunc(runs, func(r histRun) bool { return r.outcome == kanban.OutcomeRateLimited && r.isEnded })
}

// rateLimitedGaveUps are a task's gave_up events that a rate-limited run
// triggered, in event order.
func rateLimitedGaveUps(in Input, task string, events []eventRow) []Violation {
	var out []Violation
	for _, e := range events {
		if e.kind != kanban.EventGaveUp || payloadField(e.payload, "trigger_outcome") != kanban.OutcomeRateLimited {
			continue
		}
		out = append(out, Violation{Invariant: RateLimit, Task: task, AtMs: round(in.relMs(e.at)),
			Message:  fmt.Sprintf("a rate-limited exit (75) tripped the breaker: gave_up %s", e.payload),
			Evidence: map[string]any{"gave_up_event": e.id}})
	}
	return out
}

// earlyRun is a run started within the cooldown after the task's
// rate-limited run after ended: verdicts list them by that run's id.
type earlyRun struct {
	after int64
	x     Violation
}

// earlyRespawn finds a task's first run (runs are the task's, by id) that
// started sooner than cooldown after the run before it ended rate limited.
func earlyRespawn(in Input, runs []histRun, cooldown float64) (earlyRun, bool) {
	for i, r := range runs {
		if r.outcome != kanban.OutcomeRateLimited || !r.isEnded || i+1 == len(runs) {
			continue
		}
		n := runs[i+1]
		if n.started < r.ended+cooldown-max(in.ClockResolution, 1e-3) {
			return earlyRun{r.id, Violation{Invariant: RateLimit, Task: r.task, AtMs: round(in.relMs(n.started)),
				Message: fmt.Sprintf("run %d started %.0fms after run %d exited 75 (rate limited); the cooldown is %s",
					n.id, (n.started-r.ended)*1000, r.id, time.Duration(cooldown*float64(time.Second))),
				Evidence: map[string]any{"rate_limited_run": r.id, "next_run": n.id, "gap_ms": round((n.started - r.ended) * 1000),
					"cooldown_s": cooldown}}}, true
		}
	}
	return earlyRun{}, false
}

// inRunOrder lists early respawns (one per task) by their rate-limited
// run's id.
func inRunOrder(late []earlyRun) []Violation {
	slices.SortFunc(late, func(a, b earlyRun) int { return cmpInt(a.after, b.after) })
	out := make([]Violation, 0, len(late))
	for _, l := range late {
		out = append(out, l.x)
	}
	return out
}

// overLimit walks a task's events in order, counting those counts() accepts
// since the last counter reset, and reports the largest count any reset
// window reached, the first event that went over limit (nil: none did) and
// the counted events of that window up to it.
func overLimit(events []eventRow, counts func(eventRow) bool, limit int) (peak int, over *eventRow, window []int64) {
	n := 0
	var cur []int64
	for i, e := range events {
		switch {
		case slices.Contains(resetKinds, e.kind):
			n, cur = 0, nil
		case counts(e):
			n++
			if len(cur) < 20 {
				cur = append(cur, e.id)
			}
			if n > limit && over == nil {
				over, window = &events[i], slices.Clone(cur)
			}
			peak = max(peak, n)
		}
	}
	return peak, over, window
}

// checkProtocolBudget holds protocol violations per task between resets to
// the task's effective limit — as booked on the board, and as the workers'
// own exits in the ledger say (exits.go).
func checkProtocolBudget(v *Verdict, in Input, s snapshot, limits limitFunc) {
	seen := false
	for _, t := range s.tasks {
		peak, x := protocolOverBudget(in, t, s.events[t.id], limits)
		seen = seen || peak > 0
		if x != nil {
			v.Violations = append(v.Violations, *x)
		}
	}
	if checkQuitExits(v, in, s, limits) {
		seen = true
	}
	if seen {
		v.check(ProtocolBudget)
		return
	}
	if len(in.Ledger.Entries) > 0 {
		v.skip(ProtocolBudget, "no worker exited 0 without completing, and no run is booked protocol_violation")
	} else {
		v.skip(ProtocolBudget, noProtocolViolation)
	}
}

// noProtocolViolation is why protocol-budget is not checked on a board
// without a ledger (an audit) that books no protocol violation.
const noProtocolViolation = "no run on the board is booked protocol_violation (exit 0 without completing)"

// protocolOverBudget counts a task's protocol_violation events between
// counter resets: the most any window held, and the violation when that
// is over the task's limit (nil: it is not).
func protocolOverBudget(in Input, t taskRow, events []eventRow, limits limitFunc) (int, *Violation) {
	limit, source := limits(t)
	isPV := func(e eventRow) bool { return e.kind == kanban.EventProtocolViolation }
	peak, over, window := overLimit(events, isPV, limit)
	if over == nil {
		return peak, nil
	}
	return peak, &Violation{Invariant: ProtocolBudget, Task: t.id, AtMs: round(in.relMs(over.at)),
		Message: fmt.Sprintf("%d protocol violations (exit 0 without completing) between counter resets > budget %d (%s); #%d at %s",
			peak, limit, source, limit+1, in.when(over.at)),
		Evidence: map[string]any{"limit": limit, "limit_source": source, "protocol_violation_events": window}}
}

func hasSpawned(events []eventRow) bool {
	return slices.ContainsFunc(events, func(e eventRow) bool { return e.kind == kanban.EventSpawned })
}

// spawnsOverLimit counts a task's runs whose worker was spawned (a spawned
// event) between counter resets, rate-limited runs excepted (the event's
// runOutcome), and reports the first spawn over the task's limit, or nil.
func spawnsOverLimit(in Input, t taskRow, events []eventRow, limits limitFunc) *Violation {
	limit, source := limits(t)
	counts := func(e eventRow) bool {
		return e.kind == kanban.EventSpawned && e.run.Valid && e.runOutcome != kanban.OutcomeRateLimited
	}
	peak, over, _ := overLimit(events, counts, limit)
	if over == nil {
		return nil
	}
	return &Violation{Invariant: SpawnLimit, Task: t.id, AtMs: round(in.relMs(over.at)),
		Message: fmt.Sprintf("%d spawned runs between counter resets > limit %d (%s); spawn #%d (run %d) at %s",
			peak, limit, source, limit+1, over.run.Int64, in.when(over.at)),
		Evidence: map[string]any{"spawned_runs": peak, "limit": limit, "limit_source": source, "over_limit_run": over.run.Int64}}
}

// unattendedOutcomes are the ends a dispatcher gives a run for want of news
// from its worker.
var unattendedOutcomes = []string{kanban.OutcomeReclaimed, kanban.OutcomeStale, kanban.OutcomeTimedOut}

// unattended: the run ended for want of news from its worker.
func unattended(r histRun) bool {
	return r.isEnded && slices.Contains(unattendedOutcomes, r.outcome)
}

// unrecordedViolation reports a task's runs ended for want of news
// (reclaimed after the claim expired, stale, timed out) that never had a
// worker recorded: no spawned event, no pid, no spawn failure. A run its
// worker completed or blocked had a worker, even if the dispatcher's
// _set_worker_pid commit came after the worker's (a live board shows that
// race for a moment), so those are not counted. runs are those runs, by id.
func unrecordedViolation(in Input, runs []histRun) Violation {
	first := runs[0]
	ids := make([]int64, 0, min(len(runs), 20))
	for _, r := range runs[:min(len(runs), 20)] {
		ids = append(ids, r.id)
	}
	return Violation{Invariant: UnrecordedWorkers, Task: first.task, AtMs: round(in.relMs(first.started)),
		Message: fmt.Sprintf("%d run(s) ended with no worker ever recorded (no pid, no spawned event), first run %d (%s) at %s: "+
			"a claim whose pid never reached the board escapes the crash sweep (#35202)", len(runs), first.id, first.outcome, in.when(first.started)),
		Evidence: map[string]any{"runs": ids, "total": len(runs)}}
}

// when formats a board time: ms after the run's start for a run, else UTC.
// A coarse clock's stamp is a window, printed as one — "+0–245ms": the
// event happened in that tick of the subject's clock, and not before the
// run began (a whole-second stamp printed as one time read "+-755ms").
// Only a seeded board's events can precede the run; they say so.
func (in Input) when(wall float64) string {
	if in.RunStartWall == 0 {
		return time.Unix(0, int64(wall*1e9)).UTC().Format("2006-01-02T15:04:05.000Z")
	}
	end := in.relMs(wall)
	start := end - in.ClockResolution*1000
	switch {
	case end <= 0 && start == end:
		return fmt.Sprintf("%.0fms (before the run began)", end)
	case end <= 0:
		return fmt.Sprintf("%.0f to %.0fms (before the run began)", start, end)
	case start == end:
		return fmt.Sprintf("+%.0fms", end)
	}
	return fmt.Sprintf("+%.0f–%.0fms", max(start, 0), end)
}

// cooldownOf is the rate-limit cooldown a run used: what the subject ran
// with when the harness says, else Hermes' 300 s, scaled.
func cooldownOf(in Input) float64 {
	if in.Cooldown > 0 {
		return in.Cooldown
	}
	s := in.Schedule
	if s.TimeScale > 0 {
		return DefaultCooldown.Seconds() * s.TimeScale
	}
	return DefaultCooldown.Seconds()
}

// checkRunHistory is the DB-only part of every run's check: rate limit and
// protocol budget (hooked into Check).
func checkRunHistory(ctx context.Context, v *Verdict, in Input, db *sql.DB, s snapshot) error {
	runs, err := readRuns(ctx, db)
	if err != nil {
		return err
	}
	checkRateLimit(v, in, s, runs, cooldownOf(in))
	checkProtocolBudget(v, in, s, scheduleLimits(in.Schedule))
	return nil
}

// payloadField reads one field of an event's JSON payload.
func payloadField(payload, field string) any {
	var m map[string]any
	if json.Unmarshal([]byte(payload), &m) != nil {
		return nil
	}
	return m[field]
}

// pidsLost says whether the schedule's fault lose_pid keeps every worker's
// pid from the dispatcher: its workers are nobody's known children, and
// what they exit with reaches no dispatcher (the 1,000-run soak of fixed
// counted 14 exit-75 workers of issue-35202 against it: a reclaim, which
// #35202's fix must count, was all a dispatcher could see of them).
func pidsLost(s schedule.Schedule) bool {
	on, err := strconv.ParseBool(s.Knobs["lose_pid"])
	return err == nil && on
}

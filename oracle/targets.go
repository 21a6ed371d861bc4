package oracle

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// The target state: a PASS must mean the dispatcher under test went through
// the danger its schedule sets up and held. A run that never got there —
// the subject never spawned a worker, never classified a crash, never made
// a breaker decision — is unknown, never pass, with a reason that names
// what was never reached. The targets follow from the schedule's workers:
//
//   - some task is assigned to a registered profile: some worker starts;
//   - a task whose worker fails deterministically and started: the
//     dispatcher ends one of its runs (classifies the crash);
//   - tasks whose workers fail deterministically: a breaker decision — a
//     gave_up, or more starts than the limit (which spawns fails);
//   - a task whose worker exits 75 and started: the dispatcher ends one of
//     its exit-75 runs;
//   - tasks whose workers complete: a completion;
//   - ticks observed: some dispatcher tick finishes.
//
// Breaker decisions and completions are targets of the run, not of every
// task: one task that went through them is the danger gone through, and a
// fan-out board (200 cards under max_spawn 1, or a swarm's 50) is not meant
// to finish — or trip — every card within the run. With a single task, as
// in every breaker scenario, that is the same as per task.
//
// Explicit exceptions, each for a reason the schedule itself gives:
//   - tasks of unregistered profiles have no target (no dispatcher may
//     spawn them);
//   - a task whose every worker start came in the quiet phase has no
//     crash-classification or exit-75 target (the run may end first); nor
//     has a hanging worker started too late for the dispatcher to give up
//     on it (hangRunMs) before the run's time was up;
//   - breaker decisions are not awaited when the schedule leaves no room
//     for one (breakerRoom);
//   - after a swap of the board file or a power cut the board checked is
//     not the one the dispatcher booked its runs in (or it lost them):
//     only the ledger's targets are judged (starts, completions from the
//     workers' acknowledged commits).
func checkTargets(v *Verdict, in Input, s *snapshot, obs observed) {
	if in.Subject.Ticks && obs.nTicks == 0 {
		v.Unknowns = append(v.Unknowns, fmt.Sprintf("no dispatcher tick finished: %s's ticks are observed, but none was seen", obs.name))
	}
	sch := in.Schedule
	profiles := map[string]schedule.Profile{}
	var assigned []schedule.Task // to registered profiles
	for _, t := range sch.Tasks {
		if p, ok := sch.Profile(t.Assignee); ok && !p.Unregistered {
			profiles[t.ID] = p
			assigned = append(assigned, t)
		}
	}
	if len(assigned) == 0 {
		return
	}
	starts := in.Ledger.Starts()
	if len(starts) == 0 {
		v.Unknowns = append(v.Unknowns, fmt.Sprintf("no worker ever started: %s never spawned a worker for any of the %d task(s) "+
			"assigned to registered profiles (first: %s, profile %s)", subjectName(in), len(assigned), assigned[0].ID, assigned[0].Assignee))
		return
	}
	completed := completedTasks(in.Ledger, s)
	var completing []string
	nStarts := 0
	for _, t := range assigned {
		if completes(profiles[t.ID].Worker) {
			completing = append(completing, t.ID)
			nStarts += len(starts[t.ID])
		}
	}
	if len(completing) > 0 && !slices.ContainsFunc(completing, func(id string) bool { return completed[id] }) {
		v.Unknowns = append(v.Unknowns, fmt.Sprintf("no task whose worker completes ever completed: %d such task(s) (first: %s, worker %s), %d worker start(s)",
			len(completing), completing[0], profiles[completing[0]].Worker, nStarts))
	}

	if s == nil || in.SwapMono > 0 || in.PowerCutMono > 0 {
		return // the board's runs are not the ones the dispatcher booked (see above)
	}
	early := func(id string) int {
		n := 0
		for _, e := range starts[id] {
			if in.QuietStartWall == 0 || e.Wall < in.QuietStartWall {
				n++
			}
		}
		return n
	}
	ended := map[string]bool{}
	for _, r := range s.runs {
		ended[r.task] = ended[r.task] || r.ended
	}
	limited := map[int64]bool{} // runs whose worker exited 75
	exited := map[string]bool{} // tasks with any exit line
	for _, e := range in.Ledger.Exits() {
		exited[e.Task] = true
		if code, ok := e.ExitStatus(); ok && code == schedule.RateLimitedExitCode && e.Run > 0 {
			limited[e.Run] = true
		}
	}
	var unclassified, unended misses
	failing, decided := 0, false
	lateTrip := "" // a task whose breaker tripped too late to be tested
	var closest string
	closestN, closestLimit := 0, 1
	for _, t := range assigned {
		b := profiles[t.ID].Worker
		n := len(starts[t.ID])
		switch {
		case fails(b):
			failing++
			limit, _ := sch.EffectiveLimit(t)
			trip := slices.IndexFunc(s.events[t.ID], func(e eventRow) bool { return e.kind == kanban.EventGaveUp })
			// A trip the run stopped right after is no decision: nothing
			// tested whether it holds (tripTooLate).
			tested := trip >= 0 && (in.RunStartWall == 0 || tripTooLate(in, in.relMs(s.events[t.ID][trip].at)) == "")
			if trip >= 0 && !tested && lateTrip == "" {
				lateTrip = t.ID
			}
			decided = decided || tested || n > limit
			if closest == "" || n*closestLimit > closestN*limit {
				closest, closestN, closestLimit = t.ID, n, limit
			}
			classifiable := early(t.ID)
			if b.Mode == schedule.ModeHang {
				classifiable = endsInTime(in, starts[t.ID], hangRunMs(sch))
			}
			if classifiable > 0 && !ended[t.ID] {
				unclassified.add(t.ID, fmt.Sprintf("no crash of task %s (worker %s) was ever classified: %d worker start(s), and %s ended none of its runs",
					t.ID, b, n, subjectName(in)))
			}
		case rateLimited(b):
			if early(t.ID) == 0 {
				continue
			}
			handled := false
			for _, r := range s.runs {
				handled = handled || (r.task == t.ID && r.ended && (limited[r.id] || !exited[t.ID]))
			}
			if !handled {
				unended.add(t.ID, fmt.Sprintf("no exit-75 run of task %s was ever ended by %s: %d worker start(s)", t.ID, subjectName(in), n))
			}
		}
	}
	for _, m := range []misses{unclassified, unended} {
		if msg := m.String(); msg != "" {
			v.Unknowns = append(v.Unknowns, msg)
		}
	}
	// A crash never classified already says why no decision came.
	if failing > 0 && !decided && lateTrip != "" {
		v.Unknowns = append(v.Unknowns, fmt.Sprintf("no breaker decision was tested: every trip came less than two ticks before "+
			"the run stopped (first: %s), so nothing tested whether a breaker holds — the run's time was too short for this machine", lateTrip))
	} else if failing > 0 && !decided && len(unclassified.ids) == 0 && breakerRoom(sch) == "" {
		v.Unknowns = append(v.Unknowns, fmt.Sprintf("no breaker decision was ever reached: no gave_up for any of the %d task(s) whose worker fails "+
			"(closest: %s, worker %s, %d of its limit %d worker starts)", failing, closest, profiles[closest].Worker, closestN, closestLimit))
	}
}

// endsInTime counts the starts whose run, lasting at least runMs, could end
// before the run's time was up: a hanging worker started too late to be
// given up on by then has no crash-classification target. Without the
// run's start time every start counts.
func endsInTime(in Input, starts []ledger.Entry, runMs float64) int {
	if in.RunStartWall == 0 {
		return len(starts)
	}
	end := in.RunStartWall + float64(in.Schedule.DurationMs+in.Schedule.QuietMs)/1000
	n := 0
	for _, e := range starts {
		if e.Wall+runMs/1000 <= end {
			n++
		}
	}
	return n
}

// misses are the tasks that missed one target: the first one's reason
// stands for them all.
type misses struct {
	first string
	ids   []string
}

func (m *misses) add(id, why string) {
	if len(m.ids) == 0 {
		m.first = why
	}
	m.ids = append(m.ids, id)
}

func (m misses) String() string {
	if len(m.ids) <= 1 {
		return m.first
	}
	return fmt.Sprintf("%s (and %d more task(s) alike: %v)", m.first, len(m.ids)-1, m.ids[1:min(len(m.ids), 6)])
}

// subjectName names the dispatcher under test in a target message.
func subjectName(in Input) string {
	if in.Subject.Name != "" {
		return in.Subject.Name
	}
	return "the dispatcher"
}

// completedTasks are the tasks a worker completed: done on the board, or a
// worker's acknowledged completing commit in the ledger.
func completedTasks(h ledger.History, s *snapshot) map[string]bool {
	out := map[string]bool{}
	for _, e := range h.Entries {
		if e.Kind == ledger.Commit && e.Who == "worker" && e.Op == kanban.EventCompleted {
			out[e.Task] = true
		}
	}
	if s != nil {
		for _, t := range s.tasks {
			out[t.id] = out[t.id] || t.status == kanban.StatusDone
		}
	}
	return out
}

// breakerRoom says why the schedule leaves no room for a breaker decision
// within the run, or "" when it does. The bound is generous to the
// dispatcher: a run lasts at least its worker's delay, and at least the
// time to the next dispatcher tick (the crash is classified by a later
// tick; several dispatchers tick in between); a task needs its limit of
// failing runs, one after the other. Without a cap the fastest task decides
// first. Under a max_spawn cap M, tasks of equal priority share the slots
// fairly, so the first decision comes after every task had as many runs as
// the smallest limit (a completing task needs one). When even that does not
// fit in the dispatch and quiet phases, no decision is awaited (the
// r5-crash-loop scenario: 40 crash-looping cards with max_retries 50 and 40
// completing ones under max_spawn 2 need at least 10.2 s; the run lasts
// 5.5 s). A worker that hangs ends only when the dispatcher gives up on
// it (hangRunMs).
func breakerRoom(s schedule.Schedule) string {
	if s.DurationMs <= 0 {
		return "" // how long the run is, is not known: assume room
	}
	tickMs := float64(tickOf(s).Microseconds()) / 1000 / float64(max(s.Dispatchers, 1))
	cost := func(t schedule.Task, b schedule.Behaviour) float64 {
		if b.Mode == schedule.ModeHang {
			run := hangRunMs(s)
			if t.MaxRuntimeS > 0 {
				// enforce_max_runtime ends it first (the least it can take).
				run = min(run, float64(t.MaxRuntimeS)*1000*s.TimeScale)
			}
			return max(tickMs, run)
		}
		return max(tickMs, float64(b.DelayMs))
	}
	type task struct {
		limit int // failing runs to a decision; 0: a completing task
		cost  float64
	}
	var tasks []task
	least := 0
	for _, t := range s.Tasks {
		p, ok := s.Profile(t.Assignee)
		switch {
		case !ok || p.Unregistered:
		case fails(p.Worker):
			limit, _ := s.EffectiveLimit(t)
			tasks = append(tasks, task{limit, cost(t, p.Worker)})
			if least == 0 || limit < least {
				least = limit
			}
		case completes(p.Worker):
			tasks = append(tasks, task{0, cost(t, p.Worker)})
		}
	}
	if least == 0 {
		return ""
	}
	fastest, shared, runs := math.Inf(1), 0.0, 0
	for _, t := range tasks {
		n := min(max(t.limit, 1), least)
		if t.limit > 0 {
			fastest = min(fastest, float64(t.limit)*t.cost)
		}
		shared += float64(n) * t.cost
		runs += n
	}
	need, how := fastest, "no max_spawn cap"
	if s.MaxSpawn > 0 {
		need, how = max(need, shared/float64(s.MaxSpawn)), fmt.Sprintf("max_spawn %d", s.MaxSpawn)
	}
	have := float64(s.DurationMs + s.QuietMs)
	if need <= have {
		return ""
	}
	return fmt.Sprintf("the schedule leaves no room for a breaker decision: with %s the first needs at least %v of worker runs "+
		"(%d runs), the run lasts %v", how, time.Duration(need*float64(time.Millisecond)).Round(time.Millisecond), runs,
		time.Duration(have)*time.Millisecond)
}

// hangRunMs is the least a hanging worker's run lasts: it never exits and
// never heartbeats, so its claim is extended while its start is fresh —
// Hermes' 3600 s heartbeat staleness — then it expires (900 s claim TTL)
// and the worker is stopped (5 s kill grace) before the run is reclaimed;
// all scaled like every Hermes interval.
func hangRunMs(s schedule.Schedule) float64 {
	scale := s.TimeScale
	if scale <= 0 {
		scale = 1
	}
	return (3600 + 900 + 5) * 1000 * scale
}

package scenarios

import (
	"math"
	"strconv"

	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// A swarm draws the length of a run's phases independently of what the run
// has to go through in them; a short dispatch phase drawn beside ten
// crash-looping cards under max_spawn 1 ends before any card completes or
// any breaker decides, and the run is undecided (the oracle's targets,
// oracle/targets.go). Room is the least time a drawn schedule needs, from
// a deliberately pessimistic model of the dispatcher's tick; the swarm
// never draws a phase shorter than that (up to maxRoomMs).
//
// The model, per worker run (all Hermes intervals scaled by the schedule's
// time scale, as the dispatcher scales them):
//   - a start costs spawnMs (a process start on a loaded machine) plus the
//     worker's own delay, and writesMs per progress comment it writes;
//   - a completing worker frees its slot when it completes;
//   - a failing worker's run ends when its dispatcher classifies it: at
//     the dispatcher's next tick it wins (classifyMs), and not before the
//     crash grace on the task's first run. With lose_pid no dispatcher
//     knows the pid: the run ends when the claim TTL expires, reclaimed at
//     a tick after it. A hanging worker ends when its claim is given up on
//     (heartbeat staleness, TTL, kill grace);
//   - after a counted failure the task waits its backoff (1 s × 4^(n−1));
//     after an exit 75 the rate-limit cooldown;
//   - tasks are spawned in creation order (equal priority), at most
//     max_spawn running, a free slot taken at the next tick.
//
// The dispatch phase must reach the first completion and the first breaker
// decision — the targets are the run's, not every task's — with
// roomMargin to spare; the quiet phase must let the slowest run started
// just before it ends be classified (the crash-classification and exit-75
// targets count every start of the dispatch phase).

// Model constants: pessimistic on a loaded 2-core machine (measured in
// the 1,000-run soak's ledgers: a crash-at-once worker lives 30–70 ms
// from its start line, a progress comment takes ~5 ms).
const (
	spawnMs    = 60
	writesMs   = 10
	startupMs  = 250 // the first tick: schema, seeding, the dispatchers' first connects
	roomMargin = 1.5
	// maxRoomMs bounds the floor: a draw needing more is run with this
	// much (and may stay undecided; the verdict says which target).
	maxRoomMs = 30000
)

// Hermes' intervals in seconds (spec/hermes-kanban.md), before scaling.
const (
	hermesTickS       = 60
	hermesCrashGraceS = 30
	hermesClaimTTLS   = 900
	hermesStaleS      = 3600
	hermesKillGraceS  = 5
	hermesCooldownS   = 300
	hermesBackoffS    = 1
)

// Room is the least dispatch and quiet phase, in ms, that s's targets
// need under the model above, each at most maxRoomMs.
func Room(s schedule.Schedule) (dispatchMs, quietMs int) {
	m := newRoomModel(s)
	completed, decided := m.firstTargets()
	dispatchMs = roomFor(max(completed, decided, 0))
	quietMs = int(math.Ceil(m.slowestRun() * roomMargin))
	return dispatchMs, min(quietMs, maxRoomMs)
}

// CompletionRoom is the least time, in ms, before the first completion
// can come under the same model (0: no task completes). A fault drawn
// earlier would make the completion target unreachable on a dispatcher
// that fails closed after it (fixed after a swap of the board file).
func CompletionRoom(s schedule.Schedule) int {
	completed, _ := newRoomModel(s).firstTargets()
	if completed < 0 {
		return 0
	}
	return roomFor(completed)
}

// roomFor is the phase that leaves a modelled time its margin and the
// run's start-up, capped.
func roomFor(ms float64) int {
	return min(int(math.Ceil(ms*roomMargin))+startupMs, maxRoomMs)
}

// roomModel holds what the model needs of a schedule.
type roomModel struct {
	s          schedule.Schedule
	scaleMs    float64 // ms per Hermes second
	tick       float64
	classify   float64 // from a worker's exit to the tick that books it
	grace      float64
	ttl        float64
	hang       float64
	cooldown   float64
	backoff    float64
	lostPID    bool
	maxRunning int // 0: no cap
}

func newRoomModel(s schedule.Schedule) roomModel {
	scale := s.TimeScale
	if !(scale > 0) {
		scale = 1
	}
	m := roomModel{s: s, scaleMs: 1000 * scale, maxRunning: s.MaxSpawn}
	m.tick = float64(s.TickMs)
	if s.TickMs <= 0 {
		m.tick = hermesTickS * m.scaleMs
	}
	// The worker's own dispatcher books its exit (own_workers); with a
	// dispatch lock it may lose the lock to each other dispatcher in turn.
	m.classify = m.tick * float64(1+max(s.Dispatchers, 1)/2)
	m.grace = hermesCrashGraceS * m.scaleMs
	if s.CrashGraceMs != nil {
		m.grace = float64(*s.CrashGraceMs)
	}
	m.ttl = hermesClaimTTLS * m.scaleMs
	m.hang = (hermesStaleS + hermesClaimTTLS + hermesKillGraceS) * m.scaleMs
	m.cooldown = hermesCooldownS * m.scaleMs
	if s.CooldownMs != nil {
		m.cooldown = float64(*s.CooldownMs)
	}
	m.backoff = hermesBackoffS * m.scaleMs
	m.lostPID, _ = strconv.ParseBool(s.Knobs["lose_pid"])
	return m
}

// kind is what a task's worker does, for the model.
type kind int

const (
	kindNone      kind = iota // no profile, or an unregistered one: never spawned
	kindCompletes             // completes its task
	kindFails                 // a failure that counts toward the breaker
	kindLimited               // exits 75: never counts
)

func (m roomModel) kindOf(t schedule.Task) (kind, schedule.Behaviour) {
	p, ok := m.s.Profile(t.Assignee)
	switch {
	case !ok || p.Unregistered:
		return kindNone, p.Worker
	case p.Worker.Mode == schedule.ModeComplete || p.Worker.Mode == schedule.ModeWriteComplete || p.Worker.Mode == schedule.ModeCreateOnBoard:
		return kindCompletes, p.Worker
	case !p.Worker.Bounded():
		return kindLimited, p.Worker
	}
	return kindFails, p.Worker
}

// work is how long a worker runs by itself, from its spawn to its exit.
func (m roomModel) work(b schedule.Behaviour) float64 {
	return spawnMs + float64(b.DelayMs) + writesMs*float64(b.Writes)
}

// runMs is how long a run of task kind k holds its slot: from the spawn
// to the tick that ends it. first: the task's first run (crash grace).
func (m roomModel) runMs(k kind, b schedule.Behaviour, first bool) float64 {
	work := m.work(b)
	switch {
	case k == kindCompletes:
		return work
	case b.Mode == schedule.ModeHang:
		return m.hang + m.classify
	case m.lostPID:
		return max(work, m.ttl) + m.classify
	case first && k == kindFails:
		return max(work, m.grace) + m.classify
	}
	return work + m.classify
}

// slowestRun is the longest a run that starts at the end of the dispatch
// phase takes to be booked; hanging workers are left out (the oracle does
// not await a hanging run that could not end in time).
func (m roomModel) slowestRun() float64 {
	slowest := 0.0
	for _, t := range m.s.Tasks {
		k, b := m.kindOf(t)
		if (k == kindFails || k == kindLimited) && b.Mode != schedule.ModeHang {
			slowest = max(slowest, m.runMs(k, b, true))
		}
	}
	return slowest
}

// taskState is one task in the simulation.
type taskState struct {
	kind    kind
	worker  schedule.Behaviour
	limit   int
	runs    int     // runs ended
	readyAt float64 // when it may be spawned again
	endsAt  float64 // the running run's end; 0: not running
	over    bool    // completed or given up on
}

// firstTargets simulates the tick until the first completion (when a task
// completes) and the first breaker decision (when one fails) and returns
// when each came (-1: no such target); a target the model does not reach
// by maxRoomMs counts as maxRoomMs.
func (m roomModel) firstTargets() (completed, decided float64) {
	var tasks []*taskState
	wantComplete, wantDecision := false, false
	for _, t := range m.s.Tasks {
		k, b := m.kindOf(t)
		if k == kindNone {
			continue
		}
		limit, _ := m.s.EffectiveLimit(t)
		tasks = append(tasks, &taskState{kind: k, worker: b, limit: limit})
		wantComplete = wantComplete || k == kindCompletes
		wantDecision = wantDecision || k == kindFails
	}
	completed, decided = -1.0, -1.0
	for now := 0.0; now <= maxRoomMs; now += m.tick {
		running := 0
		for _, t := range tasks {
			if t.endsAt > 0 && t.endsAt <= now {
				m.end(t)
				switch {
				case t.kind == kindCompletes && completed < 0:
					completed = t.readyAt
				case t.kind == kindFails && t.over && decided < 0:
					decided = t.readyAt
				}
			}
			if t.endsAt > 0 {
				running++
			}
		}
		if (!wantComplete || completed >= 0) && (!wantDecision || decided >= 0) {
			return completed, decided
		}
		for _, t := range tasks {
			if m.maxRunning > 0 && running >= m.maxRunning {
				break
			}
			if t.over || t.endsAt > 0 || t.readyAt > now {
				continue
			}
			t.endsAt = now + m.runMs(t.kind, t.worker, t.runs == 0)
			t.readyAt = t.endsAt
			running++
		}
	}
	if wantComplete && completed < 0 {
		completed = maxRoomMs
	}
	if wantDecision && decided < 0 {
		decided = maxRoomMs
	}
	return completed, decided
}

// end books the end of t's running run at t.endsAt.
func (m roomModel) end(t *taskState) {
	ended := t.endsAt
	t.endsAt = 0
	t.runs++
	t.readyAt = ended
	switch t.kind {
	case kindCompletes:
		t.over = true
	case kindFails:
		if t.runs >= t.limit {
			t.over = true
			return
		}
		t.readyAt = ended + m.backoff*math.Pow(4, float64(min(t.runs, 8)-1))
	case kindLimited:
		t.readyAt = ended + m.cooldown
	}
}

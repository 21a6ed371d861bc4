package scenarios

import (
	"strconv"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// The bounds below follow from the dispatcher's mechanism alone, not from
// Room's model: each is a floor the model must stay above, so a run drawn
// shorter than one of them could not reach its target on any machine.

// lostPIDDecisionMs: with lose_pid no dispatcher sees a worker exit; each
// run of a failing task ends when its claim TTL expires, so the first
// breaker decision takes at least the smallest limit's worth of TTLs.
func lostPIDDecisionMs(s schedule.Schedule) (need int, ok bool) {
	if lost, _ := strconv.ParseBool(s.Knobs["lose_pid"]); !lost {
		return 0, false
	}
	least := 0
	for _, t := range s.Tasks {
		p, _ := s.Profile(t.Assignee)
		if p.Worker.Bounded() && !completing(p.Worker) {
			limit, _ := s.EffectiveLimit(t)
			if least == 0 || limit < least {
				least = limit
			}
		}
	}
	return least * ttlMs(s), least > 0
}

// firstCompletionMs: under max_spawn 1 the first completing card is
// spawned only once every card created before it stopped taking the slot:
// each failing card ahead of it runs its limit of runs, one tick at least
// each (a crash is booked by a tick, and the slot refilled by one).
func firstCompletionMs(s schedule.Schedule) (need int, ok bool) {
	if s.MaxSpawn != 1 {
		return 0, false
	}
	for _, t := range s.Tasks {
		p, _ := s.Profile(t.Assignee)
		if completing(p.Worker) {
			return need, true
		}
		if p.Worker.Bounded() {
			limit, _ := s.EffectiveLimit(t)
			need += limit * s.TickMs
		}
	}
	return 0, false
}

// classifyMs: a run started as the dispatch phase ends must be booked
// within the quiet phase: its worker's delay, the crash grace on a first
// run, a tick; with lose_pid the claim TTL.
func classifyMs(s schedule.Schedule) int {
	need := 0
	lost, _ := strconv.ParseBool(s.Knobs["lose_pid"])
	for _, t := range s.Tasks {
		p, _ := s.Profile(t.Assignee)
		if completing(p.Worker) || p.Worker.Mode == schedule.ModeHang {
			continue
		}
		run := max(p.Worker.DelayMs, int(hermesCrashGraceS*1000*s.TimeScale)) + s.TickMs
		if lost {
			run = max(run, ttlMs(s)+s.TickMs)
		}
		need = max(need, run)
	}
	return need
}

func ttlMs(s schedule.Schedule) int { return int(hermesClaimTTLS * 1000 * s.TimeScale) }

func completing(b schedule.Behaviour) bool {
	return b.Mode == schedule.ModeComplete || b.Mode == schedule.ModeWriteComplete || b.Mode == schedule.ModeCreateOnBoard
}

// TestSwarmLeavesRoomForTargets: over many draws of every scenario, no
// schedule's dispatch phase is shorter than its first breaker decision
// under lose_pid or its first completion under max_spawn 1 needs, and no
// quiet phase is too short to book a run started at its start — unless
// the bound is past Room's cap, where the run is left at the cap.
func TestSwarmLeavesRoomForTargets(t *testing.T) {
	checked := map[string]int{}
	for _, sc := range Fuzzable() {
		w := sc.Swarm()
		for seed := uint64(1); seed <= 300; seed++ {
			s := w.Schedule(w.Draw(seed), seed, "fixed")
			if need, ok := lostPIDDecisionMs(s); ok && need < maxRoomMs {
				checked["lose_pid decision"]++
				if s.DurationMs < need {
					t.Errorf("%s seed %d: dispatch phase %d ms, a breaker decision under lose_pid needs ≥ %d ms", sc.Name, seed, s.DurationMs, need)
				}
			}
			if need, ok := firstCompletionMs(s); ok && need < maxRoomMs {
				checked["first completion"]++
				if s.DurationMs < need {
					t.Errorf("%s seed %d: dispatch phase %d ms, the first completion under max_spawn 1 needs ≥ %d ms", sc.Name, seed, s.DurationMs, need)
				}
			}
			if need := classifyMs(s); need > 0 {
				checked["classification"]++
				if s.QuietMs < need {
					t.Errorf("%s seed %d: quiet phase %d ms, booking a run started at its start needs ≥ %d ms", sc.Name, seed, s.QuietMs, need)
				}
			}
		}
	}
	// The bounds must have been exercised, or the test proves nothing.
	for _, what := range []string{"lose_pid decision", "first completion", "classification"} {
		if checked[what] < 50 {
			t.Errorf("only %d draws had a %s bound to check", checked[what], what)
		}
	}
}

// TestSoakUndecidedSeedsHaveRoom pins runs of the 1,000-run soak (seed 12)
// that were undecided before the swarm left room for its targets: each
// schedule drawn from its seed now has a dispatch and quiet phase at least
// as long as the mechanism needs (the bounds above) and Room's own.
func TestSoakUndecidedSeedsHaveRoom(t *testing.T) {
	for _, c := range []struct {
		scenario string
		seed     uint64
		was      string // the schedule as drawn before, and why undecided
	}{
		{"issue-35202", 598404937, "1016 + 966 ms: no breaker decision (lose_pid, limits 1–5)"},
		{"issue-35202", 2773263480, "2224 + 657 ms: no breaker decision (lose_pid, limit 3)"},
		{"issue-35202", 228508678, "936 + 307 ms: no completion, no breaker decision"},
		{"issue-35240", 2832419094, "1308 + 914 ms: the completing card behind F5 F1 F5 F2 under max_spawn 1 never started"},
		{"m2-eio-downgrade", 766680345, "1029 + 351 ms: 19 completing cards behind 4 crash loops under max_spawn 2, none started"},
		{"issue-63070", 1490822117, "1687 + 636 ms: completing cards behind F1 F5 F5 under max_spawn 1 never started"},
		{"issue-30678", 25468640, "2853 + 779 ms: a crash started 48 ms before the quiet phase never booked (8 dispatchers, one lock)"},
	} {
		w := mustLookup(t, c.scenario).Swarm()
		p := w.Draw(c.seed)
		s := w.Schedule(p, c.seed, "fixed")
		roomD, roomQ := Room(s)
		if s.DurationMs < roomD || s.QuietMs < roomQ {
			t.Errorf("%s seed %d: %d + %d ms, its room is %d + %d ms", c.scenario, c.seed, s.DurationMs, s.QuietMs, roomD, roomQ)
		}
		if s.DurationMs+s.QuietMs <= p.DurationMs+p.QuietMs {
			t.Errorf("%s seed %d: still %d + %d ms as drawn (was %s)", c.scenario, c.seed, s.DurationMs, s.QuietMs, c.was)
		}
		if need, ok := lostPIDDecisionMs(s); ok && s.DurationMs < need {
			t.Errorf("%s seed %d: dispatch phase %d ms < %d ms", c.scenario, c.seed, s.DurationMs, need)
		}
		if need, ok := firstCompletionMs(s); ok && s.DurationMs < need {
			t.Errorf("%s seed %d: dispatch phase %d ms < %d ms", c.scenario, c.seed, s.DurationMs, need)
		}
		if need := classifyMs(s); s.QuietMs < need {
			t.Errorf("%s seed %d: quiet phase %d ms < %d ms", c.scenario, c.seed, s.QuietMs, need)
		}
	}
}

// TestRoomGrowsWithTheMechanism: Room follows the drawn parameters it is
// derived from — a longer claim TTL (time scale) under lose_pid, more
// crash-looping cards ahead of a completing one under max_spawn 1, and a
// cap that keeps a pathological draw bounded.
func TestRoomGrowsWithTheMechanism(t *testing.T) {
	crash := schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 1}
	board := func(scale float64, lost bool, failing int) schedule.Schedule {
		s := schedule.Schedule{Dispatchers: 1, TickMs: 20, TimeScale: scale, MaxSpawn: 1,
			Profiles: []schedule.Profile{{Name: "crash", Worker: crash}, {Name: "done", Worker: schedule.Behaviour{Mode: schedule.ModeComplete}}}}
		if lost {
			s.Knobs = map[string]string{"lose_pid": "true"}
		}
		for i := range failing {
			s.Tasks = append(s.Tasks, schedule.Task{ID: "t_0000000" + strconv.Itoa(i), Assignee: "crash"})
		}
		s.Tasks = append(s.Tasks, schedule.Task{ID: "t_000000ff", Assignee: "done"})
		return s
	}
	d1, q1 := Room(board(0.001, true, 1))
	d2, q2 := Room(board(0.002, true, 1))
	if d2 <= d1 || q2 <= q1 || q1 < 900 {
		t.Errorf("lose_pid: room %d + %d ms at a 900 ms claim TTL, %d + %d ms at 1800 ms", d1, q1, d2, q2)
	}
	few, _ := Room(board(0.001, false, 1))
	many, _ := Room(board(0.001, false, 6))
	if many <= few {
		t.Errorf("max_spawn 1: room %d ms behind one crash loop, %d ms behind six", few, many)
	}
	huge, _ := Room(board(1, true, 6))
	if huge != maxRoomMs {
		t.Errorf("a 900 s claim TTL: room %d ms, want the cap %d ms", huge, maxRoomMs)
	}
}

// TestSwarmFaultComesAfterFirstCompletion: a drawn fault (the board file
// swapped in m6-swap-while-open) comes no earlier than the first
// completion can (the bound under max_spawn 1 above): fixed fails closed
// after a swap, so a swap before any completing card started left the
// completion target unreachable (3 undecided runs of the soak).
func TestSwarmFaultComesAfterFirstCompletion(t *testing.T) {
	w := mustLookup(t, "m6-swap-while-open").Swarm()
	checked := 0
	for seed := uint64(1); seed <= 400; seed++ {
		s := w.Schedule(w.Draw(seed), seed, "fixed")
		need, ok := firstCompletionMs(s)
		if !ok || need >= maxRoomMs || len(s.Faults) == 0 {
			continue
		}
		checked++
		if s.Faults[0].AtMs < need {
			t.Errorf("seed %d: the swap at %d ms, the first completion under max_spawn 1 needs ≥ %d ms", seed, s.Faults[0].AtMs, need)
		}
	}
	if checked < 30 {
		t.Fatalf("only %d draws had a completion bound to check", checked)
	}
	// The undecided runs of the soak: no completing card had started when the swap came.
	for _, seed := range []uint64{3307254554, 1246180762} {
		s := w.Schedule(w.Draw(seed), seed, "fixed")
		if room := CompletionRoom(s); s.Faults[0].AtMs < room {
			t.Errorf("seed %d: the swap at %d ms, before the first completion's room %d ms", seed, s.Faults[0].AtMs, room)
		}
	}
}

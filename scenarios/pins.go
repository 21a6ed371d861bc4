package scenarios

import (
	"fmt"
	"math/rand/v2"

	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// pinScenarios are the known Hermes regressions that testdata/script pins:
// each shows its bug on the variant named and passes on fixed.
func pinScenarios() []Scenario {
	one := func(s *schedule.Schedule, scale float64, durationMs, quietMs int, profile string, worker schedule.Behaviour) {
		s.Dispatchers = 1
		s.TimeScale = scale
		s.DurationMs, s.QuietMs = durationMs, quietMs
		s.Profiles = []schedule.Profile{{Name: profile, Worker: worker}}
	}
	return []Scenario{
		{
			Name:  "issue-30678",
			Issue: "Hermes #30678: a worker pinned by HERMES_KANBAN_DB calls kanban_create(board=other) and the card lands in its own board",
			Summary: "The dispatcher gives every worker HERMES_KANBAN_DB, and kanban_db_path (every release through 0.19.0) returns that pin even for an " +
				"explicit board=. The worker's card for board `other` lands in the dispatcher's board, where it is dispatched " +
				"in turn, and its worker misroutes the next one (how #30896's card got there). Must hold: a card created with " +
				"an explicit board reaches that board's file or the create fails loudly; never another board's file.",
			Variant: "hermes-0.14",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				one(s, 0.001, 1500, 500, "router", schedule.Behaviour{Mode: schedule.ModeCreateOnBoard, Board: "other", DelayMs: rng.IntN(5)})
				s.TickMs = 20
				s.Tasks = []schedule.Task{{ID: taskID(rng), Title: "file a card on board other", Assignee: "router"}}
			},
		},
		{
			Name:  "issue-35202",
			Issue: "Hermes #35202 (v0.15.0): a worker that dies before its first heartbeat, with no pid recorded, respawns forever",
			Summary: "The spawn returns no pid (as when the dispatcher dies between claim and _set_worker_pid: knob lose_pid), and " +
				"the worker exits before its first heartbeat. The crash sweep ignores a claim without a pid; the claim expires " +
				"after the (scaled) 900 s TTL and the stale-claim reclaim counts no failure, so the task is spawned again, forever " +
				"(measured on the real 0.15.0 and 0.19.0: a claim with no pid is reclaimed every TTL, never counted; no release " +
				"counts a reclaim). Must hold: spawns ≤ the failure limit — a claim that never reported back still uses up the budget.",
			Variant: "hermes-0.15",
			Knobs:   map[string]string{"lose_pid": "true"},
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				one(s, 0.001, 5000, 1000, "skilless", schedule.Behaviour{Mode: schedule.ModeOpenBoardExit, Exit: 1, DelayMs: rng.IntN(5)})
				s.TickMs = 20
				s.Tasks = []schedule.Task{{ID: taskID(rng), Title: "needs a skill that is not installed", Assignee: "skilless"}}
			},
		},
		{
			Name:  "issue-63070",
			Issue: "Hermes #63070: kanban.failure_limit=4 is ignored by the crash path, which trips at the default 2",
			Summary: "failure_limit is 4. detect_crashed_workers never passes it on and trips the breaker at DEFAULT_FAILURE_LIMIT=2, " +
				"while recompute_ready (which does get 4, from 0.16.0 on) re-promotes the task: gave_up/promoted pairs. Measured on " +
				"the real releases (failure_limit=4, exit 1): 0.14.0 2 starts, then blocked (the limit of 4 is never applied); " +
				"0.15.0 unbounded (38 starts in 8 s); 0.16.0–0.19.0 4 starts with 3 gave_up and 2 promoted. " +
				"Must hold: exactly the configured 4 spawns, then the breaker holds.",
			Variant: "hermes-0.19",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				one(s, 0.002, 2500, 1000, "reviewer", schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 1, DelayMs: rng.IntN(5)})
				s.FailureLimit = 4
				s.Tasks = []schedule.Task{{ID: taskID(rng), Title: "review with a missing skill", Assignee: "reviewer"}}
			},
		},
		{
			Name:  "issue-28712",
			Issue: "Hermes #28712/#27178: a worker that exits 0 without completing is respawned in a loop",
			Summary: "Exit 0 while the task is running is a protocol violation, booked with its own budget (limit 1 up to 0.18). " +
				"The breaker trips, recompute_ready re-promotes the task in the same tick and the loop goes on. Measured on the " +
				"real releases (one task, exit 0): 0.14.0 1 start, protocol_violation + gave_up, holds; 0.15.0 unbounded " +
				"(protocol_violation, gave_up, promoted every tick); 0.16.0–0.18.0 2 starts; 0.19.0 4 starts (3 violations " +
				"uncounted, trip, promoted, a 4th, trip). Must hold: every run is booked protocol_violation, protocol violations " +
				"between resets ≤ the budget, the breaker holds.",
			Variant: "hermes-0.15",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				one(s, 0.002, 2500, 1000, "quitter", schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 0, DelayMs: rng.IntN(5)})
				s.Tasks = []schedule.Task{{ID: taskID(rng), Title: "an agent that forgets to complete", Assignee: "quitter"}}
			},
		},
		{
			Name:  "exit-75-cooldown",
			Issue: "spec §8 / I7: a rate-limited worker (exit 75) is counted as a crash, or respawned at once (47 starts in 10 s on the June build with cooldown 0)",
			Summary: "Every worker exits 75 (KANBAN_RATE_LIMIT_EXIT_CODE). A rate-limited run must never count toward the breaker, " +
				"and the task must wait the (scaled) 300 s cooldown before it is spawned again. Measured on the real releases: " +
				"0.14.0 has no exit-75 handling — 2 starts, both booked crashed, gave_up; 0.15.0 the same crash, in its " +
				"re-promotion loop (unbounded); 0.16.0–0.19.0 book it rate_limited and hold the task 300 s (1 start, then " +
				"respawn_guarded every tick), but with cooldown 0 respawn it unboundedly. Must hold: no gave_up from exit 75, " +
				"no respawn within the cooldown.",
			Variant: "hermes-0.14",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				one(s, 0.001, 2000, 500, "throttled", schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: schedule.RateLimitedExitCode, DelayMs: rng.IntN(5)})
				s.TickMs = 20
				s.Tasks = []schedule.Task{{ID: taskID(rng), Title: "an agent over its provider's quota", Assignee: "throttled"}}
			},
		},
		{
			Name:  "issue-35240",
			Issue: "Hermes #35240: a leaked second dispatcher ticks the same board concurrently (no per-board dispatch lock)",
			Summary: "Two dispatchers (a gateway and the orphan `gateway run --replace` left) tick one board every 20 ms while 30 " +
				"cards are claimed and completed. Without the dispatch lock their ticks interleave: both write the board in one " +
				"tick, multiplying every lock-loss and WAL-reset exposure (0.14.0–0.17.0 have no lock — measured on 0.14.0 and " +
				"0.15.0: a held .dispatch.lock is ignored; 0.18.0+ skip the tick). Must hold (opt-in invariant one-writer-per-tick): " +
				"no dispatcher starts a tick while another one's tick is still writing; the loser skips and writes nothing. " +
				"Beyond the lock: 0.19.0 with its own workers on the Python side's SQLite 3.40.1 damages this board 10 of 10 " +
				"times through its post-commit probe (M1b), held on 3.53.4; hermes-0.19 does the same on --sqlite 3.50 (README).",
			Variant: "hermes-0.14",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				one(s, 0.001, 2000, 500, "finisher", schedule.Behaviour{Mode: schedule.ModeComplete})
				s.Dispatchers = 2
				s.TickMs = 20
				s.Expect = []string{"one-writer-per-tick"}
				for i := 0; i < 30; i++ {
					s.Tasks = append(s.Tasks, schedule.Task{ID: taskID(rng), Title: fmt.Sprintf("card %d", i+1), Assignee: "finisher"})
				}
			},
		},
		{
			Name:  "unknown-assignee",
			Issue: "spec §8 (last row): a task assigned to a profile that does not exist sits in ready forever, and nothing says so",
			Summary: "One card is assigned to `nobody`, which has no profile directory; a second card's worker completes, so the run " +
				"shows the dispatcher at work. Every release skips the card on every tick (`skipped_nonspawnable` in the tick's " +
				"result, no event): it never runs and nobody is told. Must hold (assignee-surfaced): by the end the card is " +
				"blocked with a reason, or an event on it says why it is not spawned.",
			Variant: "hermes-0.19",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				one(s, 0.001, 1500, 500, "finisher", schedule.Behaviour{Mode: schedule.ModeComplete, DelayMs: rng.IntN(5)})
				s.TickMs = 20
				s.Profiles = append(s.Profiles, schedule.Profile{Name: "nobody", Worker: schedule.Behaviour{Mode: schedule.ModeComplete}, Unregistered: true})
				s.Tasks = []schedule.Task{
					{ID: taskID(rng), Title: "a card for a profile that was never created", Assignee: "nobody"},
					{ID: taskID(rng), Title: "an ordinary card", Assignee: "finisher"},
				}
			},
		},
	}
}

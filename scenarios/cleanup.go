package scenarios

import (
	"math/rand/v2"

	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// cleanupScenarios exercise the harness's own promise in a run: nothing of
// the sandbox outlives it. Skipped cleanup was caught only by unit tests of
// the process table before; this runs it through every campaign.
func cleanupScenarios() []Scenario {
	return []Scenario{
		{
			Name:  "cleanup-hang",
			Issue: "kanbanchaos' own: no process of a run survives it (workers that hang until killed, dispatchers stopped mid-tick)",
			Summary: "Every worker hangs until killed (it never heartbeats, never exits). Four dispatchers tick the board every 5 ms; " +
				"a claim is extended while its worker's start is fresh, then the worker is killed and the run reclaimed " +
				"(counted on fixed: failure_limit 1 gives up on two tasks; two have max_retries 10, so their workers are alive " +
				"when the run's time is up), " +
				"and the dispatchers are stopped while their short ticks run. Must hold (no-survivors): once the run is over no process that carries the " +
				"sandbox's environment is alive — the harness's cleanup killed every one, whoever started it.",
			Variant: "fixed",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				s.Dispatchers = 4
				s.TimeScale = 0.0003 // 0.27 s claim TTL, 1.08 s heartbeat staleness
				s.TickMs = 5
				// A hanging worker's run ends after ~1.35 s (the stale
				// heartbeat, the claim TTL, the kill grace): with the limit
				// at 1 the breaker decides within the run.
				s.DurationMs, s.QuietMs = 2500, 500
				s.FailureLimit = 1
				s.Profiles = []schedule.Profile{{Name: "sleeper", Worker: schedule.Behaviour{Mode: schedule.ModeHang, DelayMs: rng.IntN(5)}}}
				// Two tasks trip at the first reclaim; two may retry ten
				// times, so their workers are alive when the time is up.
				for i := range 4 {
					t := schedule.Task{ID: taskID(rng), Title: "a worker that never returns", Assignee: "sleeper"}
					if i >= 2 {
						t.MaxRetries = 10
					}
					s.Tasks = append(s.Tasks, t)
				}
			},
		},
	}
}

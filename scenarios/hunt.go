package scenarios

import (
	"fmt"
	"math/rand/v2"

	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// huntScenarios aim at states of the newest release's state machine that
// the pinned regressions do not reach (issue 16: read from the installed
// 0.19.0's hermes_cli/kanban_db.py, never copied): each names the code path
// it drives and what a correct dispatcher must do there.
func huntScenarios() []Scenario {
	return []Scenario{
		{
			Name: "systemic-crash",
			Issue: "Hermes 0.16–0.19: the systemic-failure breaker (≥ 3 crashes with one error in a sweep trip at limit 1) " +
				"is undone in the same tick (open PRs #83067, #104077)",
			Summary: "Four cards whose workers all exit 1 at once, one dispatcher, crash grace 0: detect_crashed_workers finds " +
				"the four dead in one sweep, sees one error fingerprint ('pid N exited with code 1') four times and trips " +
				"every card at limit 1 (gave_up, consecutive_failures 1). recompute_ready runs next in the same tick with " +
				"the dispatcher's failure_limit (default 2), sees 1 < 2 and promotes every card again: a gave_up → promoted " +
				"pair per card, and a second start the fast trip was meant to save. Must hold: after gave_up no promoted or " +
				"claimed without a reset (breaker-holds), and starts ≤ the limit.",
			Variant: "hermes-0.19",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				s.Dispatchers = 1
				s.TimeScale = 0.002 // 120 ms ticks
				s.CrashGraceMs = new(int)
				s.DurationMs, s.QuietMs = 2500, 1000
				s.Profiles = []schedule.Profile{{Name: "fleet", Worker: schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 1, DelayMs: rng.IntN(5)}}}
				for i := 0; i < 4; i++ {
					s.Tasks = append(s.Tasks, schedule.Task{ID: taskID(rng), Title: fmt.Sprintf("card %d of a provider outage", i+1), Assignee: "fleet"})
				}
			},
		},
	}
}

// Package scenarios holds the named, documented scenarios: one per known
// Hermes failure. A scenario turns a seed into a schedule; it runs nothing.
package scenarios

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Scenario is a named schedule generator.
type Scenario struct {
	Name    string
	Issue   string // the Hermes issue it reproduces
	Summary string // what happens and what must hold
	// Variant is the variant the scenario runs when none is given.
	Variant string
	// Engine is the SQLite engine it runs on unless told otherwise ("" =
	// the default 3.54).
	Engine string
	// Knobs are set on top of any variant: they are what the scenario is
	// about (e.g. journal_mode=DELETE). A user's --knob overrides them.
	Knobs map[string]string
	build func(rng *rand.Rand, s *schedule.Schedule)
}

// Build makes the scenario's schedule for seed and variant.
func (sc Scenario) Build(seed uint64, variant string) schedule.Schedule {
	if variant == "" {
		variant = sc.Variant
	}
	s := schedule.Schedule{Scenario: sc.Name, Seed: seed, Variant: variant, Engine: sc.Engine}
	if len(sc.Knobs) > 0 {
		s.Knobs = maps.Clone(sc.Knobs)
	}
	sc.build(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), &s)
	s.DispatcherOffsetsMs = offsets(rand.New(rand.NewPCG(seed, 1)), s)
	return s
}

// offsets spreads the dispatchers' first ticks over one tick interval, so
// they do not tick in lock step (several gateways never do).
func offsets(rng *rand.Rand, s schedule.Schedule) []int {
	tick := s.TickMs
	if tick == 0 {
		tick = int(60000 * s.TimeScale)
	}
	if s.Dispatchers < 1 || s.Dispatchers > 64 {
		return nil // out of range: Validate says so
	}
	out := make([]int, s.Dispatchers)
	for i := 1; i < len(out); i++ {
		out[i] = rng.IntN(max(tick, 1))
	}
	return out
}

// Respread recomputes the dispatcher offsets after Dispatchers, TickMs or
// TimeScale were overridden.
func Respread(s *schedule.Schedule) {
	s.DispatcherOffsetsMs = offsets(rand.New(rand.NewPCG(s.Seed, 1)), *s)
}

// All returns every scenario in name order.
func All() []Scenario {
	all := slices.Concat(breakerScenarios(), corruptionScenarios(), pinScenarios(), cleanupScenarios(), huntScenarios())
	slices.SortFunc(all, func(a, b Scenario) int { return strings.Compare(a.Name, b.Name) })
	return all
}

// breakerScenarios reproduce the spawn-loop family: the breaker that does
// not hold.
func breakerScenarios() []Scenario {
	return []Scenario{
		{
			Name:  "issue-30417",
			Issue: "Hermes #30417 (v0.15.x): the breaker trips and is re-promoted in the same tick, its counter reset",
			Summary: "One dispatcher; the assignee's worker crashes at startup (a missing skill). The crash sweep trips the " +
				"breaker (gave_up), then recompute_ready promotes the blocked task in the same tick, resetting " +
				"consecutive_failures to 0, and the next tick spawns it again. Measured on the real releases (one task, " +
				"exit 1, dispatch_once every 0.2 s): 0.14.0 2 starts, then blocked (its recompute_ready promotes todo " +
				"tasks only); 0.15.0 38 starts in 8 s, unbounded; 0.16.0–0.19.0 2 starts, then blocked (#35072). " +
				"Must hold: the breaker holds (no promoted/claimed after gave_up) and spawns ≤ limit.",
			Variant: "hermes-0.15",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				s.Dispatchers = 1
				s.TimeScale = 0.002 // 120 ms ticks, 60 ms crash grace
				s.DurationMs, s.QuietMs = 2500, 1000
				s.Profiles = []schedule.Profile{{Name: "reviewer", Worker: schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 1, DelayMs: rng.IntN(5)}}}
				s.Tasks = []schedule.Task{{ID: taskID(rng), Title: "review with a missing skill", Assignee: "reviewer"}}
			},
		},
		{
			Name:  "issue-30896",
			Issue: "Hermes #30896: a crash-at-once worker respawned 11 times in seconds despite failure_limit 2",
			Summary: "A misrouted card is assigned to a profile whose worker exits 1 within milliseconds. Three dispatchers " +
				"(gateways without a dispatch lock) tick the same board every 20 ms. Measured with the real releases " +
				"against this scenario: 0.14.0 2 worker starts, gave_up, and the breaker holds; 0.15.0 10 starts in 4 s " +
				"(gave_up → promoted with the counter reset, unbounded). Must hold: worker starts per task " +
				"≤ the failure limit (counted from the ledger), the breaker holds, bookkeeping and integrity are intact.",
			Variant: "hermes-0.15",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				s.Dispatchers = 3
				s.TimeScale = 0.001 // 30 ms crash grace, 900 ms claim TTL
				s.TickMs = 20
				s.DurationMs, s.QuietMs = 3000, 1000
				s.Profiles = []schedule.Profile{{Name: "ghost", Worker: schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 1, DelayMs: rng.IntN(5)}}}
				s.Tasks = []schedule.Task{{ID: taskID(rng), Title: "misrouted card", Assignee: "ghost"}}
			},
		},
	}
}

// Names lists the scenario names.
func Names() []string {
	var out []string
	for _, s := range All() {
		out = append(out, s.Name)
	}
	return out
}

// Lookup finds a scenario by name.
func Lookup(name string) (Scenario, error) {
	for _, s := range All() {
		if s.Name == name {
			return s, nil
		}
	}
	return Scenario{}, fmt.Errorf("unknown scenario %q (valid: %s)", name, strings.Join(Names(), ", "))
}

func taskID(rng *rand.Rand) string { return fmt.Sprintf("t_%08x", rng.Uint32()) }

package harness

import (
	"context"
	"slices"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// TestFixedLeavesOtherGatewaysWorkers is the soak's finding: with two
// dispatchers, one saw the other's exited exit-75 worker as a dead pid (its
// zombie) and booked a counted crash — only the worker's parent can read
// its exit code. fixed (own_workers) leaves another live gateway's worker
// to that gateway, so every exit 75 is booked rate-limited and waited out.
// Before the knob this schedule failed rate-limit on 8 of 8 replays.
func TestFixedLeavesOtherGatewaysWorkers(t *testing.T) {
	t.Parallel()
	s := schedule.Schedule{Scenario: "cleanup-hang", Seed: 999478256, Variant: "fixed", Dispatchers: 2,
		DispatcherOffsetsMs: []int{0, 2}, TimeScale: 0.0003, TickMs: 10, DurationMs: 800, QuietMs: 300,
		Profiles: []schedule.Profile{{Name: "sleeper", Worker: schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 75}}},
		Tasks:    []schedule.Task{{ID: "t_ad2e8963", Title: "rate limited", Assignee: "sleeper"}}}
	for i := range 3 {
		res, err := Run(context.Background(), s, Options{})
		if err != nil {
			t.Fatal(err)
		}
		v := res.Verdict
		if slices.Contains(v.Failed(), oracle.RateLimit) {
			t.Fatalf("run %d: %s violated: %+v", i, oracle.RateLimit, v.Violations)
		}
		if !slices.Contains(v.Held(), oracle.RateLimit) {
			t.Logf("run %d: rate-limit not checked: %+v %q", i, v.NotChecked, v.Unknowns)
		}
	}
}

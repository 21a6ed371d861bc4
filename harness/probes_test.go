package harness

import (
	"context"
	"slices"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// TestProbesOfARealRun: a run of issue-30896 on hermes-0.14 trips the
// breaker, and the fixed variant defers spawns for backoff; both report
// which probes they could reach.
func TestProbesOfARealRun(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		variant, want string
	}{{"hermes-0.14", ProbeBreakerTrip}, {"fixed", ProbeBackoff}} {
		s := build(t, "issue-30896", c.variant, 3)
		s.DurationMs, s.QuietMs = 800, 300
		if c.variant == "fixed" {
			// Rate limited: the fix's 300 s cooldown (300 ms here) defers
			// the respawn for many 20 ms ticks. One dispatcher: only the
			// parent of a worker sees its exit code, the others take the
			// exit for a crash.
			s.Profiles[0].Worker = schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: schedule.RateLimitedExitCode}
			s.Dispatchers = 1
			scenarios.Respread(&s)
		}
		res, err := Run(context.Background(), s, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Probes == nil || !slices.Contains(res.Probes.Reached, c.want) || !slices.Contains(res.Probes.Applicable, ProbeBusyTimeout) {
			t.Errorf("%s: probes %+v, want %s reached", c.variant, res.Probes, c.want)
		}
		if c.variant == "hermes-0.14" && slices.Contains(res.Probes.Applicable, ProbeBackoff) {
			t.Errorf("hermes-0.14 has no backoff, yet the probe counts as reachable")
		}
		res.Discard()
	}
}

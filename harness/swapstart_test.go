package harness

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// TestDispatcherStartingAfterASwapIsUndecided: a dispatcher whose start
// comes after the board was swapped refuses the board (fixed fails closed).
// That is the subject's behaviour, not a kanbanchaos error: the run is
// undecided — it did not have the dispatchers it meant to test — where it
// was a harness error (exit 4; 2 of 100 m6-swap-while-open runs at load 42,
// seeds 250760205 and 3619865486, whose dispatchers connected only after
// the swap).
func TestDispatcherStartingAfterASwapIsUndecided(t *testing.T) {
	t.Parallel()
	s := build(t, "m6-swap-while-open", "fixed", 1)
	s.Dispatchers, s.DispatcherOffsetsMs = 2, []int{0, 600}
	s.DurationMs, s.QuietMs = 1000, 200
	s.Faults = []schedule.Fault{{AtMs: 100, Kind: schedule.FaultSwap}}
	res, err := Run(context.Background(), s, Options{})
	if err != nil {
		t.Fatalf("a dispatcher refusing a swapped board is a harness error: %v", err)
	}
	v := res.Verdict
	if v.Status != oracle.Unknown || !slices.ContainsFunc(v.Unknowns, func(u string) bool { return strings.Contains(u, "refused the board") }) {
		t.Fatalf("verdict %s, unknowns %q; want undecided: a dispatcher started only after the fault", v.Status, v.Unknowns)
	}
}

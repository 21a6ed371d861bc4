package compare

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/oracle"
)

func failing(spawns int, first float64, invs ...string) Run {
	v := oracle.Verdict{Status: oracle.Fail, Spawns: map[string]int{"t_00000001": spawns}}
	for _, inv := range invs {
		x := oracle.Violation{Invariant: inv, AtMs: first}
		if inv == oracle.NoLostWrites {
			// As decoded from an engine's JSON: a float64.
			x.Evidence = map[string]any{"lost_commits": float64(3)}
		}
		v.Violations = append(v.Violations, x)
	}
	return RunOf(v, "3.54.1", "")
}

func passing(spawns int) Run {
	return RunOf(oracle.Verdict{Status: oracle.Pass, Spawns: map[string]int{"t_00000001": spawns}}, "3.54.1", "")
}

func TestSummarizeCountsEachChange(t *testing.T) {
	pairs := []Pair{
		{Scenario: "s", Seed: 3, A: failing(200, 40, oracle.Spawns, oracle.BreakerHolds), B: passing(2)},                    // fixed
		{Scenario: "s", Seed: 1, A: failing(100, 60, oracle.Spawns), B: failing(90, 50, oracle.Spawns)},                     // unchanged
		{Scenario: "s", Seed: 2, A: passing(2), B: failing(2, 10, oracle.Integrity, oracle.NoLostWrites)},                   // broken
		{Scenario: "s", Seed: 4, A: passing(1), B: passing(1)},                                                              // clean
		{Scenario: "s", Seed: 5, A: failing(5, 0, oracle.Spawns), B: RunOf(oracle.Verdict{Status: oracle.Unknown}, "", "")}, // undecided
	}
	c := Summarize("hermes-0.14", "fixed", pairs)
	if c.Fixed != 1 || c.Unchanged != 1 || c.Broken != 1 || c.Clean != 1 || c.Undecided != 1 || c.FailingA != 3 {
		t.Fatalf("changes: %+v", c)
	}
	want := "B fixes 1 of 3 failing seeds, breaks 1, unchanged 1, undecided 1; 1 pass on both"
	if c.Words != want {
		t.Errorf("words %q, want %q", c.Words, want)
	}
	for i, p := range c.Pairs {
		if p.Seed != uint64(i+1) {
			t.Fatalf("pairs not in seed order: %v", c.Pairs)
		}
	}
	if c.Pairs[0].Change != Unchanged || c.Pairs[1].Change != Broken || c.Pairs[2].Change != Fixed {
		t.Errorf("per-pair changes: %v %v %v", c.Pairs[0].Change, c.Pairs[1].Change, c.Pairs[2].Change)
	}
	if c.Status() != oracle.Fail {
		t.Errorf("B fails a seed: status %s, want fail", c.Status())
	}
	// B: 1 corrupt run of 5, 3 lost commits (float64 evidence counts).
	if c.B.Corrupted != 1 || c.B.CorruptionRate != 0.2 || c.B.LostCommits != 3 || c.A.Corrupted != 0 {
		t.Errorf("corruption: A %+v B %+v", c.A, c.B)
	}
	// A's first violations: 40, 60 (the untimed 0 does not count) → 50.
	if c.A.MedianFirstViolationMs != 50 || c.B.MedianFirstViolationMs != 30 {
		t.Errorf("median first violation A %v B %v, want 50 and 30", c.A.MedianFirstViolationMs, c.B.MedianFirstViolationMs)
	}
	if got := c.A.SpawnsPerTask; got != (Spread{N: 5, P50: 5, P99: 200, Max: 200}) {
		t.Errorf("A spawns per task %+v", got)
	}
	inv := map[string]InvariantRow{}
	for _, r := range c.Invariants {
		inv[r.Invariant] = r
	}
	if inv[oracle.Spawns] != (InvariantRow{oracle.Spawns, 3, 1}) || inv[oracle.Integrity] != (InvariantRow{oracle.Integrity, 0, 1}) {
		t.Errorf("invariant rows %+v", c.Invariants)
	}
}

func TestStatusIsB(t *testing.T) {
	fixedAll := Summarize("a", "b", []Pair{{Seed: 1, A: failing(9, 5, oracle.Spawns), B: passing(2)}})
	if fixedAll.Status() != oracle.Pass || fixedAll.Words != "B fixes 1 of 1 failing seeds, breaks 0, unchanged 0" {
		t.Errorf("all fixed: %s %q", fixedAll.Status(), fixedAll.Words)
	}
	undecided := Summarize("a", "b", []Pair{{Seed: 1, A: passing(1), B: RunOf(oracle.Verdict{Status: oracle.Unknown}, "", "")}})
	if undecided.Status() != oracle.Unknown {
		t.Errorf("B undecided: status %s", undecided.Status())
	}
}

func TestSpreadNearestRank(t *testing.T) {
	xs := make([]int, 100)
	for i := range xs {
		xs[i] = 100 - i // 100 … 1, unsorted on purpose
	}
	if got := spread(xs); got != (Spread{N: 100, P50: 50, P99: 99, Max: 100}) {
		t.Errorf("spread(1..100) = %+v", got)
	}
	if got := spread([]int{7}); got != (Spread{N: 1, P50: 7, P99: 7, Max: 7}) {
		t.Errorf("spread([7]) = %+v", got)
	}
	if got := spread(nil); got != (Spread{}) {
		t.Errorf("spread(nil) = %+v", got)
	}
}

func TestWriteTextIsSideBySide(t *testing.T) {
	c := Summarize("hermes-0.14", "pr30973", []Pair{
		{Scenario: "issue-30896", Seed: 1, A: failing(300, 45, oracle.Spawns, oracle.BreakerHolds), B: failing(280, 44, oracle.Spawns)},
		{Scenario: "issue-30896", Seed: 2, A: failing(200, 55, oracle.Spawns), B: passing(2)},
	})
	var buf bytes.Buffer
	if err := c.WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{
		"A: hermes-0.14", "B: pr30973",
		"failing runs", "2/2", "1/2",
		"  spawns", "  breaker-holds",
		"spawns/task p50", "spawns/task max", "300", "280",
		"corruption rate", "0/2 (0%)",
		"lost writes", "median first violation", "+50ms",
		"seeds fixed: 2",
		"verdict: B fixes 1 of 2 failing seeds, breaks 0, unchanged 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	// Columns line up: "failing runs" and "corruption rate" put A's cell
	// in the same column.
	col := func(label string) int {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, label) {
				rest := line[len(label):]
				return len(label) + len(rest) - len(strings.TrimLeft(rest, " "))
			}
		}
		return -1
	}
	if a, b := col("failing runs"), col("corruption rate"); a != b || a < 0 {
		t.Errorf("A column at %d and %d:\n%s", a, b, out)
	}
	// JSON round trip: the report reads compare.json back.
	data, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var back Comparison
	if err := json.Unmarshal(data, &back); err != nil || back.Words != c.Words || len(back.Pairs) != 2 || back.Pairs[0].A.Spawns["t_00000001"] != 300 {
		t.Fatalf("round trip: %v %+v", err, back)
	}
}

package campaign

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

func swarms(t *testing.T, names ...string) []scenarios.Swarm {
	t.Helper()
	var out []scenarios.Swarm
	for _, n := range names {
		sc, err := scenarios.Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		// Short runs: the campaign machinery is under test, not the bugs.
		out = append(out, sc.Swarm().WithMaxPhases(800, 300))
	}
	return out
}

// TestShardsPartitionTheRuns: for any number of runs and shards, the shards
// 0/n … n-1/n hold every run index exactly once, and a run's seed and
// scenario do not depend on the shard that runs it.
func TestShardsPartitionTheRuns(t *testing.T) {
	for _, runs := range []int{0, 1, 3, 7, 50, 200} {
		for n := 1; n <= 6; n++ {
			whole := &Campaign{Swarms: swarms(t, "issue-30417", "issue-30896", "r5-crash-loop"), Seed: 42, Runs: runs}
			want := whole.Plan()
			var got []Planned
			for i := 0; i < n; i++ {
				part := *whole
				part.Shard = Shard{Index: i, Count: n}
				got = append(got, part.Plan()...)
			}
			slices.SortFunc(got, func(a, b Planned) int { return a.Index - b.Index })
			if !slices.Equal(got, want) {
				t.Fatalf("%d runs in %d shards: union %v, want %v", runs, n, got, want)
			}
		}
	}
	if _, err := ParseShard("4/4"); err == nil {
		t.Error("shard 4/4 accepted")
	}
	if s, err := ParseShard("3/4"); err != nil || s != (Shard{3, 4}) {
		t.Errorf("3/4: %v %v", s, err)
	}
}

// fakeExec decides a run by its seed, so campaigns without processes have
// known outcomes: every fifth seed fails, every seventh is undecided.
func fakeExec(_ context.Context, s schedule.Schedule, _ harness.Options) (harness.Result, error) {
	v := oracle.Verdict{Status: oracle.Pass, Spawns: map[string]int{}}
	switch {
	case s.Seed%5 == 0:
		v.Status = oracle.Fail
		v.Violations = []oracle.Violation{{Invariant: oracle.Spawns, Task: s.Tasks[0].ID, Message: "too many"}}
	case s.Seed%7 == 0:
		v.Status, v.Unknowns = oracle.Unknown, []string{"deadline"}
	}
	return harness.Result{Schedule: s, Verdict: v, Spawns: len(s.Tasks), Elapsed: time.Millisecond,
		Probes: &harness.Probes{Applicable: []string{harness.ProbeBreakerTrip, harness.ProbeBusyTimeout}, Reached: []string{harness.ProbeBreakerTrip}}}, nil
}

// TestMergeOfShardsEqualsTheWholeCampaign: merged shard summaries have the
// run set, the counts, the probe coverage and the verdict of the unsharded
// campaign; overlapping or foreign shards are bad input, a missing shard
// makes the verdict unknown.
func TestMergeOfShardsEqualsTheWholeCampaign(t *testing.T) {
	ctx := context.Background()
	for _, seed := range []uint64{1, 2, 3, 4, 5} {
		base := Campaign{Swarms: swarms(t, "issue-30896", "issue-30417"), Seed: seed, Runs: 30, KeepGoing: true, Concurrency: 3, Runner: fakeExec}
		whole := base
		want, err := whole.Run(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var parts []Summary
		for i := 0; i < 4; i++ {
			part := base
			part.Shard = Shard{i, 4}
			s, err := part.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, s)
		}
		got, err := Merge(parts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Indices, want.Indices) || got.Verdict != want.Verdict || got.Failed != want.Failed ||
			got.Unknown != want.Unknown || got.Passed != want.Passed || !slices.Equal(got.Probes, want.Probes) {
			t.Fatalf("seed %d: merged %+v\nwhole %+v", seed, got, want)
		}
		if !slices.EqualFunc(got.Failures, want.Failures, func(a, b SeedRef) bool { return a.Index == b.Index && a.Seed == b.Seed }) {
			t.Fatalf("seed %d: failing runs %v, want %v", seed, got.Failures, want.Failures)
		}
		if _, err := Merge(append(parts, parts[1])); !errors.Is(err, ErrMergeInput) {
			t.Errorf("a shard given twice: %v", err)
		}
		other := parts[2]
		other.Seed++
		if _, err := Merge([]Summary{parts[0], parts[1], other, parts[3]}); !errors.Is(err, ErrMergeInput) || !strings.Contains(err.Error(), "another campaign") {
			t.Errorf("a shard of another campaign: %v", err)
		}
		if m, err := Merge(parts[:3]); err != nil || (m.Verdict != oracle.Unknown && m.Verdict != oracle.Fail) || !strings.Contains(m.Stopped, "shard is missing") {
			t.Errorf("a missing shard: verdict %s, %q, %v", m.Verdict, m.Stopped, err)
		}
	}
}

// TestCampaignStopsAtFirstFailureAndDoublechecks: without KeepGoing no run
// starts after a failure; the doublecheck replays about its percentage of
// runs and counts a changed verdict as divergence, not as a failure.
func TestCampaignStopsAtFirstFailureAndDoublechecks(t *testing.T) {
	c := Campaign{Swarms: swarms(t, "issue-30896"), Seed: 9, Runs: 200, Concurrency: 1, Runner: fakeExec}
	s, err := c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Failed != 1 || s.Done == 200 || !strings.Contains(s.Stopped, "first failure") || s.Verdict != oracle.Fail {
		t.Fatalf("want a stop after the first failure: %+v", s)
	}

	var mu sync.Mutex
	calls := map[uint64]int{}
	flaky := func(ctx context.Context, sch schedule.Schedule, o harness.Options) (harness.Result, error) {
		mu.Lock()
		calls[sch.Seed]++
		n := calls[sch.Seed]
		mu.Unlock()
		r, err := fakeExec(ctx, sch, o)
		if n == 2 && sch.Seed%3 == 0 { // the replay of every third seed flips
			r.Verdict.Status = oracle.Fail
			r.Verdict.Violations = []oracle.Violation{{Invariant: oracle.BreakerHolds}}
		}
		return r, err
	}
	c = Campaign{Swarms: swarms(t, "issue-30896"), Seed: 9, Runs: 400, Concurrency: 4, KeepGoing: true, Doublecheck: 25, Runner: flaky}
	s, err = c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Doublechecked < 70 || s.Doublechecked > 130 {
		t.Errorf("25%% of 400 runs doublechecked: got %d", s.Doublechecked)
	}
	wantDiv, wantStatus := 0, 0
	for seed, n := range calls {
		// A flipped replay diverges: from pass or unknown (a changed
		// verdict), or from a failure of another invariant.
		if n == 2 && seed%3 == 0 {
			wantDiv++
			if seed%5 != 0 {
				wantStatus++
			}
		}
	}
	if s.Diverged != wantDiv || s.StatusDiverged != wantStatus || wantDiv == wantStatus {
		t.Errorf("diverged %d (%d changed verdict), want %d (%d)", s.Diverged, s.StatusDiverged, wantDiv, wantStatus)
	}
	if s.Failed != len(s.Failures) || s.FailuresByInvariant[oracle.BreakerHolds] != 0 {
		t.Errorf("a divergent replay must not count as a failure: %+v", s.FailuresByInvariant)
	}
}

// TestShrinkVotesAndMinimises: with a system that fails whenever some task's
// worker crashes at once, shrinking ends at one such task and one
// dispatcher; with a system that fails at random, the original failure does
// not win its vote and is reported flaky, not shrunk.
func TestShrinkVotesAndMinimises(t *testing.T) {
	crashes := func(_ context.Context, s schedule.Schedule, _ harness.Options) (harness.Result, error) {
		v := oracle.Verdict{Status: oracle.Pass}
		for _, tk := range s.Tasks {
			if p, _ := s.Profile(tk.Assignee); p.Worker.Mode == schedule.ModeExitNow && p.Worker.Exit == 1 && s.Variant != FixedVariant {
				v.Status = oracle.Fail
				v.Violations = append(v.Violations, oracle.Violation{Invariant: oracle.Spawns, Task: tk.ID})
			}
		}
		return harness.Result{Schedule: s, Verdict: v}, nil
	}
	c := Campaign{Swarms: swarms(t, "issue-30896"), Variant: "hermes-0.14", Runs: 1, Concurrency: 3, ShrinkTime: time.Minute,
		ArtifactsDir: t.TempDir(), Command: "kanbanchaos", Runner: crashes}
	// A draw with several tasks and dispatchers that fails.
	for seed := uint64(1); ; seed++ {
		s, p := c.Schedule(Planned{Seed: seed, Scenario: "issue-30896"})
		r, _ := crashes(context.Background(), s, harness.Options{})
		if len(p.Tasks) >= 4 && p.Dispatchers >= 4 && r.Verdict.Status == oracle.Fail {
			c.RunSeeds = []uint64{seed}
			break
		}
	}
	sum, err := c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sr := sum.Shrunk
	if sr == nil || len(sr.Minimal.Tasks) != 1 || sr.Minimal.Dispatchers != 1 || sr.Invariant != oracle.Spawns ||
		!sr.FixedPass || !strings.HasPrefix(sr.Stopped, "local minimum") {
		t.Fatalf("shrunk: %+v", sr)
	}
	if p, _ := sr.Minimal.Profile(sr.Minimal.Tasks[0].Assignee); p.Worker.Mode != schedule.ModeExitNow || p.Worker.DelayMs != 0 {
		t.Errorf("minimal worker %+v, want exit-now with no delay", p.Worker)
	}
	for _, f := range []string{"schedule.json", "original.json", "repro.sh", "shrink.json"} {
		if _, err := os.Stat(filepath.Join(sr.Artifacts, f)); err != nil {
			t.Error(err)
		}
	}
	if back, err := schedule.Read(filepath.Join(sr.Artifacts, "schedule.json")); err != nil || back.Dispatchers != 1 {
		t.Errorf("schedule.json: %v", err)
	}

	var mu sync.Mutex
	calls := 0
	coin := func(ctx context.Context, s schedule.Schedule, o harness.Options) (harness.Result, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		r, _ := crashes(ctx, s, o)
		if calls > 1 && calls%4 != 0 { // after the first failure, one run in four fails
			r.Verdict = oracle.Verdict{Status: oracle.Pass}
		}
		return r, nil
	}
	c.Runner, c.Votes, c.Concurrency = coin, 5, 1
	sum, err = c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if sum.Shrunk == nil || sum.Shrunk.Stopped != "not reproducible" || len(sum.Shrunk.Minimal.Tasks) != len(sum.Shrunk.Original.Tasks) {
		t.Fatalf("a flaky failure must be reported, not shrunk: %+v", sum.Shrunk)
	}
}

// TestShrinkTargetsTheDamage: a run that corrupted the board and overspent
// its spawns is shrunk for the corruption; otherwise for the first found.
func TestShrinkTargetsTheDamage(t *testing.T) {
	if got := primary([]string{oracle.Spawns, oracle.BreakerHolds, oracle.Sidecars, oracle.Integrity}); got != oracle.Integrity {
		t.Errorf("got %s, want integrity", got)
	}
	if got := primary([]string{oracle.Spawns, oracle.BreakerHolds}); got != oracle.Spawns {
		t.Errorf("got %s, want spawns", got)
	}
}

// TestDoublecheckSampleIsExact: the sample is the percentage of the whole
// campaign's runs, rounded up — 10% of 20 runs replays 2, never none — and
// the same runs whichever shard runs them.
func TestDoublecheckSampleIsExact(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		pct  float64
		runs int
		want int
	}{{10, 20, 2}, {10, 5, 1}, {25, 400, 100}, {100, 7, 7}, {0, 50, 0}, {0.5, 10, 1}} {
		cp := Campaign{Seed: 3, Runs: c.runs, Doublecheck: c.pct}
		if got := len(cp.doublecheckSample()); got != c.want {
			t.Errorf("%g%% of %d runs: %d sampled, want %d", c.pct, c.runs, got, c.want)
		}
	}
	whole := (&Campaign{Seed: 5, Runs: 40, Doublecheck: 20}).doublecheckSample()
	shard := (&Campaign{Seed: 5, Runs: 40, Doublecheck: 20, Shard: Shard{Index: 1, Count: 4}}).doublecheckSample()
	if !maps.Equal(whole, shard) {
		t.Errorf("a shard samples %v, the whole campaign %v", shard, whole)
	}
}

// TestKeepFailingCapsTheKeptRuns: past KeepFailing, a failing or undecided
// run's sandbox is removed and counted as not kept, so the summary says how
// many a larger --keep would have kept.
func TestKeepFailingCapsTheKeptRuns(t *testing.T) {
	tmp := t.TempDir()
	var made []string
	var mu sync.Mutex
	withSandbox := func(ctx context.Context, s schedule.Schedule, o harness.Options) (harness.Result, error) {
		res, err := fakeExec(ctx, s, o)
		if res.Verdict.Status != oracle.Pass {
			dir, _ := os.MkdirTemp(tmp, "sandbox-")
			os.WriteFile(filepath.Join(dir, "ledger.jsonl"), []byte("{}\n"), 0o644)
			res.Artifacts = dir
			mu.Lock()
			made = append(made, dir)
			mu.Unlock()
		}
		return res, err
	}
	arts := filepath.Join(tmp, "arts")
	c := Campaign{Swarms: swarms(t, "issue-30896"), Seed: 3, Runs: 40, KeepGoing: true, Concurrency: 3,
		Runner: withSandbox, ArtifactsDir: arts, KeepFailing: 4}
	sum, err := c.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	notPass := sum.Failed + sum.Unknown
	if notPass <= 4 {
		t.Fatalf("the fake runner made only %d failing or undecided runs; the cap of 4 is not tested", notPass)
	}
	if sum.Kept != 4 || sum.NotKept != notPass-4 {
		t.Errorf("kept %d, not kept %d; want 4 and %d", sum.Kept, sum.NotKept, notPass-4)
	}
	kept, _ := os.ReadDir(filepath.Join(arts, "runs"))
	if len(kept) != 4 {
		t.Errorf("%d run directories under runs/, want 4", len(kept))
	}
	for _, dir := range made {
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("sandbox %s left behind: a run is moved under runs/ or removed", dir)
		}
	}
}

package cli

// What fuzz prints and writes: one line per run, the summary, the shrunk
// failure, the regression it saves and the JUnit report.

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/campaign"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/report"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
)

// runLine is one run in text: its verdict, seed and replay command.
func runLine(r campaign.RunRecord) string {
	what := ""
	switch r.Status {
	case oracle.Fail:
		what = ": " + strings.Join(r.Failed, ", ")
	case oracle.Unknown:
		what = ": " + strings.Join(r.Unknowns, "; ")
	case oracle.Pass:
	default:
		what = ": " + r.Error
	}
	line := fmt.Sprintf("%-7s run %d seed=%d %s %s (%d task(s), %d dispatcher(s), %d spawns)%s",
		strings.ToUpper(string(r.Status)), r.Index, r.Seed, r.Scenario, r.Variant, r.Tasks, r.Dispatchers, r.Spawns, what)
	if d := r.Doublecheck; d != nil && d.Diverged {
		line += fmt.Sprintf(" · doublecheck DIVERGED: %s %s", d.Status, strings.Join(d.Failed, ", "))
	}
	if r.Artifacts != "" {
		line += "\n        artifacts: " + r.Artifacts
	}
	return line + "\n        replay: " + r.Replay
}

func printSummary(w io.Writer, s campaign.Summary) {
	fmt.Fprintf(w, "runs: %d of %d done (%d pass, %d fail, %d unknown, %d harness errors) in %v — %.1f runs/min, %.1f spawns/s\n",
		s.Done, len(s.Planned), s.Passed, s.Failed, s.Unknown, s.Errors, (time.Duration(s.ElapsedMs) * time.Millisecond).Round(time.Second),
		s.RunsPerMinute, s.SpawnsPerSec)
	if s.Stopped != "" {
		fmt.Fprintf(w, "stopped: %s\n", s.Stopped)
	}
	if len(s.FailuresByInvariant) > 0 {
		var parts []string
		for _, inv := range sortedKeys(s.FailuresByInvariant) {
			parts = append(parts, fmt.Sprintf("%s %d", inv, s.FailuresByInvariant[inv]))
		}
		fmt.Fprintf(w, "failures by invariant (runs): %s\n", strings.Join(parts, ", "))
	}
	if s.Doublechecked == 0 && s.DoublecheckPct > 0 {
		fmt.Fprintf(w, "doublecheck: 0 run(s) replayed (%g%% of %d runs were to be; the sampled ones did not run)\n", s.DoublecheckPct, s.Runs)
	}
	if s.Doublechecked > 0 {
		fmt.Fprintf(w, "doublecheck: %d run(s) replayed, %d diverged (%.1f%%): %d changed verdict, %d failed again with other invariants — harness flakiness, not counted as failures\n",
			s.Doublechecked, s.Diverged, 100*float64(s.Diverged)/float64(s.Doublechecked), s.StatusDiverged, s.Diverged-s.StatusDiverged)
		for _, d := range s.Divergences {
			fmt.Fprintf(w, "  run %d seed=%d %s: %s\n", d.Index, d.Seed, d.Scenario, d.Status)
		}
	}
	fmt.Fprintf(w, "probes (runs that reached it / runs that could):\n")
	for _, p := range s.Probes {
		mark := ""
		switch {
		case p.Applicable == 0:
			mark = "  not reachable with these variants, knobs and workers"
		case p.Reached == 0:
			mark = "  NEVER REACHED"
		}
		fmt.Fprintf(w, "  %-24s %4d / %-4d%s\n", p.Name, p.Reached, p.Applicable, mark)
	}
	if len(s.NeverReached) > 0 {
		fmt.Fprintf(w, "warning: never reached: %s — these runs say little about those states\n", strings.Join(s.NeverReached, ", "))
	}
	if sr := s.Shrunk; sr != nil {
		printShrunk(w, *sr)
	}
	if s.Artifacts != "" {
		fmt.Fprintf(w, "artifacts: %s\n", s.Artifacts)
	}
	if s.NotKept > 0 {
		fmt.Fprintf(w, "kept: %d failing or undecided runs; %d more were not kept (--keep %d keeps them all; each replays from its seed)\n",
			s.Kept, s.NotKept, s.Kept+s.NotKept)
	}
	switch s.Verdict {
	case oracle.Pass:
		fmt.Fprintf(w, "verdict: PASS — no violation in %d runs (seed %d)\n", s.Done, s.Seed)
	case oracle.Fail:
		fmt.Fprintf(w, "verdict: FAIL — %s in %d of %d runs (seed %d)\n", strings.Join(sortedKeys(s.FailuresByInvariant), ", "), s.Failed, s.Done, s.Seed)
	case oracle.Unknown:
		fmt.Fprintf(w, "verdict: UNKNOWN — no violation, but %d run(s) undecided and %d of %d not run (seed %d)\n",
			s.Unknown, len(s.Planned)-s.Done, len(s.Planned), s.Seed)
	default:
		fmt.Fprintf(w, "verdict: ERROR — the harness failed on %d run(s) (seed %d)\n", s.Errors, s.Seed)
	}
}

func printShrunk(w io.Writer, sr campaign.ShrinkResult) {
	fmt.Fprintf(w, "shrunk run %d (seed %d, %s on %s): %d task(s), %d dispatcher(s) → %d task(s), %d dispatcher(s), %d ms + %d ms in %.0fs "+
		"(%d candidates, %d re-runs; %s); original reproduced %s, minimal %s\n",
		sr.Index, sr.Seed, sr.Invariant, sr.Variant, len(sr.Original.Tasks), sr.Original.Dispatchers, len(sr.Minimal.Tasks), sr.Minimal.Dispatchers,
		sr.Minimal.DurationMs, sr.Minimal.QuietMs, float64(sr.ElapsedMs)/1000, sr.Candidates, sr.Runs, sr.Stopped, sr.Confirmed, sr.Reproduced)
	if sr.Fixed != "" {
		fmt.Fprintf(w, "minimal schedule on %s: %s\n", campaign.FixedVariant, sr.Fixed)
	}
	if sr.Note != "" {
		fmt.Fprintf(w, "note: %s\n", sr.Note)
	}
	data, _ := json.MarshalIndent(sr.Minimal, "", "  ")
	fmt.Fprintf(w, "minimal schedule:\n%s\n", data)
	if sr.Artifacts != "" {
		fmt.Fprintf(w, "written: %s/{schedule.json,original.json,repro.sh,regression.txtar,shrink.json}\n", sr.Artifacts)
		fmt.Fprintf(w, "replay: %s\n", sr.Replay)
	}
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// writeRegression puts regression.txtar beside the shrunk schedule.
func writeRegression(sr campaign.ShrinkResult, c *campaign.Campaign, f fuzzFlags) error {
	about := sr.Scenario
	if sc, err := scenarios.Lookup(sr.Scenario); err == nil {
		about = sc.Issue
	}
	r := report.Regression{
		Invariant: sr.Invariant, Failing: sr.Minimal, About: about,
		Origin: fmt.Sprintf("run %d (seed %d) of `kanbanchaos fuzz --scenario %s --variant %s --seed %d`", sr.Index, sr.Seed, sr.Scenario, sr.Variant, c.Seed),
		Shrunk: fmt.Sprintf("%d task(s), %d dispatcher(s) → %d task(s), %d dispatcher(s) in %.0f s, %d candidates; reproduced %s",
			len(sr.Original.Tasks), sr.Original.Dispatchers, len(sr.Minimal.Tasks), sr.Minimal.Dispatchers, float64(sr.ElapsedMs)/1000, sr.Candidates, sr.Reproduced),
	}
	if len(c.RunSeeds) > 0 {
		r.Origin = fmt.Sprintf("`kanbanchaos fuzz --scenario %s --variant %s --run-seed %d`", sr.Scenario, sr.Variant, sr.Seed)
	}
	if sr.FixedPass {
		fx := sr.FixedRun
		r.Fixed = &fx
	}
	data, err := r.Txtar()
	if err != nil {
		return err
	}
	if err := os.WriteFile(sr.Artifacts+"/regression.txtar", data, 0o644); err != nil {
		return fmt.Errorf("write regression: %w", err)
	}
	return nil
}

// writeJUnit writes every run as a test case.
func writeJUnit(path string, s campaign.Summary, records []campaign.RunRecord, elapsed time.Duration) error {
	slices.SortFunc(records, func(a, b campaign.RunRecord) int { return a.Index - b.Index })
	suite := report.Suite{Name: "kanbanchaos fuzz", Time: elapsed, Timestamp: time.Now(), Properties: [][2]string{
		{"seed", strconv.FormatUint(s.Seed, 10)}, {"runs", strconv.Itoa(s.Runs)}, {"shard", s.Shard},
		{"scenarios", strings.Join(s.Scenarios, ",")}, {"variant", s.Variant}, {"verdict", string(s.Verdict)},
	}}
	for _, r := range records {
		cs := report.Case{Name: fmt.Sprintf("fuzz/%s/%d", r.Scenario, r.Index), Class: "kanbanchaos.fuzz." + r.Scenario,
			Time: time.Duration(r.ElapsedMs) * time.Millisecond, Seed: r.Seed, Status: string(r.Status), Failed: r.Failed, Replay: r.Replay,
			Held: r.Held, NotChecked: r.NotChecked}
		switch r.Status {
		case oracle.Fail:
			cs.Message = strings.Join(r.Failed, ", ") + " violated"
			var ev []string
			for _, v := range r.Violations {
				data, _ := json.Marshal(v.Evidence)
				ev = append(ev, fmt.Sprintf("%s %s: %s %s", v.Invariant, v.Task, v.Message, data))
			}
			if r.ViolationCount > len(r.Violations) {
				ev = append(ev, fmt.Sprintf("… and %d more violations", r.ViolationCount-len(r.Violations)))
			}
			if r.Artifacts != "" {
				ev = append(ev, "artifacts: "+r.Artifacts)
			}
			cs.Evidence = strings.Join(ev, "\n")
		case oracle.Unknown:
			cs.Message = strings.Join(r.Unknowns, "; ")
		case oracle.Pass:
		default:
			cs.Message = r.Error
		}
		cs.SystemOut = fmt.Sprintf("variant %s, %d dispatcher(s), %d task(s), %d spawns; probes reached: %s",
			r.Variant, r.Dispatchers, r.Tasks, r.Spawns, strings.Join(r.Probes, ", "))
		if d := r.Doublecheck; d != nil {
			cs.SystemOut += fmt.Sprintf("; doublecheck: %s (diverged: %v)", d.Status, d.Diverged)
		}
		if sr := s.Shrunk; sr != nil && sr.Index == r.Index && sr.Seed == r.Seed {
			cs.Evidence += fmt.Sprintf("\nshrunk to %d task(s), %d dispatcher(s) (%s): %s; regression.txtar there", len(sr.Minimal.Tasks), sr.Minimal.Dispatchers, sr.Stopped, sr.Replay)
		}
		suite.Cases = append(suite.Cases, cs)
	}
	fh, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	if err := report.WriteJUnit(fh, suite); err != nil {
		fh.Close()
		return err
	}
	return fh.Close()
}

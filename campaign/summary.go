package campaign

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/oracle"
)

// Summary is a campaign's (or one shard's) outcome, as the last line of
// --json prints it and as merge reads it back.
type Summary struct {
	Type      string            `json:"type"` // "summary"
	Seed      uint64            `json:"seed"`
	Runs      int               `json:"runs"`  // runs of the whole campaign (all shards)
	Shard     string            `json:"shard"` // "i/n"
	Scenarios []string          `json:"scenarios"`
	Variant   string            `json:"variant,omitempty"` // "" = each scenario's own
	Knobs     map[string]string `json:"knobs,omitempty"`
	// Planned are this shard's run indices; Indices the ones that ran.
	Planned []int `json:"planned"`
	Indices []int `json:"indices"`
	Done    int   `json:"done"`
	Passed  int   `json:"passed"`
	Failed  int   `json:"failed"`
	Unknown int   `json:"unknown"`
	Errors  int   `json:"errors"`
	// FailuresByInvariant counts failing runs per violated invariant.
	FailuresByInvariant map[string]int `json:"failures_by_invariant"`
	Failures            []SeedRef      `json:"failures,omitempty"`
	Unknowns            []SeedRef      `json:"unknowns,omitempty"`
	// Doublechecked runs were replayed once more; Diverged of them got
	// another verdict: harness flakiness, reported apart from failures.
	Doublechecked int `json:"doublechecked"`
	Diverged      int `json:"diverged"`
	// DoublecheckPct is the percentage of runs asked to be replayed (the
	// campaign's --doublecheck), so a summary says so even when none was.
	DoublecheckPct float64 `json:"doublecheck_pct,omitempty"`
	// StatusDiverged of the Diverged changed pass/fail/unknown; the others
	// failed again, with another set of invariants.
	StatusDiverged int       `json:"status_diverged"`
	Divergences    []SeedRef `json:"divergences,omitempty"`
	// Probes: for each probe, in how many runs it was reachable and reached.
	Probes []ProbeCoverage `json:"probes"`
	// NeverReached are probes reachable in some run but reached in none:
	// the campaign is weak evidence about those states.
	NeverReached []string `json:"never_reached,omitempty"`
	Spawns       int      `json:"spawns"`
	// RunMs adds up the runs' own durations; ElapsedMs is wall clock.
	RunMs         float64       `json:"run_ms"`
	ElapsedMs     int64         `json:"elapsed_ms"`
	RunsPerMinute float64       `json:"runs_per_minute"`
	SpawnsPerSec  float64       `json:"spawns_per_s"`
	Stopped       string        `json:"stopped,omitempty"` // why runs stopped before the plan was done
	Verdict       oracle.Status `json:"verdict"`           // pass, fail, unknown or error
	Shrunk        *ShrinkResult `json:"shrunk,omitempty"`
	Artifacts     string        `json:"artifacts,omitempty"`
	// Kept failing or undecided runs have their sandboxes under
	// Artifacts/runs; NotKept more did not (past the campaign's KeepFailing).
	Kept    int `json:"kept"`
	NotKept int `json:"not_kept"`
	// Merged lists the shards a merged summary was made of.
	Merged []string `json:"merged,omitempty"`
}

// SeedRef names one run.
type SeedRef struct {
	Index    int      `json:"index"`
	Seed     uint64   `json:"seed"`
	Scenario string   `json:"scenario"`
	Status   string   `json:"status"`
	Failed   []string `json:"failed,omitempty"`
	Replay   string   `json:"replay,omitempty"`
}

// ProbeCoverage is one probe over a campaign.
type ProbeCoverage struct {
	Name       string `json:"name"`
	Applicable int    `json:"applicable"` // runs whose schedule and knobs could reach it
	Reached    int    `json:"reached"`
}

func (c *Campaign) newSummary(plan []Planned) Summary {
	s := Summary{Type: "summary", Seed: c.Seed, Runs: c.Runs, Shard: c.Shard.String(), Variant: c.Variant,
		Knobs: c.Knobs, DoublecheckPct: c.Doublecheck, FailuresByInvariant: map[string]int{}, Indices: []int{}, Planned: []int{}}
	if len(c.RunSeeds) > 0 {
		s.Runs = len(c.RunSeeds)
	}
	for _, w := range c.Swarms {
		s.Scenarios = append(s.Scenarios, w.Scenario().Name)
	}
	for _, p := range plan {
		s.Planned = append(s.Planned, p.Index)
	}
	for _, d := range harness.ProbeDocs {
		s.Probes = append(s.Probes, ProbeCoverage{Name: d.Name})
	}
	return s
}

func (s *Summary) add(r RunRecord) {
	s.Done++
	s.Indices = append(s.Indices, r.Index)
	ref := SeedRef{Index: r.Index, Seed: r.Seed, Scenario: r.Scenario, Status: string(r.Status), Failed: r.Failed, Replay: r.Replay}
	switch r.Status {
	case oracle.Pass:
		s.Passed++
	case oracle.Fail:
		s.Failed++
		s.Failures = append(s.Failures, ref)
		for _, inv := range r.Failed {
			s.FailuresByInvariant[inv]++
		}
	case oracle.Unknown:
		s.Unknown++
		s.Unknowns = append(s.Unknowns, ref)
	default:
		s.Errors++
		s.Unknowns = append(s.Unknowns, ref)
	}
	if r.Doublecheck != nil {
		s.Doublechecked++
		if d := r.Doublecheck; d.Diverged {
			s.Diverged++
			if d.Status != r.Status {
				s.StatusDiverged++
			}
			ref.Status = fmt.Sprintf("%s %v, then %s %v", r.Status, r.Failed, d.Status, d.Failed)
			s.Divergences = append(s.Divergences, ref)
		}
	}
	for i := range s.Probes {
		if slices.Contains(r.Applicable, s.Probes[i].Name) {
			s.Probes[i].Applicable++
		}
		if slices.Contains(r.Probes, s.Probes[i].Name) {
			s.Probes[i].Reached++
		}
	}
	s.Spawns += r.Spawns
	s.RunMs += float64(r.ElapsedMs)
}

// finish derives the verdict, the rates and the probe warnings.
func (s *Summary) finish(elapsed time.Duration) {
	slices.Sort(s.Indices)
	s.ElapsedMs = elapsed.Milliseconds()
	if m := elapsed.Minutes(); m > 0 {
		s.RunsPerMinute = round1(float64(s.Done) / m)
	}
	if s.RunMs > 0 {
		s.SpawnsPerSec = round1(float64(s.Spawns) / (s.RunMs / 1000))
	}
	s.RunMs = float64(int64(s.RunMs + 0.5))
	s.NeverReached = nil
	for _, p := range s.Probes {
		if p.Applicable > 0 && p.Reached == 0 {
			s.NeverReached = append(s.NeverReached, p.Name)
		}
	}
	switch {
	case s.Failed > 0:
		s.Verdict = oracle.Fail
	case s.Errors > 0:
		s.Verdict = statusError
	case s.Unknown > 0 || s.Done < len(s.Planned):
		// Runs that never ran decided nothing: an incomplete campaign is
		// no pass.
		s.Verdict = oracle.Unknown
	default:
		s.Verdict = oracle.Pass
	}
}

func round1(x float64) float64 { return float64(int64(x*10+0.5)) / 10 }

// ErrMergeInput marks summaries that cannot be merged (bad input).
var ErrMergeInput = errors.New("cannot merge")

// Merge combines the summaries of a campaign's shards into the summary of
// the whole campaign, with its verdict. The shards must come from the same
// campaign (seed, runs, scenarios, variant, knobs) and must not overlap; a
// missing shard leaves runs undone, so the verdict is at best unknown.
func Merge(parts []Summary) (Summary, error) {
	if len(parts) == 0 {
		return Summary{}, fmt.Errorf("%w: no summaries", ErrMergeInput)
	}
	first := parts[0]
	m := Summary{Type: "summary", Seed: first.Seed, Runs: first.Runs, Shard: "0/1", Scenarios: first.Scenarios,
		Variant: first.Variant, Knobs: first.Knobs, FailuresByInvariant: map[string]int{}, Indices: []int{}, Planned: []int{}}
	for _, d := range harness.ProbeDocs {
		m.Probes = append(m.Probes, ProbeCoverage{Name: d.Name})
	}
	owner := map[int]string{}
	var elapsed time.Duration
	for _, p := range parts {
		if p.Type != "summary" {
			return m, fmt.Errorf("%w: shard %s is not a campaign summary", ErrMergeInput, p.Shard)
		}
		if p.Seed != first.Seed || p.Runs != first.Runs || p.Variant != first.Variant ||
			!slices.Equal(p.Scenarios, first.Scenarios) || !maps.Equal(p.Knobs, first.Knobs) {
			return m, fmt.Errorf("%w: shard %s is of another campaign (seed %d, %d runs, scenarios %s, variant %q) than shard %s (seed %d, %d runs, scenarios %s, variant %q)",
				ErrMergeInput, p.Shard, p.Seed, p.Runs, strings.Join(p.Scenarios, ","), p.Variant,
				first.Shard, first.Seed, first.Runs, strings.Join(first.Scenarios, ","), first.Variant)
		}
		for _, i := range p.Planned {
			if prev, dup := owner[i]; dup {
				return m, fmt.Errorf("%w: run %d is in shard %s and in shard %s", ErrMergeInput, i, prev, p.Shard)
			}
			owner[i] = p.Shard
		}
		m.Merged = append(m.Merged, p.Shard)
		m.Planned = append(m.Planned, p.Planned...)
		m.Indices = append(m.Indices, p.Indices...)
		m.Done += p.Done
		m.Passed += p.Passed
		m.Failed += p.Failed
		m.Unknown += p.Unknown
		m.Errors += p.Errors
		m.Kept += p.Kept
		m.NotKept += p.NotKept
		for k, v := range p.FailuresByInvariant {
			m.FailuresByInvariant[k] += v
		}
		m.Failures = append(m.Failures, p.Failures...)
		m.Unknowns = append(m.Unknowns, p.Unknowns...)
		m.Doublechecked += p.Doublechecked
		m.DoublecheckPct = max(m.DoublecheckPct, p.DoublecheckPct)
		m.Diverged += p.Diverged
		m.StatusDiverged += p.StatusDiverged
		m.Divergences = append(m.Divergences, p.Divergences...)
		for _, pc := range p.Probes {
			if i := slices.IndexFunc(m.Probes, func(x ProbeCoverage) bool { return x.Name == pc.Name }); i >= 0 {
				m.Probes[i].Applicable += pc.Applicable
				m.Probes[i].Reached += pc.Reached
			} else {
				m.Probes = append(m.Probes, pc)
			}
		}
		m.Spawns += p.Spawns
		m.RunMs += p.RunMs
		// Shards run side by side: the campaign took as long as the longest.
		elapsed = max(elapsed, time.Duration(p.ElapsedMs)*time.Millisecond)
		if p.Stopped != "" {
			m.Stopped = strings.TrimPrefix(m.Stopped+"; ", "; ") + "shard " + p.Shard + ": " + p.Stopped
		}
		if m.Shrunk == nil && p.Shrunk != nil {
			m.Shrunk = p.Shrunk
		}
	}
	bySeed := func(a, b SeedRef) int { return a.Index - b.Index }
	slices.SortFunc(m.Failures, bySeed)
	slices.SortFunc(m.Unknowns, bySeed)
	slices.SortFunc(m.Divergences, bySeed)
	slices.Sort(m.Planned)
	// The whole campaign is runs 0 … Runs-1; shards that are missing did
	// not run theirs.
	for i := 0; i < m.Runs; i++ {
		if _, ok := owner[i]; !ok {
			m.Planned = append(m.Planned, i)
		}
	}
	slices.Sort(m.Planned)
	if missing := m.Runs - len(owner); missing > 0 {
		m.Stopped = strings.TrimPrefix(m.Stopped+"; ", "; ") + fmt.Sprintf("%d of %d runs are in no shard given (a shard is missing)", missing, m.Runs)
	}
	m.finish(elapsed)
	return m, nil
}

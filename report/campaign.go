package report

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// CampaignFile is where `kanbanchaos fuzz --report` leaves the campaign's
// summary (campaign.Summary, as fuzz --json prints it: in the CLI's
// documented units, which is why it is read as JSON here and not as that
// type).
const CampaignFile = "summary.json"

// campaign is the part of a campaign summary the report shows, read as
// JSON like verdict.json.
type campaign struct {
	Seed                uint64         `json:"seed"`
	Runs                int            `json:"runs"`
	Shard               string         `json:"shard"`
	Scenarios           []string       `json:"scenarios"`
	Variant             string         `json:"variant"`
	Planned             []int          `json:"planned"`
	Done                int            `json:"done"`
	Passed              int            `json:"passed"`
	Failed              int            `json:"failed"`
	Unknown             int            `json:"unknown"`
	Errors              int            `json:"errors"`
	FailuresByInvariant map[string]int `json:"failures_by_invariant"`
	Failures            []seedRef      `json:"failures"`
	Unknowns            []seedRef      `json:"unknowns"`
	Doublechecked       int            `json:"doublechecked"`
	Diverged            int            `json:"diverged"`
	Probes              []struct {
		Name       string `json:"name"`
		Applicable int    `json:"applicable"`
		Reached    int    `json:"reached"`
	} `json:"probes"`
	NeverReached  []string `json:"never_reached"`
	ElapsedMs     int64    `json:"elapsed_ms"`
	RunsPerMinute float64  `json:"runs_per_minute"`
	SpawnsPerSec  float64  `json:"spawns_per_s"`
	Stopped       string   `json:"stopped"`
	Verdict       string   `json:"verdict"`
	Shrunk        *struct {
		Seed       uint64            `json:"seed"`
		Scenario   string            `json:"scenario"`
		Variant    string            `json:"variant"`
		Invariant  string            `json:"invariant"`
		Confirmed  string            `json:"confirmed"`
		Reproduced string            `json:"reproduced"`
		Original   schedule.Schedule `json:"original"`
		Minimal    schedule.Schedule `json:"minimal"`
		Candidates int               `json:"candidates"`
		Artifacts  string            `json:"artifacts"`
	} `json:"shrunk"`
}

type seedRef struct {
	Index    int      `json:"index"`
	Seed     uint64   `json:"seed"`
	Scenario string   `json:"scenario"`
	Status   string   `json:"status"`
	Failed   []string `json:"failed"`
	Replay   string   `json:"replay"`
}

type campaignView struct {
	Title, Verdict, Scenarios, Variant, Stopped string
	Counts                                      []kv
	Invariants                                  []kv
	Probes                                      []probeView
	NeverReached                                string
	Runs                                        []runRefView
	Shrunk                                      []kv
	ShrunkLink                                  string
}

type kv struct{ Key, Value string }

type probeView struct {
	Name                string
	Reached, Applicable int
	Note, Class         string
}

type runRefView struct {
	Index         int
	Seed          uint64
	Scenario      string
	Status, Class string
	Replay, Link  string
}

func campaignPage(dir string) (view, error) {
	c, err := readJSON[campaign](filepath.Join(dir, CampaignFile))
	if err != nil {
		return view{}, badInput("%s/%s is not a campaign summary: %v", dir, CampaignFile, err)
	}
	v := campaignView{Verdict: c.Verdict, Scenarios: strings.Join(c.Scenarios, ", "), Variant: c.Variant, Stopped: c.Stopped,
		NeverReached: strings.Join(c.NeverReached, ", ")}
	if v.Variant == "" {
		v.Variant = "each scenario's own"
	}
	v.Counts = []kv{
		{"campaign seed", fmt.Sprint(c.Seed)},
		{"runs done", fmt.Sprintf("%d of %d planned (shard %s of a %d-run campaign)", c.Done, len(c.Planned), c.Shard, c.Runs)},
		{"pass / fail / unknown / harness errors", fmt.Sprintf("%d / %d / %d / %d", c.Passed, c.Failed, c.Unknown, c.Errors)},
		{"time", fmt.Sprintf("%.1fs — %.1f runs/min, %.1f spawns/s", float64(c.ElapsedMs)/1000, c.RunsPerMinute, c.SpawnsPerSec)},
	}
	if c.Doublechecked > 0 {
		v.Counts = append(v.Counts, kv{"doublecheck", fmt.Sprintf("%d replayed, %d diverged (harness flakiness, not failures)", c.Doublechecked, c.Diverged)})
	}
	for _, inv := range slices.Sorted(maps.Keys(c.FailuresByInvariant)) {
		v.Invariants = append(v.Invariants, kv{inv, fmt.Sprint(c.FailuresByInvariant[inv])})
	}
	for _, p := range c.Probes {
		pv := probeView{Name: p.Name, Reached: p.Reached, Applicable: p.Applicable}
		switch {
		case p.Applicable == 0:
			pv.Note, pv.Class = "not reachable with these variants, knobs and workers", "unknown"
		case p.Reached == 0:
			pv.Note, pv.Class = "never reached: these runs say little about this state", "fail"
		default:
			pv.Class = "pass"
		}
		v.Probes = append(v.Probes, pv)
	}
	// Kept runs live under runs/<scenario>-<seed>/ (the campaign keeps the
	// first failing and undecided ones).
	link := func(r seedRef) string {
		rel := filepath.Join("runs", fmt.Sprintf("%s-%d", r.Scenario, r.Seed))
		if _, err := os.Stat(filepath.Join(dir, rel, FileName)); err == nil {
			return filepath.ToSlash(filepath.Join(rel, FileName))
		}
		if _, err := os.Stat(filepath.Join(dir, rel)); err == nil {
			return filepath.ToSlash(rel) + "/"
		}
		return ""
	}
	for _, r := range append(slices.Clone(c.Failures), c.Unknowns...) {
		status := r.Status
		if len(r.Failed) > 0 {
			status = "FAIL " + strings.Join(r.Failed, ", ")
		}
		v.Runs = append(v.Runs, runRefView{Index: r.Index, Seed: r.Seed, Scenario: r.Scenario, Status: status,
			Class: r.Status, Replay: r.Replay, Link: link(r)})
	}
	if s := c.Shrunk; s != nil {
		sched := func(x schedule.Schedule) string {
			return fmt.Sprintf("%d task(s), %d dispatcher(s), %d ms + %d ms quiet", len(x.Tasks), x.Dispatchers, x.DurationMs, x.QuietMs)
		}
		v.Shrunk = []kv{
			{"failure", fmt.Sprintf("%s seed %d on %s: %s (confirmed %s)", s.Scenario, s.Seed, s.Variant, s.Invariant, s.Confirmed)},
			{"original", sched(s.Original)},
			{"minimal", fmt.Sprintf("%s — reproduced %s after %d candidate(s)", sched(s.Minimal), s.Reproduced, s.Candidates)},
		}
		if rel, err := filepath.Rel(dir, s.Artifacts); err == nil && s.Artifacts != "" && !strings.HasPrefix(rel, "..") {
			v.ShrunkLink = filepath.ToSlash(rel) + "/"
			if _, err := os.Stat(filepath.Join(s.Artifacts, FileName)); err == nil {
				v.ShrunkLink += FileName
			}
		}
	}
	title := fmt.Sprintf("fuzz campaign %d — %s", c.Seed, strings.ToUpper(c.Verdict))
	return view{Title: title, Campaign: &v}, nil
}

// Package campaign runs many schedules: a fuzz campaign draws each run's
// schedule from its scenario's swarm by seed alone (plan, shards, parallel
// runs, doublechecks), shrinks its first failure with re-runs and a
// majority vote (shrink.go) and sums it up (summary.go, Merge of shards);
// Compare runs the same schedules against two subjects (compare.go); the
// regression gate and the conformance table are in campaign/gate. Every
// run is one harness.Run (or Campaign.Runner): the package holds no
// invariant logic and never reaches into a run's sandbox while it runs.
package campaign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// A campaign is a property-based run of many schedules: run i of a campaign
// with seed S draws its schedule from its scenario's swarm with the seed
// RunSeed(S, i) alone, so every run replays on its own and the run indices
// split across CI jobs (shards) without changing any run. After each run
// the oracle decides; a failure is shrunk with re-runs and a majority vote
// (shrink.go); a sample of runs is replayed to measure the harness's own
// nondeterminism (doublecheck); every run reports the probes it reached.

// Campaign configures one campaign (or one shard of it).
type Campaign struct {
	// Swarms are the scenarios' swarms, rotated over the run indices: run
	// i draws from Swarms[i % len]. They may be capped (WithMaxPhases).
	Swarms []scenarios.Swarm
	// Variant is the dispatcher variant of every run ("" = each scenario's).
	Variant string
	// Knobs go on top of each scenario's own knobs.
	Knobs map[string]string
	Seed  uint64
	Runs  int
	Shard Shard
	// RunSeeds, when set, replaces the seeds drawn from Seed: exactly these
	// runs, in order (what --run-seed replays).
	RunSeeds []uint64
	// Concurrency is how many runs go at once (at least 1).
	Concurrency int
	// Budget bounds the wall-clock time of the runs (0 = none): no run
	// starts after it, shrinking has its own bound.
	Budget time.Duration
	// KeepGoing runs every planned run; otherwise no run starts after the
	// first failure (a fuzzer's habit: shrink the failure you have).
	KeepGoing bool
	// Doublecheck is the percentage of runs replayed once more; a replay
	// whose verdict differs counts as harness flakiness, not as a failure.
	Doublecheck float64
	// ShrinkTime bounds the shrinking of the first failure (0: no shrink).
	ShrinkTime time.Duration
	// Votes is how many re-runs decide whether a shrink candidate still
	// fails (majority wins); 0 means 3.
	Votes int
	// ArtifactsDir receives failing runs' sandboxes (runs/) and the shrunk
	// failure (shrunk-…/). Empty: a new temp dir, made only when needed.
	ArtifactsDir string
	// KeepFailing caps how many failing or undecided runs keep their
	// sandboxes (0 = 20); each run is replayable from its seed anyway, but
	// triage reads the kept ledgers and boards.
	KeepFailing int
	// Command names this program in replay commands ("kanbanchaos"), and
	// ReplayFlags are the flags every run's replay command repeats (knobs,
	// phase caps), already quoted.
	Command, ReplayFlags string
	// Host is how each run is hosted (worker binary, stop grace).
	Host harness.Options
	// OnStart sees each run as it starts, OnRun each finished run (calls
	// are serialised); OnShrink each accepted or rejected shrink candidate.
	OnStart  func(Planned)
	OnRun    func(RunRecord)
	OnShrink func(ShrinkStep)
	// Runner runs one schedule; nil is harness.Run. Tests substitute it.
	Runner func(context.Context, schedule.Schedule, harness.Options) (harness.Result, error)
	// sample are the run indices doublechecked (doublecheckSample).
	sample map[int]bool
}

// RunRecord is one run of a campaign, as --json prints it (one line each).
type RunRecord struct {
	Type       string             `json:"type"` // "run"
	Index      int                `json:"index"`
	Seed       uint64             `json:"seed"`
	Scenario   string             `json:"scenario"`
	Variant    string             `json:"variant"`
	Status     oracle.Status      `json:"status"` // pass, fail, unknown; "error" when the harness failed
	Failed     []string           `json:"failed,omitempty"`
	Violations []oracle.Violation `json:"violations,omitempty"` // the first maxViolations
	// ViolationCount is the number of violations, also those not listed.
	ViolationCount int      `json:"violation_count,omitempty"`
	Unknowns       []string `json:"unknowns,omitempty"`
	// Held and NotChecked complete the invariants: what held, and what
	// the run could not check, with why (never counted as held).
	Held        []string      `json:"held,omitempty"`
	NotChecked  []oracle.Skip `json:"not_checked,omitempty"`
	Error       string        `json:"error,omitempty"`
	Dispatchers int           `json:"dispatchers"`
	Tasks       int           `json:"tasks"`
	Spawns      int           `json:"spawns"`
	SpawnRate   float64       `json:"spawns_per_s"`
	ElapsedMs   int64         `json:"elapsed_ms"`
	Probes      []string      `json:"probes,omitempty"`
	Applicable  []string      `json:"applicable_probes,omitempty"`
	Artifacts   string        `json:"artifacts,omitempty"`
	Replay      string        `json:"replay"`
	// Doublecheck is the verdict of the same schedule run once more (only
	// for the sampled runs).
	Doublecheck *Doublecheck `json:"doublecheck,omitempty"`
}

// Doublecheck is a replay's outcome.
type Doublecheck struct {
	Status   oracle.Status `json:"status"`
	Failed   []string      `json:"failed,omitempty"`
	Diverged bool          `json:"diverged"`
}

const maxViolations = 10

// statusError marks a run the harness itself could not carry out.
const statusError oracle.Status = "error"

// Run carries out the campaign: the runs of this shard, then the shrinking
// of the first failure. The error is for the campaign as a whole (no
// scenario, an artifacts dir that cannot be made); a run the harness failed
// is a record with status "error".
func (c *Campaign) Run(ctx context.Context) (Summary, error) {
	if len(c.Swarms) == 0 {
		return Summary{}, errors.New("campaign: campaign without scenarios")
	}
	if c.Runner == nil {
		c.Runner = harness.Run
	}
	c.Concurrency = max(c.Concurrency, 1)
	if c.Votes <= 0 {
		c.Votes = 3
	}
	if c.KeepFailing <= 0 {
		c.KeepFailing = 20
	}
	plan := c.Plan()
	c.sample = c.doublecheckSample()
	sum := c.newSummary(plan)
	start := time.Now()

	var (
		mu       sync.Mutex
		records  = make([]*RunRecord, len(plan))
		stop     bool // no new runs: first failure, or the budget is spent
		stopWhy  string
		kept     int
		notKept  int // failing or undecided runs past KeepFailing
		artsErr  error
		launched int
	)
	runsDir := ""
	var g errgroup.Group
	g.SetLimit(c.Concurrency)
	// halted reports whether no more runs may start; it is checked again
	// once a run has its slot, since g.Go waits for one.
	halted := func() bool {
		mu.Lock()
		defer mu.Unlock()
		if !stop && c.Budget > 0 && time.Since(start) >= c.Budget {
			stop, stopWhy = true, fmt.Sprintf("budget %v spent", c.Budget)
		}
		return stop || ctx.Err() != nil
	}
	for n, p := range plan {
		if halted() {
			break
		}
		g.Go(func() error {
			if halted() {
				return nil
			}
			mu.Lock()
			launched++
			if c.OnStart != nil {
				c.OnStart(p)
			}
			mu.Unlock()
			// Runs are never cancelled by a sibling: a failure is a result.
			s, _ := c.Schedule(p)
			variant := s.Variant
			opt := c.Host
			opt.Replay = c.Replay(p, variant)
			opt.ArtifactsDir, opt.Keep = "", false
			// A doublechecked run and its replay both run their whole
			// schedule: their verdicts are compared invariant by invariant,
			// and a cut run lists only what it found by its stop.
			twice := c.doublechecked(p)
			opt.FullDuration = opt.FullDuration || twice
			res, err := c.Runner(ctx, s, opt)
			rec := record(p, s, res, err, opt.Replay)
			undecidedIfInterrupted(ctx, &rec)
			if twice && ctx.Err() == nil {
				again, err2 := c.Runner(ctx, s, opt)
				again.Discard()
				rec.Doublecheck = doublecheck(rec, again, err2)
			}
			mu.Lock()
			defer mu.Unlock()
			// The sandbox of a failing or undecided run moves under the
			// artifacts dir, up to KeepFailing of them.
			if rec.Artifacts != "" {
				if kept < c.KeepFailing && artsErr == nil {
					if runsDir == "" {
						dir, err := c.artifacts()
						if err != nil {
							artsErr = err
						}
						runsDir = filepath.Join(dir, "runs")
					}
					if artsErr == nil {
						if dest, err := harness.MoveSandbox(rec.Artifacts, runsDir, fmt.Sprintf("%s-%d", p.Scenario, p.Seed)); err == nil {
							rec.Artifacts = dest
							kept++
						} else {
							artsErr = err
						}
					}
				} else {
					os.RemoveAll(rec.Artifacts)
					rec.Artifacts = ""
					notKept++
				}
			}
			records[n] = &rec
			if rec.Status == oracle.Fail && !c.KeepGoing && !stop {
				stop, stopWhy = true, fmt.Sprintf("first failure (run %d, seed %d); --keep-going runs the rest", p.Index, p.Seed)
			}
			if c.OnRun != nil {
				c.OnRun(rec)
			}
			return nil
		})
	}
	g.Wait()
	if artsErr != nil {
		return sum, artsErr
	}
	sum.Stopped = stopWhy
	if ctx.Err() != nil && launched < len(plan) && stopWhy == "" {
		sum.Stopped = "interrupted: " + ctx.Err().Error()
	}
	for _, r := range records {
		if r != nil {
			sum.add(*r)
		}
	}
	sum.finish(time.Since(start))
	sum.Kept, sum.NotKept = kept, notKept

	// Shrink the first failure (in plan order) with the time left.
	if c.ShrinkTime > 0 && ctx.Err() == nil {
		for n, r := range records {
			if r == nil || r.Status != oracle.Fail {
				continue
			}
			sr, err := c.shrink(ctx, plan[n], *r)
			if err != nil {
				return sum, err
			}
			sum.Shrunk = &sr
			break
		}
	}
	if c.ArtifactsDir != "" {
		sum.Artifacts = c.ArtifactsDir
	}
	return sum, nil
}

// artifacts returns the campaign's artifacts dir, making it on first use.
func (c *Campaign) artifacts() (string, error) {
	if c.ArtifactsDir == "" {
		dir, err := os.MkdirTemp("", fmt.Sprintf("kanbanchaos-fuzz-%d-", c.Seed))
		if err != nil {
			return "", fmt.Errorf("campaign: artifacts dir: %w", err)
		}
		c.ArtifactsDir = dir
	}
	if err := os.MkdirAll(c.ArtifactsDir, 0o755); err != nil {
		return "", fmt.Errorf("campaign: artifacts dir: %w", err)
	}
	return c.ArtifactsDir, nil
}

func record(p Planned, s schedule.Schedule, res harness.Result, err error, replay string) RunRecord {
	rec := RunRecord{Type: "run", Index: p.Index, Seed: p.Seed, Scenario: p.Scenario, Variant: s.Variant,
		Dispatchers: s.Dispatchers, Tasks: len(s.Tasks), Replay: replay}
	if err != nil {
		rec.Status, rec.Error = statusError, err.Error()
		rec.Artifacts = res.Artifacts
		return rec
	}
	v := res.Verdict
	rec.Status, rec.Failed, rec.Unknowns = v.Status, v.Failed(), v.Unknowns
	rec.Held, rec.NotChecked = v.Held(), v.NotChecked
	rec.ViolationCount = len(v.Violations)
	rec.Violations = v.Violations[:min(len(v.Violations), maxViolations)]
	rec.Spawns, rec.SpawnRate, rec.ElapsedMs = res.Spawns, res.SpawnRate, res.Elapsed.Milliseconds()
	if res.Probes != nil {
		rec.Probes, rec.Applicable = res.Probes.Reached, res.Probes.Applicable
	}
	rec.Artifacts = res.Artifacts
	return rec
}

func doublecheck(first RunRecord, again harness.Result, err error) *Doublecheck {
	d := &Doublecheck{Status: again.Verdict.Status, Failed: again.Verdict.Failed()}
	if err != nil {
		d.Status = statusError
	}
	a, b := slices.Clone(first.Failed), slices.Clone(d.Failed)
	slices.Sort(a)
	slices.Sort(b)
	d.Diverged = d.Status != first.Status || !slices.Equal(a, b)
	return d
}

// undecidedIfInterrupted turns a campaign run that ended in an error because
// the campaign was interrupted (Ctrl-C, SIGTERM, SIGHUP during its setup)
// into an undecided run: an interruption is no harness error.
func undecidedIfInterrupted(ctx context.Context, rec *RunRecord) {
	if rec.Status != statusError || ctx.Err() == nil {
		return
	}
	rec.Status = oracle.Unknown
	rec.Unknowns = append(rec.Unknowns, "run interrupted ("+ctx.Err().Error()+"): "+rec.Error)
	rec.Error = ""
}

package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kanbanchaos/kanbanchaos/campaign"
	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/subject"
)

const fuzzHelp = `Usage: kanbanchaos fuzz [flags]

A property-based campaign. Run i draws its schedule — dispatchers, tick, tasks with their workers'
behaviour and crash delays, failure_limit, max_retries, max_spawn, fault times — from its scenario's
swarm with a seed made of --seed and i alone, runs it against real processes and lets the oracle
decide. The first failure is shrunk: each smaller candidate is re-run --votes times and kept only if
a majority violates the same invariant, until --shrink-time is spent. The minimal schedule is printed
and written with repro.sh and regression.txtar (a testscript to drop into testdata/script).

Examples:
  kanbanchaos fuzz --scenario issue-30896 --variant hermes-0.15 --runs 50 --seed 7
  kanbanchaos fuzz --variant fixed --runs 200 --doublecheck 10 --junit fuzz.xml
  kanbanchaos fuzz --variant fixed --runs 400 --shard 2/4 --json > shard2.jsonl   # then: kanbanchaos merge shard*.jsonl
  kanbanchaos fuzz --scenario issue-30896 --variant hermes-0.15 --run-seed 3735928559   # one run again, by its seed

Output: on a terminal a live status line (runs, failures, spawns/s, ETA); otherwise only failing and
undecided runs (-v: every run), each with its seed and replay command, then the summary: failures by
invariant, doublecheck divergence (harness flakiness, not failures), probe coverage — which interesting
states (breaker trip, busy timeout, kill inside a transaction, checkpoint under load, backoff, lock-drop
knob) the runs reached, with a warning for any never reached. --json prints one line per run and a
summary line instead.

Flags:
`

type fuzzFlags struct {
	scenario, variant, shard, junit, artifacts string
	knobs                                      knobFlags
	runs, votes, concurrency, keep             int
	seed, runSeed                              uint64
	budget, shrinkTime, maxDuration, maxQuiet  time.Duration
	doublecheck                                float64
	keepGoing, json, verbose, report, full     bool
	subject                                    string
	inStore                                    bool // artifacts is a new directory of the default store
	saveRegression                             string
	workers                                    workerFlags
}

func cmdFuzz(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := fuzzFlags{knobs: knobFlags{}}
	fs := flag.NewFlagSet("fuzz", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.scenario, "scenario", "all", "scenario to fuzz, or all (every scenario but the positive controls, rotated over the runs)")
	fs.StringVar(&f.variant, "variant", "", "dispatcher variant of every run (default: each scenario's own); see 'kanbanchaos variants'")
	fs.Var(f.knobs, "knob", "set one knob, name=value, on every run (repeatable)")
	fs.IntVar(&f.runs, "runs", 100, "runs in the whole campaign (all shards together)")
	fs.Uint64Var(&f.seed, "seed", 0, "campaign seed: run i's seed derives from it and i (default: random, printed)")
	fs.Uint64Var(&f.runSeed, "run-seed", 0, "run only the run with this seed (printed on every run line); needs one --scenario")
	fs.DurationVar(&f.budget, "budget", 0, "start no run after this much time, e.g. 10m (default: no limit)")
	fs.DurationVar(&f.shrinkTime, "shrink-time", 2*time.Minute, "wall-clock bound for shrinking the first failure; 0 skips shrinking")
	fs.IntVar(&f.votes, "votes", 3, "re-runs per shrink candidate; a candidate is kept if a majority fail the same way")
	fs.Float64Var(&f.doublecheck, "doublecheck", 0, "replay this percentage of runs and report verdict divergence as harness flakiness, e.g. 10")
	fs.IntVar(&f.concurrency, "parallel", fuzzParallel(), "independent runs side by side (default: 3 per CPU — runs wait on ticks far more than they compute);\n"+
		"no run's schedule or verdict depends on it")
	fs.IntVar(&f.concurrency, "concurrency", fuzzParallel(), "the same as --parallel (older name)")
	fs.BoolVar(&f.full, "full-duration", false, "run every schedule to its end even once a violation decided its verdict (default: stop there;\n"+
		"doublechecked runs, and shrink candidates for an invariant the ledger cannot decide, always run to the end)")
	fs.BoolVar(&f.keepGoing, "keep-going", false, "run every planned run; default: start no run after the first failure")
	fs.StringVar(&f.shard, "shard", "0/1", "run only part i of n of the run indices, e.g. 0/4 (merge the --json outputs with 'kanbanchaos merge')")
	fs.BoolVar(&f.json, "json", false, "print one JSON line per run and a summary line")
	fs.StringVar(&f.junit, "junit", "", "write a JUnit XML file: each run a test case, failures with their seed, invariant and evidence")
	fs.StringVar(&f.saveRegression, "save-regression", "", "also write the shrunk failure's regression testscript into DIR (e.g. testdata/script,\n"+
		"where go test ./cli -run TestScripts picks it up) as fuzz-<scenario>-<seed>.txtar")
	fs.StringVar(&f.artifacts, "artifacts", "", "directory for failing runs (runs/) and the shrunk failure (shrunk-…/)\n"+
		"(default: a new <time>-fuzz-<scenario>-<seed> in the artifact store "+defaultStore()+", made only when a run is kept)")
	fs.IntVar(&f.keep, "keep", 20, "failing or undecided runs whose sandboxes (board, ledger, repro.sh) are kept under the artifacts\n"+
		"directory; the rest are removed and replay from their seeds")
	fs.DurationVar(&f.maxDuration, "max-duration", 0, "cap every run's dispatch phase, e.g. 1s, for quick campaigns (default: the swarm's range)")
	fs.DurationVar(&f.maxQuiet, "max-quiet", 0, "cap every run's quiet phase (default: the swarm's range)")
	fs.BoolVar(&f.verbose, "v", false, "print every run and every shrink candidate, not only failures")
	fs.StringVar(&f.subject, "subject", "", "dispatcher under test in every run: hermes:VERSION|PATH (a real Hermes release, see 'kanbanchaos hermes')\n"+
		"or exec:'CMD' (long-running); default: the in-process reference --variant")
	f.workers.register(fs)
	fs.BoolVar(&f.report, "report", false, "write report.html (summary, probe coverage, failing runs linked to their own reports) into the artifacts directory")
	fs.Usage = func() {
		fmt.Fprint(stderr, fuzzHelp)
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nScenarios: %s\nVariants:  %s\nProbes:\n", strings.Join(scenarios.Names(), ", "), strings.Join(dispatcher.VariantNames(), ", "))
		for _, p := range harness.ProbeDocs {
			fmt.Fprintf(stderr, "  %-24s %s\n", p.Name, p.Doc)
		}
		fmt.Fprint(stderr, "\nExit codes: 0 no run failed · 1 a run failed · 2 bad usage · 3 some run undecided or runs left undone · 4 harness error.\n")
	}
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	bad := usageError(stderr, "fuzz")
	if len(pos) > 0 {
		return bad("takes no arguments (the scenario goes in --scenario), got %q", pos)
	}
	if err := checkOutputs(map[string]string{"artifacts": f.artifacts}, map[string]string{"junit": f.junit}); err != nil {
		return bad("%v", err)
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	c, code := f.campaign(ctx, given, bad)
	if code >= 0 {
		return code
	}
	return runCampaign(ctx, c, f, stdout, stderr)
}

// campaign checks the flags and builds the campaign; code ≥ 0 means stop
// with that exit code.
func (f *fuzzFlags) campaign(ctx context.Context, given map[string]bool, bad func(string, ...any) int) (*campaign.Campaign, int) {
	switch {
	case f.saveRegression != "" && !isDir(f.saveRegression):
		return nil, bad("--save-regression %s: not a directory (e.g. testdata/script in a checkout)", f.saveRegression)
	case f.runs < 1:
		return nil, bad("--runs %d: want at least 1", f.runs)
	case f.keep < 1:
		return nil, bad("--keep %d: want at least 1", f.keep)
	case f.votes < 1:
		return nil, bad("--votes %d: want at least 1", f.votes)
	case f.concurrency < 1:
		return nil, bad("--parallel %d: want at least 1", f.concurrency)
	case f.doublecheck < 0 || f.doublecheck > 100:
		return nil, bad("--doublecheck %g: want a percentage 0..100", f.doublecheck)
	case f.budget < 0 || f.shrinkTime < 0 || f.maxDuration < 0 || f.maxQuiet < 0:
		return nil, bad("durations must not be negative")
	case given["max-duration"] && f.maxDuration < time.Millisecond:
		return nil, bad("--max-duration %v: want at least 1ms", f.maxDuration)
	}
	shard, err := campaign.ParseShard(f.shard)
	if err != nil {
		return nil, bad("--shard: %v", err)
	}
	var scs []scenarios.Scenario
	if f.scenario == "all" {
		scs = scenarios.Fuzzable()
	} else {
		sc, err := scenarios.Lookup(f.scenario)
		if err != nil {
			return nil, bad("--scenario: %v (or all)", err)
		}
		scs = []scenarios.Scenario{sc}
	}
	if given["run-seed"] && len(scs) != 1 {
		return nil, bad("--run-seed needs one --scenario: a run seed belongs to the scenario its run line names")
	}
	if given["run-seed"] && given["shard"] {
		return nil, bad("--run-seed runs one run; it takes no --shard")
	}
	if f.variant != "" && !slices.Contains(dispatcher.VariantNames(), f.variant) {
		return nil, bad("--variant: unknown variant %q (valid: %s)", f.variant, strings.Join(dispatcher.VariantNames(), ", "))
	}
	for _, sc := range scs {
		v := f.variant
		if v == "" {
			v = sc.Variant
		}
		knobs := map[string]string{}
		for k, val := range sc.Knobs {
			knobs[k] = val
		}
		for k, val := range f.knobs {
			knobs[k] = val
		}
		k, err := dispatcher.Resolve(v, knobs)
		if err == nil {
			err = harness.CheckEngineKnobs(sc.Swarm().Schedule(sc.Swarm().Draw(1), 1, v).EngineOrDefault(), k)
		}
		if err != nil {
			return nil, bad("%s: %v", sc.Name, err)
		}
	}
	sub, err := parseSubject(f.subject, false)
	if err == nil {
		sub, err = f.workers.apply(sub)
	}
	if err != nil {
		return nil, bad("--subject: %v", err)
	}
	if sub.Hermes != "" {
		if _, err := hermes.Locate(sub.Hermes); err != nil {
			return nil, bad("--subject: %v", err)
		}
		for _, sc := range scs {
			s := sc.Build(1, f.variant)
			s.Subject = sub
			if err := subject.CheckWorkers(ctx, s); err != nil {
				return nil, bad("%s: %v", sc.Name, err)
			}
		}
		for _, sc := range scs {
			v := f.variant
			if v == "" {
				v = sc.Variant
			}
			knobs := maps.Clone(sc.Knobs)
			if knobs == nil {
				knobs = map[string]string{}
			}
			maps.Copy(knobs, f.knobs)
			if err := subject.CheckHermesKnobs(v, knobs); err != nil {
				return nil, bad("%s: %v", sc.Name, err)
			}
		}
	}
	if !given["seed"] {
		f.seed = randomSeed()
	}
	f.inStore = f.artifacts == ""
	if f.inStore {
		name := f.scenario
		if name == "" {
			name = "all"
		}
		dir, err := harness.NewStoreDir(defaultStore(), fmt.Sprintf("fuzz-%s-%d", name, f.seed))
		if err != nil {
			return nil, bad("artifact store: %v", err)
		}
		f.artifacts = dir
	}
	c := &campaign.Campaign{Variant: f.variant, Seed: f.seed, Runs: f.runs, Shard: shard, Concurrency: f.concurrency,
		Budget: f.budget, KeepGoing: f.keepGoing, Doublecheck: f.doublecheck, ShrinkTime: f.shrinkTime, Votes: f.votes,
		ArtifactsDir: f.artifacts, KeepFailing: f.keep, Command: progName()}
	if len(f.knobs) > 0 {
		c.Knobs = map[string]string(f.knobs)
	}
	c.Host.Subject = sub
	c.Host.FullDuration = f.full
	for _, sc := range scs {
		c.Swarms = append(c.Swarms, sc.Swarm().WithMaxPhases(int(f.maxDuration.Milliseconds()), int(f.maxQuiet.Milliseconds())))
	}
	if given["run-seed"] {
		c.RunSeeds = []uint64{f.runSeed}
	}
	// What every run's replay command must repeat to draw the same schedule.
	extra := f.knobs.args()
	if sub.External() {
		extra = append(extra, "--subject", shellQuote(sub.String()))
	}
	extra = append(extra, f.workers.args()...)
	if f.maxDuration > 0 {
		extra = append(extra, "--max-duration", f.maxDuration.String())
	}
	if f.maxQuiet > 0 {
		extra = append(extra, "--max-quiet", f.maxQuiet.String())
	}
	if f.full {
		extra = append(extra, "--full-duration")
	}
	c.ReplayFlags = strings.Join(extra, " ")
	return c, -1
}

func runCampaign(ctx context.Context, c *campaign.Campaign, f fuzzFlags, stdout, stderr io.Writer) int {
	st := newProgress(stdout, stderr)
	defer st.close()
	variant := c.Variant
	if variant == "" {
		variant = "each scenario's own"
	}
	var names []string
	for _, w := range c.Swarms {
		names = append(names, w.Scenario().Name)
	}
	plan := c.Plan()
	if !f.json {
		st.println(fmt.Sprintf("kanbanchaos fuzz  scenarios=%s  subject=%s  variant=%s  seed=%d  runs=%d  shard %s (%d runs here)  parallel %d",
			strings.Join(names, ","), c.Host.Subject, variant, c.Seed, c.Runs, c.Shard, len(plan), c.Concurrency))
	}
	st.begin(len(plan))
	c.OnStart = func(campaign.Planned) { st.runStarted() }
	var records []campaign.RunRecord
	var mu sync.Mutex
	c.OnRun = func(r campaign.RunRecord) {
		mu.Lock()
		records = append(records, r)
		mu.Unlock()
		if r.Status == oracle.Fail && c.ShrinkTime > 0 {
			st.then = fmt.Sprintf("shrinking (at most %v)", c.ShrinkTime)
		}
		st.runDone(r, r.Status == oracle.Fail && !c.KeepGoing)
		switch {
		case f.json:
			st.emit(func() { writeDoc(stdout, "run", r, false) })
		case r.Status != oracle.Pass || f.verbose || (r.Doublecheck != nil && r.Doublecheck.Diverged):
			st.println(runLine(r))
		}
	}
	c.OnShrink = func(s campaign.ShrinkStep) {
		if f.json || !(s.Accepted || f.verbose) {
			return
		}
		verdict := "rejected"
		if s.Accepted {
			verdict = "accepted"
		}
		st.println(fmt.Sprintf("shrink +%.0fs: %s → %d task(s), %d dispatcher(s), %d ms: %s reproduce — %s",
			float64(s.ElapsedMs)/1000, s.What, s.Tasks, s.Dispatchers, s.DurationMs, s.Votes, verdict))
	}
	started := time.Now()
	sum, err := c.Run(ctx)
	st.close()
	if err != nil {
		return errorExit(ctx, "fuzz", err, stderr)
	}
	if f.inStore && !f.report && !exists(f.artifacts) {
		sum.Artifacts = "" // nothing kept: no directory in the store
	}
	// The summary names the shrunk failure's regression.txtar: written
	// first. A finished campaign always prints its verdict and summary: an
	// output file that cannot be written never hides them.
	var regErr error
	savedTo := ""
	if sum.Shrunk != nil && sum.Shrunk.Artifacts != "" {
		regErr = writeRegression(*sum.Shrunk, c, f)
		if regErr == nil && f.saveRegression != "" {
			savedTo, regErr = saveRegression(*sum.Shrunk, f.saveRegression)
		}
	}
	if f.json {
		writeDoc(stdout, "summary", sum, false)
	} else {
		printSummary(stdout, sum)
	}
	code := exitFor(sum.Verdict)
	if regErr != nil {
		return outputFailed("fuzz", "regression.txtar", regErr, code, stderr)
	}
	if savedTo != "" {
		fmt.Fprintf(stderr, "regression saved: %s (go test ./cli -run 'TestScripts/%s')\n", savedTo, strings.TrimSuffix(filepath.Base(savedTo), ".txtar"))
	}
	if f.report {
		reportPath, err := writeCampaignReport(&sum)
		if err != nil {
			return outputFailed("fuzz", "report.html", err, code, stderr)
		}
		fmt.Fprintln(stderr, "report:", reportPath) // stderr: stdout may hold JSON lines
	}
	if f.inStore && sum.Artifacts != "" {
		e := harness.StoreEntry{Kind: "fuzz", Scenario: f.scenario, Seed: f.seed, Subject: f.variant, Status: string(sum.Verdict)}
		if c.Host.Subject.External() {
			e.Subject = c.Host.Subject.String()
		}
		for inv := range sum.FailuresByInvariant {
			e.Failed = append(e.Failed, inv)
		}
		sort.Strings(e.Failed)
		if err := harness.RecordInStore(defaultStore(), sum.Artifacts, e); err != nil {
			return outputFailed("fuzz", "the artifact store's index", err, code, stderr)
		}
	}
	if f.junit != "" {
		if err := writeJUnit(f.junit, sum, records, time.Since(started)); err != nil {
			return outputFailed("fuzz", "the JUnit file", err, code, stderr)
		}
	}
	return code
}

// fuzzParallel is the default number of runs side by side: three per CPU.
// A run spends most of its time waiting on 20 ms-scale ticks and on worker
// processes; measured on 2 cores (fixed, issue-30896, 60 runs, load 14):
// --parallel 6 made 124.6 runs/min against 45.8 with 2, with the same
// verdicts (54 and 55 pass, 0 fail, the rest undecided), and over every
// scenario (30 runs) 104.6 against 39.4 runs/min with identical verdicts.
func fuzzParallel() int { return 3 * runtime.NumCPU() }

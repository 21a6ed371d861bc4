package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/campaign"
	"github.com/kanbanchaos/kanbanchaos/compare"
	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/report"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

func cmdCompare(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		a, b, scenario, sqlite, artifacts string
		runs, dispatchers, parallel       int
		seed                              uint64
		duration                          time.Duration
		timeScale                         float64
		asJSON, keep, oneShot, withReport bool
	)
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&a, "a", "", "subject A (the build as it is): VARIANT[,knob=value…], exec:'CMD' or hermes:VERSION|PATH")
	fs.StringVar(&b, "b", "", "subject B (the patched build), same syntax")
	fs.StringVar(&scenario, "scenario", "", "scenario to run, or 'all' for every scenario")
	fs.IntVar(&runs, "runs", 10, "seeds per scenario; each runs once on A and once on B")
	fs.Uint64Var(&seed, "seed", 1, "first seed: run i (from 0) uses seed S+i on both sides")
	fs.StringVar(&sqlite, "sqlite", "", engineFlagDoc())
	fs.IntVar(&dispatchers, "dispatchers", 0, "number of dispatchers ticking the board (default: the scenario's)")
	fs.DurationVar(&duration, "duration", 0, "length of the dispatch phase, e.g. 3s (default: the scenario's)")
	fs.Float64Var(&timeScale, "time-scale", 0, "factor on Hermes' intervals (default: the scenario's)")
	fs.IntVar(&parallel, "parallel", runtime.NumCPU(), "runs at a time, default the number of CPUs (A and B of a seed usually run side by side)")
	fs.BoolVar(&oneShot, "one-shot", false, "exec subjects dispatch once and exit, so they are re-run every tick")
	fs.BoolVar(&asJSON, "json", false, "print the comparison (table figures, verdict, every pair) as one JSON object")
	fs.StringVar(&artifacts, "artifacts", "", "keep failing runs under DIR/a/ and DIR/b/, and write DIR/"+report.CompareFile+
		"\n(default: a new DIR <time>-compare-<scenario> in the artifact store "+defaultStore()+", made only when a run is kept or with --report)")
	fs.BoolVar(&keep, "keep", false, "keep passing runs too")
	fs.BoolVar(&withReport, "report", false, "write DIR/report.html (the side-by-side table, linking each kept run's own report);\n"+
		"without --artifacts, DIR is a new temp directory")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kanbanchaos compare --a SUBJECT --b SUBJECT --scenario S|all [flags]\n\n"+
			"Patch A/B on identical seeds: every seed's schedule (timings, workers, faults) runs once against\n"+
			"dispatcher A and once against B, and the invariants are checked on both. Prints a side-by-side table —\n"+
			"failing runs per invariant, spawns per task (p50/p99/max), corruption rate (runs with an integrity,\n"+
			"sqlite-errors, no-lost-writes or sidecars violation), lost writes, median time to the first violation —\n"+
			"and the verdict in words: \"B fixes k of n failing seeds, breaks m, unchanged j\".\n\n"+
			"SUBJECT is a reference variant with optional knobs, e.g. hermes-0.14 or fixed,backoff=false; a real\n"+
			"Hermes release, hermes:0.14.0 (see 'kanbanchaos hermes install') or a checkout, hermes:/path/to/hermes-agent;\n"+
			"or any external dispatcher: exec:'kanbanchaos dispatch --variant fixed' (run with HERMES_KANBAN_HOME and\n"+
			"HERMES_BIN set, like a Hermes gateway). A side whose run never reached the scenario's danger (no worker\n"+
			"started, no crash classified) is undecided, never a fix.\n\n"+
			"Exit: 0 B has no failing run · 1 B still fails or regresses · 2 bad usage · 3 B could not decide a run · 4 internal error.\n\n"+
			"Examples:\n"+
			"  kanbanchaos compare --a hermes-0.15 --b fixed --scenario issue-30896 --runs 20\n"+
			"  kanbanchaos compare --a hermes-0.15 --b fixed --scenario m1-header-probe --sqlite 3.50 --report\n"+
			"  kanbanchaos compare --a hermes:0.14.0 --b hermes-0.14 --scenario issue-30896 --runs 5\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nScenarios: %s\n", strings.Join(scenarios.Names(), ", "))
	}
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	usageErr := usageError(stderr, "compare")
	if len(pos) > 0 {
		return usageErr("takes no arguments, got %q (name the builds with --a and --b)", pos)
	}
	if a == "" || b == "" {
		return usageErr("want both --a SUBJECT and --b SUBJECT, e.g. --a hermes-0.14 --b fixed")
	}
	sideA, err := campaign.ParseCompareSide(a)
	if err != nil {
		return usageErr("--a: %v", err)
	}
	sideB, err := campaign.ParseCompareSide(b)
	if err != nil {
		return usageErr("--b: %v", err)
	}
	for _, side := range []*campaign.CompareSide{&sideA, &sideB} {
		side.Subject.OneShot = side.Subject.Exec != "" && oneShot
	}
	var picked []scenarios.Scenario
	switch scenario {
	case "":
		return usageErr("want --scenario NAME or --scenario all (valid: %s)", strings.Join(scenarios.Names(), ", "))
	case "all":
		picked = scenarios.All()
	default:
		sc, err := scenarios.Lookup(scenario)
		if err != nil {
			return usageErr("%v", err)
		}
		picked = []scenarios.Scenario{sc}
	}
	if runs < 1 || runs > 10000 {
		return usageErr("--runs %d: want 1..10000", runs)
	}
	if parallel < 1 || parallel > 64 {
		return usageErr("--parallel %d: want 1..64", parallel)
	}
	if _, ok := schedule.Engines[sqlite]; !ok && flagGiven(fs, "sqlite") {
		return usageErr("--sqlite %q is not an engine (valid: %s)", sqlite, strings.Join(engineNames(), ", "))
	}
	sqliteGiven := false
	fs.Visit(func(fl *flag.Flag) { sqliteGiven = sqliteGiven || fl.Name == "sqlite" })
	if err := checkOutputs(map[string]string{"artifacts": artifacts}, nil); err != nil {
		return usageErr("%v", err)
	}

	var scheds []schedule.Schedule
	for _, sc := range picked {
		for i := 0; i < runs; i++ {
			s := sc.Build(seed+uint64(i), "")
			if sqliteGiven {
				s.Engine = sqlite
			}
			if dispatchers != 0 {
				s.Dispatchers = dispatchers
			}
			if duration != 0 {
				s.DurationMs = int(duration.Milliseconds())
			}
			if timeScale != 0 {
				s.TimeScale = timeScale
			}
			scenarios.Respread(&s)
			if err := s.Validate(); err != nil {
				return usageErr("%s: %v", sc.Name, err)
			}
			for _, side := range []campaign.CompareSide{sideA, sideB} {
				if err := side.Check(s); err != nil {
					return usageErr("%v", err)
				}
			}
			scheds = append(scheds, s)
		}
	}
	inStore := artifacts == ""
	if inStore {
		if artifacts, err = harness.NewStoreDir(defaultStore(), "compare-"+scenario); err != nil {
			return usageErr("artifact store: %v", err)
		}
	}

	names := make([]string, len(picked))
	for i, sc := range picked {
		names[i] = sc.Name
	}
	if !asJSON {
		fmt.Fprintf(stdout, "kanbanchaos compare  A=%s  B=%s\n", sideA.Name, sideB.Name)
		fmt.Fprintf(stdout, "  %s; %d seed(s) each (%d–%d), every seed on both sides\n",
			strings.Join(names, ", "), runs, seed, seed+uint64(runs)-1)
	}
	replay := func(side campaign.CompareSide, s schedule.Schedule) string {
		f := runFlags{knobs: knobFlags(side.Knobs), seed: s.Seed, sqlite: s.EngineOrDefault(),
			dispatchers: dispatchers, duration: duration, timeScale: timeScale}
		if side.Subject.External() {
			f.subject, f.oneShot = side.Subject.String(), side.Subject.OneShot
		}
		return replayCommand(s.Scenario, f, s.Variant)
	}
	progress := func(p compare.Pair, done, total int) {
		fmt.Fprintf(stderr, "[%d/%d] %s seed %d: A %s  B %s  → %s\n", done, total, p.Scenario, p.Seed,
			runWords(p.A), runWords(p.B), p.Change)
	}
	cmp, err := campaign.Compare(ctx, campaign.CompareSpec{
		A: sideA, B: sideB, Schedules: scheds, Parallel: parallel,
		Options: harness.Options{ArtifactsDir: artifacts, Keep: keep},
		Replay:  replay, Progress: progress, Log: stderr,
	})
	if err != nil {
		return errorExit(ctx, "compare", err, stderr)
	}
	if inStore && !withReport && !exists(artifacts) {
		artifacts = "" // nothing kept: no directory in the store
	}
	var writeErr error
	if artifacts != "" {
		writeErr = writeCompare(artifacts, cmp, withReport)
		if writeErr == nil && inStore {
			e := harness.StoreEntry{Kind: "compare", Scenario: scenario, Subject: sideA.Name + " vs " + sideB.Name, Status: string(cmp.Status())}
			writeErr = harness.RecordInStore(defaultStore(), artifacts, e)
		}
	}
	if asJSON {
		writeDoc(stdout, "compare", cmp, true)
	} else {
		if v := append(cmp.A.SQLite, cmp.B.SQLite...); len(v) > 0 {
			fmt.Fprintf(stdout, "  SQLite %s\n", strings.Join(dedupe(v), ", "))
		}
		fmt.Fprintln(stdout)
		cmp.WriteText(stdout)
		if artifacts != "" {
			fmt.Fprintf(stdout, "artifacts: %s (kept runs under a/ and b/)\n", artifacts)
		}
		if withReport && writeErr == nil {
			fmt.Fprintf(stdout, "report: %s\n", filepath.Join(artifacts, report.FileName))
		}
	}
	// The comparison is printed even when its files could not be written.
	if writeErr != nil {
		return outputFailed("compare", "the comparison's files", writeErr, exitFor(cmp.Status()), stderr)
	}
	return exitFor(cmp.Status())
}

// runWords is a run's outcome in a progress line: "pass", "FAIL (spawns,
// breaker-holds)", "unknown".
func runWords(r compare.Run) string {
	switch r.Status {
	case oracle.Fail:
		return "FAIL (" + strings.Join(r.Failed, ", ") + ")"
	case oracle.Pass:
		return "pass"
	}
	return string(r.Status)
}

// writeCompare stores the comparison in dir and, with withReport, renders
// it and every kept run's own report.
func writeCompare(dir string, cmp compare.Comparison, withReport bool) error {
	data, err := json.MarshalIndent(cmp, "", "  ")
	if err != nil {
		return fmt.Errorf("encode comparison: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, report.CompareFile), append(data, '\n'), 0o644); err != nil {
		return err
	}
	if !withReport {
		return nil
	}
	for _, p := range cmp.Pairs {
		for _, r := range []compare.Run{p.A, p.B} {
			if r.Artifacts == "" {
				continue
			}
			if _, err := report.Write(r.Artifacts, ""); err != nil {
				return err
			}
		}
	}
	_, err = report.Write(dir, "")
	return err
}

func dedupe(xs []string) []string {
	var out []string
	for _, x := range xs {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

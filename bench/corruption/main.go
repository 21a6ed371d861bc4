// Command corruption measures the corruption scenarios against the real
// Hermes releases: for every scenario × release × Python-side SQLite ×
// worker kind (our Go fake workers, or workers that write through the
// release's own kanban tools) it runs seeds 1..N and prints a Markdown
// table — failing seeds, seeds with a corruption violation, the median
// time to the first corruption violation, the failure kinds and the lost
// acknowledged commits. It is the figure behind the README's "Corruption
// on the real releases" table, not a test.
//
//	go run ./bench/corruption -seeds 10
//	go run ./bench/corruption -seeds 10 -releases 0.19.0 -sqlite 3.53.4 -workers hermes -scenarios issue-35240
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
	"github.com/kanbanchaos/kanbanchaos/subject"
)

// corruptionScenarios are the scenarios of issue 11's matrix.
var corruptionScenarios = []string{"m1-header-probe", "m1-post-commit-probe", "m2-eio-downgrade", "m3-wal-pragma-control",
	"r5-crash-loop", "m6-swap-while-open", "issue-35240", "issue-30896"}

// corruptionKinds are the invariants that say a board was damaged or an
// acknowledged write lost (the rest are dispatcher behaviour).
var corruptionKinds = []string{oracle.Integrity, oracle.NoLostWrites, oracle.SQLiteErrors, oracle.Sidecars, oracle.NoSilentRecreation}

type cell struct{ scenario, release, sqlite, workers string }

func (c cell) subject() schedule.Subject {
	sub := schedule.Subject{Hermes: c.release}
	if c.workers == hermes.WorkersHermes {
		sub.Workers = c.workers
	}
	if c.sqlite != hermes.PythonSQLiteSystem {
		sub.PythonSQLite = c.sqlite
	}
	return sub
}

type outcome struct {
	status          oracle.Status
	failed          []string
	unknown         []string
	firstCorruptMs  float64 // -1: no timed corruption violation
	lost, acked     int     // from no-lost-writes, when it was checked
	lostChecked     bool
	driverSQLite    string
	goSQLite        string // the harness's SQLite: what Go workers run on
	workerSQLite    []string
	corruptionFound bool
}

func main() {
	// The harness points HERMES_BIN at this executable for Go workers.
	if filepath.Base(os.Args[0]) == fakeworker.InvokedAs {
		os.Exit(fakeworker.Main(os.Args[1:], os.Getenv, os.Stderr))
	}
	seeds := flag.Int("seeds", 10, "seeds per cell (1..N)")
	parallel := flag.Int("parallel", 2, "runs at once")
	releases := flag.String("releases", hermes.Release30896+","+hermes.Newest, "comma-separated installed releases")
	sqlites := flag.String("sqlite", hermes.PythonSQLiteSystem, "comma-separated Python-side SQLite: system or versions built by `kanbanchaos hermes install-sqlite`")
	workers := flag.String("workers", hermes.WorkersGo+","+hermes.WorkersHermes, "comma-separated worker kinds: go, hermes")
	scenarioList := flag.String("scenarios", strings.Join(corruptionScenarios, ","), "comma-separated scenarios")
	flag.BoolVar(&keepRuns, "keep", false, "keep every failing run's sandbox (default: removed once its verdict is read)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	cells, err := plan(ctx, *scenarioList, *releases, *sqlites, *workers)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	loadBefore := loadAverage()
	var mu sync.Mutex
	results := map[cell][]outcome{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(*parallel)
	started := time.Now()
	for _, c := range cells {
		for seed := 1; seed <= *seeds; seed++ {
			g.Go(func() error {
				out, err := runOne(gctx, c, uint64(seed))
				if err != nil {
					return fmt.Errorf("%+v seed %d: %w", c, seed, err)
				}
				mu.Lock()
				defer mu.Unlock()
				results[c] = append(results[c], out)
				fmt.Fprintf(os.Stderr, "%-22s %s sqlite=%s workers=%s seed %d: %s %v lost %d/%d %s\n", c.scenario, c.release, c.sqlite, c.workers,
					seed, out.status, out.failed, out.lost, out.acked, strings.Join(out.unknown, "; "))
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	fmt.Printf("seeds 1–%d per cell, %d runs in %s, %d at once; load average before %s, after %s\n\n", *seeds, len(cells)**seeds,
		time.Since(started).Round(time.Second), *parallel, loadBefore, loadAverage())
	fmt.Println("| scenario | release | Python SQLite (driver / workers) | workers | failing seeds | corrupting seeds | median first corruption (ms) | failure kinds (seeds) | lost acknowledged commits | undecided |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|")
	for _, c := range cells {
		fmt.Println(row(c, results[c], *seeds))
	}
}

// plan checks every axis before any run: releases installed, SQLite
// libraries built, each scenario expressible through Hermes workers.
func plan(ctx context.Context, scenarioList, releases, sqlites, workers string) ([]cell, error) {
	var cells []cell
	for _, sc := range strings.Split(scenarioList, ",") {
		scen, err := scenarios.Lookup(sc)
		if err != nil {
			return nil, err
		}
		for _, rel := range strings.Split(releases, ",") {
			for _, lib := range strings.Split(sqlites, ",") {
				for _, w := range strings.Split(workers, ",") {
					c := cell{sc, rel, lib, w}
					s := scen.Build(1, "")
					s.Subject = c.subject()
					if err := subject.CheckWorkers(ctx, s); err != nil {
						return nil, err
					}
					if _, err := hermes.Locate(rel); err != nil {
						return nil, err
					}
					cells = append(cells, c)
				}
			}
		}
	}
	return cells, nil
}

// keepRuns keeps the sandboxes of failing runs (set once, by -keep).
var keepRuns bool

func runOne(ctx context.Context, c cell, seed uint64) (outcome, error) {
	sc, _ := scenarios.Lookup(c.scenario)
	s := sc.Build(seed, "")
	// The whole schedule: lost commits are counted over the full run.
	res, err := harness.Run(ctx, s, harness.Options{Subject: c.subject(), FullDuration: true})
	if err != nil {
		return outcome{}, err
	}
	if !keepRuns && res.Artifacts != "" {
		// Hundreds of failing runs would otherwise stay in the temp dir.
		defer os.RemoveAll(res.Artifacts)
	}
	v := res.Verdict
	out := outcome{status: v.Status, failed: v.Failed(), unknown: v.Unknowns, firstCorruptMs: -1}
	for _, x := range v.Violations {
		if !slices.Contains(corruptionKinds, x.Invariant) {
			continue
		}
		out.corruptionFound = true
		if x.AtMs > 0 && (out.firstCorruptMs < 0 || x.AtMs < out.firstCorruptMs) {
			out.firstCorruptMs = x.AtMs
		}
		if x.Invariant == oracle.NoLostWrites {
			out.lost, out.acked = evidenceInt(x.Evidence, "lost_commits"), evidenceInt(x.Evidence, "acknowledged")
		}
	}
	out.lostChecked = slices.Contains(v.Checked, oracle.NoLostWrites)
	out.goSQLite = res.SQLite
	if st := res.Settings; st != nil {
		for _, r := range st.Reported {
			out.driverSQLite = r.SQLite
		}
		out.workerSQLite = st.WorkerSQLite
	}
	return out, nil
}

func evidenceInt(ev map[string]any, key string) int {
	switch n := ev[key].(type) {
	case int:
		return n
	case float64:
		return int(n)
	}
	return 0
}

func row(c cell, runs []outcome, seeds int) string {
	var failing, corrupting, undecided, lost, lostRuns, lostUnchecked int
	kinds := map[string]int{}
	var firsts []float64
	libs := map[string]bool{}
	for _, r := range runs {
		switch r.status {
		case oracle.Fail:
			failing++
		case oracle.Unknown:
			undecided++
		}
		if r.corruptionFound {
			corrupting++
		}
		if r.firstCorruptMs >= 0 {
			firsts = append(firsts, r.firstCorruptMs)
		}
		for _, f := range r.failed {
			kinds[f]++
		}
		if r.lost > 0 {
			lost += r.lost
			lostRuns++
		}
		if !r.lostChecked {
			lostUnchecked++
		}
		lib := r.driverSQLite
		if c.workers == hermes.WorkersHermes {
			if len(r.workerSQLite) == 0 {
				continue // no worker started: nothing to say about the workers' SQLite
			}
			lib += " / " + strings.Join(r.workerSQLite, ",")
		} else {
			lib += " / Go " + r.goSQLite
		}
		libs[lib] = true
	}
	var names []string
	for k, n := range kinds {
		names = append(names, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(names)
	median := "—"
	if len(firsts) > 0 {
		sort.Float64s(firsts)
		median = fmt.Sprintf("%.0f", firsts[len(firsts)/2])
	}
	lostText := fmt.Sprintf("%d in %d seeds", lost, lostRuns)
	if lostUnchecked > 0 {
		// A board that failed integrity_check, a swapped board, an undecided run.
		lostText += fmt.Sprintf(" (not checked in %d)", lostUnchecked)
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %d/%d | %d/%d | %s | %s | %s | %d |", c.scenario, c.release, strings.Join(sortedKeys(libs), "; "),
		c.workers, failing, seeds, corrupting, seeds, median, orDash(strings.Join(names, ", ")), lostText, undecided)
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func loadAverage() string {
	out, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(out))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

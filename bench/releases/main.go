// Command releases measures the real Hermes releases against our reference
// variants: for every scenario × subject it runs seeds 1..N and prints a
// Markdown table — verdicts (pass/fail/unknown), the invariants that
// failed, and worker starts per task (median and max over the runs). It is
// the figure behind the README's "Real Hermes releases" table, not a test.
//
//	go run ./bench/releases -seeds 5
//	go run ./bench/releases -seeds 5 -subjects hermes:0.14.0,hermes-0.14 -scenarios issue-30896
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

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// breakerFamily are the scenarios every subject can be driven through.
var breakerFamily = []string{"issue-30896", "issue-30417", "issue-63070", "issue-28712", "exit-75-cooldown", "issue-35202", "issue-35240", "issue-30678"}

type cell struct{ scenario, subject string }

type runOutcome struct {
	status  oracle.Status
	failed  []string
	unknown []string
	starts  int // worker starts of the busiest task
}

func main() {
	// The harness points HERMES_BIN at this executable: be the worker then.
	if filepath.Base(os.Args[0]) == fakeworker.InvokedAs {
		os.Exit(fakeworker.Main(os.Args[1:], os.Getenv, os.Stderr))
	}
	seeds := flag.Int("seeds", 5, "seeds per cell (1..N)")
	parallel := flag.Int("parallel", 2, "runs at once")
	subjectList := flag.String("subjects", defaultSubjects(), "comma-separated: hermes:VERSION or a reference variant")
	scenarioList := flag.String("scenarios", strings.Join(breakerFamily, ","), "comma-separated scenarios")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	subjects := strings.Split(*subjectList, ",")
	var cells []cell
	for _, sc := range strings.Split(*scenarioList, ",") {
		if _, err := scenarios.Lookup(sc); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		for _, sub := range subjects {
			cells = append(cells, cell{sc, sub})
		}
	}
	var mu sync.Mutex
	results := map[cell][]runOutcome{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(*parallel)
	started := time.Now()
	for _, c := range cells {
		for seed := 1; seed <= *seeds; seed++ {
			g.Go(func() error {
				out, err := runOne(gctx, c, uint64(seed))
				if err != nil {
					return fmt.Errorf("%s %s seed %d: %w", c.scenario, c.subject, seed, err)
				}
				mu.Lock()
				defer mu.Unlock()
				results[c] = append(results[c], out)
				fmt.Fprintf(os.Stderr, "%-18s %-14s seed %d: %s %v starts=%d %s\n", c.scenario, c.subject, seed, out.status, out.failed, out.starts,
					strings.Join(out.unknown, "; "))
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(4)
	}
	fmt.Printf("seeds 1–%d per cell, %d runs in %s\n\n", *seeds, len(cells)**seeds, time.Since(started).Round(time.Second))
	fmt.Printf("| scenario | subject | pass/fail/unknown | failing invariants | starts per task (median, max) |\n|---|---|---|---|---|\n")
	for _, c := range cells {
		fmt.Println(row(c, results[c]))
	}
}

func defaultSubjects() string {
	var subs []string
	for _, v := range hermes.Defaults {
		subs = append(subs, "hermes:"+v)
	}
	for _, v := range []string{"hermes-0.14", "hermes-0.15", "hermes-0.19", "fixed"} {
		if slices.Contains(dispatcher.VariantNames(), v) {
			subs = append(subs, v)
		}
	}
	return strings.Join(subs, ",")
}

func runOne(ctx context.Context, c cell, seed uint64) (runOutcome, error) {
	sc, _ := scenarios.Lookup(c.scenario)
	opt := harness.Options{}
	variant := ""
	if release, ok := strings.CutPrefix(c.subject, "hermes:"); ok {
		opt.Subject = schedule.Subject{Hermes: release}
	} else {
		variant = c.subject
	}
	s := sc.Build(seed, variant)
	res, err := harness.Run(ctx, s, opt)
	if err != nil {
		return runOutcome{}, err
	}
	out := runOutcome{status: res.Verdict.Status, failed: res.Verdict.Failed(), unknown: res.Verdict.Unknowns}
	for _, n := range res.Verdict.Spawns {
		out.starts = max(out.starts, n)
	}
	return out, nil
}

func row(c cell, runs []runOutcome) string {
	var pass, fail, unknown int
	count := map[string]int{}
	var starts []int
	for _, r := range runs {
		switch r.status {
		case oracle.Pass:
			pass++
		case oracle.Fail:
			fail++
		default:
			unknown++
		}
		for _, f := range r.failed {
			count[f]++
		}
		starts = append(starts, r.starts)
	}
	var failed []string
	for f, n := range count {
		failed = append(failed, fmt.Sprintf("%s %d/%d", f, n, len(runs)))
	}
	sort.Strings(failed)
	sort.Ints(starts)
	med, mx := 0, 0
	if len(starts) > 0 {
		med, mx = starts[len(starts)/2], starts[len(starts)-1]
	}
	return fmt.Sprintf("| %s | %s | %d/%d/%d | %s | %d, %d |", c.scenario, c.subject, pass, fail, unknown, orDash(strings.Join(failed, ", ")), med, mx)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// Command matrix measures how reliably each corruption scenario reproduces:
// for every scenario × variant × engine cell it runs seeds 1..N and prints a
// table of k/n failing seeds, the median time to the first violation and the
// failure kinds seen. It is the figure behind the closing notes, not a test.
//
//	go run ./bench/matrix -seeds 10 -parallel 3
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

	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"golang.org/x/sync/errgroup"
)

type cell struct {
	scenario, variant, engine string
	knobs                     map[string]string
	label                     string
}

type outcome struct {
	status  oracle.Status
	firstMs float64
	kinds   []string
	detail  string
}

func main() {
	// The harness points HERMES_BIN at this executable: be the worker then.
	if filepath.Base(os.Args[0]) == fakeworker.InvokedAs {
		os.Exit(fakeworker.Main(os.Args[1:], os.Getenv, os.Stderr))
	}
	seeds := flag.Int("seeds", 10, "seeds per cell (1..N)")
	engine := flag.String("engine", "", "only this engine (3.50 or 3.54)")
	parallel := flag.Int("parallel", 3, "runs at once")
	only := flag.String("scenario", "", "only this scenario")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	rawOn := map[string]string{"raw_header_read": "true", "post_commit_probe": "true", "guard_raw_reads": "false"}
	var cells []cell
	for _, e := range []string{"3.50", "3.54"} {
		for _, v := range []string{"hermes-0.15", "fixed"} {
			cells = append(cells, cell{scenario: "m1-header-probe", variant: v, engine: e})
			cells = append(cells, cell{scenario: "m1-post-commit-probe", variant: v, engine: e})
		}
		for _, v := range []string{"hermes-0.14", "fixed"} {
			cells = append(cells, cell{scenario: "m2-eio-downgrade", variant: v, engine: e})
		}
		for _, v := range []string{"hermes-0.14", "pr30973", "hermes-0.15", "fixed"} {
			cells = append(cells, cell{scenario: "m3-wal-pragma-control", variant: v, engine: e})
		}
		cells = append(cells, cell{scenario: "r5-crash-loop", variant: "fixed", engine: e, label: "raw reads off"})
		cells = append(cells, cell{scenario: "r5-crash-loop", variant: "fixed", engine: e, knobs: rawOn, label: "raw reads on"})
	}
	if *engine != "" {
		cells = slices.DeleteFunc(cells, func(c cell) bool { return c.engine != *engine })
	}
	if *only != "" {
		cells = slices.DeleteFunc(cells, func(c cell) bool { return c.scenario != *only })
	}
	results := make([][]outcome, len(cells))
	var mu sync.Mutex
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(*parallel)
	start := time.Now()
	done := 0
	for i, c := range cells {
		results[i] = make([]outcome, *seeds)
		for seed := 1; seed <= *seeds; seed++ {
			g.Go(func() error {
				o, err := runOne(ctx, c, uint64(seed))
				if err != nil {
					return fmt.Errorf("%s %s %s seed %d: %w", c.scenario, c.variant, c.engine, seed, err)
				}
				mu.Lock()
				results[i][seed-1] = o
				done++
				fmt.Fprintf(os.Stderr, "\r%d/%d runs, %s", done, len(cells)**seeds, time.Since(start).Round(time.Second))
				mu.Unlock()
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, "\nmatrix:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stderr)
	fmt.Println("| scenario | variant | engine | failing seeds | median first violation | failure kinds |")
	fmt.Println("|---|---|---|---|---|---|")
	for i, c := range cells {
		fmt.Println(row(c, results[i]))
	}
}

func runOne(ctx context.Context, c cell, seed uint64) (outcome, error) {
	sc, err := scenarios.Lookup(c.scenario)
	if err != nil {
		return outcome{}, err
	}
	s := sc.Build(seed, c.variant)
	s.Engine = c.engine
	for k, v := range c.knobs {
		if s.Knobs == nil {
			s.Knobs = map[string]string{}
		}
		s.Knobs[k] = v
	}
	res, err := harness.Run(ctx, s, harness.Options{})
	if err != nil {
		return outcome{}, err
	}
	if res.Artifacts != "" {
		os.RemoveAll(res.Artifacts)
	}
	o := outcome{status: res.Verdict.Status, firstMs: res.Verdict.FirstViolationMs(), kinds: res.Verdict.Failed()}
	for _, v := range res.Verdict.Violations {
		if v.Invariant == oracle.Integrity || v.Invariant == oracle.NoLostWrites || v.Invariant == oracle.SQLiteErrors {
			o.detail = v.Message
			break
		}
	}
	return o, nil
}

func row(c cell, outs []outcome) string {
	failed := 0
	var firsts []float64
	kinds := map[string]int{}
	unknown := 0
	for _, o := range outs {
		switch o.status {
		case oracle.Fail:
			failed++
			if o.firstMs >= 0 {
				firsts = append(firsts, o.firstMs)
			}
			for _, k := range o.kinds {
				kinds[k]++
			}
		case oracle.Unknown:
			unknown++
		}
	}
	med := "–"
	if len(firsts) > 0 {
		sort.Float64s(firsts)
		med = fmt.Sprintf("%.0f ms", firsts[len(firsts)/2])
	}
	var ks []string
	for k, n := range kinds {
		ks = append(ks, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(ks)
	variant := c.variant
	if c.label != "" {
		variant += " (" + c.label + ")"
	}
	frac := fmt.Sprintf("%d/%d", failed, len(outs))
	if unknown > 0 {
		frac += fmt.Sprintf(" (+%d unknown)", unknown)
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s |", c.scenario, variant, c.engine, frac, med, strings.Join(ks, ", "))
}

package campaign

import (
	"context"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kanbanchaos/kanbanchaos/compare"
	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// CompareSide is one build in an A/B comparison: the reference dispatcher as
// a variant with knobs, or an external command.
type CompareSide struct {
	Name    string            // as the user wrote it
	Variant string            // "" for an exec side
	Knobs   map[string]string // on top of the scenario's own knobs
	Subject schedule.Subject  // Exec set for an exec side
}

// ParseCompareSide reads VARIANT[,knob=value…] (e.g.
// "hermes-0.14,atomic_failure=true"), exec:CMD or
// hermes:VERSION|PATH[,workers=hermes][,python-sqlite=VERSION]. A variant side's variant
// and knobs are checked here, so a typo is a usage error before any run.
func ParseCompareSide(spec string) (CompareSide, error) {
	side := CompareSide{Name: spec}
	if rest, ok := strings.CutPrefix(spec, "hermes:"); ok {
		sub, err := parseHermesSide(rest)
		if err != nil {
			return side, fmt.Errorf("subject %q: %w", spec, err)
		}
		side.Subject = sub
		return side, nil
	}
	if cmd, ok := strings.CutPrefix(spec, "exec:"); ok {
		if strings.TrimSpace(cmd) == "" {
			return side, fmt.Errorf("subject %q: exec: needs a command, e.g. exec:'kanbanchaos dispatch --variant fixed'", spec)
		}
		side.Subject = schedule.Subject{Exec: cmd}
		return side, nil
	}
	parts := strings.Split(spec, ",")
	side.Variant = strings.TrimSpace(parts[0])
	if side.Variant == "" {
		return side, fmt.Errorf("subject %q: want VARIANT[,knob=value…] or exec:CMD (variants: %s)", spec, strings.Join(dispatcher.VariantNames(), ", "))
	}
	for _, kv := range parts[1:] {
		name, value, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || name == "" {
			return side, fmt.Errorf("subject %q: knob %q: want name=value", spec, kv)
		}
		if side.Knobs == nil {
			side.Knobs = map[string]string{}
		}
		side.Knobs[name] = value
	}
	if _, err := dispatcher.Resolve(side.Variant, side.Knobs); err != nil {
		return side, fmt.Errorf("subject %q: %w", spec, err)
	}
	return side, nil
}

// Apply returns s as this side runs it. A variant side replaces the variant
// and adds its knobs over the scenario's (which say what the scenario is
// about, e.g. journal_mode=DELETE); an exec or hermes side leaves the
// schedule alone — its variant then only sets how the fake workers connect.
func (c CompareSide) Apply(s schedule.Schedule) schedule.Schedule {
	if c.Subject.External() {
		return s
	}
	s.Variant = c.Variant
	if len(c.Knobs) > 0 {
		knobs := maps.Clone(s.Knobs)
		if knobs == nil {
			knobs = map[string]string{}
		}
		maps.Copy(knobs, c.Knobs)
		s.Knobs = knobs
	}
	return s
}

// Check reports why this side cannot run s (an unknown knob, a knob its
// engine cannot honour).
func (c CompareSide) Check(s schedule.Schedule) error {
	s = c.Apply(s)
	s.Subject = c.Subject
	if err := harness.CheckKnobs(s); err != nil {
		return fmt.Errorf("subject %s on %s: %w", c.Name, s.Scenario, err)
	}
	return nil
}

// CompareSpec is an A/B comparison to run.
type CompareSpec struct {
	A, B CompareSide
	// Schedules are run once on each side: identical seeds, timings and
	// faults, only the dispatcher differs.
	Schedules []schedule.Schedule
	// Parallel is how many runs go at once (A and B of a pair usually run
	// side by side). Zero: 2.
	Parallel int
	// Options are the base options of every run; ArtifactsDir, if set,
	// receives the kept runs of each side under a/ and b/.
	Options harness.Options
	// Replay, if set, is the command line that reproduces side's run of s
	// (for each kept run's repro.sh).
	Replay func(side CompareSide, s schedule.Schedule) string
	// Progress, if set, sees each pair as soon as both its runs are done
	// (never concurrently), with how many pairs are done of how many.
	Progress func(p compare.Pair, done, total int)
	// Log receives engine builds and other harness notes; nil discards them.
	Log io.Writer
}

// Compare runs every schedule on both sides and sums the pairs up. The error
// is for the harness failing; violations are in the comparison.
func Compare(ctx context.Context, spec CompareSpec) (compare.Comparison, error) {
	for _, s := range spec.Schedules {
		for _, side := range []CompareSide{spec.A, spec.B} {
			if err := side.Check(s); err != nil {
				return compare.Comparison{}, err
			}
		}
	}
	// Build each engine once, up front and visibly, instead of inside the
	// first parallel runs.
	var engines []string
	for _, s := range spec.Schedules {
		if e := s.EngineOrDefault(); !slices.Contains(engines, e) {
			engines = append(engines, e)
			if _, err := harness.EngineBinary(ctx, e, spec.Log); err != nil {
				return compare.Comparison{}, err
			}
		}
	}
	parallel := spec.Parallel
	if parallel <= 0 {
		parallel = 2
	}
	pairs := make([]compare.Pair, len(spec.Schedules))
	var (
		mu      sync.Mutex
		halves  = make([]int, len(spec.Schedules))
		donePrs int
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i, s := range spec.Schedules {
		pairs[i] = compare.Pair{Scenario: s.Scenario, Seed: s.Seed}
		for sideIdx, side := range []CompareSide{spec.A, spec.B} {
			g.Go(func() error {
				run, err := runSide(gctx, spec, side, sideIdx, s)
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				if sideIdx == 0 {
					pairs[i].A = run
				} else {
					pairs[i].B = run
				}
				if halves[i]++; halves[i] == 2 {
					pairs[i].Change = compare.ChangeOf(pairs[i].A.Status, pairs[i].B.Status)
					donePrs++
					if spec.Progress != nil {
						spec.Progress(pairs[i], donePrs, len(pairs))
					}
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return compare.Comparison{}, err
	}
	return compare.Summarize(spec.A.Name, spec.B.Name, pairs), nil
}

func runSide(ctx context.Context, spec CompareSpec, side CompareSide, idx int, s schedule.Schedule) (compare.Run, error) {
	opt := spec.Options
	opt.Subject = side.Subject
	// The table compares spawns per task and spawn rates, which a run
	// stopped at its first violation would truncate: both sides run their
	// whole schedules.
	opt.FullDuration = true
	if opt.ArtifactsDir != "" {
		opt.ArtifactsDir = filepath.Join(opt.ArtifactsDir, []string{"a", "b"}[idx])
	}
	s = side.Apply(s)
	if spec.Replay != nil {
		opt.Replay = spec.Replay(side, s)
	}
	res, err := harness.Run(ctx, s, opt)
	if err != nil {
		return compare.Run{}, fmt.Errorf("campaign: compare %s seed %d on %s: %w", s.Scenario, s.Seed, side.Name, err)
	}
	return compare.RunOf(res.Verdict, res.SQLite, res.Artifacts), nil
}

// parseHermesSide reads VERSION|PATH[,workers=go|hermes][,python-sqlite=V].
func parseHermesSide(spec string) (schedule.Subject, error) {
	parts := strings.Split(spec, ",")
	sub := schedule.Subject{Hermes: parts[0]}
	in, err := hermes.Locate(sub.Hermes)
	if err != nil {
		return sub, err
	}
	for _, kv := range parts[1:] {
		name, value, _ := strings.Cut(kv, "=")
		switch name {
		case "workers":
			if value != hermes.WorkersGo && value != hermes.WorkersHermes {
				return sub, fmt.Errorf("workers=%q: want go or hermes", value)
			}
			if value == hermes.WorkersHermes {
				sub.Workers = value
			}
		case "python-sqlite":
			if err := hermes.ParsePythonSQLite(value); err != nil {
				return sub, err
			}
			if value != hermes.PythonSQLiteSystem {
				sub.PythonSQLite = value
			}
		default:
			return sub, fmt.Errorf("%q: a hermes: side takes workers=go|hermes and python-sqlite=system|VERSION", kv)
		}
	}
	// The release on the libsqlite3 the side asks for must be there.
	if _, err := in.WithSQLite(sub.PythonSQLite); err != nil {
		return sub, err
	}
	return sub, nil
}

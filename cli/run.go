package cli

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/report"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
	"github.com/kanbanchaos/kanbanchaos/subject"
)

// knobFlags collects repeated --knob name=value flags.
type knobFlags map[string]string

func (k knobFlags) String() string { return "" }

// args are the --knob flags that set k again, in name order (for a replay
// command).
func (k knobFlags) args() []string {
	var out []string
	for _, n := range slices.Sorted(maps.Keys(k)) {
		out = append(out, "--knob", n+"="+k[n])
	}
	return out
}

func (k knobFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want name=value, got %q", v)
	}
	k[name] = value
	return nil
}

// runSchedule runs s through the harness. A run that ended in an error is
// reported in its exit class (errorExit) with the sandbox (if any) and the
// replay command; code is then that exit code, else -1.
func runSchedule(ctx context.Context, cmd string, s schedule.Schedule, opt harness.Options, stderr io.Writer) (harness.Result, int) {
	res, err := harness.Run(ctx, s, opt)
	if errors.Is(err, harness.ErrArtifacts) && res.Verdict.Status != "" {
		// The verdict was reached: it is printed, with why its evidence
		// is not where it should be.
		fmt.Fprintf(stderr, "kanbanchaos %s: the verdict below stands, but %v\n", cmd, err)
		return res, -1
	}
	if err != nil {
		code := errorExit(ctx, cmd, err, stderr)
		if res.Artifacts != "" {
			fmt.Fprintln(stderr, "sandbox:", res.Artifacts)
		}
		fmt.Fprintln(stderr, "replay:", opt.Replay)
		return res, code
	}
	return res, -1
}

// parseFlags parses a command's flags (interleaved with its arguments) and
// says what to do when that is all: --help exits 0, a bad flag exits 2 (the
// flag package has already printed the problem).
func parseFlags(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	pos, err := parseInterleaved(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return nil, exitPass, false
	case err != nil:
		return nil, exitUsage, false
	}
	return pos, 0, true
}

// parseInterleaved parses flags that may come before or after positional
// arguments ("run issue-30896 --variant fixed").
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

type runFlags struct {
	variant     string
	knobs       knobFlags
	seed        uint64
	dispatchers int
	duration    time.Duration
	timeScale   float64
	json        bool
	artifacts   string
	keep        bool
	report      bool   // write report.html into the kept sandbox
	subject     string // "exec:CMD", or "" for the reference dispatcher
	oneShot     bool
	sqlite      string // engine, a key of schedule.Engines
	workers     workerFlags
	full        bool // run the whole schedule even once the verdict is decided
}

// defaultEngine is the engine this module links; --sqlite names the others.
const defaultEngine = "3.54"

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f := runFlags{knobs: knobFlags{}}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.variant, "variant", "", "dispatcher variant (default: the scenario's); see 'kanbanchaos variants'")
	fs.Var(f.knobs, "knob", "set one knob, name=value (repeatable); overrides the variant")
	fs.Uint64Var(&f.seed, "seed", 0, "seed for the run's timings (default: random, printed)")
	fs.IntVar(&f.dispatchers, "dispatchers", 0, "number of dispatchers ticking the board (default: the scenario's)")
	fs.DurationVar(&f.duration, "duration", 0, "length of the dispatch phase, e.g. 3s (default: the scenario's)")
	fs.Float64Var(&f.timeScale, "time-scale", 0, "factor on Hermes' intervals: 0.001 makes the 60 s tick 60 ms (default: the scenario's)")
	fs.BoolVar(&f.json, "json", false, "print the result as one JSON object")
	fs.StringVar(&f.artifacts, "artifacts", defaultStore(), storeFlagDoc)
	fs.BoolVar(&f.keep, "keep", false, "keep the sandbox of a passing run too")
	fs.BoolVar(&f.full, "full-duration", false, "run the whole schedule even once a violation decided the verdict (default: stop there)")
	fs.BoolVar(&f.report, "report", false, "write report.html (per-task timelines; see 'kanbanchaos report') into the run's artifacts; implies --keep")
	fs.StringVar(&f.subject, "subject", "", "dispatcher under test instead of the in-process reference: hermes:VERSION|PATH (a real Hermes release\nor checkout, see 'kanbanchaos hermes') or exec:'CMD' (e.g. 'kanbanchaos dispatch --variant fixed')")
	fs.BoolVar(&f.oneShot, "one-shot", false, "with --subject: CMD dispatches once and exits, so it is re-run every tick")
	fs.StringVar(&f.sqlite, "sqlite", "", engineFlagDoc())
	f.workers.register(fs)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: kanbanchaos run SCENARIO [flags]\n\n"+
			"Runs SCENARIO in a fresh sandbox: seeds a board, starts the dispatcher(s) of --variant, lets them spawn\n"+
			"fake workers through HERMES_BIN, then checks every invariant (spawns ≤ failure limit from the ledger,\n"+
			"breaker holds, run bookkeeping, no lost runs, integrity_check). Prints the seed and the replay command.\n\n"+
			"Examples: kanbanchaos run issue-30896 --variant hermes-0.15\n          kanbanchaos run issue-30896 --subject hermes:0.15.0   (a real release; see kanbanchaos hermes)\n\nFlags:\n")
		fs.PrintDefaults()
		fmt.Fprintf(stderr, "\nScenarios: %s\nVariants:  %s\nKnobs:\n  %s\n", strings.Join(scenarios.Names(), ", "),
			strings.Join(dispatcher.VariantNames(), ", "), strings.Join(dispatcher.KnobDocs(), "\n  "))
	}
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprintf(stderr, "kanbanchaos run: want exactly one scenario (valid: %s), got %d arguments\n", strings.Join(scenarios.Names(), ", "), len(pos))
		return exitUsage
	}
	sc, err := scenarios.Lookup(pos[0])
	if err != nil {
		fmt.Fprintln(stderr, "kanbanchaos run:", err)
		return exitUsage
	}
	if _, ok := schedule.Engines[f.sqlite]; !ok && flagGiven(fs, "sqlite") {
		fmt.Fprintf(stderr, "kanbanchaos run: --sqlite %q is not an engine (valid: %s)\n", f.sqlite, strings.Join(engineNames(), ", "))
		return exitUsage
	}
	seedGiven, sqliteGiven := false, false
	fs.Visit(func(fl *flag.Flag) {
		seedGiven = seedGiven || fl.Name == "seed"
		sqliteGiven = sqliteGiven || fl.Name == "sqlite"
	})
	if err := checkOverrides(fs); err != nil {
		fmt.Fprintln(stderr, "kanbanchaos run:", err)
		return exitUsage
	}
	if !seedGiven {
		f.seed = randomSeed()
	}
	s := sc.Build(f.seed, f.variant)
	if sqliteGiven {
		s.Engine = f.sqlite
	}
	f.sqlite = s.EngineOrDefault()
	// The user's knobs go on top of the scenario's own.
	for k, v := range f.knobs {
		if s.Knobs == nil {
			s.Knobs = map[string]string{}
		}
		s.Knobs[k] = v
	}
	knobs, err := dispatcher.Resolve(s.Variant, s.Knobs)
	if err == nil {
		err = harness.CheckEngineKnobs(s.EngineOrDefault(), knobs)
	}
	if err != nil {
		fmt.Fprintln(stderr, "kanbanchaos run:", err)
		return exitUsage
	}
	if f.dispatchers != 0 {
		s.Dispatchers = f.dispatchers
	}
	if f.duration != 0 {
		s.DurationMs = int(f.duration.Milliseconds())
	}
	if f.timeScale != 0 {
		s.TimeScale = f.timeScale
	}
	scenarios.Respread(&s)
	if err := s.Validate(); err != nil {
		fmt.Fprintln(stderr, "kanbanchaos run:", err)
		return exitUsage
	}
	sub, err := parseSubject(f.subject, f.oneShot)
	if err == nil {
		sub, err = f.workers.apply(sub)
	}
	if err == nil && sub.Hermes != "" {
		err = subject.CheckHermesKnobs(s.Variant, s.Knobs)
		if err == nil {
			_, err = hermes.Locate(sub.Hermes)
		}
		if err == nil {
			s.Subject = sub
			err = subject.CheckWorkers(ctx, s)
		}
	}
	if err == nil {
		err = checkOutputs(map[string]string{"artifacts": f.artifacts}, nil)
	}
	if err != nil {
		fmt.Fprintln(stderr, "kanbanchaos run:", err)
		return exitUsage
	}
	replay := replayCommand(sc.Name, f, s.Variant)
	if !f.json {
		printHeader(stdout, "run "+sc.Name, s, sub)
	}
	// Progress goes to stderr with --json too: stdout holds only the JSON.
	res, code := runSchedule(ctx, "run", s, harness.Options{ArtifactsDir: f.artifacts, Keep: f.keep || f.report, Replay: replay, Log: stderr, Subject: sub,
		FullDuration: f.full}, stderr)
	if code >= 0 {
		return code
	}
	if f.json {
		printJSON(stdout, res, replay)
	} else {
		printText(stdout, res, replay)
	}
	if f.report {
		path, err := report.Write(res.Artifacts, "")
		if err != nil {
			return outputFailed("run", "report.html", err, exitFor(res.Verdict.Status), stderr)
		}
		out := stdout
		if f.json {
			out = stderr // stdout holds only the JSON
		}
		fmt.Fprintln(out, "report:", path)
	}
	return exitFor(res.Verdict.Status)
}

func randomSeed() uint64 {
	var b [4]byte
	rand.Read(b[:])
	return uint64(binary.LittleEndian.Uint32(b[:]))
}

// progName is how a replay command names this program: the way the user
// invoked it. A binary go run (or go test) built into the build cache is
// named as go run names it — from inside the checkout, ./cmd/kanbanchaos —
// since the cached binary is gone when it exits; otherwise argv[0] as typed
// (kanbanchaos found on PATH, ./kanbanchaos, /opt/bin/kanbanchaos), which
// works from the directory the user is in.
func progName() string {
	exe, err := os.Executable()
	if err == nil && strings.Contains(exe, string(filepath.Separator)+"go-build") {
		return "go run ./cmd/kanbanchaos"
	}
	argv0 := os.Args[0]
	if argv0 == "" || filepath.Base(argv0) == fakeworker.InvokedAs {
		return "kanbanchaos"
	}
	return shellQuote(argv0)
}

// engineNames lists the engines, the default first.
func engineNames() []string {
	names := make([]string, 0, len(schedule.Engines))
	for e := range schedule.Engines {
		names = append(names, e)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	return names
}

// engineFlagDoc documents --sqlite: the engines, and each scenario's own
// default, which is not the same for all.
func engineFlagDoc() string {
	byEngine := map[string][]string{}
	for _, sc := range scenarios.All() {
		e := sc.Build(1, "").EngineOrDefault()
		byEngine[e] = append(byEngine[e], sc.Name)
	}
	var defaults []string
	for _, e := range engineNames() {
		if e != defaultEngine && len(byEngine[e]) > 0 {
			defaults = append(defaults, fmt.Sprintf("%s for %s", e, strings.Join(byEngine[e], ", ")))
		}
	}
	defaults = append(defaults, defaultEngine+" for every other")
	return fmt.Sprintf("SQLite engine: %s (default: the scenario's own — %s);\n"+
		"a run on 3.50 uses kanbanchaos-sqlite350 (installed next to kanbanchaos or on PATH) or builds it from the checkout; see 'kanbanchaos version'",
		engineDocs(), strings.Join(defaults, "; "))
}

func engineDocs() string {
	var docs []string
	for _, e := range engineNames() {
		docs = append(docs, fmt.Sprintf("%s (SQLite %s)", e, schedule.Engines[e]))
	}
	return strings.Join(docs, " or ")
}

// replayCommand is the exact command line that reruns this run.
func replayCommand(scenario string, f runFlags, variant string) string {
	parts := []string{progName(), "run", scenario, "--variant", variant, "--seed", strconv.FormatUint(f.seed, 10)}
	if f.sqlite != "" && f.sqlite != defaultEngine {
		parts = append(parts, "--sqlite", f.sqlite)
	}
	parts = append(parts, f.knobs.args()...)
	if f.dispatchers != 0 {
		parts = append(parts, "--dispatchers", strconv.Itoa(f.dispatchers))
	}
	if f.duration != 0 {
		parts = append(parts, "--duration", f.duration.String())
	}
	if f.timeScale != 0 {
		parts = append(parts, "--time-scale", strconv.FormatFloat(f.timeScale, 'g', -1, 64))
	}
	if f.subject != "" {
		parts = append(parts, "--subject", shellQuote(f.subject))
		if f.oneShot {
			parts = append(parts, "--one-shot")
		}
	}
	parts = append(parts, f.workers.args()...)
	return strings.Join(parts, " ")
}

// parseSubject reads --subject: "" (the reference dispatcher), exec:CMD, or
// hermes:VERSION|PATH (a real Hermes release or checkout).
func parseSubject(s string, oneShot bool) (schedule.Subject, error) {
	if s == "" {
		if oneShot {
			return schedule.Subject{}, fmt.Errorf("--one-shot needs --subject exec:'CMD'")
		}
		return schedule.Subject{}, nil
	}
	if spec, ok := strings.CutPrefix(s, "hermes:"); ok {
		if oneShot {
			return schedule.Subject{}, fmt.Errorf("--one-shot: a hermes: subject runs the release's dispatch loop in one long-running process, as the gateway does")
		}
		if err := hermes.ParseSpec(spec); err != nil {
			return schedule.Subject{}, err
		}
		return schedule.Subject{Hermes: spec}, nil
	}
	cmd, ok := strings.CutPrefix(s, "exec:")
	if !ok || strings.TrimSpace(cmd) == "" {
		return schedule.Subject{}, fmt.Errorf("--subject %q: want exec:'COMMAND' (e.g. exec:'kanbanchaos dispatch --variant fixed') or hermes:VERSION "+
			"(e.g. hermes:%s, see 'kanbanchaos hermes'); for a reference variant use --variant", s, hermes.Release30896)
	}
	return schedule.Subject{Exec: cmd, OneShot: oneShot}, nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// flagGiven reports whether the command line set flag name.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(fl *flag.Flag) { given = given || fl.Name == name })
	return given
}

// checkOverrides refuses --dispatchers, --duration and --time-scale given
// as 0 or less: 0 means "the scenario's own" only when the flag is absent,
// never silently when the user typed it.
func checkOverrides(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "dispatchers", "duration", "time-scale":
		default:
			return
		}
		v := fl.Value.String()
		if d, perr := time.ParseDuration(v); perr == nil && fl.Name == "duration" && d <= 0 ||
			fl.Name != "duration" && (v == "0" || strings.HasPrefix(v, "-") || v == "NaN") {
			err = fmt.Errorf("--%s %s: want a positive value (leave the flag out for the scenario's own)", fl.Name, v)
		}
	})
	return err
}

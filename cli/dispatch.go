package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
)

// Environment a dispatch process reads besides Hermes' own.
const (
	envTimeScale      = "KANBANCHAOS_TIME_SCALE" // default for --time-scale (the harness sets it)
	envDispatcherName = "KANBANCHAOS_DISPATCHER" // name in the ledger (the harness sets it)
)

// cmdDispatch is the reference dispatcher as its own process, with
// Hermes-like flags and environment: the external subject the harness can
// drive exactly like a real `hermes kanban dispatch`.
func cmdDispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("dispatch", fmt.Sprintf("Usage: kanbanchaos dispatch [flags]\n\n"+
		"The reference dispatcher as a process. It resolves the board like Hermes (HERMES_KANBAN_HOME, --board,\n"+
		"HERMES_KANBAN_BOARD, the current file), spawns workers through HERMES_BIN with Hermes' argv and\n"+
		"environment, and honours HERMES_KANBAN_CRASH_GRACE_SECONDS, HERMES_KANBAN_CLAIM_TTL_SECONDS and\n"+
		"HERMES_KANBAN_RATE_LIMIT_COOLDOWN_SECONDS. With %s set it appends its settings, commits, SQLite\n"+
		"errors and every tick to that ledger. It never waits on or kills its workers: like Hermes, it leaves them to the next tick.\n\n"+
		"Example: HERMES_KANBAN_HOME=/tmp/h HERMES_BIN=/usr/local/bin/hermes kanbanchaos dispatch --once\n\nFlags:\n", fakeworker.EnvLedger), stderr)
	board := fs.String("board", "", "board slug (default: the active board: HERMES_KANBAN_BOARD, the current file, else default)")
	variant := fs.String("variant", "hermes-0.14", "dispatcher variant; see 'kanbanchaos variants'")
	knobs := knobFlags{}
	fs.Var(knobs, "knob", "set one knob, name=value (repeatable)")
	maxSpawn := fs.Int("max-spawn", 0, "live cap on running tasks (0: none, Hermes' default config)")
	failureLimit := fs.Int("failure-limit", 0, "configured kanban.failure_limit (0: unset, i.e. 2)")
	interval := fs.Duration("interval", 0, "tick interval (default: 60s × --time-scale)")
	once := fs.Bool("once", false, "run one dispatch_once and exit (like 'hermes kanban dispatch')")
	scale := fs.Float64("time-scale", envFloat(envTimeScale, 1), "factor on Hermes' intervals (60 s tick, 30 s crash grace, 900 s claim TTL …)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		return usageError(stderr, "dispatch")("takes no arguments, got %q", pos)
	}
	cfg, err := dispatchConfig(*board, *variant, knobs, *maxSpawn, *failureLimit, *interval, *scale)
	if err != nil {
		fmt.Fprintln(stderr, "kanbanchaos dispatch:", err)
		return exitUsage
	}
	// Under a harness, a dispatcher process lives only as long as it: a
	// harness killed by SIGKILL cannot stop it any other way.
	ctx, stop := watchHarness(ctx, os.Getenv(fakeworker.EnvHarness))
	defer stop()
	d, err := dispatcher.New(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "kanbanchaos dispatch:", err)
		return exitInternal
	}
	defer d.Close()
	logTick := func(t dispatcher.Tick) {
		fmt.Fprintf(stderr, "%s tick: spawned=%d crashed=%d gave_up=%d promoted=%d reclaimed=%d auto_blocked=%d deferred=%d%s%s\n",
			cfg.Name, t.Spawned, t.Crashed, t.GaveUp, t.Promoted, t.Reclaimed, t.AutoBlocked, t.Deferred,
			map[bool]string{true: " skipped_locked", false: ""}[t.SkippedLocked], errSuffix(t.Error))
	}
	rec := tickRecorder{cfg: cfg, stderr: stderr}
	rec.settings(*variant)
	tick := func() (dispatcher.Tick, error) {
		began := ledger.MonoNow()
		t, err := d.DispatchOnce(ctx)
		if ctx.Err() != nil && !*once {
			return t, err // stopped mid-tick: not a tick that finished
		}
		rec.tick(t, began, ledger.MonoNow())
		logTick(t)
		return t, err
	}
	if *once {
		if _, err := tick(); err != nil {
			return exitInternal
		}
		return exitPass
	}
	// dispatcher.Run's loop, with each tick's start taken for the ledger.
	ticker := time.NewTicker(max(cfg.Timing.Tick, time.Millisecond))
	defer ticker.Stop()
	for {
		tick()
		if ctx.Err() != nil {
			return exitPass
		}
		select {
		case <-ctx.Done():
			return exitPass
		case <-ticker.C:
		}
	}
}

// tickRecorder writes the dispatcher's settings and ticks to the ledger
// (when KANBANCHAOS_LEDGER is set), so that a subject made of this process
// is observed doing everything the in-process reference dispatcher is: its
// commits and SQLite errors (the dispatcher writes those), and every tick.
type tickRecorder struct {
	cfg    dispatcher.Config
	stderr io.Writer
}

func (r tickRecorder) append(e ledger.Entry) {
	if r.cfg.Ledger == "" {
		return
	}
	e.PID, e.Who, e.Board = os.Getpid(), r.cfg.Name, r.cfg.Board
	if err := ledger.Append(r.cfg.Ledger, e); err != nil {
		fmt.Fprintln(r.stderr, "kanbanchaos dispatch:", err)
	}
}

// settings records what this dispatcher runs with, once, at its start —
// with the keys the Hermes driver's report uses where they mean the same
// (failure_limit, max_spawn, tick_s, resolved).
func (r tickRecorder) settings(variant string) {
	t := r.cfg.Timing
	var maxSpawn *int // nil: no cap, as Hermes' config has none
	if r.cfg.MaxSpawn > 0 {
		maxSpawn = &r.cfg.MaxSpawn
	}
	data, err := json.Marshal(map[string]any{
		"variant": variant, "knobs": r.cfg.Knobs.Values(), "board": r.cfg.Board, "db": r.cfg.DBPath,
		"failure_limit": r.cfg.FailureLimit, "max_spawn": maxSpawn, "time_scale": t.Scale, "tick_s": t.Tick.Seconds(),
		"resolved": map[string]float64{"crash_grace_s": t.CrashGrace.Seconds(), "claim_ttl_s": t.ClaimTTL.Seconds(),
			"rate_limit_cooldown_s": t.RateLimitCooldown.Seconds()},
	})
	if err != nil {
		fmt.Fprintln(r.stderr, "kanbanchaos dispatch: settings:", err)
		return
	}
	r.append(ledger.Entry{Kind: ledger.Settings, Message: string(data)})
}

// tick records one finished tick: when it began and ended, whether it was
// skipped because another dispatcher held the lock, and its error.
func (r tickRecorder) tick(t dispatcher.Tick, began, ended int64) {
	e := ledger.Entry{Kind: ledger.Tick, Began: began, Mono: ended, Message: t.Error}
	if t.SkippedLocked {
		e.Op = ledger.SkippedLocked
	}
	r.append(e)
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return " error=" + strconv.Quote(e)
}

// dispatchConfig builds the dispatcher from flags and the environment.
func dispatchConfig(board, variant string, overrides map[string]string, maxSpawn, failureLimit int, interval time.Duration, scale float64) (dispatcher.Config, error) {
	knobs, err := dispatcher.Resolve(variant, overrides)
	if err != nil {
		return dispatcher.Config{}, err
	}
	if knobs.Connect.OFDLocking != kanban.OFDFromEnv() {
		return dispatcher.Config{}, fmt.Errorf("knob ofd_locking=%v needs this process started with %s set accordingly", knobs.Connect.OFDLocking, kanban.OFDEnv)
	}
	if scale <= 0 || scale > 1 {
		return dispatcher.Config{}, fmt.Errorf("--time-scale %g: want 0 < x <= 1", scale)
	}
	env := kanban.EnvFrom(os.Getenv)
	res, err := kanban.Resolve(env, board, knobs.PinBeatsBoard)
	if err != nil {
		return dispatcher.Config{}, err
	}
	bin, err := hermesBin()
	if err != nil {
		return dispatcher.Config{}, err
	}
	timing := dispatcher.HermesTiming(scale)
	if interval > 0 {
		timing.Tick = interval
	}
	for name, d := range map[string]*time.Duration{
		"HERMES_KANBAN_CRASH_GRACE_SECONDS":         &timing.CrashGrace,
		"HERMES_KANBAN_CLAIM_TTL_SECONDS":           &timing.ClaimTTL,
		"HERMES_KANBAN_RATE_LIMIT_COOLDOWN_SECONDS": &timing.RateLimitCooldown,
	} {
		if v := os.Getenv(name); v != "" {
			secs, err := strconv.ParseFloat(v, 64)
			if err != nil || secs < 0 {
				return dispatcher.Config{}, fmt.Errorf("%s=%q is not a number of seconds", name, v)
			}
			*d = time.Duration(secs * float64(time.Second))
		}
	}
	name := os.Getenv(envDispatcherName)
	if name == "" {
		name = "dispatch-" + strconv.Itoa(os.Getpid())
	}
	slug := res.Slug
	if slug == "" {
		slug = kanban.ActiveBoard(env)
	}
	return dispatcher.Config{
		Name: name, Home: env.Home, Board: slug, DBPath: res.Path, HermesBin: bin, Env: os.Environ(),
		Knobs: knobs, FailureLimit: failureLimit, MaxSpawn: maxSpawn, Timing: timing,
		Children: dispatcher.NewOrphanableChildren(), Process: kanban.NewProcess(), Ledger: os.Getenv(fakeworker.EnvLedger),
	}, nil
}

// hermesBin is Hermes' _resolve_hermes_argv: HERMES_BIN (a path, or a name
// searched on PATH), else `hermes` on PATH.
func hermesBin() (string, error) {
	name := os.Getenv("HERMES_BIN")
	if name == "" {
		name = "hermes"
	}
	if strings.ContainsRune(name, '/') {
		return name, nil
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("HERMES_BIN is not set and %q is not on PATH: nothing to spawn workers with", name)
	}
	return path, nil
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil && v > 0 {
		return v
	}
	return def
}

// watchHarness cancels ctx once the harness named by token is gone (no-op
// without one).
func watchHarness(ctx context.Context, token string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	if token == "" {
		return ctx, cancel
	}
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if fakeworker.HarnessGone(token) {
					cancel()
					return
				}
			}
		}
	}()
	return ctx, cancel
}

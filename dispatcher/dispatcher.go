// Package dispatcher is the reference dispatcher: a Go mirror of Hermes'
// dispatch_once tick (spec/hermes-kanban.md §3) over the kanban board store,
// with named variants made of independent knobs. It spawns workers exactly as
// Hermes does — argv `<HERMES_BIN> -p <assignee> --accept-hooks chat -q
// "work kanban task <id>"`, the HERMES_KANBAN_* environment, a new session,
// never waited on synchronously — so the fake workers, or real Hermes
// workers, cannot tell it from the original.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
)

// Timing holds Hermes' intervals, already scaled.
type Timing struct {
	Tick              time.Duration // dispatch_interval_seconds: 60 s
	CrashGrace        time.Duration // HERMES_KANBAN_CRASH_GRACE_SECONDS: 30 s
	ClaimTTL          time.Duration // HERMES_KANBAN_CLAIM_TTL_SECONDS: 900 s
	HeartbeatStale    time.Duration // a live worker silent this long is reclaimed: 3600 s
	RateLimitCooldown time.Duration // DEFAULT_RATE_LIMIT_COOLDOWN_SECONDS: 300 s
	BackoffBase       time.Duration // fixed variant: 1 s, ×4 per failure
	KillGrace         time.Duration // SIGTERM → SIGKILL: 10 × 0.5 s
	Scale             float64       // the factor applied; task max_runtime_seconds scale by it too
}

// HermesTiming scales Hermes' defaults by scale (1 = real time).
func HermesTiming(scale float64) Timing {
	s := func(d time.Duration) time.Duration { return time.Duration(float64(d) * scale) }
	return Timing{
		Tick:              s(60 * time.Second),
		CrashGrace:        s(30 * time.Second),
		ClaimTTL:          s(900 * time.Second),
		HeartbeatStale:    s(3600 * time.Second),
		RateLimitCooldown: s(300 * time.Second),
		BackoffBase:       s(time.Second),
		KillGrace:         s(5 * time.Second),
		Scale:             scale,
	}
}

// Config is one dispatcher: which board, how to spawn, which knobs.
type Config struct {
	Name         string // for traces: "d1", "d2", …
	Home         string // HERMES_KANBAN_HOME (also the profiles root)
	Board        string // board slug
	DBPath       string
	HermesBin    string   // HERMES_BIN: the worker command
	Env          []string // the dispatcher process's environment, inherited by workers
	Knobs        Knobs
	FailureLimit int // configured kanban.failure_limit; 0 = unset
	MaxSpawn     int // live cap on running tasks; 0 = none
	Timing       Timing
	ClaimLock    string // "<hostname>:<pid>"
	Children     *Children
	// Process is the connection registry of the OS process hosting this
	// dispatcher (shared by dispatchers in one process, as their locks are).
	Process *kanban.Process
	// Ledger, if set, receives every commit this dispatcher saw
	// acknowledged and every SQLite error it got.
	Ledger string
	// OnStart, if set, is called after each worker this dispatcher started,
	// inside its tick: a tick that spawns thirty workers one after another
	// is working, not stalled, however long it takes.
	OnStart func()
}

// Tick is what one DispatchOnce did, in Hermes' tick-summary vocabulary.
type Tick struct {
	Dispatcher    string  `json:"dispatcher"`
	At            float64 `json:"at"`
	SkippedLocked bool    `json:"skipped_locked,omitempty"`
	Reclaimed     int     `json:"reclaimed,omitempty"`
	Extended      int     `json:"extended,omitempty"`
	Crashed       int     `json:"crashed,omitempty"`
	TimedOut      int     `json:"timed_out,omitempty"`
	GaveUp        int     `json:"gave_up,omitempty"`
	Promoted      int     `json:"promoted,omitempty"`
	Spawned       int     `json:"spawned,omitempty"`
	SpawnFailed   int     `json:"spawn_failed,omitempty"`
	AutoBlocked   int     `json:"auto_blocked,omitempty"`
	Deferred      int     `json:"deferred,omitempty"`
	Error         string  `json:"error,omitempty"`
	ErrorCode     int     `json:"error_code,omitempty"`
	// DurationMs is how long the tick took, on the wall clock (the
	// report's tick-duration plot).
	DurationMs float64 `json:"duration_ms,omitempty"`
	// StartMs is the part of it spent starting workers: fork until the
	// child's exec, which the dispatcher waits for, as Hermes' Popen does
	// (the harness-overhead benchmark splits a start's cost with it).
	StartMs float64 `json:"start_ms,omitempty"`
}

// Dispatcher runs ticks against one board over its own connection.
type Dispatcher struct {
	cfg Config
	// watch is the gateway's long-lived connection (its notifier): open for
	// the dispatcher's whole life, writing its cursor every tick.
	watch *kanban.Board
	// board is the tick's own connection: Hermes' _tick_once_for_board opens
	// a fresh connect(board=slug) for every dispatch_once.
	board *kanban.Board
	// exits is Hermes' process-local _recent_worker_exits: statuses this
	// dispatcher reaped from its own children.
	exits map[int]syscall.WaitStatus
	host  string
}

// New connects to the board.
func New(ctx context.Context, cfg Config) (*Dispatcher, error) {
	if cfg.Children == nil {
		return nil, errors.New("dispatcher: Config.Children is nil")
	}
	if cfg.ClaimLock == "" {
		cfg.ClaimLock = DefaultClaimLock()
	}
	if cfg.Process == nil {
		cfg.Process = kanban.NewProcess()
	}
	host, _, _ := strings.Cut(cfg.ClaimLock, ":")
	d := &Dispatcher{cfg: cfg, exits: map[int]syscall.WaitStatus{}, host: host}
	w, err := kanban.Connect(ctx, cfg.DBPath, d.connectOptions())
	if err != nil {
		d.logError(err)
		return nil, fmt.Errorf("dispatcher %s: %w", cfg.Name, err)
	}
	d.watch = w
	return d, nil
}

// connectOptions are the variant's connection knobs wired to this process
// and this dispatcher's ledger.
func (d *Dispatcher) connectOptions() kanban.Options {
	o := d.cfg.Knobs.Connect
	o.Process = d.cfg.Process
	if d.cfg.Ledger != "" {
		o.OnCommit = func(c kanban.Commit) {
			ledger.Append(d.cfg.Ledger, ledger.Entry{Kind: ledger.Commit, PID: os.Getpid(), Who: d.cfg.Name,
				Op: c.Op, Began: c.Began, Task: c.Task, Run: c.Run, Events: c.Events, Comments: c.Comments})
		}
	}
	return o
}

// logError puts a SQLite error into the ledger with its extended code (the
// oracle looks there for CORRUPT, NOTADB, IOERR and PROTOCOL), and the
// code's own corruption verdicts as alarms (no-false-alarm).
func (d *Dispatcher) logError(err error) {
	if d.cfg.Ledger == "" {
		return
	}
	if code, ok := kanban.Code(err); ok {
		ledger.Append(d.cfg.Ledger, ledger.Entry{Kind: ledger.SQLiteError, PID: os.Getpid(), Who: d.cfg.Name, Code: code, Message: err.Error()})
	}
	if kanban.IsAlarm(err) {
		ledger.Append(d.cfg.Ledger, ledger.Entry{Kind: ledger.Alarm, PID: os.Getpid(), Who: d.cfg.Name, Op: "dispatch_once", Message: err.Error()})
	}
}

// Watch is the dispatcher's long-lived connection (for reads in tests and
// tools).
func (d *Dispatcher) Watch() *kanban.Board { return d.watch }

// DefaultClaimLock is Hermes' claim lock: "<hostname>:<pid>".
func DefaultClaimLock() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(os.Getpid())
}

// Close closes the board connection.
func (d *Dispatcher) Close() error { return d.watch.Close() }

// Run ticks every Timing.Tick until ctx ends, passing each tick to onTick.
// Tick errors are reported in the Tick and do not stop the loop, as a Hermes
// gateway logs and carries on.
func (d *Dispatcher) Run(ctx context.Context, onTick func(Tick)) {
	t := time.NewTicker(max(d.cfg.Timing.Tick, time.Millisecond))
	defer t.Stop()
	for {
		tick, _ := d.DispatchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if onTick != nil {
			onTick(tick)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// DispatchOnce is one dispatch_once: lock (if on), reap, release stale
// claims, detect crashed workers, enforce max runtime, recompute ready,
// spawn. Every step commits its own transaction(s), as in Hermes.
func (d *Dispatcher) DispatchOnce(ctx context.Context) (tick Tick, err error) {
	tick = Tick{Dispatcher: d.cfg.Name, At: d.watch.Now()}
	began := time.Now()
	defer func() {
		tick.DurationMs = float64(time.Since(began).Microseconds()) / 1000
		if err != nil {
			tick.Error = err.Error()
			tick.ErrorCode, _ = kanban.Code(err)
			d.logError(err)
		}
	}()
	if d.cfg.Knobs.DispatchLock {
		unlock, ok, err := tryLock(d.cfg.DBPath + ".dispatch.lock")
		if err != nil {
			return tick, err
		}
		if !ok {
			tick.SkippedLocked = true
			return tick, nil
		}
		defer unlock()
	}
	for pid, st := range d.cfg.Children.Reap(d.cfg.Name) {
		d.exits[pid] = st
	}
	board, err := kanban.Connect(ctx, d.cfg.DBPath, d.connectOptions())
	if err != nil {
		return tick, err
	}
	d.board = board
	defer func() {
		board.Close()
		d.board = nil
	}()
	if err := d.watch.AdvanceNotifyCursor(ctx, d.cfg.Name); err != nil {
		return tick, err
	}
	steps := []func(context.Context, *Tick) error{d.releaseStaleClaims, d.detectCrashedWorkers, d.enforceMaxRuntime, d.recomputeReady, d.spawnPhase}
	for _, step := range steps {
		if err := step(ctx, &tick); err != nil {
			return tick, err
		}
	}
	return tick, nil
}

// tryLock takes a non-blocking exclusive flock on path. flock locks belong to
// the open file description, so two dispatchers in one process exclude each
// other as two processes would.
func tryLock(path string) (unlock func(), ok bool, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, fmt.Errorf("dispatch lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("dispatch lock: %w", err)
	}
	return func() { f.Close() }, true, nil
}

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
	"math"
	"os"
	"path/filepath"
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

// logError puts a SQLite error into the ledger with its extended code: the
// oracle looks there for CORRUPT, NOTADB, IOERR and PROTOCOL.
func (d *Dispatcher) logError(err error) {
	code, ok := kanban.Code(err)
	if !ok || d.cfg.Ledger == "" {
		return
	}
	ledger.Append(d.cfg.Ledger, ledger.Entry{Kind: ledger.SQLiteError, PID: os.Getpid(), Who: d.cfg.Name, Code: code, Message: err.Error()})
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

func (d *Dispatcher) hostLocal(lock string) bool {
	host, _, ok := strings.Cut(lock, ":")
	return ok && host == d.host
}

// othersWorker reports, with own_workers, whether a run's claim belongs to
// another gateway that is still alive: its worker's exit code is that
// gateway's to read (it is the worker's parent), and booked from here it
// would be a crash whatever the code was. A claim lock is Hermes'
// "host:pid" (in-process dispatchers add "-dN"); a gateway that is gone
// leaves its workers to whoever sweeps.
func (d *Dispatcher) othersWorker(lock string) bool {
	if !d.cfg.Knobs.OwnWorkers || lock == d.cfg.ClaimLock {
		return false
	}
	_, rest, _ := strings.Cut(lock, ":")
	pid, _, _ := strings.Cut(rest, "-")
	n, err := strconv.Atoi(pid)
	return err == nil && Alive(n)
}

// exitKnown reports, with own_workers, whether pid is a worker of this
// dispatcher whose exit status is in (reaped now if it had not been).
func (d *Dispatcher) exitKnown(pid int) bool {
	if !d.cfg.Knobs.OwnWorkers || pid <= 0 {
		return false
	}
	if _, ok := d.exits[pid]; ok {
		return true
	}
	st, ok := d.cfg.Children.ReapPID(d.cfg.Name, pid)
	if ok {
		d.exits[pid] = st
	}
	return ok
}

func seconds(dur time.Duration) float64 { return dur.Seconds() }

// limitFor is the limit the crash path passes to _record_task_failure.
func (d *Dispatcher) limitFor(outcome string) int {
	if d.cfg.Knobs.CrashLimit == "configured" {
		return d.cfg.FailureLimit
	}
	if outcome == kanban.OutcomeProtocol {
		return 1
	}
	return 0 // None: max_retries, else DEFAULT_FAILURE_LIMIT
}

// releaseStaleClaims handles running tasks whose claim expired: a live,
// recently heard-from local worker gets its claim extended; anything else is
// killed and its task reclaimed (counted only with count_reclaims). With
// own_workers a claim of another live gateway is that gateway's to release:
// its worker may have exited with a code only that gateway can read; and a
// worker of ours whose exit code is in is left to detectCrashedWorkers,
// which books it by that code (an exit 75 reclaimed as stale would count).
func (d *Dispatcher) releaseStaleClaims(ctx context.Context, tick *Tick) error {
	running, err := d.board.Running(ctx)
	if err != nil {
		return err
	}
	now := d.board.Now()
	for _, r := range running {
		if r.ClaimExpires >= now || d.othersWorker(r.Lock) || d.exitKnown(r.PID) {
			continue
		}
		heard := max(r.LastHeartbeat, r.RunStartedAt)
		fresh := now-heard <= seconds(d.cfg.Timing.HeartbeatStale)
		if d.hostLocal(r.Lock) && Alive(r.PID) && fresh {
			if err := d.board.ExtendClaim(ctx, r.ID, r.Lock, now+seconds(d.cfg.Timing.ClaimTTL), "worker alive"); err != nil {
				return err
			}
			tick.Extended++
			continue
		}
		if r.PID > 0 && !d.stop(r.PID) {
			// The worker survived SIGKILL: defer, as reclaim_deferred does.
			if err := d.board.ExtendClaim(ctx, r.ID, r.Lock, now+120*d.cfg.Timing.Scale, "reclaim deferred"); err != nil {
				return err
			}
			continue
		}
		released, f, err := d.board.ReleaseClaim(ctx, r.ID, r.Lock, kanban.OutcomeReclaimed, "claim expired", d.cfg.Knobs.CountReclaims, d.cfg.FailureLimit)
		if err != nil {
			return err
		}
		if released {
			tick.Reclaimed++
			if f != nil && f.Tripped {
				tick.GaveUp++
			}
		}
	}
	return nil
}

// stop sends SIGTERM, waits the kill grace, then SIGKILL. It reports whether
// the worker is gone. Only processes started through Children are signalled:
// a pid we did not start may since have been reused.
func (d *Dispatcher) stop(pid int) bool {
	if !d.cfg.Children.Signal(pid, syscall.SIGTERM) {
		return !Alive(pid) || !d.cfg.Children.Known(pid)
	}
	deadline := time.Now().Add(d.cfg.Timing.KillGrace)
	for time.Now().Before(deadline) {
		if !Alive(pid) {
			return true
		}
		time.Sleep(min(d.cfg.Timing.KillGrace/10+time.Millisecond, 500*time.Millisecond))
	}
	d.cfg.Children.Signal(pid, syscall.SIGKILL)
	time.Sleep(time.Millisecond)
	return !Alive(pid)
}

// classify turns a worker's exit into Hermes' outcome. Without
// rateLimitExit (v0.14, v0.15) exit 75 is an ordinary nonzero exit.
func classify(st syscall.WaitStatus, rateLimitExit bool) (outcome, msg string) {
	switch {
	case st.Exited() && st.ExitStatus() == 0:
		return kanban.OutcomeProtocol, "worker exited 0 without completing the task"
	case st.Exited() && st.ExitStatus() == 75 && rateLimitExit:
		return kanban.OutcomeRateLimited, "worker exited 75 (rate limited)"
	case st.Exited():
		return kanban.OutcomeCrashed, fmt.Sprintf("worker exited with code %d", st.ExitStatus())
	case st.Signaled():
		return kanban.OutcomeCrashed, "worker killed by signal " + st.Signal().String()
	}
	return kanban.OutcomeCrashed, "worker ended: " + strconv.Itoa(int(st))
}

// detectCrashedWorkers is detect_crashed_workers: running tasks with a pid
// and a host-local lock whose worker is dead are reclaimed in one
// transaction; failures are counted in it (atomic_failure) or afterwards.
func (d *Dispatcher) detectCrashedWorkers(ctx context.Context, tick *Tick) error {
	running, err := d.board.Running(ctx)
	if err != nil {
		return err
	}
	now := d.board.Now()
	var crashes []kanban.Crash
	for _, r := range running {
		if r.PID == 0 || !d.hostLocal(r.Lock) || d.othersWorker(r.Lock) {
			continue
		}
		// Hermes measures the grace from tasks.started_at, the first-ever
		// start: only attempt #1 gets it. v0.14.0 has no grace at all.
		if d.cfg.Knobs.CrashGrace && now-r.StartedAt < seconds(d.cfg.Timing.CrashGrace) {
			continue
		}
		st, known := d.exits[r.PID]
		if !known {
			st, known = d.cfg.Children.ReapPID(d.cfg.Name, r.PID)
		}
		c := kanban.Crash{Task: r.ID, RunID: r.RunID, PID: r.PID, Lock: r.Lock}
		switch {
		case known:
			c.Outcome, c.Error = classify(st, d.cfg.Knobs.RateLimitExit)
		case Alive(r.PID):
			continue
		case d.cfg.Children.Unreaped(d.cfg.Name, r.PID):
			// Dead to /proc, yet our child and not reapable: a
			// multi-threaded worker's leader shows Z while its other
			// threads still exit. Its exit status comes next tick; booked
			// now it would be lost (an exit 75 counted as a crash).
			continue
		default:
			c.Outcome, c.Error = kanban.OutcomeCrashed, fmt.Sprintf("pid %d not alive", r.PID)
		}
		c.Count = c.Outcome != kanban.OutcomeRateLimited
		c.Limit = d.limitFor(c.Outcome)
		c.Streak = d.cfg.Knobs.ProtocolStreak
		crashes = append(crashes, c)
	}
	if len(crashes) == 0 {
		return nil
	}
	if d.cfg.Knobs.SystemicLimit {
		sameErrorLimit(crashes)
	}
	reclaimed, err := d.board.ReclaimCrashed(ctx, crashes, d.cfg.Knobs.AtomicFailure)
	if err != nil {
		return err
	}
	for _, r := range reclaimed {
		delete(d.exits, r.PID)
		tick.Crashed++
		if !r.Recorded && r.Count {
			f, err := d.board.RecordCrashFailure(ctx, r.Crash)
			if err != nil {
				return err
			}
			r.Failure = f
		}
		if r.Failure != nil && r.Failure.Tripped {
			tick.GaveUp++
		}
	}
	return nil
}

// sameErrorLimit applies Hermes' "systemic" rule (v0.15+, knob
// systemic_limit): when ≥3 crashes in one sweep share an error fingerprint,
// each trips at once (limit 1).
func sameErrorLimit(crashes []kanban.Crash) {
	count := map[string]int{}
	for _, c := range crashes {
		count[c.Error]++
	}
	for i, c := range crashes {
		if c.Count && count[c.Error] >= 3 {
			crashes[i].Limit = 1
		}
	}
}

// enforceMaxRuntime times out workers running longer than their task's
// max_runtime_seconds (scaled): SIGTERM, grace, SIGKILL, then ready +
// timed_out and a counted failure.
func (d *Dispatcher) enforceMaxRuntime(ctx context.Context, tick *Tick) error {
	running, err := d.board.Running(ctx)
	if err != nil {
		return err
	}
	now := d.board.Now()
	for _, r := range running {
		if r.MaxRuntime <= 0 || now-r.RunStartedAt <= r.MaxRuntime*d.cfg.Timing.Scale || !d.hostLocal(r.Lock) {
			continue
		}
		if r.PID > 0 && !d.stop(r.PID) {
			continue
		}
		msg := fmt.Sprintf("max runtime %.0fs exceeded", r.MaxRuntime)
		atomic := d.cfg.Knobs.AtomicFailure
		released, f, err := d.board.ReleaseClaim(ctx, r.ID, r.Lock, kanban.OutcomeTimedOut, msg, atomic, d.limitFor(kanban.OutcomeTimedOut))
		if err != nil || !released {
			return err
		}
		tick.TimedOut++
		if !atomic {
			ff, err := d.board.RecordTaskFailure(ctx, r.ID, kanban.OutcomeTimedOut, msg, d.limitFor(kanban.OutcomeTimedOut))
			if err != nil {
				return err
			}
			f = &ff
		}
		if f != nil && f.Tripped {
			tick.GaveUp++
		}
	}
	return nil
}

func (d *Dispatcher) recomputeReady(ctx context.Context, tick *Tick) error {
	promoted, err := d.board.RecomputeReady(ctx, kanban.RecomputePolicy{
		RepromoteTripped: d.cfg.Knobs.RepromoteTripped,
		FailureLimit:     d.cfg.FailureLimit,
		TodoOnly:         !d.cfg.Knobs.PromoteBlocked,
		ResetCounter:     d.cfg.Knobs.RepromoteResets,
	})
	tick.Promoted += len(promoted)
	return err
}

// profileExists is Hermes' profile_exists: `default`, or <home>/profiles/<name>.
func (d *Dispatcher) profileExists(name string) bool {
	if name == "default" {
		return true
	}
	st, err := os.Stat(filepath.Join(d.cfg.Home, "profiles", name))
	return err == nil && st.IsDir()
}

// backoffUntil is when a task with n consecutive failures may spawn again:
// base × 4^(n−1) after its last run ended.
func (d *Dispatcher) backoffUntil(c kanban.Candidate) float64 {
	if c.ConsecutiveFailures <= 0 || c.LastRunEnded == 0 {
		return 0
	}
	wait := seconds(d.cfg.Timing.BackoffBase) * math.Pow(4, float64(min(c.ConsecutiveFailures, 8)-1))
	return c.LastRunEnded + wait
}

// spawnPhase claims ready tasks and starts their workers, up to max_spawn
// running tasks.
func (d *Dispatcher) spawnPhase(ctx context.Context, tick *Tick) error {
	cands, err := d.board.SpawnCandidates(ctx)
	if err != nil {
		return err
	}
	running := 0
	if d.cfg.MaxSpawn > 0 {
		if running, err = d.board.CountRunning(ctx); err != nil {
			return err
		}
	}
	now := d.board.Now()
	for _, c := range cands {
		if d.cfg.MaxSpawn > 0 && running+tick.Spawned >= d.cfg.MaxSpawn {
			break
		}
		if c.Assignee == "" {
			continue
		}
		if !d.profileExists(c.Assignee) {
			if d.cfg.Knobs.ValidateAssignee {
				reason := fmt.Sprintf("assignee %q is not a known profile (no directory %s): fix the assignee or create the profile, then unblock",
					c.Assignee, filepath.Join(d.cfg.Home, "profiles", c.Assignee))
				if err := d.board.AutoBlock(ctx, c.ID, reason); err != nil {
					return err
				}
				tick.AutoBlocked++
			}
			continue // v0.14: skipped silently, forever
		}
		if d.cfg.Knobs.Backoff && now < d.backoffUntil(c) {
			tick.Deferred++
			continue
		}
		if d.cfg.Knobs.RateLimitCooldown && c.LastRunOutcome == kanban.OutcomeRateLimited &&
			now < c.LastRunEnded+seconds(d.cfg.Timing.RateLimitCooldown) {
			tick.Deferred++
			if d.cfg.Knobs.RespawnGuarded {
				if err := d.board.RespawnGuarded(ctx, c.ID, "rate_limit_cooldown"); err != nil {
					return err
				}
			}
			continue
		}
		if err := d.claimAndSpawn(ctx, c, tick); err != nil {
			return err
		}
	}
	return nil
}

func (d *Dispatcher) claimAndSpawn(ctx context.Context, c kanban.Candidate, tick *Tick) error {
	run, ok, err := d.board.Claim(ctx, c.ID, d.cfg.ClaimLock, seconds(d.cfg.Timing.ClaimTTL))
	if err != nil || !ok {
		return err
	}
	workspaces := filepath.Join(d.cfg.Home, "kanban", "workspaces")
	ws := filepath.Join(workspaces, c.ID)
	if err := os.MkdirAll(ws, 0o755); err != nil {
		return d.spawnFailed(ctx, c, run, fmt.Errorf("workspace: %w", err), tick)
	}
	if err := d.board.SetWorkspacePath(ctx, c.ID, ws); err != nil {
		return err
	}
	spec := d.spec(c, run, ws, workspaces)
	began := time.Now()
	pid, err := d.cfg.Children.Start(d.cfg.Name, spec)
	tick.StartMs += float64(time.Since(began).Microseconds()) / 1000
	if err != nil {
		return d.spawnFailed(ctx, c, run, err, tick)
	}
	tick.Spawned++
	if d.cfg.Knobs.LosePID {
		return nil // the pid never reaches the board: no worker_pid, no spawned event
	}
	return d.board.SetWorkerPID(ctx, c.ID, run, pid)
}

func (d *Dispatcher) spawnFailed(ctx context.Context, c kanban.Candidate, run int64, cause error, tick *Tick) error {
	tick.SpawnFailed++
	f, err := d.board.RecordSpawnFailure(ctx, c.ID, run, "spawn failed: "+cause.Error(), d.cfg.FailureLimit)
	if err == nil && f.Tripped {
		tick.GaveUp++
	}
	return err
}

// spec is the worker command line and environment, as Hermes' _default_spawn.
func (d *Dispatcher) spec(c kanban.Candidate, run int64, ws, workspaces string) Spec {
	argv := []string{d.cfg.HermesBin, "-p", c.Assignee, "--accept-hooks", "chat", "-q", "work kanban task " + c.ID}
	env := map[string]string{}
	var order []string
	for _, kv := range d.cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := env[k]; !dup {
			order = append(order, k)
		}
		env[k] = v
	}
	set := func(k, v string) {
		if _, dup := env[k]; !dup {
			order = append(order, k)
		}
		env[k] = v
	}
	set("HERMES_KANBAN_TASK", c.ID)
	set("HERMES_KANBAN_RUN_ID", strconv.FormatInt(run, 10))
	set("HERMES_KANBAN_CLAIM_LOCK", d.cfg.ClaimLock)
	set("HERMES_KANBAN_DB", d.cfg.DBPath)
	set("HERMES_KANBAN_BOARD", d.cfg.Board)
	set("HERMES_KANBAN_WORKSPACES_ROOT", workspaces)
	set("HERMES_KANBAN_WORKSPACE", ws)
	set("TERMINAL_CWD", ws)
	set("HERMES_PROFILE", c.Assignee)
	if p := filepath.Join(d.cfg.Home, "profiles", c.Assignee); d.profileExists(c.Assignee) && c.Assignee != "default" {
		set("HERMES_HOME", p)
	}
	envList := make([]string, 0, len(order))
	for _, k := range order {
		envList = append(envList, k+"="+env[k])
	}
	logs := filepath.Join(d.cfg.Home, "kanban", "logs")
	os.MkdirAll(logs, 0o755)
	return Spec{Argv: argv, Env: envList, Dir: ws, Log: filepath.Join(logs, c.ID+".log")}
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

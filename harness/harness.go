// Package harness runs one schedule against one subject in a fresh
// sandbox and returns the evidence: it prepares the sandbox (the Hermes
// home, the seeded board, the worker config, HERMES_BIN), hands the
// dispatch and quiet phases to the subject (package subject) with the fault
// injector (package faults) and the decision watcher beside it, kills every
// process the run started — on success, deadline and panic alike — gathers
// what the run observed into one record (the phases, the ledger, the board
// to check, the cleanup scan, the probes) and hands it to the oracle. A
// run on another SQLite engine is re-executed by that engine's binary
// (engine.go). On a failing or undecided run it keeps every artifact in
// the store (store.go, artifacts.go).
//
// It holds no invariant logic (the oracle's) and nothing about campaigns
// of many runs (package campaign, which is built on Run).
package harness

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/kanbanchaos/kanbanchaos/buildinfo"
	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/faults"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/sandbox"
	"github.com/kanbanchaos/kanbanchaos/schedule"
	"github.com/kanbanchaos/kanbanchaos/subject"
)

// Options configure how a run is hosted; the schedule says what runs.
type Options struct {
	// WorkerBin is the binary HERMES_BIN runs (through a symlink named
	// "hermes"). Empty: this executable, which must then act as the worker
	// when invoked as "hermes" (cmd/kanbanchaos and the test binaries do).
	WorkerBin string
	// ArtifactsDir receives <scenario>-<seed>/ for failing or undecided runs.
	// Empty: the sandbox itself is kept where it is.
	ArtifactsDir string
	// Keep keeps the sandbox of passing runs too.
	Keep bool
	// Replay is the command line that reproduces this run (for repro.sh).
	Replay string
	// StopGrace bounds how long dispatchers and processes may take to stop
	// after the run's time is up. Zero: 10 s.
	StopGrace time.Duration
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// OnTick, if set, sees every dispatcher tick as it happens (called from
	// the dispatcher goroutines, concurrently).
	OnTick func(dispatcher.Tick)
	// Subject is the dispatcher under test; the zero value is the reference
	// dispatcher in this process, with the schedule's variant and knobs.
	Subject schedule.Subject
	// FullDuration runs the whole schedule even once the verdict is
	// decided. Zero: a run stops once the ledger establishes a violation
	// (decide.go says who needs the whole schedule, and why).
	FullDuration bool
	// StopOn narrows what ends a run early to violations of these
	// invariants (nil: any that oracle.Decidable lists).
	StopOn []string
}

// Result is what a run produced.
type Result struct {
	Schedule    schedule.Schedule  `json:"schedule"`
	SQLite      string             `json:"sqlite"` // the SQLite version the dispatchers and workers ran on
	Verdict     oracle.Verdict     `json:"verdict"`
	Elapsed     time.Duration      `json:"elapsed_ns"`
	Spawns      int                `json:"spawns"`       // worker starts in the ledger
	SpawnRate   float64            `json:"spawns_per_s"` // over the dispatch + quiet phases
	Ticks       int                `json:"ticks"`
	TickErrors  int                `json:"tick_errors"`
	Artifacts   string             `json:"artifacts,omitempty"` // where the run's files are kept ("" = removed)
	LeftRunning []int              `json:"left_running,omitempty"`
	Faults      []faults.Injection `json:"faults,omitempty"` // what was injected, when, with what effect
	Probes      *Probes            `json:"probes,omitempty"` // the interesting states the run reached (probes.go)
	// Settings are what the dispatcher under test ran with (subject.Settings).
	Settings *subject.Settings `json:"settings,omitempty"`
	// Binary is the kanbanchaos that ran it (with its SQLite): a kept run
	// names the code that judged it.
	Binary *buildinfo.Info `json:"binary,omitempty"`
	// Decided is the violation that ended the run before its schedule did
	// (nil: the whole schedule ran).
	Decided *Decision `json:"decided,omitempty"`
	// The run's start on both clocks: what the evidence's "ms after the
	// start" counts from, and what lines up the ledger's CLOCK_MONOTONIC with
	// the trace's and the board's wall times (the HTML report's time axis).
	StartMono int64   `json:"start_mono_ns,omitempty"`
	StartWall float64 `json:"start_wall,omitempty"`
	// StopMono is when an external subject was told to stop (what its
	// last stretch without progress is judged up to; check re-reads it).
	StopMono int64 `json:"stop_mono_ns,omitempty"`
}

// Run executes s and returns the oracle's verdict. The error is for the
// harness failing (exit code 4), never for an invariant.
func Run(ctx context.Context, s schedule.Schedule, opt Options) (res Result, err error) {
	// The subject travels in the schedule, so schedule.json replays it.
	if opt.Subject.External() {
		s.Subject = opt.Subject
	}
	opt.Subject = s.Subject
	res.Schedule = s
	if err := s.Validate(); err != nil {
		return res, err
	}
	knobs, err := dispatcher.Resolve(s.Variant, s.Knobs)
	if err != nil {
		return res, err
	}
	sub := subject.For(s.Subject)
	if err := sub.Check(ctx, s); err != nil {
		return res, err
	}
	if err := CheckEngineKnobs(s.EngineOrDefault(), knobs); err != nil {
		return res, err
	}
	// OFD locking is fixed when a process starts (kanban.OFDEnv) and the
	// dispatchers run in this process: a run that needs the other lock kind,
	// like a run on another engine's SQLite, goes to a process started for it.
	ofd := kanban.OFDEnv + "=" + sandbox.OFDValue(knobs.Connect.OFDLocking)
	// An external subject brings its own engine and locks: it needs neither.
	res.SQLite = kanban.SQLiteVersion()
	if !s.Subject.External() && (schedule.Engines[s.EngineOrDefault()] != res.SQLite || knobs.Connect.OFDLocking != kanban.OFDFromEnv()) {
		bin, err := EngineBinary(ctx, s.EngineOrDefault(), opt.Log)
		if err != nil {
			return res, fmt.Errorf("%w: %w", ErrEnvironment, err)
		}
		return runInEngine(ctx, s, opt, bin, ofd)
	}
	if opt.StopGrace == 0 {
		opt.StopGrace = 10 * time.Second
	}
	if faults.HasPowerLoss(s) {
		if ok, why := faults.PowerLossSupported(); !ok {
			res.Verdict = faults.PowerLossSkipped(why) // undecided, never a false pass
			return res, nil
		}
	}
	r := &run{s: s, opt: opt, sub: sub, knobs: knobs, timing: timing(s), children: dispatcher.NewChildren(),
		logf: func(format string, args ...any) {
			if opt.Log != nil {
				fmt.Fprintf(opt.Log, format+"\n", args...)
			}
		}}
	// Whatever happens below — return, deadline, panic — no process we
	// started outlives the run.
	defer func() {
		if left := r.children.KillAll(opt.StopGrace); len(left) > 0 {
			res.LeftRunning = left
		}
	}()
	return r.here(ctx, res)
}

// CheckKnobs reports why Run would refuse s's variant and knobs: one that
// does not exist, one its engine cannot honour, one its hermes: subject
// would silently ignore. It asks no installed release anything (Run also
// does: subject.CheckWorkers), so it suits checking input before a run.
func CheckKnobs(s schedule.Schedule) error {
	knobs, err := dispatcher.Resolve(s.Variant, s.Knobs)
	if err == nil {
		err = CheckEngineKnobs(s.EngineOrDefault(), knobs)
	}
	if err == nil && s.Subject.Hermes != "" {
		err = subject.CheckHermesKnobs(s.Variant, s.Knobs)
	}
	return err
}

// timing is the schedule's timing for the dispatchers.
func timing(s schedule.Schedule) dispatcher.Timing {
	t := dispatcher.HermesTiming(s.TimeScale)
	if s.TickMs > 0 {
		t.Tick = time.Duration(s.TickMs) * time.Millisecond
	}
	if s.CrashGraceMs != nil {
		t.CrashGrace = time.Duration(*s.CrashGraceMs) * time.Millisecond
	}
	if s.CooldownMs != nil {
		t.RateLimitCooldown = time.Duration(*s.CooldownMs) * time.Millisecond
	}
	return t
}

// run is one schedule run in this process: what its steps share.
type run struct {
	s        schedule.Schedule
	opt      Options
	sub      subject.Subject
	knobs    dispatcher.Knobs
	timing   dispatcher.Timing
	sb       sandbox.Dir
	children *dispatcher.Children // every process this process starts for the run
	disk     faults.Disk          // the disk under home: loop-mounted for a power-loss run
	logf     func(format string, args ...any)
}

// here runs r in a fresh sandbox: prepare, dispatch, observe, judge, keep.
func (r *run) here(ctx context.Context, res Result) (Result, error) {
	var err error
	if r.sb, err = sandbox.New(r.s.Scenario, r.s.Seed); err != nil {
		return res, fmt.Errorf("harness: sandbox: %w: %w", ErrEnvironment, err)
	}
	res.Artifacts = r.sb.Root
	// For a power cut, the board's home lives on a loop-mounted disk.
	if r.disk, err = faults.NewDisk(ctx, r.sb, r.s, r.children, r.opt.StopGrace); err != nil {
		return res, err
	}
	defer r.disk.Close()
	for _, s := range r.disk.Swept() {
		r.logf("power loss: swept what a killed run left behind: %s", s)
	}
	settings := r.sub.Settings(r.s, r.timing)
	res.Settings = &settings
	r.logf("%s: %s", settings.Subject, settings.Line())
	for _, n := range settings.Notes {
		r.logf("  %s", n)
	}
	if err := prepare(ctx, r.sb, r.s, r.knobs, r.timing, r.opt.WorkerBin); err != nil {
		return res, err
	}
	if err := r.disk.Start(r.sb, r.s.Seed); err != nil {
		return res, err
	}
	r.logf("sandbox %s", r.sb.Root)

	ev, err := r.dispatch(ctx, &settings)
	res.LeftRunning = ev.leftRunning
	if err != nil {
		return res, err
	}
	res.Ticks, res.TickErrors = ev.ticks, ev.tickErrors
	res.StartMono, res.StartWall, res.StopMono = ev.ph.StartMono, ev.ph.StartWall, ev.ph.StopMono
	res.Faults = ev.ph.Injections
	res.Probes = &ev.probes
	res.Decided = ev.decided
	res.Elapsed = ev.ph.Elapsed
	if res.Verdict, err = r.judge(ctx, ev); err != nil {
		return res, err
	}
	for _, n := range res.Verdict.Spawns {
		res.Spawns += n
	}
	if secs := res.Elapsed.Seconds(); secs > 0 {
		res.SpawnRate = float64(res.Spawns) / secs
	}
	// Unmounted before finish, which copies or removes the sandbox.
	if err := r.disk.KeepHome(ctx, r.sb); err != nil {
		return res, err
	}
	if res, err = finish(r.sb, res, r.opt, r.logf); err != nil {
		return res, fmt.Errorf("%w: %w", ErrArtifacts, err)
	}
	return res, nil
}

// prepare lays out the sandbox: the Hermes home with its profiles, the
// seeded board, the worker config and the HERMES_BIN symlink.
func prepare(ctx context.Context, sb sandbox.Dir, s schedule.Schedule, knobs dispatcher.Knobs, timing dispatcher.Timing, workerBin string) error {
	if workerBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("harness: find own executable for HERMES_BIN: %w", err)
		}
		workerBin = exe
	}
	if err := os.MkdirAll(filepath.Dir(sb.HermesBin()), 0o755); err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	if err := os.Symlink(workerBin, sb.HermesBin()); err != nil {
		return fmt.Errorf("harness: HERMES_BIN symlink: %w", err)
	}
	profiles := map[string]schedule.Behaviour{}
	for _, p := range s.Profiles {
		profiles[p.Name] = p.Worker
		if p.Unregistered {
			continue
		}
		if err := os.MkdirAll(filepath.Join(sb.Home(), "profiles", p.Name), 0o755); err != nil {
			return fmt.Errorf("harness: profile dir: %w", err)
		}
	}
	if err := fakeworker.WriteConfig(sb.WorkerConfig(), fakeworker.Config{
		Connect: knobs.Connect, ClaimTTLMs: int(timing.ClaimTTL.Milliseconds()), Profiles: profiles,
		PinBeatsBoard: knobs.PinBeatsBoard,
	}); err != nil {
		return err
	}
	if err := s.Write(filepath.Join(sb.Root, "schedule.json")); err != nil {
		return err
	}
	board, err := kanban.Connect(ctx, sb.DB(), knobs.Connect)
	if err != nil {
		return fmt.Errorf("harness: seed board: %w", err)
	}
	defer board.Close()
	for _, t := range s.Tasks {
		if _, err := board.CreateTask(ctx, kanban.NewTask{ID: t.ID, Title: t.Title, Assignee: t.Assignee,
			Priority: t.Priority, MaxRetries: t.MaxRetries, MaxRuntime: storedMaxRuntime(s, t), CreatedBy: "kanbanchaos"}); err != nil {
			return fmt.Errorf("harness: seed board: %w", err)
		}
	}
	return nil
}

// storedMaxRuntime is the max_runtime_seconds a task is seeded with. The
// reference dispatcher scales the column by the run's time scale itself; a
// real release reads it as wall-clock seconds, whole ones (int()), so it
// gets the scaled value rounded up to a whole second, at least 1.
func storedMaxRuntime(s schedule.Schedule, t schedule.Task) float64 {
	if t.MaxRuntimeS <= 0 || s.Subject.Hermes == "" {
		return float64(t.MaxRuntimeS)
	}
	return max(1, math.Ceil(float64(t.MaxRuntimeS)*s.TimeScale))
}

// Package harness runs one schedule in a fresh sandbox: it seeds the board,
// starts the dispatchers (goroutines, each with its own connection, as
// separate gateways would be), lets them spawn fake workers through
// HERMES_BIN for the dispatch phase and a quiet phase, stops everything,
// kills every process group it started — on success, deadline and panic
// alike — and hands the board and ledger to the oracle. On a failing or
// undecided run it keeps every artifact. It holds no invariant logic.
package harness

import (
	"context"

	"encoding/json"
	"errors"
	"fmt"
	"github.com/kanbanchaos/kanbanchaos/buildinfo"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
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
	Subject Subject
	// FullDuration runs the whole schedule even once the verdict is
	// decided. Zero: a run stops once the ledger establishes a violation
	// (decide.go says who needs the whole schedule, and why).
	FullDuration bool
	// StopOn narrows what ends a run early to violations of these
	// invariants (nil: any that oracle.Decidable lists).
	StopOn []string
}

// Subject names the dispatcher a run tests (see schedule.Subject).
type Subject = schedule.Subject

// Result is what a run produced.
type Result struct {
	Schedule    schedule.Schedule `json:"schedule"`
	SQLite      string            `json:"sqlite"` // the SQLite version the dispatchers and workers ran on
	Verdict     oracle.Verdict    `json:"verdict"`
	Elapsed     time.Duration     `json:"elapsed_ns"`
	Spawns      int               `json:"spawns"`       // worker starts in the ledger
	SpawnRate   float64           `json:"spawns_per_s"` // over the dispatch + quiet phases
	Ticks       int               `json:"ticks"`
	TickErrors  int               `json:"tick_errors"`
	Artifacts   string            `json:"artifacts,omitempty"` // where the run's files are kept ("" = removed)
	LeftRunning []int             `json:"left_running,omitempty"`
	Faults      []Injection       `json:"faults,omitempty"` // what was injected, when, with what effect
	Probes      *Probes           `json:"probes,omitempty"` // the interesting states the run reached (probes.go)
	// Settings are what the dispatcher under test ran with (settings.go).
	Settings *Settings `json:"settings,omitempty"`
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
}

// sandbox is the directory layout of one run.
type sandbox struct {
	root    string
	power   *powerLoss // the disk under home, for a power-loss run (else nil)
	workers string     // schedule.Subject.Workers: what HERMES_BIN (bin/hermes) is
}

func (s sandbox) home() string         { return filepath.Join(s.root, "home") }
func (s sandbox) db() string           { return kanban.BoardPath(s.home(), "default") }
func (s sandbox) ledger() string       { return filepath.Join(s.root, "ledger.jsonl") }
func (s sandbox) trace() string        { return filepath.Join(s.root, "trace.jsonl") }
func (s sandbox) goFile() string       { return filepath.Join(s.root, "go") }
func (s sandbox) workerConfig() string { return filepath.Join(s.root, "worker.json") }
func (s sandbox) hermesBin() string    { return filepath.Join(s.root, "bin", fakeworker.InvokedAs) }

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
	if opt.Subject.Hermes != "" {
		if err := CheckHermesKnobs(s.Variant, s.Knobs); err != nil {
			return res, err
		}
		if _, err := hermesInstall(opt.Subject); err != nil {
			return res, err
		}
		if err := CheckWorkers(ctx, s); err != nil {
			return res, err
		}
	}
	if err := CheckEngineKnobs(s.EngineOrDefault(), knobs); err != nil {
		return res, err
	}
	// OFD locking is fixed when a process starts (kanban.OFDEnv) and the
	// dispatchers run in this process: a run that needs the other lock kind,
	// like a run on another engine's SQLite, goes to a process started for it.
	ofd := kanban.OFDEnv + "=" + map[bool]string{true: "1", false: "0"}[knobs.Connect.OFDLocking]
	// An external subject brings its own engine and locks: it needs neither.
	res.SQLite = kanban.SQLiteVersion()
	if !opt.Subject.External() && (schedule.Engines[s.EngineOrDefault()] != res.SQLite || knobs.Connect.OFDLocking != kanban.OFDFromEnv()) {
		bin, err := EngineBinary(ctx, s.EngineOrDefault(), opt.Log)
		if err != nil {
			return res, fmt.Errorf("%w: %w", ErrEnvironment, err)
		}
		return runInEngine(ctx, s, opt, bin, ofd)
	}
	if opt.StopGrace == 0 {
		opt.StopGrace = 10 * time.Second
	}
	if hasPowerLoss(s) {
		if ok, why := powerLossSupported(); !ok {
			res.Verdict = powerLossSkipped(why) // undecided, never a false pass
			return res, nil
		}
	}
	logf := func(format string, args ...any) {
		if opt.Log != nil {
			fmt.Fprintf(opt.Log, format+"\n", args...)
		}
	}
	root, err := os.MkdirTemp("", fmt.Sprintf("kanbanchaos-%s-%d-", s.Scenario, s.Seed))
	if err != nil {
		return res, fmt.Errorf("harness: sandbox: %w: %w", ErrEnvironment, err)
	}
	sb := sandbox{root: root, workers: s.Subject.Workers}
	res.Artifacts = root

	children := dispatcher.NewChildren()
	// Whatever happens below — return, deadline, panic — no process we
	// started outlives the run.
	defer func() {
		if left := children.KillAll(opt.StopGrace); len(left) > 0 {
			res.LeftRunning = left
		}
	}()

	if hasPowerLoss(s) {
		// The board's home lives on a loop-mounted disk whose power is cut.
		if sb.power, err = newPowerLoss(ctx, sb, children, opt.StopGrace); err != nil {
			return res, err
		}
		defer sb.power.Close()
		for _, s := range sb.power.Swept() {
			logf("power loss: swept what a killed run left behind: %s", s)
		}
	}

	timing := dispatcher.HermesTiming(s.TimeScale)
	if s.TickMs > 0 {
		timing.Tick = time.Duration(s.TickMs) * time.Millisecond
	}
	if s.CrashGraceMs != nil {
		timing.CrashGrace = time.Duration(*s.CrashGraceMs) * time.Millisecond
	}
	if s.CooldownMs != nil {
		timing.RateLimitCooldown = time.Duration(*s.CooldownMs) * time.Millisecond
	}
	settings := settingsFor(opt.Subject, s, timing)
	res.Settings = &settings
	logf("%s: %s", settings.Subject, settings.Line())
	for _, n := range settings.Notes {
		logf("  %s", n)
	}
	if err := prepare(ctx, sb, s, knobs, timing, opt.WorkerBin); err != nil {
		return res, err
	}
	if err := sb.power.start(sb, s.Seed); err != nil {
		return res, err
	}
	logf("sandbox %s", root)

	var ph phases
	switch {
	case opt.Subject.Hermes != "":
		ph, err = dispatchHermes(ctx, sb, s, knobs, timing, opt, logf)
	case opt.Subject.Exec != "":
		ph, err = dispatchExec(ctx, sb, s, knobs, timing, opt, logf)
	default:
		ph, err = dispatch(ctx, sb, s, knobs, timing, children, opt, logf)
	}
	if err != nil {
		return res, err
	}
	res.Ticks, res.TickErrors = ph.ticks, ph.tickErrors
	res.StartMono, res.StartWall = ph.startMono, ph.startWall
	res.Faults = ph.injections
	// Workers are killed before the oracle looks: a live worker could still
	// write, and the board files are copied only once nobody has them open.
	if !opt.Subject.External() {
		ph.aliveAtStop = aliveAtStop(sb) // an external subject's were counted before its own cleanup
	}
	if left := children.KillAll(opt.StopGrace); len(left) > 0 {
		res.LeftRunning = left
	}

	hist, err := ledger.Read(sb.ledger())
	if err != nil {
		return res, err
	}
	if opt.Subject.Hermes != "" {
		ph.unknowns = append(ph.unknowns, verifyHermes(&settings, hist, s.Dispatchers)...)
		ph.unknowns = append(ph.unknowns, verifyPythonSQLite(&settings, hist, opt.Subject)...)
	}
	// An external subject's ticks are what it recorded in the ledger.
	for _, ticks := range hist.Ticks() {
		res.Ticks += len(ticks)
		for _, t := range ticks {
			if t.Message != "" {
				res.TickErrors++
			}
		}
	}
	// After a power cut the oracle checks the board the disk kept.
	board, err := sb.power.board(ctx, sb)
	if err != nil {
		return res, err
	}
	// Every process of the run is stopped by now, the power-loss writeback
	// helper included (the cut stops it): anything alive is a survivor.
	cleanup := cleanupScan(sb, ph.aliveAtStop, opt)
	if board.unknown != "" {
		ph.unknowns = append(ph.unknowns, board.unknown)
	}
	for i := range res.Faults {
		if res.Faults[i].Kind == schedule.FaultPowerLoss && board.note != "" {
			res.Faults[i].Result += "; " + board.note
		}
	}
	// An interrupted run still gets its evidence checked: the oracle runs on
	// a context of its own, bounded, not on the cancelled one.
	checkCtx, cancelCheck := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancelCheck()
	verdict, err := oracle.Check(checkCtx, oracle.Input{
		DBPath: board.path, Ledger: hist, Schedule: s,
		Subject: observability(opt.Subject, hist), Cooldown: settings.CooldownS, Ticks: ph.ticks,
		ClockResolution: clockResolution(opt.Subject),
		RunStartMono:    ph.startMono, RunStartWall: ph.startWall, QuietStartWall: ph.quietWall,
		Observations: ph.observations, SwapMono: swapMono(ph.injections),
		PowerCutMono: board.cutMono, DurableCommits: durableCommits(knobs.Connect), Cleanup: cleanup,
		// Every connection of this process is closed by now: a copy is safe.
		CheckCopy: true,
	})
	if err != nil {
		return res, fmt.Errorf("harness: oracle: %w", err)
	}
	for _, reason := range ph.unknowns {
		verdict.AddUnknown(reason)
	}
	if res.Decided = ph.decided; ph.decided != nil {
		markCut(&verdict, *ph.decided, s)
		logf("stopped at +%.0fms: %s established at +%.0fms (--full-duration runs the whole schedule)",
			ph.decided.StoppedMs, ph.decided.Invariant, ph.decided.AtMs)
	}
	if len(res.LeftRunning) > 0 {
		verdict.AddUnknown(fmt.Sprintf("processes %v did not die after SIGKILL", res.LeftRunning))
	}
	res.Verdict = verdict
	for _, n := range verdict.Spawns {
		res.Spawns += n
	}
	res.Elapsed = ph.elapsed
	if secs := ph.elapsed.Seconds(); secs > 0 {
		res.SpawnRate = float64(res.Spawns) / secs
	}
	probes := probeRun(sb.trace(), hist, s, knobs, ph.wal, ph.injections)
	res.Probes = &probes
	// Unmounted before finish, which copies or removes the sandbox.
	if err := sb.power.keepHome(ctx, sb); err != nil {
		return res, err
	}
	if res, err = finish(sb, res, opt, logf); err != nil {
		return res, fmt.Errorf("%w: %w", ErrArtifacts, err)
	}
	return res, nil
}

// observability is what the oracle can see the subject do: everything for
// the reference dispatcher (this process counts its ticks and watches its
// file descriptors), the ledger records for a Hermes driver, and for an
// exec subject whatever it wrote to the ledger itself (a dispatcher that
// writes one record of a kind writes them all).
func observability(sub Subject, h ledger.History) oracle.Observability {
	switch {
	case !sub.External():
		return oracle.Observability{Name: sub.String(), Ticks: true, Commits: true, Errors: true, FDs: true}
	case sub.Hermes != "":
		return oracle.Observability{Name: sub.String(), Ticks: true, Commits: true, Errors: true}
	}
	records := slices.ContainsFunc(h.Entries, func(e ledger.Entry) bool {
		return e.Who != "" && e.Who != "worker" && (e.Kind == ledger.Commit || e.Kind == ledger.Tick)
	})
	return oracle.Observability{Name: sub.String(), Errors: records}
}

// clockResolution is how coarse the subject's clock is: an external
// subject may be a Hermes, which stamps times in whole seconds.
func clockResolution(sub Subject) float64 {
	if sub.External() {
		return 1
	}
	return 0
}

// prepare lays out the sandbox: the Hermes home with its profiles, the
// seeded board, the worker config and the HERMES_BIN symlink.
func prepare(ctx context.Context, sb sandbox, s schedule.Schedule, knobs dispatcher.Knobs, timing dispatcher.Timing, workerBin string) error {
	if workerBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("harness: find own executable for HERMES_BIN: %w", err)
		}
		workerBin = exe
	}
	if err := os.MkdirAll(filepath.Dir(sb.hermesBin()), 0o755); err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	if err := os.Symlink(workerBin, sb.hermesBin()); err != nil {
		return fmt.Errorf("harness: HERMES_BIN symlink: %w", err)
	}
	profiles := map[string]schedule.Behaviour{}
	for _, p := range s.Profiles {
		profiles[p.Name] = p.Worker
		if p.Unregistered {
			continue
		}
		if err := os.MkdirAll(filepath.Join(sb.home(), "profiles", p.Name), 0o755); err != nil {
			return fmt.Errorf("harness: profile dir: %w", err)
		}
	}
	if err := fakeworker.WriteConfig(sb.workerConfig(), fakeworker.Config{
		Connect: knobs.Connect, ClaimTTLMs: int(timing.ClaimTTL.Milliseconds()), Profiles: profiles,
		PinBeatsBoard: knobs.PinBeatsBoard,
	}); err != nil {
		return err
	}
	if err := s.Write(filepath.Join(sb.root, "schedule.json")); err != nil {
		return err
	}
	board, err := kanban.Connect(ctx, sb.db(), knobs.Connect)
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

// phases is what the dispatch phase observed.
type phases struct {
	startMono            int64
	startWall, quietWall float64
	elapsed              time.Duration
	ticks, tickErrors    int
	unknowns             []string
	observations         []oracle.Observation
	injections           []Injection
	wal                  []walSample
	decided              *Decision // what stopped the run early (nil: it ran its schedule)
	aliveAtStop          int       // sandbox processes alive when the run's time was up (-1: not known)
}

// dispatch runs the dispatchers for the dispatch and quiet phases and waits
// for them to stop.
func dispatch(ctx context.Context, sb sandbox, s schedule.Schedule, knobs dispatcher.Knobs, timing dispatcher.Timing,
	children *dispatcher.Children, opt Options, logf func(string, ...any)) (phases, error) {
	trace, err := os.OpenFile(sb.trace(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return phases{}, fmt.Errorf("harness: trace: %w", err)
	}
	defer trace.Close()
	var mu sync.Mutex
	ph := phases{}
	progress := newProgress(time.Now())
	onTick := func(t dispatcher.Tick) {
		if opt.OnTick != nil {
			opt.OnTick(t)
		}
		line, _ := json.Marshal(t)
		mu.Lock()
		defer mu.Unlock()
		trace.Write(append(line, '\n'))
		progress.tick(t.Dispatcher)
		ph.ticks++
		if t.Error != "" {
			ph.tickErrors++
		}
	}
	env := workerEnv(sb)
	host, _ := os.Hostname()
	total := time.Duration(s.DurationMs+s.QuietMs) * time.Millisecond
	runCtx, cancel := context.WithTimeout(ctx, total)
	defer cancel()
	sb.power.setStop(cancel) // a power cut ends the run early

	ph.startMono, ph.startWall = ledger.MonoNow(), ledger.WallNow()
	ph.quietWall = ph.startWall + float64(s.DurationMs)/1000
	start := time.Now()
	decision := stopWhenDecided(runCtx, cancel, opt.FullDuration, sb.ledger(), s, ph.startMono, opt.StopOn, evidenceTicks*timing.Tick)
	logf("dispatching: %d dispatcher(s), %v + %v quiet", s.Dispatchers, time.Duration(s.DurationMs)*time.Millisecond, time.Duration(s.QuietMs)*time.Millisecond)

	// The dispatchers are goroutines of this one OS process: they share its
	// POSIX locks, so they share one connection registry.
	proc := kanban.NewProcess()
	// Sidecars are watched once every dispatcher holds its long-lived
	// connection, until the run's time is up.
	obs := newObserver(sb.db(), ph.startMono)
	go func() {
		settle := time.Duration(slices.Max(append(s.DispatcherOffsetsMs, 0)))*time.Millisecond + 50*time.Millisecond
		select {
		case <-runCtx.Done():
			return
		case <-time.After(settle):
		}
		obs.run(runCtx, 20*time.Millisecond)
	}()
	record := func(in Injection) {
		line, _ := json.Marshal(map[string]any{"fault": in})
		mu.Lock()
		defer mu.Unlock()
		trace.Write(append(line, '\n'))
		ph.injections = append(ph.injections, in)
		// The fault itself replaces sidecars; only later swaps count.
		obs.rebaseline()
		logf("fault %s at +%dms: %s", in.Kind, in.AtMs, in.Result)
	}
	injected := make(chan struct{})
	go func() {
		defer close(injected)
		injectFaults(runCtx, sb, s.Faults, start, record)
	}()
	done := make(chan error, s.Dispatchers)
	for i := 0; i < s.Dispatchers; i++ {
		cfg := dispatcher.Config{
			Name: "d" + strconv.Itoa(i+1), Home: sb.home(), Board: "default", DBPath: sb.db(),
			HermesBin: sb.hermesBin(), Env: env, Knobs: knobs, FailureLimit: s.FailureLimit, MaxSpawn: s.MaxSpawn,
			Timing: timing, Children: children, Process: proc, Ledger: sb.ledger(),
			// One claim lock per simulated gateway process, host-local to all.
			ClaimLock: fmt.Sprintf("%s:%d-d%d", host, os.Getpid(), i+1),
		}
		offset := 0
		if i < len(s.DispatcherOffsetsMs) {
			offset = s.DispatcherOffsetsMs[i]
		}
		go func() { done <- runDispatcher(runCtx, cfg, time.Duration(offset)*time.Millisecond, onTick) }()
	}
	var errs []error
	stopBy := time.NewTimer(total + opt.StopGrace)
	defer stopBy.Stop()
	quiet := time.NewTimer(time.Duration(s.DurationMs) * time.Millisecond)
	defer quiet.Stop()
	for running := s.Dispatchers; running > 0; {
		select {
		case err := <-done:
			running--
			if err != nil {
				errs = append(errs, err)
			}
		case <-quiet.C:
			logf("quiet phase: dispatchers keep ticking for %v; the breaker must hold", time.Duration(s.QuietMs)*time.Millisecond)
		case <-stopBy.C:
			ph.unknowns = append(ph.unknowns, fmt.Sprintf("%d dispatcher(s) did not stop within %v of the deadline", running, opt.StopGrace))
			running = 0
		}
	}
	ph.elapsed = time.Since(start)
	if ctx.Err() != nil {
		ph.unknowns = append(ph.unknowns, "run interrupted: "+ctx.Err().Error())
	}
	// A fault being carried out (a power cut copies a disk image) finishes
	// and is recorded before the phase ends: the oracle needs to know it.
	cancel()
	if ph.decided = decision(); ph.decided != nil {
		letWorkersFinish(children, workerFinish)
	}
	<-injected
	ph.observations = obs.observations()
	ph.wal = obs.walSizes()
	mu.Lock()
	names := make([]string, s.Dispatchers)
	for i := range names {
		names[i] = "d" + strconv.Itoa(i+1)
	}
	ph.observations = append(ph.observations, progress.stalls(time.Now(), max(2*time.Second, 100*timing.Tick), names)...)
	defer mu.Unlock()
	return ph, errors.Join(errs...)
}

// runDispatcher hosts one dispatcher goroutine. A panic becomes an error:
// an unrecovered panic in a goroutine would end the process without running
// the deferred KillAll.
func runDispatcher(ctx context.Context, cfg dispatcher.Config, offset time.Duration, onTick func(dispatcher.Tick)) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("dispatcher %s panicked: %v\n%s", cfg.Name, r, debug.Stack())
		}
	}()
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(offset):
	}
	d, err := dispatcher.New(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer d.Close()
	d.Run(ctx, onTick)
	return nil
}

// workerEnv is the dispatchers' environment, inherited by every worker: the
// user's environment without any HERMES_* or KANBANCHAOS_* setting that
// could point a worker at a real board, plus the sandbox's.
func workerEnv(sb sandbox) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "HERMES_") || strings.HasPrefix(kv, "KANBANCHAOS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		kanban.OFDEnv+"="+map[bool]string{true: "1", false: "0"}[kanban.OFDFromEnv()],
		"HERMES_BIN="+sb.hermesBin(),
		fakeworker.EnvHarness+"="+fakeworker.HarnessToken(os.Getpid()),
		"HERMES_KANBAN_HOME="+sb.home(),
		"HERMES_HOME="+sb.home(),
		fakeworker.EnvLedger+"="+sb.ledger(),
		fakeworker.EnvConfig+"="+sb.workerConfig(),
	)
}

// finish writes verdict.json (and repro.sh), then keeps or removes the
// sandbox. By now every connection and process is gone, so copying the
// board files cannot drop anyone's locks.
func finish(sb sandbox, res Result, opt Options, logf func(string, ...any)) (Result, error) {
	info := buildinfo.Read()
	res.Binary = &info
	keep := res.Verdict.Status != oracle.Pass || opt.Keep
	dest := ""
	if keep && opt.ArtifactsDir != "" {
		// Named before verdict.json is written, so that it says where the
		// run is kept.
		var err error
		if dest, err = NewStoreDir(opt.ArtifactsDir, fmt.Sprintf("%s-%d", res.Schedule.Scenario, res.Schedule.Seed)); err != nil {
			return res, err
		}
		res.Artifacts = dest
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return res, fmt.Errorf("harness: encode verdict: %w", err)
	}
	if err := os.WriteFile(filepath.Join(sb.root, "verdict.json"), append(data, '\n'), 0o644); err != nil {
		return res, fmt.Errorf("harness: %w", err)
	}
	if !keep {
		res.Artifacts = ""
		return res, os.RemoveAll(sb.root)
	}
	if opt.Replay != "" {
		if err := writeRepro(sb.root, opt.Replay); err != nil {
			return res, err
		}
	}
	// HERMES_BIN's symlink points into the build cache when the harness
	// runs from go run or go test: keep the binary itself.
	if err := materializeBin(sb.root); err != nil {
		return res, err
	}
	if dest == "" {
		return res, nil
	}
	// The sandbox was made private (MkdirTemp); the store is the user's.
	os.Chmod(sb.root, 0o755)
	if err := os.Rename(sb.root, dest); err != nil {
		// Another file system: copy, then remove.
		if err := os.CopyFS(dest, os.DirFS(sb.root)); err != nil {
			return res, fmt.Errorf("harness: copy artifacts to %s: %w", dest, err)
		}
		os.RemoveAll(sb.root)
	}
	subject := res.Schedule.Variant
	if res.Schedule.Subject.External() {
		subject = res.Schedule.Subject.String()
	}
	if err := RecordInStore(opt.ArtifactsDir, dest, StoreEntry{Kind: "run", Scenario: res.Schedule.Scenario, Seed: res.Schedule.Seed,
		Subject: subject, Status: string(res.Verdict.Status), Failed: res.Verdict.Failed(), Replay: opt.Replay}); err != nil {
		return res, err
	}
	logf("artifacts in %s", dest)
	return res, nil
}

// writeRepro writes dir/repro.sh, the script that replays the run. A
// replay through go run needs the checkout it was run from, so the script
// goes there first.
func writeRepro(dir, replay string) error {
	script := "#!/bin/sh\n# Replays this run: same scenario, variant, knobs and seed.\n"
	if strings.HasPrefix(replay, "go run ") {
		if wd, err := os.Getwd(); err == nil {
			script += "cd " + shellPath(wd) + " || exit 2\n"
		}
	}
	script += "exec " + replay + "\n"
	if err := os.WriteFile(filepath.Join(dir, "repro.sh"), []byte(script), 0o755); err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	return nil
}

// uniqueDir returns parent/name, or parent/name-2, -3 … if taken; the
// directory does not exist yet (CopyFS creates it).
func uniqueDir(parent, name string) (string, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("harness: artifacts dir: %w", err)
	}
	for i := 1; ; i++ {
		dir := filepath.Join(parent, name)
		if i > 1 {
			dir += "-" + strconv.Itoa(i)
		}
		if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
			return dir, nil
		}
	}
}

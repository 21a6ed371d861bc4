package subject

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/faults"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// reference is the reference dispatcher of package dispatcher, hosted in
// this process with the schedule's variant and knobs: one goroutine per
// schedule dispatcher, each with its own connection, as separate gateways
// would be. It takes every knob and the schedule's timing to the
// millisecond, and everything it does is observed: its ticks, its commits
// and errors (in the ledger) and this process's file descriptors.
// It plays every schedule (Check: the schedule's own validation and the
// knobs' resolution are the harness's) and reports nothing to verify.
type reference struct{ base }

func (r reference) Settings(s schedule.Schedule, timing dispatcher.Timing) Settings {
	return baseSettings(r.sub, s, timing)
}

// Observability: this process counts its ticks and watches its file
// descriptors; its commits and errors are in the ledger.
func (r reference) Observability(ledger.History) oracle.Observability {
	return oracle.Observability{Name: r.Name(), Ticks: true, Commits: true, Errors: true, FDs: true, Alarms: true}
}

func (reference) ClockResolution() float64 { return 0 }

// workerFinish bounds how long live workers may take to exit by themselves
// once a run stopped early (a crash-at-once worker takes milliseconds; a
// hanging one is killed as at the end of any run).
const workerFinish = 250 * time.Millisecond

// Dispatch runs the dispatchers for the dispatch and quiet phases and waits
// for them to stop.
func (reference) Dispatch(ctx context.Context, r Run) (Phases, error) {
	s, sb, timing := r.Schedule, r.Sandbox, r.Timing
	trace, err := os.OpenFile(sb.Trace(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return Phases{}, fmt.Errorf("subject: trace: %w", err)
	}
	defer trace.Close()
	var mu sync.Mutex
	ph := Phases{}
	progress := newProgress(time.Now())
	onTick := func(t dispatcher.Tick) {
		if r.OnTick != nil {
			r.OnTick(t)
		}
		line, _ := json.Marshal(t)
		mu.Lock()
		defer mu.Unlock()
		trace.Write(append(line, '\n'))
		progress.tick(t.Dispatcher)
		ph.Ticks++
		if t.Error != "" {
			ph.TickErrors++
		}
	}
	env := sb.Env()
	host, _ := os.Hostname()
	total := time.Duration(s.DurationMs+s.QuietMs) * time.Millisecond
	runCtx, cancel := context.WithTimeout(ctx, total)
	defer cancel()

	ph.StartMono, ph.StartWall = ledger.MonoNow(), ledger.WallNow()
	ph.QuietWall = ph.StartWall + float64(s.DurationMs)/1000
	start := time.Now()
	r.Logf("dispatching: %d dispatcher(s), %v + %v quiet", s.Dispatchers, time.Duration(s.DurationMs)*time.Millisecond, time.Duration(s.QuietMs)*time.Millisecond)

	// The dispatchers are goroutines of this one OS process: they share its
	// POSIX locks, so they share one connection registry.
	proc := kanban.NewProcess()
	// Sidecars are watched once every dispatcher holds its long-lived
	// connection, until the run's time is up.
	obs := newObserver(sb.DB(), ph.StartMono)
	go func() {
		settle := time.Duration(slices.Max(append(s.DispatcherOffsetsMs, 0)))*time.Millisecond + 50*time.Millisecond
		select {
		case <-runCtx.Done():
			return
		case <-time.After(settle):
		}
		obs.run(runCtx, 20*time.Millisecond)
	}()
	record := func(in faults.Injection) {
		line, _ := json.Marshal(map[string]any{"fault": in})
		mu.Lock()
		defer mu.Unlock()
		trace.Write(append(line, '\n'))
		ph.Injections = append(ph.Injections, in)
		// The fault itself replaces sidecars; only later swaps count.
		obs.rebaseline()
		r.Logf("fault %s at +%dms: %s", in.Kind, in.AtMs, in.Result)
	}
	wait := r.beside(runCtx, cancel, Clock{Start: start, Mono: ph.StartMono}, record)
	done := make(chan error, s.Dispatchers)
	for i := 0; i < s.Dispatchers; i++ {
		cfg := dispatcher.Config{
			Name: "d" + strconv.Itoa(i+1), Home: sb.Home(), Board: "default", DBPath: sb.DB(),
			HermesBin: sb.HermesBin(), Env: env, Knobs: r.Knobs, FailureLimit: s.FailureLimit, MaxSpawn: s.MaxSpawn,
			Timing: timing, Children: r.Children, Process: proc, Ledger: sb.Ledger(),
			// One claim lock per simulated gateway process, host-local to all.
			ClaimLock: fmt.Sprintf("%s:%d-d%d", host, os.Getpid(), i+1),
		}
		// A worker started is progress too: the first tick of a board of
		// thirty ready cards spawns them one after another, 2 s and more
		// on a loaded machine (fork to exec is the scheduler's latency).
		cfg.OnStart = func() {
			mu.Lock()
			defer mu.Unlock()
			progress.tick(cfg.Name)
		}
		go func() { done <- runDispatcher(runCtx, cfg, offset(s, i), onTick) }()
	}
	var errs []error
	stopBy := time.NewTimer(total + r.StopGrace)
	defer stopBy.Stop()
	quiet := time.NewTimer(time.Duration(s.DurationMs) * time.Millisecond)
	defer quiet.Stop()
	for running := s.Dispatchers; running > 0; {
		select {
		case err := <-done:
			running--
			mu.Lock()
			faulted := len(ph.Injections) > 0
			mu.Unlock()
			switch {
			case err != nil && faulted && errors.Is(err, kanban.ErrBoardGone):
				// It started after a fault had swapped or emptied the board,
				// and refused it (fail closed): not a kanbanchaos error, but
				// the run did not have the dispatchers it meant to test.
				ph.Unknowns = append(ph.Unknowns, "a dispatcher started only after the fault and refused the board: "+err.Error())
			case err != nil:
				errs = append(errs, err)
			}
		case <-quiet.C:
			r.Logf("quiet phase: dispatchers keep ticking for %v; the breaker must hold", time.Duration(s.QuietMs)*time.Millisecond)
		case <-stopBy.C:
			ph.Unknowns = append(ph.Unknowns, fmt.Sprintf("%d dispatcher(s) did not stop within %v of the deadline", running, r.StopGrace))
			running = 0
		}
	}
	ph.Elapsed = time.Since(start)
	if ctx.Err() != nil {
		ph.Unknowns = append(ph.Unknowns, "run interrupted: "+ctx.Err().Error())
	}
	// A fault being carried out (a power cut copies a disk image) finishes
	// and is recorded before the phase ends: the oracle needs to know it.
	cancel()
	if wait() {
		letWorkersFinish(r.Children, workerFinish)
	}
	ph.Observations = obs.observations()
	ph.WAL = obs.walSizes()
	mu.Lock()
	names := make([]string, s.Dispatchers)
	for i := range names {
		names[i] = "d" + strconv.Itoa(i+1)
	}
	ph.Observations = append(ph.Observations, progress.stalls(time.Now(), max(2*time.Second, 100*timing.Tick), names)...)
	mu.Unlock()
	// Counted before the harness kills anything: what there is to clean up.
	ph.AliveAtStop = sb.AliveAtStop()
	return ph, errors.Join(errs...)
}

// runDispatcher hosts one dispatcher goroutine. A panic becomes an error:
// an unrecovered panic in a goroutine would end the process without running
// the deferred KillAll.
func runDispatcher(ctx context.Context, cfg dispatcher.Config, offset time.Duration, onTick func(dispatcher.Tick)) (err error) {
	defer func() {
		if rec := recover(); rec != nil {
			err = fmt.Errorf("dispatcher %s panicked: %v\n%s", cfg.Name, rec, debug.Stack())
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

// letWorkersFinish gives the workers still running when a run stopped early
// up to d to exit by themselves, as they would have in a full run; the
// rest are killed with everything else.
func letWorkersFinish(children *dispatcher.Children, d time.Duration) {
	deadline := time.Now().Add(d)
	for children.Running() > 0 && time.Now().Before(deadline) {
		time.Sleep(2 * time.Millisecond)
	}
}

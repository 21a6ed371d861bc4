package harness

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kanbanchaos/kanbanchaos/faults"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
	"github.com/kanbanchaos/kanbanchaos/subject"
)

// evidence is everything one run observed, gathered where it was observed
// and in one record: the subject's phases (its ticks, the sidecar
// observations, the injected faults, the -wal samples), the decision that
// cut the run short, the ledger, the board to check, the cleanup scan and
// the probes. The oracle's input and the Result are both made from it.
type evidence struct {
	ph                subject.Phases
	decided           *Decision // what stopped the run early (nil: it ran its schedule)
	settings          *subject.Settings
	hist              ledger.History
	ticks, tickErrors int // the in-process dispatchers' and those the subject recorded in the ledger
	board             faults.CrashBoard
	cleanup           *oracle.Cleanup
	probes            Probes
	leftRunning       []int // processes that did not die after SIGKILL
}

// dispatch hands the dispatch and quiet phases to the subject, with the
// fault injector and the decision watcher beside it, then stops every
// process of the run and gathers the evidence. settings receives what the
// subject reported about itself.
func (r *run) dispatch(ctx context.Context, settings *subject.Settings) (evidence, error) {
	ev := evidence{settings: settings}
	ph, err := r.sub.Dispatch(ctx, subject.Run{
		Sandbox: r.sb, Schedule: r.s, Knobs: r.knobs, Timing: r.timing, Children: r.children,
		StopGrace: r.opt.StopGrace, OnTick: r.opt.OnTick, Logf: r.logf, Beside: r.beside(&ev.decided),
	})
	if err != nil {
		return ev, err
	}
	ev.ph = ph
	ev.ticks, ev.tickErrors = ph.Ticks, ph.TickErrors
	// Workers are killed before the oracle looks: a live worker could still
	// write, and the board files are copied only once nobody has them open.
	ev.leftRunning = r.children.KillAll(r.opt.StopGrace)

	if ev.hist, err = ledger.Read(r.sb.Ledger()); err != nil {
		return ev, err
	}
	ev.ph.Unknowns = append(ev.ph.Unknowns, r.sub.Verify(settings, ev.hist, r.s)...)
	// An external subject's ticks are what it recorded in the ledger.
	for _, ticks := range ev.hist.Ticks() {
		ev.ticks += len(ticks)
		for _, t := range ticks {
			if t.Message != "" {
				ev.tickErrors++
			}
		}
	}
	// After a power cut the oracle checks the board the disk kept.
	if ev.board, err = r.disk.Board(ctx, r.sb); err != nil {
		return ev, err
	}
	// Every process of the run is stopped by now, the power-loss writeback
	// helper included (the cut stops it): anything alive is a survivor.
	ev.cleanup = cleanupScan(r.sb, ph.AliveAtStop, r.opt.StopGrace)
	if ev.board.Unknown != "" {
		ev.ph.Unknowns = append(ev.ph.Unknowns, ev.board.Unknown)
	}
	for i := range ev.ph.Injections {
		if ev.ph.Injections[i].Kind == schedule.FaultPowerLoss && ev.board.Note != "" {
			ev.ph.Injections[i].Result += "; " + ev.board.Note
		}
	}
	ev.probes = probeRun(r.sb.Trace(), ev.hist, r.s, r.knobs, ev.ph.WAL, ev.ph.Injections)
	return ev, nil
}

// beside is what the harness runs beside the subject from the run's start:
// the decision watcher (decide.go), which stops the phase once a violation
// is established and stores it in decided, and the fault injector. A power
// cut stops the in-process dispatchers (they cannot be SIGKILLed); an
// external subject's processes run on to the end of the phase.
func (r *run) beside(decided **Decision) subject.Beside {
	return func(ctx context.Context, stop context.CancelFunc, start subject.Clock, record func(faults.Injection)) func() bool {
		if !r.s.Subject.External() {
			r.disk.SetStop(stop)
		}
		decision := stopWhenDecided(ctx, stop, r.opt.FullDuration, r.sb.Ledger(), r.s, start.Mono, r.opt.StopOn, evidenceTicks*r.timing.Tick)
		injected := make(chan struct{})
		go func() {
			defer close(injected)
			faults.Inject(ctx, r.sb, r.disk, r.s.Faults, start.Start, record)
		}()
		return func() bool {
			*decided = decision()
			<-injected
			return *decided != nil
		}
	}
}

// judge hands the evidence to the oracle and adds what the harness knows
// makes the run undecided.
func (r *run) judge(ctx context.Context, ev evidence) (oracle.Verdict, error) {
	// An interrupted run still gets its evidence checked: the oracle runs on
	// a context of its own, bounded, not on the cancelled one.
	checkCtx, cancelCheck := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancelCheck()
	verdict, err := oracle.Check(checkCtx, oracle.Input{
		DBPath: ev.board.Path, Ledger: ev.hist, Schedule: r.s,
		Subject: r.sub.Observability(ev.hist), Cooldown: ev.settings.CooldownS, Ticks: ev.ph.Ticks,
		ClockResolution: r.sub.ClockResolution(),
		RunStartMono:    ev.ph.StartMono, RunStartWall: ev.ph.StartWall, QuietStartWall: ev.ph.QuietWall,
		RunStopMono:  ev.ph.StopMono,
		Observations: ev.ph.Observations, SwapMono: faults.SwapMono(ev.ph.Injections),
		PowerCutMono: ev.board.CutMono, DurableCommits: faults.DurableCommits(r.knobs.Connect), Cleanup: ev.cleanup,
		// Every connection of this process is closed by now: a copy is safe.
		CheckCopy: true,
	})
	if err != nil {
		return verdict, fmt.Errorf("harness: oracle: %w", err)
	}
	for _, reason := range ev.ph.Unknowns {
		verdict.AddUnknown(reason)
	}
	if d := ev.decided; d != nil {
		markCut(&verdict, *d, r.s)
		r.logf("stopped at +%.0fms: %s established at +%.0fms (--full-duration runs the whole schedule)",
			d.StoppedMs, d.Invariant, d.AtMs)
	}
	// No false alarm is evidence only where a checkpoint could race a
	// post-commit check.
	if slices.Contains(r.s.Expect, oracle.NoFalseAlarm) && !slices.Contains(ev.probes.Reached, ProbeCheckpoint) {
		unheld(&verdict, oracle.NoFalseAlarm, "no checkpoint ran while two or more processes were committing "+
			"(probe "+ProbeCheckpoint+"): nothing raced a post-commit check")
	}
	if len(ev.leftRunning) > 0 {
		verdict.AddUnknown(fmt.Sprintf("processes %v did not die after SIGKILL", ev.leftRunning))
	}
	return verdict, nil
}

package dispatcher

// The reclaim steps of a tick: release stale claims, detect crashed
// workers, enforce max runtime — which workers are this gateway's, how an
// exit is classified, and which failure limit the crash path passes.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

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

package harness

import (
	"bufio"
	"encoding/json"
	"os"
	"slices"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/faults"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
	"github.com/kanbanchaos/kanbanchaos/subject"
)

// "Sometimes" probes: the interesting states a run reached. A green run
// that never tripped a breaker, never hit a busy timeout and never killed a
// worker inside a transaction is weak evidence; a campaign that never
// reached a probe says so. Probes are read from what a run leaves behind
// (trace.jsonl, the ledger, the sidecar observations), never from the board.
const (
	ProbeBreakerTrip   = "breaker-trip"
	ProbeBusyTimeout   = "busy-timeout"
	ProbeKillInTxn     = "kill-in-txn"
	ProbeCheckpoint    = "checkpoint-under-load"
	ProbeBackoff       = "backoff-applied"
	ProbeLockDrop      = "lock-drop-knob-fired"
	ProbeDispatchLock  = "dispatch-lock-contended"
	ProbeFaultInjected = "fault-injected"
)

// ProbeDocs says what each probe means, in the order summaries list them.
var ProbeDocs = []struct{ Name, Doc string }{
	{ProbeBreakerTrip, "a dispatcher tick gave up on a task (gave_up: the breaker tripped)"},
	{ProbeBusyTimeout, "a process got SQLITE_BUSY: its busy_timeout ran out waiting for a lock"},
	{ProbeKillInTxn, "a kill-in-txn worker finished its progress commits and SIGKILLed itself inside BEGIN IMMEDIATE"},
	{ProbeCheckpoint, "the -wal reached the wal_autocheckpoint size (so a commit ran a checkpoint) while two or more processes were committing"},
	{ProbeBackoff, "a tick deferred a ready task for backoff or the rate-limit cooldown"},
	{ProbeLockDrop, "a raw read of the live board (raw_header_read / post_commit_probe with guard_raw_reads off) ran in a process holding connections"},
	{ProbeDispatchLock, "a dispatcher skipped a tick because another held the per-board dispatch lock"},
	{ProbeFaultInjected, "a scheduled fault was carried out"},
}

// Probes are the probes a run could reach under its schedule and knobs
// (Applicable) and the ones it did reach (Reached), both in ProbeDocs order.
type Probes struct {
	Applicable []string `json:"applicable"`
	Reached    []string `json:"reached"`
}

// walFrameBytes is one WAL frame of the board's page size: kanban.db keeps
// SQLite's default 4096-byte pages, each frame adds a 24-byte header.
const walFrameBytes = 4096 + 24

// probeRun works out the probes of a finished run from its trace, its
// ledger and what the observer saw.
func probeRun(tracePath string, hist ledger.History, s schedule.Schedule, k dispatcher.Knobs, wal []subject.WALSample, injections []faults.Injection) Probes {
	applicable := map[string]bool{ProbeBusyTimeout: true}
	reached := map[string]bool{}

	var modes = map[string]schedule.Behaviour{}
	for _, p := range s.Profiles {
		modes[p.Name] = p.Worker
	}
	for _, t := range s.Tasks {
		b := modes[t.Assignee]
		if b.Bounded() && b.Mode != schedule.ModeComplete && b.Mode != schedule.ModeWriteComplete && b.Mode != schedule.ModeCreateOnBoard {
			applicable[ProbeBreakerTrip] = true
		}
		if b.Mode == schedule.ModeKillInTxn {
			applicable[ProbeKillInTxn] = true
		}
	}
	applicable[ProbeBackoff] = k.Backoff || k.RateLimitCooldown
	applicable[ProbeDispatchLock] = k.DispatchLock && s.Dispatchers > 1
	applicable[ProbeFaultInjected] = len(s.Faults) > 0
	applicable[ProbeCheckpoint] = k.Connect.JournalMode == "" || k.Connect.JournalMode == "WAL"
	applicable[ProbeLockDrop] = (k.Connect.RawHeaderRead || k.Connect.PostCommitProbe) && !k.Connect.GuardRawReads

	ticks := 0
	if f, err := os.Open(tracePath); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			var t dispatcher.Tick
			if json.Unmarshal(sc.Bytes(), &t) != nil || t.Dispatcher == "" {
				continue // a fault line, or damage
			}
			ticks++
			reached[ProbeBreakerTrip] = reached[ProbeBreakerTrip] || t.GaveUp > 0
			reached[ProbeBackoff] = reached[ProbeBackoff] || t.Deferred > 0
			reached[ProbeDispatchLock] = reached[ProbeDispatchLock] || t.SkippedLocked
			reached[ProbeBusyTimeout] = reached[ProbeBusyTimeout] || isBusy(t.ErrorCode)
		}
		f.Close()
	}

	commits := map[int]int{} // comment commits per worker pid
	var commitMonos []ledger.Entry
	for _, e := range hist.Entries {
		switch e.Kind {
		case ledger.SQLiteError:
			reached[ProbeBusyTimeout] = reached[ProbeBusyTimeout] || isBusy(e.Code)
		case ledger.Commit:
			commitMonos = append(commitMonos, e)
			if e.Op == "comment" {
				commits[e.PID]++
			}
			// An external dispatcher (a Hermes driver) has no trace: what
			// its commits wrote says it.
			reached[ProbeBreakerTrip] = reached[ProbeBreakerTrip] || slices.Contains(e.EventKinds, kanban.EventGaveUp)
			reached[ProbeBackoff] = reached[ProbeBackoff] || slices.Contains(e.EventKinds, kanban.EventRespawnGuarded)
		case ledger.Tick:
			reached[ProbeDispatchLock] = reached[ProbeDispatchLock] || e.Op == "skipped_locked"
		}
	}
	for _, e := range hist.Entries {
		if e.Kind != ledger.Start {
			continue
		}
		if b := modes[e.Profile]; b.Mode == schedule.ModeKillInTxn && commits[e.PID] >= b.Writes {
			// Its next step was the transaction it kills itself in.
			reached[ProbeKillInTxn] = true
		}
	}
	// The lock-dropping raw reads run on every connect (the dispatchers
	// connect each tick) and after every commit: with the knob on and the
	// guard off, one tick or one commit is one firing.
	reached[ProbeLockDrop] = applicable[ProbeLockDrop] &&
		(k.Connect.RawHeaderRead && ticks > 0 || k.Connect.PostCommitProbe && len(commitMonos) > 0)
	reached[ProbeFaultInjected] = len(injections) > 0
	reached[ProbeCheckpoint] = applicable[ProbeCheckpoint] && checkpointUnderLoad(wal, k, commitMonos)

	var p Probes
	for _, d := range ProbeDocs {
		if applicable[d.Name] {
			p.Applicable = append(p.Applicable, d.Name)
			if reached[d.Name] {
				p.Reached = append(p.Reached, d.Name)
			}
		}
	}
	return p
}

// isBusy reports SQLITE_BUSY and its extended codes (BUSY_RECOVERY 261,
// BUSY_SNAPSHOT 517, BUSY_TIMEOUT 773).
func isBusy(code int) bool { return code != 0 && code&0xff == 5 }

// checkpointUnderLoad: SQLite runs a checkpoint on the commit that makes
// the WAL reach wal_autocheckpoint frames. The harness may not read the
// -wal or -shm (that would drop its own locks), so it infers the checkpoint
// from the file size the observer saw reach that many frames, and requires
// commits of two or more processes within 250 ms of that moment.
func checkpointUnderLoad(wal []subject.WALSample, k dispatcher.Knobs, commits []ledger.Entry) bool {
	pages := k.Connect.WALAutocheckpoint
	if pages <= 0 {
		pages = 1000
	}
	threshold := int64(32 + pages*walFrameBytes)
	i := slices.IndexFunc(wal, func(w subject.WALSample) bool { return w.Size >= threshold })
	if i < 0 {
		return false
	}
	at := wal[i].Mono
	const window = int64(250e6)
	pids := map[int]bool{}
	for _, c := range commits {
		if c.Mono >= at-window && c.Mono <= at+window {
			pids[c.PID] = true
		}
	}
	return len(pids) >= 2
}

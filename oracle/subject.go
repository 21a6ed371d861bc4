package oracle

import (
	"slices"
	"time"

	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// observed is what the oracle can see the subject doing in this run: its
// Observability, widened by what its own ledger entries show.
type observed struct {
	name string // "the subject (exec:CMD)", for messages
	// ticks are the dispatchers' tick entries, per dispatcher, by tick end.
	ticks map[string][]ledger.Entry
	// nTicks is how many ticks were seen finishing: by the harness
	// (Input.Ticks) and as tick entries.
	nTicks int
	// ticked: every tick is seen (Subject.Ticks, or the subject writes
	// tick entries).
	ticked  bool
	commits bool // the subject's own acknowledged commits are in the ledger
	errors  bool // its own SQLite errors are in the ledger
	alarms  bool // its own corruption alarms are in the ledger
	fds     bool // the harness watched its open file descriptors
}

func observe(in Input) observed {
	o := observed{name: "the subject", ticks: in.Ledger.Ticks(), nTicks: in.Ticks,
		commits: in.Subject.Commits, errors: in.Subject.Errors, fds: in.Subject.FDs,
		alarms: in.Subject.Alarms}
	if in.Subject.Name != "" {
		o.name = "the subject (" + in.Subject.Name + ")"
	}
	for who, ts := range o.ticks {
		slices.SortStableFunc(ts, func(a, b ledger.Entry) int { return cmpInt(a.Mono, b.Mono) })
		o.ticks[who] = ts
		o.nTicks += len(ts)
	}
	o.ticked = in.Subject.Ticks || len(o.ticks) > 0
	o.commits = o.commits || slices.ContainsFunc(in.Ledger.Entries, isDispatcherCommit)
	return o
}

// isDispatcherCommit: a commit a dispatcher (not a worker) saw acknowledged.
func isDispatcherCommit(e ledger.Entry) bool {
	return e.Kind == ledger.Commit && e.Who != "" && e.Who != "worker"
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// completes: the worker completes its task (complete, write-complete,
// create-on-board).
func completes(b schedule.Behaviour) bool {
	switch b.Mode {
	case schedule.ModeComplete, schedule.ModeWriteComplete, schedule.ModeCreateOnBoard:
		return true
	}
	return false
}

// fails: the worker fails deterministically in a way that counts toward
// the breaker (a crash, a kill, exit 0 without completing, a hang).
func fails(b schedule.Behaviour) bool { return b.Bounded() && !completes(b) }

// rateLimited: the worker exits 75, which never counts.
func rateLimited(b schedule.Behaviour) bool { return !b.Bounded() }

// tickOf is the schedule's dispatcher tick: TickMs, else Hermes' 60 s
// scaled.
func tickOf(s schedule.Schedule) time.Duration {
	switch {
	case s.TickMs > 0:
		return time.Duration(s.TickMs) * time.Millisecond
	case s.TimeScale > 0:
		return time.Duration(float64(time.Minute) * s.TimeScale)
	}
	return time.Minute
}

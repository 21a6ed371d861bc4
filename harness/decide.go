package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Decide early, stop early. A run's verdict is decided the moment the
// ledger establishes a violation no later line can undo (oracle.Decided:
// more starts than a task's limit, a corruption code seen). From then on
// the rest of the schedule can add evidence but cannot change the verdict,
// so the run stops there — after evidenceTicks more ticks, in which the
// dispatchers book on the board what the ledger already shows (reap the
// workers, classify the crash, count the failure), so the board holds the
// deciding violation's evidence as a full run's would. The dispatchers (or
// the external subject) are then stopped as at the end of the schedule, live workers get a moment to
// finish (subject.workerFinish), everything is killed and reaped, and the full oracle audits what
// the run left — it reports the deciding violation exactly as a full run
// would. A run that passes is never cut: only a whole schedule gets a PASS.
//
// Only the ledger is read while the run goes on, never the board: a plain
// read of the board file by this process would drop the POSIX locks of
// the dispatchers it hosts (M1).
//
// Who runs the whole schedule anyway (Options.FullDuration): compare and
// the gate's conformance table, which report spawn counts and rates a cut
// would truncate; a campaign's doublechecked runs, whose two verdicts are
// compared invariant by invariant (a cut run lists only what was found by
// its stop); the shrinker, when the invariant it shrinks for is not one the
// ledger decides (it stops on that invariant alone otherwise, StopOn).

// Decision is the violation that ended a run before its schedule did.
type Decision struct {
	Invariant string  `json:"invariant"`
	Task      string  `json:"task,omitempty"`
	AtMs      float64 `json:"at_ms"`      // when the violation became true, ms after the run start
	StoppedMs float64 `json:"stopped_ms"` // when the harness stopped the run, ms after the start
}

// decidePoll is how often the ledger is read for a decision: a small
// fraction of the shortest tick any scenario uses.
const decidePoll = 5 * time.Millisecond

// evidenceTicks is how many ticks a run goes on once decided.
const evidenceTicks = 3

// stopWhenDecided watches the ledger at path until a violation in stopOn
// (nil: any decidable one) is established, then calls stop after settle. The returned
// function waits for the watcher and reports the decision, if any; call it
// once ctx is done. With full set nothing is watched.
func stopWhenDecided(ctx context.Context, stop func(), full bool, path string, s schedule.Schedule, startMono int64,
	stopOn []string, settle time.Duration) func() *Decision {
	if full {
		return func() *Decision { return nil }
	}
	found := make(chan *Decision, 1)
	go func() {
		d, ok := watchDecision(ctx, path, s, startMono, stopOn, decidePoll)
		if !ok {
			found <- nil
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(settle):
		}
		d.StoppedMs = float64(ledger.MonoNow()-startMono) / 1e6
		found <- &d
		stop()
	}()
	return func() *Decision { return <-found }
}

// watchDecision reads the ledger's new complete lines every poll until
// oracle.Decided reports a violation of an invariant in stopOn (nil: any),
// or ctx ends (false).
func watchDecision(ctx context.Context, path string, s schedule.Schedule, startMono int64, stopOn []string,
	poll time.Duration) (Decision, bool) {
	t := time.NewTicker(poll)
	defer t.Stop()
	tail := ledgerTail{path: path}
	in := oracle.Input{Schedule: s, RunStartMono: startMono}
	for {
		select {
		case <-ctx.Done():
			return Decision{}, false
		case <-t.C:
		}
		fresh, err := tail.read(&in.Ledger)
		if err != nil || !fresh {
			continue // an unreadable ledger decides nothing; the oracle will say why
		}
		for _, v := range oracle.Decided(in) {
			if stopOn == nil || slices.Contains(stopOn, v.Invariant) {
				return Decision{Invariant: v.Invariant, Task: v.Task, AtMs: v.AtMs}, true
			}
		}
	}
}

// ledgerTail reads a ledger as it grows, complete lines only: a line is
// one write(2), but a reader may see a write half done.
type ledgerTail struct {
	path string
	off  int64
}

// read appends the entries of the lines completed since the last read to
// h and reports whether there were any.
func (t *ledgerTail) read(h *ledger.History) (bool, error) {
	f, err := os.Open(t.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.NewSectionReader(f, t.off, 1<<40))
	if err != nil {
		return false, err
	}
	end := bytes.LastIndexByte(data, '\n')
	if end < 0 {
		return false, nil
	}
	more, err := ledger.Parse(bytes.NewReader(data[:end+1]))
	if err != nil {
		return false, err
	}
	t.off += int64(end + 1)
	h.Entries = append(h.Entries, more.Entries...)
	h.Malformed += more.Malformed
	return len(more.Entries) > 0, nil
}

// markCut records in a verdict that its run stopped early: an invariant
// the schedule's quiet phase is there to test (the breaker holds through
// it) did not get that phase, so it is not checked rather than held. And a
// cut run whose full audit does not confirm the violation it was cut on
// is undecided: only a whole schedule earns a pass.
func markCut(v *oracle.Verdict, d Decision, s schedule.Schedule) {
	if !slices.Contains(v.Failed(), d.Invariant) {
		v.AddUnknown(fmt.Sprintf("the run stopped at +%.0fms on a %s violation the ledger showed, which the full audit does not confirm: "+
			"a run cut short is no pass (--full-duration runs the whole schedule)", d.StoppedMs, d.Invariant))
	}
	if d.StoppedMs >= float64(s.DurationMs) {
		return
	}
	unheld(v, oracle.BreakerHolds, fmt.Sprintf("the run stopped at +%.0fms, once %s was established, before its quiet phase (--full-duration runs the whole schedule)",
		d.StoppedMs, d.Invariant))
}

// unheld turns a held invariant into a not-checked one, with why: the
// harness knows the run never put it to the test. A violated or unchecked
// invariant stays as it is.
func unheld(v *oracle.Verdict, inv, why string) {
	if !slices.Contains(v.Held(), inv) {
		return
	}
	v.Checked = slices.DeleteFunc(v.Checked, func(c string) bool { return c == inv })
	v.NotChecked = append(v.NotChecked, oracle.Skip{Invariant: inv, Why: why})
}

// Package subject holds the dispatchers under test behind one small
// interface: the reference dispatcher in this process (reference.go), any
// dispatcher command (exec:, exec.go) and a real Hermes release (hermes:,
// hermes.go). Each says what it can be given (Check, Settings: the knobs,
// workers and time resolution it takes) and what it can be observed doing
// (Observability: ticks, commits, errors, file descriptors), which the
// oracle uses to mark the rest not checked; each runs the dispatch and
// quiet phases of a prepared sandbox (Dispatch) and reports what it saw.
//
// A subject does not prepare the sandbox, judge a run or keep artifacts —
// that is the harness's — and must not import the harness: what the
// harness runs beside the subject once the run's clock starts (the fault
// injector, the decision watcher) is handed to Dispatch as a function
// (Run.Beside).
package subject

import (
	"context"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/faults"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/sandbox"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Subject is one dispatcher under test.
type Subject interface {
	// Name is how runs name it: "reference", "exec:CMD", "hermes:VERSION".
	Name() string
	// Check refuses a schedule the subject cannot honour (knobs it would
	// silently ignore, worker behaviours it cannot play, a release that is
	// not installed).
	Check(ctx context.Context, s schedule.Schedule) error
	// Settings are what the subject is handed: the schedule's timing as
	// it can take it (an external subject gets whole seconds).
	Settings(s schedule.Schedule, timing dispatcher.Timing) Settings
	// Dispatch runs the dispatch and quiet phases in r's prepared sandbox
	// and stops the subject. The error is for the harness failing; a
	// subject that could not be tested adds to Phases.Unknowns.
	Dispatch(ctx context.Context, r Run) (Phases, error)
	// Verify reads what the subject reported about itself (into st) and
	// returns why the run did not test what it says.
	Verify(st *Settings, h ledger.History, s schedule.Schedule) []string
	// Observability is what the oracle can see the subject do.
	Observability(h ledger.History) oracle.Observability
	// ClockResolution is how coarse the subject's clock is, in seconds
	// (0: fine).
	ClockResolution() float64
}

// For is the subject a schedule names.
func For(sub schedule.Subject) Subject {
	switch {
	case sub.Hermes != "":
		return hermesSubject{base{sub}}
	case sub.Exec != "":
		return execSubject{base{sub}}
	}
	return reference{base{sub}}
}

// base is what every subject has: the schedule's name for it, and by
// default nothing to check beforehand and nothing reported to verify.
type base struct{ sub schedule.Subject }

func (b base) Name() string { return b.sub.String() }

func (base) Check(context.Context, schedule.Schedule) error { return nil }

func (base) Verify(*Settings, ledger.History, schedule.Schedule) []string { return nil }

// Run is what a subject's dispatch phase is given.
type Run struct {
	Sandbox  sandbox.Dir
	Schedule schedule.Schedule
	Knobs    dispatcher.Knobs
	Timing   dispatcher.Timing
	// Children are the processes this process starts (the reference
	// dispatchers' workers); the harness kills them whatever happens.
	Children *dispatcher.Children
	// StopGrace bounds how long the subject may take to stop.
	StopGrace time.Duration
	// OnTick, if set, sees every tick of an in-process dispatcher.
	OnTick func(dispatcher.Tick)
	// Logf receives progress lines.
	Logf func(format string, args ...any)
	// Beside starts what the harness runs beside the subject once the
	// run's clock has started; see Beside. Nil: nothing.
	Beside Beside
}

// Beside starts, at the run's start, what runs beside the subject — the
// fault injector and the decision watcher — given the function that ends
// the phase early and the one that records each injected fault. The
// returned wait is called once the phase's context is done; it waits for
// them and reports whether the run was stopped early on a violation.
type Beside func(ctx context.Context, stop context.CancelFunc, start Clock, record func(faults.Injection)) (wait func() (decided bool))

// Clock is the run's start: the moment faults are timed from and the
// ledger's CLOCK_MONOTONIC reading of it.
type Clock struct {
	Start time.Time
	Mono  int64
}

// beside starts r.Beside (a no-op when nil).
func (r Run) beside(ctx context.Context, stop context.CancelFunc, start Clock, record func(faults.Injection)) func() bool {
	if r.Beside == nil {
		return func() bool { return false }
	}
	return r.Beside(ctx, stop, start, record)
}

// Phases is what the dispatch phase observed.
type Phases struct {
	StartMono            int64
	StartWall, QuietWall float64
	// StopMono is when the harness told an external subject to stop (the
	// schedule's end, or the decision that ended the run early); 0 for the
	// reference dispatcher, whose stalls the harness observes itself.
	StopMono          int64
	Elapsed           time.Duration
	Ticks, TickErrors int // of in-process dispatchers (an external subject's are in the ledger)
	Unknowns          []string
	Observations      []oracle.Observation
	Injections        []faults.Injection
	WAL               []WALSample // -wal sizes over the run (stat only)
	AliveAtStop       int         // sandbox processes alive when the run's time was up (-1: not known)
}

// WALSample is one stat of the -wal file during the run.
type WALSample struct {
	Mono int64
	Size int64
}

// offset is dispatcher i's start offset in s.
func offset(s schedule.Schedule, i int) time.Duration {
	if i < len(s.DispatcherOffsetsMs) {
		return time.Duration(s.DispatcherOffsetsMs[i]) * time.Millisecond
	}
	return 0
}

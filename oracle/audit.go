package oracle

// Audit: the invariants of any kanban.db, judged from its own history.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// AuditOptions are what a board's DB does not record about how it ran.
type AuditOptions struct {
	// FailureLimit is the configured kanban.failure_limit (0: Hermes'
	// default, 2). A task's own max_retries wins, as in Hermes.
	FailureLimit int
	// Cooldown is the rate-limit cooldown (0: Hermes' 300 s).
	Cooldown time.Duration
	// Run, when set, is the run that produced the board (an artifact
	// directory): its ledger and schedule are checked too, and its
	// schedule's limits and time scale replace the two fields above.
	Run *Input
}

// BoardSummary is what an audit saw of the board.
type BoardSummary struct {
	Read   bool           `json:"read"` // false: the tables were not read (integrity failed)
	Tasks  int            `json:"tasks"`
	Runs   int            `json:"runs"`
	Events int            `json:"events"`
	Status map[string]int `json:"status,omitempty"` // tasks per status
}

// ErrNotABoard is returned by Audit for an SQLite file without the kanban
// tables.
var ErrNotABoard = errors.New("not a kanban board: no tasks table")

// Audit checks a board by its own history: integrity_check and quick_check,
// then every invariant decidable from the DB alone — spawned runs per task
// between counter resets, the breaker holding after gave_up, open-run
// bookkeeping and running tasks' claims, runs without a recorded worker,
// rate-limited runs and protocol violations. With o.Run it also checks the
// run's ledger-based invariants (Check). The board's history is read one
// task at a time (stream.go), so memory is bounded by the largest task, not
// the board.
//
// path must be a private copy nobody else has open (see Snapshot): Audit
// opens it read-write, so that SQLite recovers a hot journal or WAL in the
// copy the way the next process would in the original.
func Audit(ctx context.Context, path string, o AuditOptions) (v Verdict, sum BoardSummary, err error) {
	in := Input{DBPath: path}
	limits := configuredLimits(o.FailureLimit)
	cooldown := o.Cooldown.Seconds()
	if cooldown <= 0 {
		cooldown = DefaultCooldown.Seconds()
	}
	if o.Run != nil {
		in = *o.Run
		in.DBPath, in.CheckCopy = path, true // Check copies the copy, and checks that read-write
		if v, err = Check(ctx, in); err != nil {
			return v, sum, err
		}
		limits, cooldown = scheduleLimits(in.Schedule), cooldownOf(in)
	} else {
		v = Verdict{Spawns: map[string]int{}}
	}
	defer v.settle()
	why := "" // what kept the invariants still undecided at a return from being checked
	defer func() {
		all := []string{SpawnLimit, UnrecordedWorkers}
		if o.Run == nil {
			all = AuditInvariants()
		}
		v.undecided(all, why)
	}()
	db, err := openReadWrite(path)
	if err != nil {
		return v, sum, err
	}
	defer db.Close()
	schema, err := hasSchema(ctx, db)
	if err != nil {
		// A run's artifacts whose board is too damaged to read its schema
		// (seen on real 0.19.0's boards) are a verdict, not a harness error.
		if kanban.IsCorrupt(err) {
			if !slices.Contains(v.Failed(), Integrity) {
				v.Violations = append(v.Violations, Violation{Invariant: Integrity, Message: "reading the schema failed: " + err.Error()})
			}
			why = "reading the board's schema failed: it cannot be trusted"
			return v, sum, nil
		}
		return v, sum, fmt.Errorf("oracle: audit %s: %w", path, err)
	}
	if !schema {
		return v, sum, ErrNotABoard
	}
	if o.Run == nil {
		v.check(Integrity)
		if !checkIntegrity(ctx, &v, db) {
			why = "the board failed integrity_check: its tables cannot be trusted"
			if !slices.Contains(v.Failed(), Integrity) {
				why = "integrity_check could not run"
				v.skip(Integrity, why)
			}
			return v, sum, nil
		}
	} else if slices.Contains(v.Failed(), Integrity) {
		why = "the board failed integrity_check: its tables cannot be trusted"
		return v, sum, nil
	}
	j := newHistoryJudge(in, limits, cooldown)
	err = streamHistories(ctx, db, j.judge)
	if err == nil {
		err = j.resolveUnrecorded(ctx, db)
	}
	if err != nil {
		if kanban.IsCorrupt(err) {
			v.Violations = append(v.Violations, Violation{Invariant: Integrity, Message: "reading the board failed: " + err.Error()})
			why = "reading the board's tables failed: they cannot be trusted"
			return v, sum, nil
		}
		return v, sum, fmt.Errorf("oracle: audit %s: %w", path, err)
	}
	sum, sum.Read = j.sum, true
	if o.Run == nil {
		// No ledger: the board's own bookings are all there is to judge.
		j.decideBoard(&v)
	}
	j.decideAudit(&v)
	return v, sum, nil
}

// AuditInvariants lists what Audit decides for a board without a run; with
// a run (AuditOptions.Run) it decides RunInvariants, SpawnLimit and
// UnrecordedWorkers.
func AuditInvariants() []string {
	return []string{Integrity, BreakerHolds, RunBookkeeping, RateLimit, ProtocolBudget, SpawnLimit, UnrecordedWorkers}
}

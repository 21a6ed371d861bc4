// Package oracle decides whether a run kept the dispatcher's invariants. It
// reads the board DB through SQLite only (a read-only connection: never a
// plain open of the file, which would drop other connections' locks) and the
// ledger the workers and the dispatchers wrote, and returns a verdict —
// pass, fail or unknown — with evidence for every violation, and for every
// invariant whether it held, was violated or was not checked (and why):
// what the dispatcher under test cannot be observed doing (Observability)
// is never counted as held, and a run that never reached its schedule's
// target state (targets.go) is unknown. It never writes to the DB it checks.
//
// Where the invariants live: oracle.go (Check, spawns), board.go
// (integrity, breaker-holds, run-bookkeeping, no-lost-runs), writes.go
// (no-lost-writes, sqlite-errors, sidecars), history.go (rate-limit,
// protocol-budget and the audit's own; Audit itself in audit.go),
// exits.go (the same two from the workers' exit codes), ticks.go
// (dispatcher-progress, one-writer-per-tick from tick entries),
// regressions.go (board-routing, one-writer-per-tick), survivors.go
// (no-survivors), targets.go; stream.go reads a board for Audit one task
// at a time.
//
// Audit is the same judgement on any Hermes kanban.db without a run behind
// it (`kanbanchaos check`): the invariants its own history decides. It works
// on a Snapshot — a private copy made through SQLite's online backup API
// from a read-only connection — never on the live file; snapshot.go says why.
package oracle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Invariant names, as printed and as used in JSON.
const (
	Integrity      = "integrity"       // integrity_check and quick_check are ok (#30896, #33334)
	Spawns         = "spawns"          // worker starts per task ≤ effective failure limit, from the ledger (#30896, #30417, #35202, #63070)
	BreakerHolds   = "breaker-holds"   // after gave_up, no promoted/claimed without a reset (#30417)
	RunBookkeeping = "run-bookkeeping" // ≤1 open run; current_run_id ⇔ open run; running ⇒ lock, expiry, run
	NoLostRuns     = "no-lost-runs"    // every ledger start has its task_runs row
)

// Observability is what a run's dispatcher under test can be observed
// doing beyond the board DB and the workers' ledger lines. The zero value
// means nothing more: an exec subject that records nothing gets the
// invariants that need more listed as not checked. A subject that writes
// tick entries, or commit entries of its own, to the ledger is observed
// doing so whatever Ticks and Commits say (a dispatcher that writes one
// such entry writes them all, by the ledger's contract).
type Observability struct {
	Name    string `json:"name,omitempty"` // "reference", "exec:CMD", "hermes:0.14.0" — for messages
	Ticks   bool   `json:"ticks"`          // every dispatcher tick is seen: by the harness (Input.Ticks) or as ledger tick entries
	Commits bool   `json:"commits"`        // the dispatcher's own acknowledged commits are in the ledger
	Errors  bool   `json:"errors"`         // the dispatcher's own SQLite errors are in the ledger
	FDs     bool   `json:"fds"`            // the harness watched the dispatchers' open file descriptors (sidecars observations)
	// Alarms: the dispatcher's own corruption alarms (its checks' verdicts,
	// not SQLite's) are in the ledger — our dispatchers and our Hermes
	// driver write them; another command's ledger protocol need not.
	Alarms bool `json:"alarms"`
}

// Input is what one check looks at.
type Input struct {
	DBPath   string
	Ledger   ledger.History
	Schedule schedule.Schedule // expectations per task; zero value: DB-only checks
	// Subject is what the run's dispatcher under test can be observed doing.
	Subject Observability
	// Cooldown is the effective rate-limit cooldown in seconds the subject
	// ran with (0: Hermes' 300 s × the schedule's time scale).
	Cooldown float64
	// ClockResolution is the resolution, in seconds, of the clock the
	// subject times its cooldown with (Hermes stamps whole seconds: 1; 0:
	// exact). A respawn is early only if it comes more than that before
	// the cooldown is over, and the subject's board times are windows of
	// that width (relMs, when).
	ClockResolution float64
	// Ticks is how many dispatcher ticks the harness itself saw finish (the
	// in-process reference dispatcher reports them); ledger tick entries
	// are counted on top.
	Ticks int
	// RunStartMono and RunStartWall anchor relative times in the evidence.
	RunStartMono int64
	RunStartWall float64
	// RunStopMono, when > 0, is when the harness told the subject to stop:
	// a dispatcher with no progress from its last tick or commit until then
	// stalled as much as one between two ticks (0: not known, and that last
	// stretch is not judged).
	RunStopMono int64
	// QuietStartWall is when the quiet phase began (0: unknown).
	QuietStartWall float64
	// Observations are what the harness saw outside the DB while the run
	// went on (deleted sidecars held open, replaced sidecars).
	Observations []Observation
	// CheckCopy checks a copy of the board files (DB, -wal, -shm,
	// -journal) opened read-write, so SQLite can recover a hot journal or
	// WAL the way the next real process would, while the originals stay as
	// they were left. Only for files nobody has open: copying a live DB
	// is itself a corruption mechanism.
	CheckCopy bool
	// SwapMono, when > 0, is when the board file was swapped for an empty
	// one (an operator's act, fault "swap"). Writes and starts before it
	// went to the file that was moved aside and are not held against the
	// file now at DBPath.
	SwapMono int64
	// PowerCutMono, when > 0, is when the power was cut (fault
	// "powerloss"): DBPath is then the board as the disk held it, and a
	// commit acknowledged before the cut is owed only if it was durable.
	// Integrity is owed always: losing recent commits is what
	// synchronous=OFF/NORMAL trade for speed, corruption never is.
	PowerCutMono int64
	// DurableCommits: the writers' settings (synchronous=FULL with a WAL,
	// TRUNCATE or PERSIST journal) make every commit acknowledged before
	// the power cut survive it.
	DurableCommits bool
	// Cleanup is what the harness found of the sandbox's processes at the
	// run's stop and after its cleanup (nil: it did not look).
	Cleanup *Cleanup
}

// survivesCut reports whether what was acknowledged at mono must have
// survived the power cut, if there was one: only durable commits from
// before it.
func (in Input) survivesCut(mono int64) bool {
	return in.PowerCutMono == 0 || (in.DurableCommits && mono < in.PowerCutMono)
}

// RunInvariants lists every invariant Check decides for a run, in the order
// a verdict lists them; each ends up held, violated or not checked.
func RunInvariants() []string {
	return []string{Spawns, SQLiteErrors, Sidecars, DispatcherProgress, Integrity, NoSilentRecreation,
		BreakerHolds, RunBookkeeping, NoLostRuns, NoLostWrites, RateLimit, ProtocolBudget, BoardRouting, OneWriterPerTick, AssigneeSurfaced, NoFalseAlarm, NoSurvivors}
}

// rank orders invariants as verdicts list them: a run's, then the audit's
// own; any other name last.
func rank(invariant string) int {
	if i := slices.Index(append(RunInvariants(), SpawnLimit, UnrecordedWorkers), invariant); i >= 0 {
		return i
	}
	return 1 << 10
}

// Check runs every invariant, then whether the run reached its target
// state (targets.go). The returned error is for the oracle itself failing
// (never for a violation).
func Check(ctx context.Context, in Input) (v Verdict, err error) {
	v = Verdict{Spawns: map[string]int{}, Subject: in.Subject}
	defer v.settle()
	// why is what kept the invariants still undecided at a return from
	// being checked: the board could not be read, or cannot be trusted.
	why := ""
	defer func() { v.undecided(RunInvariants(), why) }()
	if in.Ledger.Malformed > 0 {
		v.Unknowns = append(v.Unknowns, fmt.Sprintf("ledger has %d malformed lines: spawn counts may be incomplete", in.Ledger.Malformed))
	}
	starts := in.Ledger.Starts()
	for task, s := range starts {
		v.Spawns[task] = len(s)
	}
	obs := observe(in)
	checkSpawns(&v, in, starts)
	checkSQLiteErrors(&v, in, obs)
	checkObservations(&v, in.Observations)
	if obs.fds {
		v.check(Sidecars)
	} else {
		v.skip(Sidecars, fmt.Sprintf("the harness did not watch %s's open file descriptors", obs.name))
	}
	checkProgress(&v, in, obs)
	checkExpected(&v, in, obs)
	checkSurvivors(&v, in.Cleanup)
	if in.SwapMono == 0 {
		v.skip(NoSilentRecreation, "the board file was never swapped (no swap fault in this run)")
	}
	if len(routingTargets(in.Schedule)) == 0 {
		v.skip(BoardRouting, "no worker creates cards on another board")
	}

	if _, err := os.Stat(in.DBPath); err != nil {
		v.Unknowns = append(v.Unknowns, fmt.Sprintf("board DB not readable: %v", err))
		why = "the board DB could not be read"
		return v, nil
	}
	open := openReadOnly
	if in.CheckCopy {
		dir, err := os.MkdirTemp("", "kanbanchaos-oracle-")
		if err != nil {
			return v, fmt.Errorf("oracle: %w", err)
		}
		defer os.RemoveAll(dir)
		if in.DBPath, err = CopyBoard(in.DBPath, dir); errors.Is(err, ErrBoardBusy) {
			v.Unknowns = append(v.Unknowns, err.Error())
			why = "the board could not be copied consistently"
			return v, nil
		} else if err != nil {
			return v, err
		}
		open = openReadWrite
	}
	db, err := open(in.DBPath)
	if err != nil {
		return v, err
	}
	defer db.Close()

	v.check(Integrity)
	if !checkIntegrity(ctx, &v, db) {
		// The tables of a corrupt DB cannot be trusted; the integrity
		// violation already decides the run.
		why = "the board failed integrity_check: its tables cannot be trusted"
		if !slices.Contains(v.Failed(), Integrity) {
			why = "integrity_check could not run"
			v.skip(Integrity, why)
		}
		return v, nil
	}
	if in.SwapMono > 0 {
		schema, err := hasSchema(ctx, db)
		if err != nil {
			v.Unknowns = append(v.Unknowns, "could not read the swapped-in board: "+err.Error())
			why = "the swapped-in board could not be read"
			return v, nil
		}
		v.check(NoSilentRecreation)
		if !schema {
			// Nobody gave the swapped-in file a schema: every write after
			// the swap was refused, or it went to the orphaned file.
			checkLostWrites(ctx, &v, in, nil, snapshot{runs: map[int64]runRow{}}, obs)
			checkTargets(&v, in, nil, obs)
			why = fmt.Sprintf("the board file was swapped at +%.0fms for an empty file nobody gave a schema: "+
				"the board's tables are in the file moved aside", in.monoMs(in.SwapMono))
			return v, nil
		}
		checkRecreation(ctx, &v, in, db)
	}
	snap, err := readSnapshot(ctx, db)
	if err != nil {
		if kanban.IsCorrupt(err) {
			v.Violations = append(v.Violations, Violation{Invariant: Integrity, Message: "reading the board failed: " + err.Error()})
			why = "reading the board's tables failed: they cannot be trusted"
			return v, nil
		}
		v.Unknowns = append(v.Unknowns, "could not read the board: "+err.Error())
		why = "the board's tables could not be read"
		return v, nil
	}
	checkBreaker(&v, in, snap)
	checkBookkeeping(&v, snap)
	checkLostRuns(&v, in, snap)
	checkLedgerCoverage(&v, in, snap)
	if err := checkLostWrites(ctx, &v, in, db, snap, obs); err != nil {
		v.Unknowns = append(v.Unknowns, "could not check for lost writes: "+err.Error())
		v.skip(NoLostWrites, "the board's comments could not be read")
	}
	if err := checkRegressions(ctx, &v, in, db, snap); err != nil {
		v.Unknowns = append(v.Unknowns, "could not check the regression invariants: "+err.Error())
		why = "the board's runs could not be read"
	}
	checkFalseAlarms(&v, in, obs)
	checkTargets(&v, in, &snap, obs)
	return v, nil
}

func openReadWrite(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	db, err := sql.Open("sqlite", kanban.FileURI(path)+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("oracle: open copy %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

func openReadOnly(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	db, err := sql.Open("sqlite", kanban.FileURI(path)+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("oracle: open %s read-only: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// relMs places a board time on the run's axis: ms after the run's start
// (0: no start known, untimed). A subject with a coarse clock stamps the
// start of its clock's tick (Hermes: int(time.time())), up to a whole
// second before the event and possibly before the run began; the event is
// then placed at the end of that tick, the first moment it is certain to
// have happened.
func (in Input) relMs(wall float64) float64 {
	if in.RunStartWall == 0 {
		return 0
	}
	return (wall + in.ClockResolution - in.RunStartWall) * 1000
}

func (in Input) monoMs(mono int64) float64 {
	if in.RunStartMono == 0 {
		return 0
	}
	return float64(mono-in.RunStartMono) / 1e6
}

// checkSpawns counts worker starts per task from the ledger and holds every
// task whose worker fails to its effective limit. It is checked only when
// some task's worker started as often as its limit: below it, "starts ≤
// limit" holds for any dispatcher.
func checkSpawns(v *Verdict, in Input, starts map[string][]ledger.Entry) {
	if len(in.Schedule.Tasks) == 0 {
		v.skip(Spawns, "no schedule: nothing says which tasks' workers fail, or their limits")
		return
	}
	reached, bounded := false, 0
	var closest string
	var closestN, closestLimit int
	for _, t := range in.Schedule.Tasks {
		p, _ := in.Schedule.Profile(t.Assignee)
		if !p.Worker.Bounded() {
			continue
		}
		limit, source := in.Schedule.EffectiveLimit(t)
		s := starts[t.ID]
		if fails(p.Worker) {
			bounded++
			if closest == "" || len(s)*closestLimit > closestN*limit {
				closest, closestN, closestLimit = t.ID, len(s), limit
			}
		}
		reached = reached || len(s) >= limit
		if len(s) <= limit {
			continue
		}
		var times []float64
		for i, e := range s {
			if i == 20 {
				break
			}
			times = append(times, round(in.monoMs(e.Mono)))
		}
		at := in.monoMs(s[limit].Mono)
		v.Violations = append(v.Violations, Violation{
			Invariant: Spawns, Task: t.ID, AtMs: round(at),
			Message: fmt.Sprintf("%d worker starts (ledger) > limit %d (%s); start #%d at +%.0fms",
				len(s), limit, source, limit+1, at),
			Evidence: map[string]any{"spawns": len(s), "limit": limit, "limit_source": source,
				"worker": p.Worker.String(), "start_ms": times},
		})
	}
	switch {
	case reached:
		v.check(Spawns)
	case bounded == 0:
		v.skip(Spawns, "no task's worker fails: no task gets near its failure limit")
	default:
		why := fmt.Sprintf("no task's worker started as often as its failure limit (closest: %s, %d of %d)", closest, closestN, closestLimit)
		if room := breakerRoom(in.Schedule); room != "" {
			why += "; " + room
		}
		v.skip(Spawns, why)
	}
}

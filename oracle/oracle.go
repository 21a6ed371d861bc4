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
// Where the invariants live: oracle.go (spawns, integrity, breaker-holds,
// run-bookkeeping, no-lost-runs), writes.go (no-lost-writes, sqlite-errors,
// sidecars), history.go (rate-limit, protocol-budget and the audit's own),
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
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

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

// Status is a verdict's outcome.
type Status string

const (
	Pass    Status = "pass"
	Fail    Status = "fail"
	Unknown Status = "unknown"
)

// Violation is one broken invariant with its evidence.
type Violation struct {
	Invariant string         `json:"invariant"`
	Task      string         `json:"task,omitempty"`
	Message   string         `json:"message"`
	AtMs      float64        `json:"at_ms,omitempty"` // when it first became true, ms after the run start (0: not timed)
	Evidence  map[string]any `json:"evidence,omitempty"`
}

// Skip is an invariant the oracle did not check, and why: the subject
// cannot be observed doing what it is about ("the subject records no
// ticks"), or the run never gave it anything to hold ("no worker exited
// 75").
type Skip struct {
	Invariant string `json:"invariant"`
	Why       string `json:"why"`
}

// Verdict is the oracle's answer for one run.
//
// How to read it. Every invariant the oracle knows for the run is in
// exactly one of three states:
//   - violated: it has Violations, with evidence (and is in Checked);
//   - held: it is in Checked and has none (Held);
//   - not checked: it is in NotChecked, with why. Not checked is never
//     counted as held, and an invariant is never both in Checked and in
//     NotChecked.
//
// Status is Fail when anything is violated; else Unknown when the run could
// not be decided (Unknowns says why: a deadline, an unreadable board, a
// target state the run never reached — no worker ever started, no crash
// was classified, no breaker decision was made); else Pass. So a PASS means
// the dispatcher under test went through the danger and held, and it claims
// no more than Held: it always comes with what was not checked and why.
// Not-checked invariants alone never make a run unknown — whether they must
// be checked is for whoever reads the verdict (a CI gate) to decide.
type Verdict struct {
	Status     Status      `json:"status"`
	Violations []Violation `json:"violations,omitempty"`
	Unknowns   []string    `json:"unknowns,omitempty"` // why the run could not be decided
	Checked    []string    `json:"checked"`            // held or violated
	NotChecked []Skip      `json:"not_checked,omitempty"`
	// Subject is what the dispatcher under test could be observed doing
	// (Input.Subject), kept so that the verdict's not-checked list can be
	// understood, and rechecked alike, later.
	Subject Observability  `json:"subject"`
	Spawns  map[string]int `json:"spawns"` // worker starts per task, from the ledger
}

// AddUnknown records a reason the run is undecided (kept only if nothing failed).
func (v *Verdict) AddUnknown(reason string) {
	v.Unknowns = append(v.Unknowns, reason)
	v.settle()
}

// check records that invariants were decided (held, unless a violation
// says otherwise).
func (v *Verdict) check(invariants ...string) {
	for _, inv := range invariants {
		if !slices.Contains(v.Checked, inv) {
			v.Checked = append(v.Checked, inv)
		}
	}
}

// skip records that an invariant was not checked, and why (the first
// reason given wins). A violation found anyway still makes it violated.
func (v *Verdict) skip(invariant, why string) {
	if !slices.ContainsFunc(v.NotChecked, func(s Skip) bool { return s.Invariant == invariant }) {
		v.NotChecked = append(v.NotChecked, Skip{Invariant: invariant, Why: why})
	}
}

// undecided marks every one of invariants that is neither checked, not
// checked nor violated as not checked, for why (a check that stopped early).
func (v *Verdict) undecided(invariants []string, why string) {
	if why == "" {
		why = "the oracle did not get to it"
	}
	failed := v.Failed()
	for _, inv := range invariants {
		if !slices.Contains(v.Checked, inv) && !slices.Contains(failed, inv) {
			v.skip(inv, why)
		}
	}
}

// settle makes the three states exclusive — violated beats not checked,
// not checked beats held — and sets the status.
func (v *Verdict) settle() {
	failed := v.Failed()
	v.check(failed...)
	v.NotChecked = slices.DeleteFunc(v.NotChecked, func(s Skip) bool { return slices.Contains(failed, s.Invariant) })
	v.Checked = slices.DeleteFunc(v.Checked, func(inv string) bool {
		return slices.ContainsFunc(v.NotChecked, func(s Skip) bool { return s.Invariant == inv })
	})
	slices.SortStableFunc(v.Checked, func(a, b string) int { return rank(a) - rank(b) })
	slices.SortStableFunc(v.NotChecked, func(a, b Skip) int { return rank(a.Invariant) - rank(b.Invariant) })
	switch {
	case len(v.Violations) > 0:
		v.Status = Fail
	case len(v.Unknowns) > 0:
		v.Status = Unknown
	default:
		v.Status = Pass
	}
}

// Failed lists the distinct violated invariants in the order found.
func (v Verdict) Failed() []string {
	var out []string
	for _, x := range v.Violations {
		if !slices.Contains(out, x.Invariant) {
			out = append(out, x.Invariant)
		}
	}
	return out
}

// Held lists the invariants that were checked and held: Checked without the
// violated ones, in Checked's order.
func (v Verdict) Held() []string {
	failed := v.Failed()
	var out []string
	for _, inv := range v.Checked {
		if !slices.Contains(failed, inv) && !slices.Contains(out, inv) {
			out = append(out, inv)
		}
	}
	return out
}

// FirstViolationMs is the earliest timed violation, or -1.
func (v Verdict) FirstViolationMs() float64 {
	first := -1.0
	for _, x := range v.Violations {
		if x.AtMs > 0 && (first < 0 || x.AtMs < first) {
			first = x.AtMs
		}
	}
	return first
}

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
	// the cooldown is over.
	ClockResolution float64
	// Ticks is how many dispatcher ticks the harness itself saw finish (the
	// in-process reference dispatcher reports them); ledger tick entries
	// are counted on top.
	Ticks int
	// RunStartMono and RunStartWall anchor relative times in the evidence.
	RunStartMono int64
	RunStartWall float64
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
		BreakerHolds, RunBookkeeping, NoLostRuns, NoLostWrites, RateLimit, ProtocolBudget, BoardRouting, OneWriterPerTick, AssigneeSurfaced, NoSurvivors}
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
		if in.DBPath, err = CopyBoard(in.DBPath, dir); err != nil {
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
	checkTargets(&v, in, &snap, obs)
	return v, nil
}

// CopyBoard copies the board and whatever sidecars exist (-wal, -shm,
// -journal) into dir, returning the copy's path. Plain file reads: only for
// a board no connection of this process has open (M1).
func CopyBoard(path, dir string) (string, error) {
	dst := filepath.Join(dir, filepath.Base(path))
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		data, err := os.ReadFile(path + suffix)
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("oracle: copy board: %w", err)
		}
		if err := os.WriteFile(dst+suffix, data, 0o644); err != nil {
			return "", fmt.Errorf("oracle: copy board: %w", err)
		}
	}
	return dst, nil
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

func (in Input) relMs(wall float64) float64 {
	if in.RunStartWall == 0 {
		return 0
	}
	return (wall - in.RunStartWall) * 1000
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

func checkIntegrity(ctx context.Context, v *Verdict, db *sql.DB) bool {
	ok := true
	for _, pragma := range []string{"integrity_check", "quick_check"} {
		msgs, err := pragmaRows(ctx, db, pragma)
		if err != nil {
			if kanban.IsCorrupt(err) {
				// What the check listed before it hit damage it cannot walk
				// past is the better evidence.
				shown := strings.Join(msgs[:min(len(msgs), 10)], "; ") + "; then "
				v.Violations = append(v.Violations, Violation{Invariant: Integrity,
					Message:  fmt.Sprintf("PRAGMA %s failed: %s%v", pragma, strings.TrimPrefix(shown, "; then "), err),
					Evidence: map[string]any{"pragma": pragma, "messages": msgs[:min(len(msgs), 10)], "error": err.Error()}})
			} else {
				v.Unknowns = append(v.Unknowns, fmt.Sprintf("PRAGMA %s could not run: %v", pragma, err))
			}
			return false
		}
		if len(msgs) == 1 && msgs[0] == "ok" {
			// quick_check is integrity_check less the UNIQUE and index
			// content checks: after an ok integrity_check it can only say
			// ok again, at the cost of another pass over the whole file
			// (a third of check's time on a 1 GB board). It runs for its
			// own evidence when integrity_check found damage.
			break
		}
		ok = false
		shown := msgs[:min(len(msgs), 10)]
		v.Violations = append(v.Violations, Violation{Invariant: Integrity,
			Message:  fmt.Sprintf("PRAGMA %s: %s", pragma, strings.Join(shown, "; ")),
			Evidence: map[string]any{"pragma": pragma, "messages": shown, "total": len(msgs)}})
	}
	return ok
}

func pragmaRows(ctx context.Context, db *sql.DB, pragma string) ([]string, error) {
	rows, err := db.QueryContext(ctx, "PRAGMA "+pragma)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

type taskRow struct {
	id, status string
	lock       sql.NullString
	expires    sql.NullFloat64
	currentRun sql.NullInt64
	failures   int
	maxRetries sql.NullInt64
}

type runRow struct {
	id      int64
	task    string
	ended   bool
	outcome string
}

type eventRow struct {
	id      int64
	task    string
	run     sql.NullInt64
	kind    string
	payload string
	at      float64
	// runOutcome is the outcome of the run a spawned event names ("" for
	// other events, or a run the board lacks); only the streaming audit
	// reads it (stream.go).
	runOutcome string
}

type snapshot struct {
	tasks  []taskRow
	runs   map[int64]runRow
	events map[string][]eventRow // per task, by id
}

func readSnapshot(ctx context.Context, db *sql.DB) (snapshot, error) {
	s := snapshot{runs: map[int64]runRow{}, events: map[string][]eventRow{}}
	rows, err := db.QueryContext(ctx, `SELECT id, status, claim_lock, claim_expires, current_run_id, consecutive_failures, max_retries FROM tasks ORDER BY id`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var t taskRow
		if err := rows.Scan(&t.id, &t.status, &t.lock, &t.expires, &t.currentRun, &t.failures, &t.maxRetries); err != nil {
			rows.Close()
			return s, err
		}
		s.tasks = append(s.tasks, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s, err
	}
	rows, err = db.QueryContext(ctx, `SELECT id, task_id, ended_at IS NOT NULL, COALESCE(outcome,'') FROM task_runs`)
	if err != nil {
		return s, err
	}
	for rows.Next() {
		var r runRow
		if err := rows.Scan(&r.id, &r.task, &r.ended, &r.outcome); err != nil {
			rows.Close()
			return s, err
		}
		s.runs[r.id] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s, err
	}
	// Only a gave_up event's payload is ever read (the breaker's count and
	// limit): the others' stay in the DB, and each task id and event kind
	// is held once, so a board of millions of events fits in memory.
	rows, err = db.QueryContext(ctx, `SELECT id, task_id, run_id, kind, CASE WHEN kind = ? THEN COALESCE(payload,'') ELSE '' END, created_at
		FROM task_events ORDER BY id`, kanban.EventGaveUp)
	if err != nil {
		return s, err
	}
	defer rows.Close()
	kinds := map[string]string{}
	var task, kind sql.RawBytes
	for rows.Next() {
		var e eventRow
		if err := rows.Scan(&e.id, &task, &e.run, &kind, &e.payload, &e.at); err != nil {
			return s, err
		}
		if e.kind = kinds[string(kind)]; e.kind == "" {
			e.kind = string(kind)
			kinds[e.kind] = e.kind
		}
		evs, seen := s.events[string(task)]
		if seen && len(evs) > 0 {
			e.task = evs[0].task
		} else {
			e.task = string(task)
		}
		s.events[e.task] = append(evs, e)
	}
	return s, rows.Err()
}

// checkBreaker: once a task's breaker tripped (gave_up), it must not be
// promoted or claimed again until something resets it (completed, unblocked).
func checkBreaker(v *Verdict, in Input, s snapshot) {
	tripped := false
	var found []Violation
	for _, task := range slices.Sorted(maps.Keys(s.events)) {
		es := s.events[task]
		tripped = tripped || hasGaveUp(es)
		if x := breakerReopened(in, task, es); x != nil {
			found = append(found, *x)
		}
	}
	decideBreaker(v, tripped, found)
}

// decideBreaker records breaker-holds: checked when some task's breaker
// tripped, with the reopenings found (one per task, in task order).
func decideBreaker(v *Verdict, tripped bool, found []Violation) {
	if tripped {
		v.check(BreakerHolds)
	} else {
		v.skip(BreakerHolds, "no task's breaker tripped (no gave_up event on the board)")
	}
	v.Violations = append(v.Violations, found...)
}

func hasGaveUp(events []eventRow) bool {
	return slices.ContainsFunc(events, func(e eventRow) bool { return e.kind == kanban.EventGaveUp })
}

// breakerReopened is a task's first promotion or claim after its breaker
// tripped with no reset between, or nil: one violation per task is
// evidence enough. events are the task's, by id.
func breakerReopened(in Input, task string, events []eventRow) *Violation {
	var trip *eventRow
	for i, e := range events {
		switch e.kind {
		case kanban.EventGaveUp:
			if trip == nil {
				trip = &events[i]
			}
		case kanban.EventCompleted, kanban.EventUnblocked:
			trip = nil
		case kanban.EventPromoted, kanban.EventClaimed:
			if trip == nil {
				continue
			}
			quiet := in.QuietStartWall > 0 && e.at >= in.QuietStartWall
			var payload map[string]any
			json.Unmarshal([]byte(trip.payload), &payload)
			return &Violation{
				Invariant: BreakerHolds, Task: task, AtMs: round(in.relMs(e.at)),
				Message: fmt.Sprintf("%s at %s after gave_up at %s (failures=%v, limit=%v)%s",
					e.kind, in.when(e.at), in.when(trip.at), orUnknown(payload["failures"]), orUnknown(payload["effective_limit"]), quietNote(quiet)),
				Evidence: map[string]any{"gave_up_event": trip.id, "gave_up": payload, "reopened_by": e.kind,
					"reopened_event": e.id, "in_quiet_phase": quiet},
			}
		}
	}
	return nil
}

func quietNote(quiet bool) string {
	if quiet {
		return ", in the quiet phase"
	}
	return ""
}

func checkBookkeeping(v *Verdict, s snapshot) {
	v.check(RunBookkeeping) // every task row is held to it, runs or not
	open := map[string][]int64{}
	for _, r := range s.runs {
		if !r.ended {
			open[r.task] = append(open[r.task], r.id)
		}
	}
	for _, t := range s.tasks {
		runs := open[t.id]
		slices.Sort(runs)
		v.Violations = append(v.Violations, bookkeepingViolations(t, runs)...)
	}
}

// bookkeepingViolations holds one task row to run-bookkeeping: open are
// the ids of its runs not ended, ascending.
func bookkeepingViolations(t taskRow, open []int64) []Violation {
	var out []Violation
	add := func(msg string, ev map[string]any) {
		out = append(out, Violation{Invariant: RunBookkeeping, Task: t.id, Message: msg, Evidence: ev})
	}
	switch {
	case len(open) > 1:
		add(fmt.Sprintf("%d open runs %v", len(open), open), map[string]any{"open_runs": open})
	case !t.currentRun.Valid && len(open) == 1:
		add(fmt.Sprintf("current_run_id is NULL but run %d is open", open[0]), map[string]any{"open_runs": open, "status": t.status})
	case t.currentRun.Valid && !slices.Contains(open, t.currentRun.Int64):
		add(fmt.Sprintf("current_run_id=%d but that run is not open", t.currentRun.Int64),
			map[string]any{"current_run_id": t.currentRun.Int64, "open_runs": open, "status": t.status})
	}
	if t.status == kanban.StatusRunning && (!t.lock.Valid || !t.expires.Valid || !t.currentRun.Valid) {
		add(fmt.Sprintf("running without claim_lock/claim_expires/current_run_id (lock=%v expires=%v run=%v)",
			t.lock.Valid, t.expires.Valid, t.currentRun.Valid), nil)
	}
	return out
}

// checkLostRuns: every worker that started (ledger) was started for a run
// the DB must still hold.
func checkLostRuns(v *Verdict, in Input, s snapshot) {
	starts, named, owed := 0, 0, 0
	for _, e := range in.Ledger.Entries {
		if e.Kind != ledger.Start {
			continue
		}
		starts++
		if e.Run <= 0 {
			continue
		}
		named++
		if e.Mono < in.SwapMono || !in.survivesCut(e.Mono) {
			continue
		}
		owed++
		r, ok := s.runs[e.Run]
		if ok && r.task == e.Task {
			continue
		}
		msg := fmt.Sprintf("worker pid %d started for run %d, which the DB does not have", e.PID, e.Run)
		if ok {
			msg = fmt.Sprintf("worker pid %d started for run %d of %s, but the DB has that run for %s", e.PID, e.Run, e.Task, r.task)
		}
		v.Violations = append(v.Violations, Violation{Invariant: NoLostRuns, Task: e.Task, AtMs: round(in.monoMs(e.Mono)), Message: msg,
			Evidence: map[string]any{"pid": e.PID, "run": e.Run}})
	}
	switch {
	case owed > 0:
		v.check(NoLostRuns)
	case starts == 0:
		v.skip(NoLostRuns, "no worker started")
	case named == 0:
		v.skip(NoLostRuns, fmt.Sprintf("none of the %d worker starts names its run (HERMES_KANBAN_RUN_ID)", starts))
	default:
		v.skip(NoLostRuns, fmt.Sprintf("all %d worker starts with a run came before the board swap or were lost to the power cut", named))
	}
}

func round(x float64) float64 { return float64(int64(x*10)) / 10 }

// checkLedgerCoverage guards the spawn count itself: it is only as good as
// the workers' ledger. If the DB recorded many spawned workers of which few
// or none wrote their start line, HERMES_BIN is not a kanbanchaos worker
// (or cannot write the ledger), and "spawns ≤ limit" would pass vacuously.
func checkLedgerCoverage(v *Verdict, in Input, s snapshot) {
	started := map[int64]bool{}
	for _, e := range in.Ledger.Entries {
		if e.Kind == ledger.Start {
			started[e.Run] = true
		}
	}
	spawned, missing := 0, 0
	for _, es := range s.events {
		for _, e := range es {
			if e.kind != kanban.EventSpawned || !e.run.Valid {
				continue
			}
			spawned++
			if !started[e.run.Int64] {
				missing++
			}
		}
	}
	// A worker killed by the harness right after its spawn may not have
	// written its line yet; a majority missing is no such accident.
	if spawned >= 3 && missing*2 > spawned {
		v.Unknowns = append(v.Unknowns, fmt.Sprintf("%d of %d spawned workers never wrote their ledger start line: "+
			"is HERMES_BIN a kanbanchaos worker, with %s set? spawn counts cannot be trusted", missing, spawned, "KANBANCHAOS_LEDGER"))
	}
}

// orUnknown is a payload field for a message: "?" when the board's event
// did not say, never "<nil>".
func orUnknown(v any) any {
	if v == nil {
		return "?"
	}
	return v
}

// Package gate is the regression gate: every known Hermes regression as an
// entry that says what a correct dispatcher must do — whichever
// implementation runs — run against one subject over seeds 1..N. Each entry
// ends held (on every seed), violated (on some seed, with the evidence and
// the replay command) or not checked (with why). It decides entries from
// the oracle's verdicts; it holds no invariant logic of its own beyond the
// "no fewer starts than the budget" count the oracle's spawns invariant
// (an upper bound) does not make, which it applies only to a task whose
// breaker tripped on the board the run left.
package gate

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/kanbanchaos/kanbanchaos/campaign"
	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Entry is one known regression as a rule for any dispatcher.
type Entry struct {
	Name     string   `json:"name"`   // stable: the JUnit test is gate/<Name>
	Issues   string   `json:"issues"` // the Hermes issues it comes from
	Rule     string   `json:"rule"`   // what a correct dispatcher must do
	Scenario string   `json:"scenario"`
	Decide   []string `json:"decide"` // the invariants that decide it
	// Exact: each task whose worker fails at once gets exactly its
	// effective limit of starts — no more (the spawns invariant), and no
	// fewer (the configured budget is honoured, #63070).
	Exact bool `json:"exact,omitempty"`
	// Pin is the reference variant that has this regression: this
	// repository's own regression test runs the entry against it (it must
	// be violated, by name) and against fixed (it must hold) — the same
	// definition the gate holds any dispatcher to. Empty: no variant
	// reproduces it on the default engine (a real release's bug).
	Pin string `json:"pin,omitempty"`
}

// Entries are the gate's regressions, in the order they are reported.
func Entries() []Entry {
	return []Entry{
		{"crash-loop", "#30896", "a worker that crashes at once gets exactly the effective failure limit of starts — no more, " +
			"no fewer — even with three dispatchers ticking every 20 ms, and its breaker holds through the quiet phase",
			"issue-30896", []string{oracle.Spawns, oracle.BreakerHolds}, true, "hermes-0.15"},
		{"storm-integrity", "#30896, #33334", "the board survives a spawn storm: integrity_check ok, every acknowledged write " +
			"present, no process sees SQLITE_CORRUPT/IOERR/NOTADB",
			"issue-30896", []string{oracle.Integrity, oracle.NoLostWrites, oracle.SQLiteErrors}, false, ""},
		{"no-repromotion", "#30417", "once the breaker trips (gave_up) the task is never promoted or claimed again without a reset",
			"issue-30417", []string{oracle.BreakerHolds, oracle.Spawns}, true, "hermes-0.15"},
		{"configured-limit", "#63070", "the configured failure_limit is the limit of every path: a crash-at-once worker gets " +
			"exactly that many starts, and no gave_up/promoted pairs before it",
			"issue-63070", []string{oracle.Spawns, oracle.BreakerHolds}, true, "hermes-0.14"},
		{"exit-0-loop", "#28712, #27178", "a worker that exits 0 without completing is a protocol violation within its budget, " +
			"and the loop stops there",
			"issue-28712", []string{oracle.ProtocolBudget, oracle.BreakerHolds}, false, "hermes-0.15"},
		{"exit-75-cooldown", "spec I7", "exit 75 (rate limited) never counts toward the breaker, and the task waits the " +
			"cooldown before its next start",
			"exit-75-cooldown", []string{oracle.RateLimit}, false, "hermes-0.14"},
		{"pidless-claim", "#35202", "a claim whose worker pid never reached the board still uses up the budget",
			"issue-35202", []string{oracle.Spawns}, false, "hermes-0.15"},
		{"one-writer-per-tick", "#35240", "a second dispatcher on one board never writes in the same tick, and the board stays intact",
			"issue-35240", []string{oracle.OneWriterPerTick, oracle.Integrity, oracle.NoLostWrites}, false, "hermes-0.14"},
		{"board-routing", "#30678", "a card a worker creates with an explicit board= reaches that board, or the create fails loudly",
			"issue-30678", []string{oracle.BoardRouting}, false, "hermes-0.14"},
		{"unknown-assignee", "spec §8", "a task with an unknown assignee does not sit silently in ready forever",
			"unknown-assignee", []string{oracle.AssigneeSurfaced}, false, "hermes-0.19"},
		{"systemic-trip", "PRs #83067, #104077 (docs/findings/systemic-trip-undone.md)", "a breaker that trips because " +
			"several cards crashed with one error in a sweep (the systemic limit 1) holds: no promoted/claimed before a reset",
			"systemic-crash", []string{oracle.BreakerHolds, oracle.Spawns}, false, "hermes-0.19"},
		{"runtime-limit", "PR #63070 (timeout path; docs/findings/timeout-ignores-failure-limit.md)", "a worker timed out by " +
			"max_runtime_seconds counts against the configured failure_limit: exactly that many starts, and no gave_up/promoted pairs",
			"max-runtime", []string{oracle.BreakerHolds, oracle.Spawns}, true, "hermes-0.19"},
		{"exit-status", "PR #61836 (docs/findings/stolen-exit-status.md)", "a worker's exit status reaches the dispatcher " +
			"that spawned it: exit 75 is booked rate limited (never a counted crash 'pid N not alive') and waits the cooldown",
			"stolen-exit-status", []string{oracle.RateLimit}, false, ""},
		{"shared-board-writes", "#33334, #71724 (docs/findings/post-commit-lock-drop.md)", "several gateways on one board " +
			"lose no acknowledged commit and leave integrity_check ok, with no SQLITE_CORRUPT/IOERR",
			"shared-board-gateways", []string{oracle.NoLostWrites, oracle.Integrity, oracle.SQLiteErrors}, false, ""},
		{"false-alarm", "#60510, PRs #57592, #62122 (docs/findings/torn-extend-false-alarm.md)", "a board that grows and " +
			"checkpoints under a gateway and its workers stays intact, and no process is told it is corrupt: a check after " +
			"COMMIT never reports a checkpoint in progress as a torn extend, so no caller is told a durable write failed " +
			"(a crash booked but never counted)",
			"torn-extend-checkpoint", []string{oracle.NoFalseAlarm, oracle.Integrity, oracle.NoLostWrites}, false, "hermes-0.19"},
	}
}

// Lookup returns the entries named in names ("all" or "": every entry),
// in the gate's order.
func Lookup(names []string) ([]Entry, error) {
	all := Entries()
	if len(names) == 0 || (len(names) == 1 && names[0] == "all") {
		return all, nil
	}
	for _, n := range names {
		if !slices.ContainsFunc(all, func(e Entry) bool { return e.Name == n }) {
			return nil, fmt.Errorf("unknown gate entry %q (valid: %s)", n, strings.Join(Names(), ", "))
		}
	}
	// Always in the gate's own order, however they were named: reports,
	// JUnit files and merged shards line up.
	return slices.DeleteFunc(all, func(e Entry) bool { return !slices.Contains(names, e.Name) }), nil
}

// Names lists the entry names.
func Names() []string {
	var out []string
	for _, e := range Entries() {
		out = append(out, e.Name)
	}
	return out
}

// Status of an entry, or of one seed of it.
type Status string

const (
	Held       Status = "held"
	Violated   Status = "violated"
	NotChecked Status = "not-checked"
)

// Seed is one run of an entry.
type Seed struct {
	Entry     string  `json:"entry"`
	Seed      uint64  `json:"seed"`
	Status    Status  `json:"status"`
	Why       string  `json:"why,omitempty"`       // evidence of a violation, or why it was not checked
	Starts    int     `json:"starts"`              // worker starts of the busiest task
	Replay    string  `json:"replay"`              // the command that reruns it
	Artifacts string  `json:"artifacts,omitempty"` // kept for a violated or unchecked seed
	ElapsedMs float64 `json:"elapsed_ms"`
}

// Result is one entry over its seeds.
type Result struct {
	Entry
	Status Status `json:"status"`
	Seeds  []Seed `json:"seeds"`
}

// Spec is one gate run.
type Spec struct {
	Subject schedule.Subject // the dispatcher under test (zero: Variant in-process)
	Variant string           // reference variant ("" for an external subject: each scenario's own, for the workers)
	Entries []Entry
	Seeds   int
	// Shard runs only the (entry, seed) pairs whose index ≡ Index mod Count.
	Shard    campaign.Shard
	Parallel int
	// ArtifactsDir keeps the sandboxes of violated and unchecked seeds.
	ArtifactsDir string
	// Replay builds the command that reruns one seed of an entry.
	Replay func(e Entry, seed uint64) string
	// Progress sees each seed as it finishes (calls are serialised).
	Progress func(Seed)
}

// Run runs every (entry, seed) pair of the spec's shard and sums them up.
// The error is for the harness failing, never for a regression.
func Run(ctx context.Context, spec Spec) ([]Result, error) {
	type pair struct {
		e    Entry
		seed uint64
	}
	var pairs []pair
	for _, e := range spec.Entries {
		for s := 1; s <= spec.Seeds; s++ {
			pairs = append(pairs, pair{e, uint64(s)})
		}
	}
	var mu sync.Mutex
	seeds := map[string][]Seed{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(spec.Parallel, 1))
	for i, p := range pairs {
		if spec.Shard.Count > 1 && i%spec.Shard.Count != spec.Shard.Index {
			continue
		}
		g.Go(func() error {
			sd, err := runSeed(gctx, spec, p.e, p.seed)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			seeds[p.e.Name] = append(seeds[p.e.Name], sd)
			if spec.Progress != nil {
				spec.Progress(sd)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []Result
	for _, e := range spec.Entries {
		ss := seeds[e.Name]
		if len(ss) == 0 {
			continue // another shard's
		}
		slices.SortFunc(ss, func(a, b Seed) int { return int(a.Seed) - int(b.Seed) })
		out = append(out, Result{Entry: e, Seeds: ss, Status: Sum(ss)})
	}
	return out, nil
}

// Sum is an entry's status over its seeds: violated if any seed was,
// else not checked if any seed was, else held.
func Sum(seeds []Seed) Status {
	st := Held
	for _, s := range seeds {
		switch s.Status {
		case Violated:
			return Violated
		case NotChecked:
			st = NotChecked
		}
	}
	return st
}

func runSeed(ctx context.Context, spec Spec, e Entry, seed uint64) (Seed, error) {
	sc, err := scenarios.Lookup(e.Scenario)
	if err != nil {
		return Seed{}, err
	}
	s := sc.Build(seed, spec.Variant)
	sd := Seed{Entry: e.Name, Seed: seed}
	if spec.Replay != nil {
		sd.Replay = spec.Replay(e, seed)
	}
	// An Exact entry reads the board the run left (which tasks tripped), so
	// its run is kept until judged.
	opt := harness.Options{Subject: spec.Subject, Replay: sd.Replay, Keep: e.Exact}
	if spec.ArtifactsDir != "" {
		opt.ArtifactsDir = spec.ArtifactsDir + "/" + e.Name
	}
	started := time.Now()
	res, err := harness.Run(ctx, s, opt)
	if err != nil {
		return sd, fmt.Errorf("gate %s seed %d: %w", e.Name, seed, err)
	}
	sd.ElapsedMs = float64(time.Since(started).Microseconds()) / 1000
	for _, n := range res.Verdict.Spawns {
		sd.Starts = max(sd.Starts, n)
	}
	var tripped map[string]bool
	if e.Exact {
		if tripped, err = trippedTasks(ctx, res.Artifacts); err != nil {
			return sd, fmt.Errorf("gate %s seed %d: %w", e.Name, seed, err)
		}
	}
	sd.Status, sd.Why = Judge(e, s, res.Verdict, tripped)
	switch {
	case sd.Status != Held:
		sd.Artifacts = res.Artifacts
	case e.Exact && res.Verdict.Status == oracle.Pass:
		os.RemoveAll(res.Artifacts) // kept only to be read
	}
	return sd, nil
}

// trippedTasks lists the tasks whose breaker tripped (a gave_up event) on
// the board a run left in dir.
func trippedTasks(ctx context.Context, dir string) (map[string]bool, error) {
	db, err := openBoard(filepath.Join(dir, "home"))
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT DISTINCT task_id FROM task_events WHERE kind = 'gave_up'`)
	if err != nil {
		return nil, fmt.Errorf("read the board's gave_up events: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out[id] = true
	}
	return out, rows.Err()
}

// Judge decides one seed of e from the run's verdict and, for an Exact
// entry, the tasks whose breaker tripped on the board.
func Judge(e Entry, s schedule.Schedule, v oracle.Verdict, tripped map[string]bool) (Status, string) {
	var violated []string
	for _, x := range v.Violations {
		if slices.Contains(e.Decide, x.Invariant) {
			task := ""
			if x.Task != "" {
				task = x.Task + ": "
			}
			violated = append(violated, fmt.Sprintf("%s: %s%s", x.Invariant, task, x.Message))
		}
	}
	// Too few starts count only for a task whose breaker tripped: a run
	// that ended before its decision is no early trip.
	if e.Exact && v.Status != oracle.Unknown {
		violated = append(violated, tooFew(s, v, tripped)...)
	}
	if len(violated) > 0 {
		return Violated, strings.Join(violated[:min(len(violated), 3)], "; ")
	}
	if v.Status == oracle.Unknown {
		return NotChecked, "the run could not decide: " + strings.Join(v.Unknowns, "; ")
	}
	var why []string
	for _, inv := range e.Decide {
		if i := slices.IndexFunc(v.NotChecked, func(x oracle.Skip) bool { return x.Invariant == inv }); i >= 0 {
			why = append(why, inv+": "+v.NotChecked[i].Why)
		} else if !slices.Contains(v.Checked, inv) {
			why = append(why, inv+": not decided by the run")
		}
	}
	if len(why) > 0 {
		return NotChecked, strings.Join(why, "; ")
	}
	return Held, ""
}

// tooFew: a task whose worker fails at once got fewer starts than its
// effective limit although its breaker tripped — the budget the user
// configured was not honoured (a trip at the default 2 under a configured
// 4 is #63070).
func tooFew(s schedule.Schedule, v oracle.Verdict, tripped map[string]bool) []string {
	var out []string
	for _, t := range s.Tasks {
		p, _ := s.Profile(t.Assignee)
		if !p.Worker.Bounded() || p.Unregistered {
			continue
		}
		limit, source := s.EffectiveLimit(t)
		if n := v.Spawns[t.ID]; tripped[t.ID] && n < limit {
			out = append(out, fmt.Sprintf("spawns: %s: %d worker starts < limit %d (%s): the budget was not honoured", t.ID, n, limit, source))
		}
	}
	return out
}

// openBoard opens the default board of a run's home read-only (the run is
// over: nobody else has it open).
func openBoard(home string) (*sql.DB, error) {
	q := url.Values{}
	q.Set("mode", "ro")
	// A read can meet a lock: the run's last worker may still have been
	// checkpointing when it was killed, and a reader then waits for the
	// recovery (SQLITE_BUSY at once without a timeout: seen in CI).
	q.Add("_pragma", "busy_timeout(10000)")
	return sql.Open("sqlite", kanban.FileURI(kanban.BoardPath(home, "default"))+"?"+q.Encode())
}

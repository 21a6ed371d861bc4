package campaign

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Shrinking real processes: the same schedule does not always end the same
// way, so a candidate counts as still failing only if a majority of Votes
// re-runs violate the same invariant as the original failure. Candidates
// come from hand-written shrinks first (keep only the violating task, one
// dispatcher, halves of the tasks, the shortest phases, zero delays), then
// from gopter's structural shrinker of the swarm's Params. Each accepted
// candidate restarts the search from itself (greedy, like gopter's own
// loop); the whole search is bounded by wall-clock time, because a slow
// system under test makes shrinking endless otherwise (gopter #63).

// ShrinkResult is what shrinking one failure found.
type ShrinkResult struct {
	Index     int    `json:"index"`
	Seed      uint64 `json:"seed"`
	Scenario  string `json:"scenario"`
	Variant   string `json:"variant"`
	Invariant string `json:"invariant"` // the violated invariant every accepted candidate reproduced
	// Confirmed is how the original failure fared in its own vote
	// ("2/3"); Reproduced how the minimal schedule's last vote went.
	Confirmed  string            `json:"confirmed"`
	Reproduced string            `json:"reproduced"`
	Original   schedule.Schedule `json:"original"`
	Minimal    schedule.Schedule `json:"minimal"`
	Steps      []ShrinkStep      `json:"steps"`
	Candidates int               `json:"candidates"` // candidates voted on
	Runs       int               `json:"runs"`       // re-runs spent
	ElapsedMs  int64             `json:"elapsed_ms"`
	Stopped    string            `json:"stopped"` // "local minimum" or "time (…)"
	// Fixed is the vote of the minimal schedule on the fixed variant
	// ("3/3 passed"), when the campaign's variant is another one.
	Fixed     string            `json:"fixed,omitempty"`
	FixedPass bool              `json:"fixed_pass"`
	FixedRun  schedule.Schedule `json:"fixed_schedule,omitzero"`
	Artifacts string            `json:"artifacts,omitempty"` // schedule.json, repro.sh, … (and the regression.txtar the CLI writes)
	Replay    string            `json:"replay"`
	Note      string            `json:"note,omitempty"`
}

// ShrinkStep is one candidate voted on.
type ShrinkStep struct {
	What        string `json:"what"`
	Tasks       int    `json:"tasks"`
	Dispatchers int    `json:"dispatchers"`
	DurationMs  int    `json:"duration_ms"`
	Votes       string `json:"votes"` // reproducing runs / runs
	Accepted    bool   `json:"accepted"`
	ElapsedMs   int64  `json:"elapsed_ms"` // since shrinking began
}

// FixedVariant is the variant a shrunk failure is checked against.
const FixedVariant = "fixed"

type candidate struct {
	what   string
	params scenarios.Params
}

// shrink minimises the failing run p (record r) within ShrinkTime and
// writes its artifacts: schedule.json (the minimal schedule), original.json,
// repro.sh, shrink.json and run/ (a reproducing run's sandbox).
func (c *Campaign) shrink(ctx context.Context, p Planned, r RunRecord) (ShrinkResult, error) {
	start := time.Now()
	w := c.swarm(p)
	orig, params := c.Schedule(p)
	target := primary(r.Failed)
	res := ShrinkResult{Index: p.Index, Seed: p.Seed, Scenario: p.Scenario, Variant: orig.Variant, Invariant: target, Original: orig}
	sctx, cancel := context.WithDeadline(ctx, start.Add(c.ShrinkTime))
	defer cancel()

	var keep string // sandbox of the last reproducing run of the current minimum
	defer func() {
		if keep != "" {
			os.RemoveAll(keep)
		}
	}()
	// seen are the violations of the current minimum's last reproducing
	// run: the task ids to keep refer to its schedule.
	seen := r.Violations
	vote := func(s schedule.Schedule) (yes, ran int, sandbox string, decided bool) {
		var hit []oracle.Violation
		yes, ran, sandbox, hit, decided = c.vote(sctx, s, target)
		if yes > 0 && yes*2 > ran {
			seen = hit
		}
		res.Runs += ran
		return
	}

	// The original first: one failing run may have been a fluke.
	yes, ran, sb, decided := vote(orig)
	res.Confirmed = fmt.Sprintf("%d/%d", yes, ran)
	res.Reproduced = res.Confirmed
	current, cur := params, orig
	switch {
	case !decided:
		res.Stopped = fmt.Sprintf("time (%v) ran out while confirming the failure", c.ShrinkTime)
		res.Note = "not shrunk: the shrink time ended before the original failure was re-run; give --shrink-time more"
	case yes*2 <= ran:
		res.Stopped = "not reproducible"
		res.Note = fmt.Sprintf("not shrunk: the original schedule violated %s in only %d of %d re-runs; the failure is flaky — replay it by seed, or raise --votes", target, yes, ran)
		discardPath(sb)
	default:
		keep = sb
		tried := map[string]bool{current.Key(): true}
	search:
		for {
			cands := handShrinks(w, current, cur, seen, target)
			stream := w.Shrinks(current)
			for {
				var cd candidate
				if len(cands) > 0 {
					cd, cands = cands[0], cands[1:]
				} else {
					v, ok := stream()
					if !ok {
						res.Stopped = "local minimum: no smaller candidate still fails"
						break search
					}
					q := v.(scenarios.Params)
					cd = candidate{what: "gopter: " + paramsDiff(current, q), params: q}
				}
				if tried[cd.params.Key()] || !w.Valid(cd.params) {
					continue
				}
				tried[cd.params.Key()] = true
				if sctx.Err() != nil {
					res.Stopped = fmt.Sprintf("time: --shrink-time %v used up", c.ShrinkTime)
					break search
				}
				s := c.build(w, cd.params, p.Seed)
				yes, ran, sb, decided := vote(s)
				res.Candidates++
				step := ShrinkStep{What: cd.what, Tasks: len(s.Tasks), Dispatchers: s.Dispatchers, DurationMs: s.DurationMs,
					Votes: fmt.Sprintf("%d/%d", yes, ran), ElapsedMs: time.Since(start).Milliseconds()}
				if !decided {
					discardPath(sb)
					res.Stopped = fmt.Sprintf("time: --shrink-time %v used up", c.ShrinkTime)
					break search
				}
				step.Accepted = yes*2 > ran
				res.Steps = append(res.Steps, step)
				if c.OnShrink != nil {
					c.OnShrink(step)
				}
				if !step.Accepted {
					discardPath(sb)
					continue
				}
				discardPath(keep)
				keep, current, cur = sb, cd.params, s
				res.Reproduced = step.Votes
				continue search
			}
		}
	}
	res.Minimal = cur
	res.ElapsedMs = time.Since(start).Milliseconds()

	// The minimal schedule on the fixed variant: a regression pins the bug
	// only if the fix holds on it.
	if cur.Variant != FixedVariant && ctx.Err() == nil {
		fx := cur
		fx.Variant = FixedVariant
		passed, runs := 0, 0
		for i := 0; i < c.Votes; i++ {
			out, err := c.Runner(ctx, fx, c.Host)
			out.Discard()
			runs++
			if err == nil && out.Verdict.Status == oracle.Pass {
				passed++
			}
			if passed*2 > c.Votes || (runs-passed)*2 >= c.Votes {
				break
			}
		}
		res.Fixed = fmt.Sprintf("%d/%d passed", passed, runs)
		res.FixedPass = passed*2 > runs
		res.FixedRun = fx
		if !res.FixedPass {
			res.Note = strings.TrimPrefix(res.Note+"; ", "; ") + "the fixed variant fails the minimal schedule too: a positive control, or a bug in fixed"
		}
	}

	dir, err := c.artifacts()
	if err != nil {
		return res, err
	}
	dir, err = harness.UniqueDir(dir, fmt.Sprintf("shrunk-%s-%d", p.Scenario, p.Seed))
	if err != nil {
		return res, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("campaign: %w", err)
	}
	res.Artifacts = dir
	res.Replay = c.Command + " replay " + dir
	if err := cur.Write(filepath.Join(dir, "schedule.json")); err != nil {
		return res, err
	}
	if err := orig.Write(filepath.Join(dir, "original.json")); err != nil {
		return res, err
	}
	script := "#!/bin/sh\n# Replays the shrunk failure of kanbanchaos fuzz run " + fmt.Sprint(p.Index) + " (seed " + fmt.Sprint(p.Seed) +
		"): " + target + " on " + cur.Variant + ".\nexec " + c.Command + ` replay "$(dirname "$0")/schedule.json" "$@"` + "\n"
	if err := os.WriteFile(filepath.Join(dir, "repro.sh"), []byte(script), 0o755); err != nil {
		return res, fmt.Errorf("campaign: %w", err)
	}
	if keep != "" {
		if _, err := harness.MoveSandbox(keep, dir, "run"); err == nil {
			keep = ""
		}
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return res, fmt.Errorf("campaign: encode shrink result: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shrink.json"), append(data, '\n'), 0o644); err != nil {
		return res, fmt.Errorf("campaign: %w", err)
	}
	return res, nil
}

// vote runs s up to c.Votes times, at most c.Concurrency at once, and stops
// as soon as a majority is certain. yes counts runs that failed with the
// target invariant; decided is false when ctx ended first. sandbox is one
// reproducing run's kept sandbox ("" if none); the others are removed.
func (c *Campaign) vote(ctx context.Context, s schedule.Schedule, target string) (yes, ran int, sandbox string, hit []oracle.Violation, decided bool) {
	need := c.Votes/2 + 1
	vctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type out struct {
		res harness.Result
		err error
	}
	results := make(chan out)
	slots := min(c.Votes, c.Concurrency)
	started, pending := 0, 0
	launch := func() {
		started++
		pending++
		go func() {
			res, err := c.Runner(vctx, s, voteOptions(c.Host, target))
			results <- out{res, err}
		}()
	}
	for started < slots {
		launch()
	}
	for pending > 0 {
		o := <-results
		pending--
		if vctx.Err() != nil {
			// Cancelled: the run was cut short, its verdict means nothing.
			o.res.Discard()
			continue
		}
		ran++
		if o.err == nil && o.res.Verdict.Status == oracle.Fail && slices.Contains(o.res.Verdict.Failed(), target) {
			yes++
			if hit == nil {
				hit = o.res.Verdict.Violations
			}
			if sandbox == "" {
				sandbox = o.res.Artifacts
			} else {
				o.res.Discard()
			}
		} else {
			o.res.Discard()
		}
		if yes >= need || ran-yes > c.Votes-need {
			decided = true
			cancel()
			continue
		}
		if started < c.Votes {
			launch()
		}
	}
	if !decided {
		discardPath(sandbox)
		sandbox = ""
	}
	return yes, ran, sandbox, hit, decided
}

func discardPath(dir string) {
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// handShrinks are the big steps gopter's one-field-at-a-time shrinker
// would reach late: the one task the violation names, one dispatcher,
// half the tasks, the shortest phases, every delay and limit at its
// simplest.
func handShrinks(w scenarios.Swarm, p scenarios.Params, s schedule.Schedule, seen []oracle.Violation, target string) []candidate {
	rg := w.Ranges()
	var out []candidate
	add := func(what string, q scenarios.Params) {
		if q.Key() != p.Key() {
			out = append(out, candidate{what, q})
		}
	}
	clone := func() scenarios.Params {
		q := p
		q.Tasks = slices.Clone(p.Tasks)
		return q
	}
	if len(p.Tasks) > 1 {
		for _, v := range seen {
			if v.Invariant != target || v.Task == "" {
				continue
			}
			if i := slices.IndexFunc(s.Tasks, func(t schedule.Task) bool { return t.ID == v.Task }); i >= 0 && i < len(p.Tasks) {
				q := clone()
				q.Tasks = []scenarios.TaskParams{p.Tasks[i]}
				add("keep only task "+v.Task+", the one violating "+target, q)
				break
			}
		}
	}
	if p.Dispatchers > rg.Dispatchers[0] {
		q := clone()
		q.Dispatchers = rg.Dispatchers[0]
		add(fmt.Sprintf("%d dispatcher(s)", q.Dispatchers), q)
	}
	if n := len(p.Tasks); n > 1 {
		q := clone()
		q.Tasks = q.Tasks[:n/2]
		add("first half of the tasks", q)
		q = clone()
		q.Tasks = q.Tasks[n/2:]
		add("second half of the tasks", q)
	}
	if p.Dispatchers > 2 && rg.Dispatchers[0] < 2 {
		q := clone()
		q.Dispatchers = 2
		add("2 dispatchers", q)
	}
	if p.DurationMs > rg.DurationMs[0] || p.QuietMs > rg.QuietMs[0] {
		q := clone()
		q.DurationMs, q.QuietMs = rg.DurationMs[0], rg.QuietMs[0]
		add("shortest phases", q)
		q = clone()
		q.DurationMs, q.QuietMs = max(rg.DurationMs[0], p.DurationMs/2), max(rg.QuietMs[0], p.QuietMs/2)
		add("phases halved", q)
	}
	q := clone()
	for i := range q.Tasks {
		q.Tasks[i].DelayMs = rg.DelayMs[0]
		q.Tasks[i].Exit = 0
		q.Tasks[i].MaxRetries = rg.MaxRetries[0]
		q.Tasks[i].Writes = rg.Writes[0]
	}
	q.FailureLimit, q.MaxSpawn = rg.FailureLimit[0], rg.MaxSpawn[0]
	add("no delays, default exit codes and limits", q)
	return out
}

// paramsDiff says what changed from p to q, e.g. "tick_ms 40→20".
func paramsDiff(p, q scenarios.Params) string {
	var out []string
	num := func(name string, a, b int) {
		if a != b {
			out = append(out, fmt.Sprintf("%s %d→%d", name, a, b))
		}
	}
	num("tasks", len(p.Tasks), len(q.Tasks))
	num("dispatchers", p.Dispatchers, q.Dispatchers)
	num("duration_ms", p.DurationMs, q.DurationMs)
	num("quiet_ms", p.QuietMs, q.QuietMs)
	num("tick_ms", p.TickMs, q.TickMs)
	num("failure_limit", p.FailureLimit, q.FailureLimit)
	num("max_spawn", p.MaxSpawn, q.MaxSpawn)
	num("fault_permille", p.FaultPermille, q.FaultPermille)
	if len(p.Tasks) == len(q.Tasks) {
		for i := range p.Tasks {
			a, b := p.Tasks[i], q.Tasks[i]
			prefix := fmt.Sprintf("task %d ", i+1)
			num(prefix+"worker", a.Worker, b.Worker)
			num(prefix+"exit", a.Exit, b.Exit)
			num(prefix+"delay_ms", a.DelayMs, b.DelayMs)
			num(prefix+"max_retries", a.MaxRetries, b.MaxRetries)
			num(prefix+"writes", a.Writes, b.Writes)
		}
	}
	if len(out) == 0 {
		return "no change"
	}
	return strings.Join(out, ", ")
}

// primary is the invariant a shrink must keep violated: the first of
// oracle.Damage that failed (the board's data ranks first), else the first
// that failed.
func primary(failed []string) string {
	for _, inv := range oracle.Damage() {
		if slices.Contains(failed, inv) {
			return inv
		}
	}
	return failed[0]
}

// voteOptions host a shrink candidate's run. A candidate counts only if it
// violates the target invariant, which a run stopped early on another one
// might not have got to: it stops on the target alone when the ledger
// decides it, and runs its whole schedule otherwise.
func voteOptions(host harness.Options, target string) harness.Options {
	if slices.Contains(oracle.Decidable(), target) {
		host.StopOn = []string{target}
	} else {
		host.FullDuration = true
	}
	return host
}

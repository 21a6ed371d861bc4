// Package compare sums up a patch A/B comparison: the runs of two dispatcher
// builds on identical schedules (same scenario, same seed), paired. It counts
// failing runs per invariant on each side, spawns per task, the corruption
// rate, lost writes and the time to the first violation, and says in words
// what B changed: which of A's failing seeds it fixes, which it breaks and
// which stay as they were. It runs nothing; the harness hands it verdicts.
package compare

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/kanbanchaos/kanbanchaos/oracle"
)

// Corruption lists the invariants whose violation means the board's data
// was damaged or lost, not just that the dispatcher misbehaved: a run with
// any of them counts toward the corruption rate.
var Corruption = []string{oracle.Integrity, oracle.SQLiteErrors, oracle.NoLostWrites, oracle.Sidecars}

// Run is what one side's run of one seed left for the comparison.
type Run struct {
	Status oracle.Status  `json:"status"`
	Failed []string       `json:"failed,omitempty"` // violated invariants, in the order found
	Spawns map[string]int `json:"spawns"`           // worker starts per task (ledger)
	// FirstViolationMs is the earliest timed violation after the run's
	// start, or -1.
	FirstViolationMs float64 `json:"first_violation_ms"`
	// LostCommits is the no-lost-writes evidence: acknowledged commits whose
	// rows the final board lacks.
	LostCommits int      `json:"lost_commits,omitempty"`
	Unknowns    []string `json:"unknowns,omitempty"`
	SQLite      string   `json:"sqlite,omitempty"`
	Artifacts   string   `json:"artifacts,omitempty"` // the kept run directory, if any
}

// RunOf condenses a verdict. Evidence numbers may be ints (a run in this
// process) or float64s (a verdict decoded from JSON, e.g. a run delegated to
// another SQLite engine): both count.
func RunOf(v oracle.Verdict, sqlite, artifacts string) Run {
	r := Run{Status: v.Status, Failed: v.Failed(), Spawns: v.Spawns, FirstViolationMs: v.FirstViolationMs(),
		Unknowns: v.Unknowns, SQLite: sqlite, Artifacts: artifacts}
	if r.Spawns == nil {
		r.Spawns = map[string]int{}
	}
	for _, x := range v.Violations {
		if x.Invariant == oracle.NoLostWrites {
			r.LostCommits += number(x.Evidence["lost_commits"])
		}
	}
	return r
}

func number(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return 0
}

// Corrupt reports whether the run damaged or lost the board's data.
func (r Run) Corrupt() bool {
	return slices.ContainsFunc(r.Failed, func(inv string) bool { return slices.Contains(Corruption, inv) })
}

// Pair is one schedule run on both sides.
type Pair struct {
	Scenario string `json:"scenario"`
	Seed     uint64 `json:"seed"`
	A        Run    `json:"a"`
	B        Run    `json:"b"`
	Change   Change `json:"change"`
}

// Change is what B did to a seed, compared with A.
type Change string

const (
	Fixed     Change = "fixed"     // A failed, B passed
	Unchanged Change = "unchanged" // both failed (perhaps on other invariants)
	Broken    Change = "broken"    // B failed where A did not
	Clean     Change = "clean"     // both passed
	Undecided Change = "undecided" // a side could not decide, and B did not fail
)

// ChangeOf says what B did to a seed on which A's verdict was a.
func ChangeOf(a, b oracle.Status) Change {
	switch {
	case b == oracle.Fail && a == oracle.Fail:
		return Unchanged
	case b == oracle.Fail:
		return Broken
	case a == oracle.Fail && b == oracle.Pass:
		return Fixed
	case a == oracle.Pass && b == oracle.Pass:
		return Clean
	}
	return Undecided
}

// Spread is a distribution's p50, p99 and maximum (nearest rank).
type Spread struct {
	N   int `json:"n"` // samples
	P50 int `json:"p50"`
	P99 int `json:"p99"`
	Max int `json:"max"`
}

func spread(xs []int) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	rank := func(p float64) int { return xs[max(int(math.Ceil(p*float64(len(xs))))-1, 0)] }
	return Spread{N: len(xs), P50: rank(0.50), P99: rank(0.99), Max: xs[len(xs)-1]}
}

// Side is one build's figures over all its runs.
type Side struct {
	Name      string `json:"name"`
	Runs      int    `json:"runs"`
	Failing   int    `json:"failing"`
	Unknown   int    `json:"unknown"`
	Corrupted int    `json:"corrupted"` // runs with a Corruption violation
	// CorruptionRate is Corrupted / Runs.
	CorruptionRate float64 `json:"corruption_rate"`
	LostCommits    int     `json:"lost_commits"`
	// SpawnsPerTask is over every (run, task) with at least one start.
	SpawnsPerTask Spread `json:"spawns_per_task"`
	// MedianFirstViolationMs is over the failing runs with a timed
	// violation; -1 when there is none.
	MedianFirstViolationMs float64  `json:"median_first_violation_ms"`
	SQLite                 []string `json:"sqlite,omitempty"`
}

func side(name string, runs []Run) Side {
	s := Side{Name: name, Runs: len(runs), MedianFirstViolationMs: -1}
	var spawns []int
	var firsts []float64
	for _, r := range runs {
		switch r.Status {
		case oracle.Fail:
			s.Failing++
		case oracle.Unknown:
			s.Unknown++
		}
		if r.Corrupt() {
			s.Corrupted++
		}
		s.LostCommits += r.LostCommits
		for _, n := range r.Spawns {
			spawns = append(spawns, n)
		}
		if r.Status == oracle.Fail && r.FirstViolationMs >= 0 {
			firsts = append(firsts, r.FirstViolationMs)
		}
		if r.SQLite != "" && !slices.Contains(s.SQLite, r.SQLite) {
			s.SQLite = append(s.SQLite, r.SQLite)
		}
	}
	if s.Runs > 0 {
		s.CorruptionRate = float64(s.Corrupted) / float64(s.Runs)
	}
	s.SpawnsPerTask = spread(spawns)
	if len(firsts) > 0 {
		slices.Sort(firsts)
		m := len(firsts) / 2
		s.MedianFirstViolationMs = firsts[m]
		if len(firsts)%2 == 0 {
			s.MedianFirstViolationMs = (firsts[m-1] + firsts[m]) / 2
		}
	}
	return s
}

// InvariantRow counts the runs in which one invariant failed, per side.
type InvariantRow struct {
	Invariant string `json:"invariant"`
	A         int    `json:"a"`
	B         int    `json:"b"`
}

// Comparison is the whole A/B result.
type Comparison struct {
	Scenarios  []string       `json:"scenarios"`
	A          Side           `json:"a"`
	B          Side           `json:"b"`
	Invariants []InvariantRow `json:"invariants"` // every invariant that failed on either side
	// Counts of each Change, and FailingA = n in "fixes k of n".
	Fixed     int    `json:"fixed"`
	Broken    int    `json:"broken"`
	Unchanged int    `json:"unchanged"`
	Undecided int    `json:"undecided"`
	Clean     int    `json:"clean"`
	FailingA  int    `json:"failing_a"`
	Words     string `json:"verdict"`
	Pairs     []Pair `json:"pairs"`
}

// Summarize pairs up the runs: pairs[i].A and pairs[i].B ran the same
// schedule. Pairs are ordered by scenario, then seed.
func Summarize(a, b string, pairs []Pair) Comparison {
	pairs = slices.Clone(pairs)
	sort.SliceStable(pairs, func(i, j int) bool {
		if pairs[i].Scenario != pairs[j].Scenario {
			return pairs[i].Scenario < pairs[j].Scenario
		}
		return pairs[i].Seed < pairs[j].Seed
	})
	c := Comparison{Pairs: pairs}
	var runsA, runsB []Run
	failsA, failsB := map[string]int{}, map[string]int{}
	var order []string
	for i := range c.Pairs {
		p := &c.Pairs[i]
		if !slices.Contains(c.Scenarios, p.Scenario) {
			c.Scenarios = append(c.Scenarios, p.Scenario)
		}
		runsA, runsB = append(runsA, p.A), append(runsB, p.B)
		for _, inv := range p.A.Failed {
			failsA[inv]++
			if !slices.Contains(order, inv) {
				order = append(order, inv)
			}
		}
		for _, inv := range p.B.Failed {
			failsB[inv]++
			if !slices.Contains(order, inv) {
				order = append(order, inv)
			}
		}
		p.Change = ChangeOf(p.A.Status, p.B.Status)
		switch p.Change {
		case Fixed:
			c.Fixed++
		case Broken:
			c.Broken++
		case Unchanged:
			c.Unchanged++
		case Clean:
			c.Clean++
		default:
			c.Undecided++
		}
		if p.A.Status == oracle.Fail {
			c.FailingA++
		}
	}
	c.A, c.B = side(a, runsA), side(b, runsB)
	for _, inv := range order {
		c.Invariants = append(c.Invariants, InvariantRow{Invariant: inv, A: failsA[inv], B: failsB[inv]})
	}
	c.Words = c.words()
	return c
}

func (c Comparison) words() string {
	w := fmt.Sprintf("B fixes %d of %d failing seeds, breaks %d, unchanged %d", c.Fixed, c.FailingA, c.Broken, c.Unchanged)
	if c.Undecided > 0 {
		w += fmt.Sprintf(", undecided %d", c.Undecided)
	}
	if c.Clean > 0 {
		w += fmt.Sprintf("; %d pass on both", c.Clean)
	}
	return w
}

// Status is B's outcome, which decides the exit code: fail while B still
// fails or regresses anywhere, unknown if B could not decide a run, else
// pass.
func (c Comparison) Status() oracle.Status {
	switch {
	case c.B.Failing > 0:
		return oracle.Fail
	case c.B.Unknown > 0:
		return oracle.Unknown
	}
	return oracle.Pass
}

// Row is one line of the side-by-side table: a label and A's and B's cell.
type Row struct {
	Label string
	A, B  string
	// Sub rows (one per invariant) are indented under "failing runs".
	Sub bool
}

// Table is the side-by-side table, shared by the text and HTML outputs.
func (c Comparison) Table() []Row {
	frac := func(k, n int) string { return fmt.Sprintf("%d/%d", k, n) }
	pct := func(s Side) string {
		return fmt.Sprintf("%d/%d (%.0f%%)", s.Corrupted, s.Runs, 100*s.CorruptionRate)
	}
	ms := func(x float64) string {
		if x < 0 {
			return "–"
		}
		return fmt.Sprintf("+%.0fms", x)
	}
	spawns := func(s Spread, f func(Spread) int) string {
		if s.N == 0 {
			return "–"
		}
		return fmt.Sprint(f(s))
	}
	rows := []Row{{Label: "failing runs", A: frac(c.A.Failing, c.A.Runs), B: frac(c.B.Failing, c.B.Runs)}}
	for _, r := range c.Invariants {
		rows = append(rows, Row{Label: r.Invariant, A: frac(r.A, c.A.Runs), B: frac(r.B, c.B.Runs), Sub: true})
	}
	if c.A.Unknown+c.B.Unknown > 0 {
		rows = append(rows, Row{Label: "undecided runs", A: frac(c.A.Unknown, c.A.Runs), B: frac(c.B.Unknown, c.B.Runs)})
	}
	return append(rows,
		Row{Label: "spawns/task p50", A: spawns(c.A.SpawnsPerTask, func(s Spread) int { return s.P50 }), B: spawns(c.B.SpawnsPerTask, func(s Spread) int { return s.P50 })},
		Row{Label: "spawns/task p99", A: spawns(c.A.SpawnsPerTask, func(s Spread) int { return s.P99 }), B: spawns(c.B.SpawnsPerTask, func(s Spread) int { return s.P99 })},
		Row{Label: "spawns/task max", A: spawns(c.A.SpawnsPerTask, func(s Spread) int { return s.Max }), B: spawns(c.B.SpawnsPerTask, func(s Spread) int { return s.Max })},
		Row{Label: "corruption rate", A: pct(c.A), B: pct(c.B)},
		Row{Label: "lost writes (commits)", A: fmt.Sprint(c.A.LostCommits), B: fmt.Sprint(c.B.LostCommits)},
		Row{Label: "median first violation", A: ms(c.A.MedianFirstViolationMs), B: ms(c.B.MedianFirstViolationMs)},
	)
}

// WriteText prints the side-by-side table and the verdict in words.
func (c Comparison) WriteText(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintf(tw, "\tA: %s\tB: %s\n", c.A.Name, c.B.Name)
	for _, r := range c.Table() {
		label := r.Label
		if r.Sub {
			label = "  " + label
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", label, r.A, r.B)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if changed := c.changedSeeds(); changed != "" {
		fmt.Fprintln(w, changed)
	}
	_, err := fmt.Fprintf(w, "verdict: %s\n", c.Words)
	return err
}

// changedSeeds names the seeds B fixed, broke or left undecided, so each can
// be replayed; unchanged and clean seeds are the bulk and only counted.
func (c Comparison) changedSeeds() string {
	multi := len(c.Scenarios) > 1
	lists := map[Change][]string{}
	for _, p := range c.Pairs {
		name := fmt.Sprint(p.Seed)
		if multi {
			name = fmt.Sprintf("%s/%d", p.Scenario, p.Seed)
		}
		lists[p.Change] = append(lists[p.Change], name)
	}
	var parts []string
	for _, ch := range []Change{Fixed, Broken, Undecided} {
		if l := lists[ch]; len(l) > 0 {
			parts = append(parts, fmt.Sprintf("%s: %s", ch, strings.Join(l, " ")))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "seeds " + strings.Join(parts, "; ")
}

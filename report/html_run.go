package report

// The run page: a run's verdict, invariants and violations, and the
// timeline of its workers, faults and board events, laid out in lanes.

import (
	"encoding/json"
	"fmt"
	"html/template"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
)

// invariantRow is one invariant's state in a run: violated, held or not
// checked (and why).
type invariantRow struct {
	Name, State, Class, Why string
}

// invariantsOf lists a verdict's invariants: the violated ones first, then
// those that held, then those not checked with why — a PASS shows exactly
// what it stands on.
func invariantsOf(v oracle.Verdict) []invariantRow {
	var rows []invariantRow
	for _, inv := range v.Failed() {
		n := 0
		for _, x := range v.Violations {
			if x.Invariant == inv {
				n++
			}
		}
		rows = append(rows, invariantRow{Name: inv, State: "violated", Class: "fail", Why: fmt.Sprintf("%d violation(s), with evidence below", n)})
	}
	for _, inv := range v.Held() {
		rows = append(rows, invariantRow{Name: inv, State: "held", Class: "pass"})
	}
	for _, x := range v.NotChecked {
		rows = append(rows, invariantRow{Name: x.Invariant, State: "not checked", Class: "unknown", Why: x.Why})
	}
	return rows
}

type lane struct {
	ID, Title, Assignee, Status string
	Limit                       int
	LimitSource                 string
	StartMarks                  []startMark
	EventMarks                  []eventMark
	Counter                     []step
	MaxCounter                  int
	FinalFailures               int
	Violations                  []violationView
	SVG                         template.HTML
}

type startMark struct {
	Ms  float64
	PID int
	Run int64
}

type eventMark struct {
	Ms          float64
	Kind, Title string
}

type step struct {
	Ms    float64
	Value int
}

// CounterText lists the counter's steps for the line's tooltip.
func (l *lane) CounterText() string {
	var parts []string
	for _, s := range l.Counter {
		parts = append(parts, fmt.Sprintf("%d at +%.0fms", s.Value, s.Ms))
	}
	if len(parts) > 12 {
		parts = append(parts[:12], fmt.Sprintf("… %d more", len(parts)-12))
	}
	return strings.Join(parts, ", ")
}

type faultMark struct {
	Ms           float64
	Kind, Result string
}

type boardLane struct {
	Starts []float64
	Errors []errMark
}

type errMark struct {
	Ms           float64
	Class, Title string
}

type violationView struct {
	Invariant, Task, Message string
	AtMs                     float64
	Evidence                 []evidence
}

// evidence is one item of a violation's evidence, its value as compact
// JSON: a list of 20 start times reads better on one line than on twenty.
type evidence struct{ Key, Value string }

func violationsOf(vs []oracle.Violation) []violationView {
	var out []violationView
	for _, v := range vs {
		x := violationView{Invariant: v.Invariant, Task: v.Task, Message: v.Message, AtMs: v.AtMs}
		for _, k := range slices.Sorted(maps.Keys(v.Evidence)) {
			data, _ := json.Marshal(v.Evidence[k])
			x.Evidence = append(x.Evidence, evidence{k, string(data)})
		}
		out = append(out, x)
	}
	return out
}

// subjectOf names what a run tested and the SQLite it ran on: the variant
// and the harness's SQLite for the reference dispatcher; for an external
// subject the subject itself (the variant only shapes the Go workers'
// connections), with the SQLite each side loaded — a real release's
// report headed by the model's name read as the model's verdict.
func subjectOf(r result) (on, sqlite string) {
	s := r.Schedule
	if !s.Subject.External() {
		return s.Variant, r.SQLite
	}
	var dispatcher []string
	for _, rep := range r.Settings.Reported {
		side := fmt.Sprintf("%s (hermes-agent %s, Python %s)", rep.SQLite, rep.Release, rep.Python)
		if !slices.Contains(dispatcher, side) {
			dispatcher = append(dispatcher, side)
		}
	}
	if len(dispatcher) == 0 {
		dispatcher = []string{"its own"}
	}
	workers := fmt.Sprintf("Go workers %s (%s's connections)", r.SQLite, s.Variant)
	if r.Settings.Workers == "hermes" {
		workers = "the release's own workers " + strings.Join(r.Settings.WorkerSQLite, ", ")
	}
	return s.Subject.String(), "dispatcher " + strings.Join(dispatcher, ", ") + " · " + workers
}

// failureKinds are the events after which Hermes' _record_task_failure
// counts one more consecutive failure.
var failureKinds = map[string]bool{"crashed": true, "timed_out": true, "spawn_failed": true, "protocol_violation": true}

func runPage(d runData) view {
	r := d.Result
	s := r.Schedule
	clk := newClock(r, d.Ledger, d.Ticks)
	on, sqlite := subjectOf(r)
	v := runView{Scenario: s.Scenario, Seed: s.Seed, Variant: on, SQLite: sqlite, Status: string(r.Verdict.Status),
		Failed: r.Verdict.Failed(), Replay: d.Replay, BoardNote: d.BoardNote, Unknowns: r.Verdict.Unknowns, Legend: legend(),
		Invariants: invariantsOf(r.Verdict)}
	if len(s.Knobs) > 0 {
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(s.Knobs)) {
			kv = append(kv, k+"="+s.Knobs[k])
		}
		v.Knobs = strings.Join(kv, " ")
	}
	if v.Status == "" {
		v.Status = "unknown"
	}
	v.Summary = fmt.Sprintf("%d worker starts in %.1fs (%.1f/s), %d ticks, %d dispatcher(s), %d task(s)",
		r.Spawns, r.Elapsed.Seconds(), r.SpawnRate, r.Ticks, s.Dispatchers, len(s.Tasks))
	var notes []string
	if clk.Estimated {
		notes = append(notes, "this run did not record its start time: the time axis starts at its first recorded event")
	}
	if s.Subject.External() {
		stamps := "stamps the board in whole seconds"
		if s.Subject.Hermes == "" {
			stamps = "is read as stamping the board in whole seconds, as Hermes does"
		}
		notes = append(notes, fmt.Sprintf("%s %s: each board event (crashed, gave_up, promoted, …) is drawn at the "+
			"start of the second it happened in, up to 1 s early, and at 0 when that second began before the run; worker "+
			"starts and SQLite errors are the ledger's exact times", s.Subject, stamps))
	}
	v.ClockNote = strings.Join(notes, "; ")
	quietFrom, quietTo := float64(s.DurationMs), float64(s.DurationMs+s.QuietMs)
	maxMs := quietTo
	for _, f := range r.Faults {
		ms := float64(f.AtMs)
		if f.Mono != 0 {
			ms = clk.monoMs(f.Mono)
		}
		v.Faults = append(v.Faults, faultMark{Ms: ms, Kind: f.Kind, Result: f.Result})
	}

	// Per task: starts from the ledger, events and the counter from the board.
	lanes := map[string]*lane{}
	get := func(id string) *lane {
		if l, ok := lanes[id]; ok {
			return l
		}
		l := &lane{ID: id}
		lanes[id] = l
		return l
	}
	for _, t := range s.Tasks {
		l := get(t.ID)
		l.Title, l.Assignee = t.Title, t.Assignee
		l.Limit, l.LimitSource = s.EffectiveLimit(t)
	}
	for _, t := range d.Tasks {
		l := get(t.ID)
		l.Status, l.FinalFailures = t.Status, t.Failures
		if l.Title == "" {
			l.Title, l.Assignee = t.Title, t.Assignee
		}
	}
	var board boardLane
	for _, e := range d.Ledger.Entries {
		ms := clk.monoMs(e.Mono)
		maxMs = math.Max(maxMs, ms)
		switch e.Kind {
		case ledger.Start:
			if e.Task == "" {
				continue
			}
			l := get(e.Task)
			l.StartMarks = append(l.StartMarks, startMark{Ms: ms, PID: e.PID, Run: e.Run})
			board.Starts = append(board.Starts, ms)
		case ledger.SQLiteError:
			who := e.Who
			if who == "" {
				who = "pid " + fmt.Sprint(e.PID)
			}
			board.Errors = append(board.Errors, errMark{Ms: ms, Class: "sqlite-error",
				Title: fmt.Sprintf("+%.0fms %s: SQLite error %d: %s", ms, who, e.Code, e.Message)})
		}
	}
	for _, t := range d.Ticks {
		if t.Error != "" {
			ms := clk.wallMs(t.At)
			board.Errors = append(board.Errors, errMark{Ms: ms, Class: "tick-error",
				Title: fmt.Sprintf("+%.0fms tick of %s failed: %s", ms, t.Dispatcher, t.Error)})
		}
	}
	counter := map[string]int{}
	for _, e := range d.Events {
		ms := clk.wallMs(e.Wall)
		maxMs = math.Max(maxMs, ms)
		l := get(e.Task)
		if drawnEvents[e.Kind] {
			title := fmt.Sprintf("%s at +%.1fms", e.Kind, ms)
			if e.Run > 0 {
				title += fmt.Sprintf(" (run %d)", e.Run)
			}
			if len(e.Payload) > 0 {
				p, _ := json.Marshal(e.Payload)
				title += " " + string(p)
			}
			l.EventMarks = append(l.EventMarks, eventMark{Ms: ms, Kind: e.Kind, Title: title})
		}
		before := counter[e.Task]
		switch {
		case failureKinds[e.Kind]:
			counter[e.Task]++
		case e.Kind == "gave_up":
			// The trip records the counter exactly.
			if f, ok := e.Payload["failures"].(float64); ok {
				counter[e.Task] = int(f)
			}
		case e.Kind == "completed" || e.Kind == "unblocked":
			counter[e.Task] = 0
		}
		if counter[e.Task] != before {
			l.Counter = append(l.Counter, step{Ms: ms, Value: counter[e.Task]})
		}
	}
	for _, l := range lanes {
		// The board's final value is the truth at the end of the run.
		if d.Tasks != nil && counter[l.ID] != l.FinalFailures {
			l.Counter = append(l.Counter, step{Ms: maxMs, Value: l.FinalFailures})
		}
		for _, c := range l.Counter {
			l.MaxCounter = max(l.MaxCounter, c.Value)
		}
	}
	violated := map[string]bool{}
	for _, x := range violationsOf(r.Verdict.Violations) {
		maxMs = math.Max(maxMs, x.AtMs)
		if x.Task == "" || lanes[x.Task] == nil {
			v.RunViolations = append(v.RunViolations, x)
			continue
		}
		violated[x.Task] = true
		lanes[x.Task].Violations = append(lanes[x.Task].Violations, x)
	}

	// Which tasks get a timeline of their own: in a small board every one;
	// otherwise those a violation names or that did more than start once and
	// complete (restarts, failures, trips), busiest first. A corruption run's
	// hundreds of start-and-complete tasks are on the board lane.
	starts := map[string]int{}
	var ids []string
	for id, l := range lanes {
		starts[id] = len(l.StartMarks)
		notable := violated[id] || len(l.StartMarks) > 1 || l.MaxCounter > 0 ||
			slices.ContainsFunc(l.EventMarks, func(e eventMark) bool { return e.Kind != "completed" })
		switch {
		case notable || len(lanes) <= smallBoard:
			ids = append(ids, id)
		case len(l.StartMarks) == 0:
			v.NeverStarted++
		default:
			v.Hidden++
		}
	}
	ids = tasksByActivity(ids, starts, violated)
	if len(ids) > maxLanes {
		v.Hidden += len(ids) - maxLanes
		ids = ids[:maxLanes]
	}

	ax := newAxis(maxMs * 1.02)
	all := violationsOf(r.Verdict.Violations)
	sort.SliceStable(all, func(i, j int) bool { return all[i].AtMs < all[j].AtMs })
	v.Board = boardTimeline(ax, board, quietFrom, quietTo, v.Faults, all)
	for _, id := range ids {
		l := lanes[id]
		l.SVG = taskTimeline(ax, l, quietFrom, quietTo, v.Faults)
		v.Lanes = append(v.Lanes, l)
	}
	for _, x := range all {
		if l := lanes[x.Task]; x.AtMs > 0 && l != nil {
			v.Zoom, v.ZoomOf = zoomTimeline(l, x.AtMs, v.Faults, x), x
			break
		}
	}
	var ticks []tickMark
	for _, t := range d.Ticks {
		ticks = append(ticks, tickMark{Ms: clk.wallMs(t.At), DurationMs: t.DurationMs, Dispatcher: t.Dispatcher})
	}
	v.Rates = ratesTimeline(ax, board.Starts, ticks, quietFrom, quietTo)
	if r.Binary != nil {
		v.RunBy = r.Binary.Short()
	}
	title := fmt.Sprintf("%s seed %d on %s — %s", s.Scenario, s.Seed, v.Variant, strings.ToUpper(v.Status))
	return view{Title: title, Run: &v, MaxLanes: maxLanes}
}

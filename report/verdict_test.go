package report

import (
	"bytes"
	"encoding/xml"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/oracle"
)

// A run's report shows every invariant's state: violated, held, or not
// checked with why.
func TestRunReportShowsInvariantStates(t *testing.T) {
	t.Parallel()
	d := runData{Result: result{StartMono: 1e9, StartWall: 1000}}
	d.Result.Schedule.DurationMs = 1000
	d.Result.Verdict = oracle.Verdict{Status: oracle.Fail,
		Violations: []oracle.Violation{{Invariant: oracle.Spawns, Message: "3 > 2"}, {Invariant: oracle.Spawns, Message: "4 > 2"}},
		Checked:    []string{oracle.Spawns, oracle.Integrity},
		NotChecked: []oracle.Skip{{Invariant: oracle.NoLostWrites, Why: "the subject (exec:sleep 1000) records none of its own commits"}}}
	rows := runPage(d).Run.Invariants
	want := []invariantRow{
		{Name: oracle.Spawns, State: "violated", Class: "fail", Why: "2 violation(s), with evidence below"},
		{Name: oracle.Integrity, State: "held", Class: "pass"},
		{Name: oracle.NoLostWrites, State: "not checked", Class: "unknown", Why: "the subject (exec:sleep 1000) records none of its own commits"},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows %+v, want %+v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, rows[i], want[i])
		}
	}
	var html bytes.Buffer
	if err := page().Execute(&html, runPage(d)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`<td class="mono">no-lost-writes</td><td class="unknown">not checked</td><td>the subject (exec:sleep 1000) records none of its own commits</td>`,
		`<td class="mono">integrity</td><td class="pass">held</td>`} {
		if !strings.Contains(html.String(), s) {
			t.Errorf("report lacks %s", s)
		}
	}
}

// JUnit cases carry what held and what was not checked (with why): as
// properties, and the not-checked ones in system-out too; an undecided
// run is an error of type undecided, never a skipped (green) case.
func TestJUnitShowsNotChecked(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	err := WriteJUnit(&out, Suite{Name: "kanbanchaos", Cases: []Case{
		{Name: "run 1", Class: "kanbanchaos.fuzz.issue-30896", Seed: 1, Status: "pass", Replay: "r1", SystemOut: "probes: gave_up",
			Held:       []string{oracle.Spawns, oracle.Integrity},
			NotChecked: []oracle.Skip{{Invariant: oracle.RateLimit, Why: "no worker exited 75"}, {Invariant: oracle.Sidecars, Why: "not watched"}}},
		{Name: "run 2", Class: "kanbanchaos.fuzz.issue-30896", Seed: 2, Status: "unknown", Message: "no worker ever started", Replay: "r2",
			NotChecked: []oracle.Skip{{Invariant: oracle.NoLostRuns, Why: "no worker started"}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var doc xmlSuites
	if err := xml.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	cases := doc.Suites[0].Cases
	// The strict schema allows no properties on a case: all of it is in
	// system-out, one fact a line.
	if want := "seed: 1\nreplay: r1\nheld: spawns, integrity\nnot checked: rate-limit — no worker exited 75\n" +
		"not checked: sidecars — not watched\nprobes: gave_up"; cases[0].SystemOut != want {
		t.Errorf("system-out %q, want %q", cases[0].SystemOut, want)
	}
	if cases[0].Failure != nil || cases[0].Skipped != nil || cases[0].Error != nil {
		t.Errorf("a passing case with not-checked invariants is not a pass: %+v", cases[0])
	}
	if cases[1].Error == nil || cases[1].Error.Type != "undecided" || cases[1].Skipped != nil || doc.Errors != 1 ||
		!strings.Contains(cases[1].SystemOut, "not checked: no-lost-runs — no worker started") {
		t.Errorf("the undecided case: %+v (suite errors %d)", cases[1], doc.Errors)
	}
	// The suite names the binary that made it, as every JSON output does.
	if !strings.Contains(out.String(), `<property name="kanbanchaos" value="kanbanchaos `) {
		t.Errorf("the suite does not name the kanbanchaos that wrote it:\n%s", out.String())
	}
}

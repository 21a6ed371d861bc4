package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

func TestVerdictPrintsHeldAndNotChecked(t *testing.T) {
	v := oracle.Verdict{Status: oracle.Pass, Checked: []string{oracle.Spawns, oracle.Integrity},
		NotChecked: []oracle.Skip{{Invariant: oracle.NoLostWrites, Why: "the subject records none of its own commits"},
			{Invariant: oracle.RateLimit, Why: "no worker exited 75"}}}
	var out bytes.Buffer
	printInvariants(&out, v)
	want := "held: spawns, integrity\n" +
		"not checked: no-lost-writes — the subject records none of its own commits\n" +
		"not checked: rate-limit — no worker exited 75\n"
	if out.String() != want {
		t.Errorf("printInvariants:\n%s\nwant:\n%s", out.String(), want)
	}
	if got := heldText(v) + notCheckedNote(v); got != "spawns, integrity held; 2 not checked (below)" {
		t.Errorf("PASS line claims %q", got)
	}
	// A violated invariant is never claimed as held.
	v.Status, v.Violations = oracle.Fail, []oracle.Violation{{Invariant: oracle.Spawns, Message: "3 > 2"}}
	out.Reset()
	printInvariants(&out, v)
	if !strings.HasPrefix(out.String(), "held: integrity\n") {
		t.Errorf("with spawns violated: %q", out.String())
	}
	if got := heldText(oracle.Verdict{}) + notCheckedNote(oracle.Verdict{}); got != "no invariant held" {
		t.Errorf("empty verdict: %q", got)
	}
}

// TestCheckVerdictLines: `check` of a board with nothing run on it claims
// only what held and says what it did not check, and why.
func TestCheckVerdictLines(t *testing.T) {
	db := filepath.Join(t.TempDir(), "kanban.db")
	seedBoard(t, db, 2, "p")
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"check", db}, &stdout, &stderr); code != exitPass {
		t.Fatalf("exit %d: %s%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"\nverdict: PASS — integrity, run-bookkeeping held (",
		"); 5 not checked (below)\nheld: integrity, run-bookkeeping\n",
		"\nnot checked: rate-limit — no run on the board is booked rate_limited (exit 75)\n",
		"\nnot checked: unrecorded-workers — no run ended for want of news from its worker (reclaimed, stale, timed out)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestCheckArtifactKeepsTheRunsObservability: `check DIR` rechecks a stored
// run with what its subject could be observed doing and the ticks the
// harness saw (verdict.json), so it checks what the run checked.
func TestCheckArtifactKeepsTheRunsObservability(t *testing.T) {
	dir := t.TempDir()
	seedBoard(t, kanban.BoardPath(filepath.Join(dir, "home"), "default"), 1, "p")
	s := schedule.Schedule{Scenario: "x", Seed: 1, Variant: "fixed", Dispatchers: 1, TimeScale: 0.001, DurationMs: 1000,
		Profiles: []schedule.Profile{{Name: "p", Worker: schedule.Behaviour{Mode: schedule.ModeComplete}}},
		Tasks:    []schedule.Task{{ID: "t_00000001", Assignee: "p"}}}
	if err := s.Write(filepath.Join(dir, "schedule.json")); err != nil {
		t.Fatal(err)
	}
	obs := oracle.Observability{Name: "reference", Ticks: true, Commits: true, Errors: true, FDs: true}
	data, _ := json.Marshal(map[string]any{"ticks": 42, "start_wall": 1000.5, "start_mono_ns": 7,
		"verdict": oracle.Verdict{Status: oracle.Pass, Subject: obs}})
	if err := os.WriteFile(filepath.Join(dir, "verdict.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	target, err := checkTargetOf(dir)
	if err != nil {
		t.Fatal(err)
	}
	if in := target.run; in == nil || in.Subject != obs || in.Ticks != 42 || in.RunStartMono != 7 || in.RunStartWall != 1000.5 {
		t.Fatalf("input %+v, want the run's subject, 42 ticks and its start", target.run)
	}
}

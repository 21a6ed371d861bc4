package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// TestExecSubjectLeavesNothing: an external subject that starts a worker in
// a session of its own (as Hermes does) and never stops it, then sleeps,
// is stopped at the end, and the orphaned worker is found by its
// environment and killed.
func TestExecSubjectLeavesNothing(t *testing.T) {
	t.Parallel()
	s, cmd := orphaningSubject(t, 21, 1, 600)
	task := s.Tasks[0].ID
	res, err := Run(context.Background(), s, Options{Keep: true, Subject: schedule.Subject{Exec: cmd}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := ledger.Read(filepath.Join(res.Artifacts, "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(h.Starts()[task]); n != 1 {
		t.Fatalf("want the subject's one worker in the ledger, got %d starts (verdict %s %v)", n, res.Verdict.Status, res.Verdict.Unknowns)
	}
	assertNoneAlive(t, h)
	assertSandboxEmpty(t, res.Artifacts)
	if res.Verdict.Status == oracle.Fail {
		t.Fatalf("a hanging worker started once breaks nothing: %+v", res.Verdict.Violations)
	}
}

// orphaningSubject is issue-30896 on hermes-0.14 with hanging workers and
// one exec dispatcher, for durationMs, whose command starts n workers of
// the first task, each in a session of its own as Hermes does, and then
// sleeps: what it leaves behind is the harness's to find and kill.
func orphaningSubject(t *testing.T, seed uint64, n, durationMs int) (schedule.Schedule, string) {
	t.Helper()
	s := build(t, "issue-30896", "hermes-0.14", seed)
	s.Dispatchers, s.DispatcherOffsetsMs = 1, nil
	s.Profiles[0].Worker = schedule.Behaviour{Mode: schedule.ModeHang}
	s.DurationMs, s.QuietMs = durationMs, 0
	start := fmt.Sprintf(`setsid "$HERMES_BIN" -p %s --accept-hooks chat -q "work kanban task %s" </dev/null >/dev/null 2>&1 &`,
		s.Profiles[0].Name, s.Tasks[0].ID)
	return s, strings.Repeat(start+" ", n) + "sleep 60"
}

package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/fakeworker"
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
	s := build(t, "issue-30896", "hermes-0.14", 21)
	s.Dispatchers, s.DispatcherOffsetsMs = 1, nil
	s.Profiles[0].Worker = schedule.Behaviour{Mode: schedule.ModeHang}
	s.DurationMs, s.QuietMs = 600, 0
	task := s.Tasks[0].ID
	cmd := fmt.Sprintf(`setsid "$HERMES_BIN" -p %s --accept-hooks chat -q "work kanban task %s" </dev/null >/dev/null 2>&1 & sleep 60`,
		s.Profiles[0].Name, task)
	res, err := Run(context.Background(), s, Options{Keep: true, Subject: Subject{Exec: cmd}})
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
	marker := []byte(fakeworker.EnvLedger + "=" + filepath.Join(res.Artifacts, "ledger.jsonl") + "\x00")
	if left := sandboxPIDs(marker); len(left) > 0 {
		t.Fatalf("processes %v of the subject survived the run", left)
	}
	if res.Verdict.Status == oracle.Fail {
		t.Fatalf("a hanging worker started once breaks nothing: %+v", res.Verdict.Violations)
	}
}

// TestAwaitReady: the run's clock starts once every instance is ready; an
// instance that ends first, or a subject that never gets ready, is said.
func TestAwaitReady(t *testing.T) {
	ctx := context.Background()
	var n atomic.Int32
	slowly := func() bool { return n.Add(1) > 3 } // ready on the fourth look
	yes := func() bool { return true }
	if why := awaitReady(ctx, []func() bool{yes, slowly}, nil, time.Minute); why != "" {
		t.Errorf("all ready: %q", why)
	}
	ended := make(chan struct{}, 1)
	ended <- struct{}{}
	never := func() bool { return false }
	if why := awaitReady(ctx, []func() bool{yes, never}, ended, time.Minute); !strings.Contains(why, "ended before") {
		t.Errorf("an instance ended: %q", why)
	}
	if why := awaitReady(ctx, []func() bool{never}, nil, 50*time.Millisecond); !strings.Contains(why, "not ready to tick within 50ms") {
		t.Errorf("never ready: %q", why)
	}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	if why := awaitReady(stopped, []func() bool{never}, nil, time.Minute); why != "" {
		t.Errorf("stopped run: %q (the caller reports the interruption)", why)
	}
}

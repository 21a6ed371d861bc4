package oracle

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
)

// writesBoard makes a board with one task and two acknowledged comments,
// recording the commits the way a process does (through OnCommit).
func writesBoard(t *testing.T) (path string, commits []ledger.Entry) {
	t.Helper()
	ctx := context.Background()
	path = filepath.Join(t.TempDir(), "kanban.db")
	o := kanban.DefaultOptions()
	o.OnCommit = func(c kanban.Commit) {
		commits = append(commits, ledger.Entry{Kind: ledger.Commit, PID: 7, Who: "worker", Op: c.Op, Task: c.Task,
			Run: c.Run, Events: c.Events, Comments: c.Comments})
	}
	b, err := kanban.Connect(ctx, path, o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	id, err := b.CreateTask(ctx, kanban.NewTask{ID: "t_000000aa", Assignee: "coder"})
	if err != nil {
		t.Fatal(err)
	}
	run, _, err := b.Claim(ctx, id, "h:1", 60)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := b.Comment(ctx, id, run, "coder", strings.Repeat("x", 300)); err != nil {
			t.Fatal(err)
		}
	}
	return path, commits
}

func TestAcknowledgedWritesArePresent(t *testing.T) {
	path, commits := writesBoard(t)
	v := check(t, Input{DBPath: path, Ledger: ledger.History{Entries: commits}})
	wantStatus(t, v, Pass)
	if len(commits) < 4 {
		t.Fatalf("want init, create, claim and two comments acknowledged, got %d commits", len(commits))
	}
}

// TestLostWritesAreFound drops acknowledged rows behind the ledger's back
// (as a split WAL does) and expects the oracle to count them.
func TestLostWritesAreFound(t *testing.T) {
	path, commits := writesBoard(t)
	b, err := kanban.Connect(context.Background(), path, kanban.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.DB().Exec(`DELETE FROM task_comments WHERE id = (SELECT max(id) FROM task_comments)`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DB().Exec(`DELETE FROM task_runs`); err != nil {
		t.Fatal(err)
	}
	b.Close()
	v := check(t, Input{DBPath: path, Ledger: ledger.History{Entries: commits}})
	wantStatus(t, v, Fail)
	var lost *Violation
	for i := range v.Violations {
		if v.Violations[i].Invariant == NoLostWrites {
			lost = &v.Violations[i]
		}
	}
	if lost == nil {
		t.Fatalf("no %s violation in %+v", NoLostWrites, v.Violations)
	}
	if lost.Evidence["lost_commits"] != 2 || lost.Evidence["lost_rows"] != 2 || lost.Task != "t_000000aa" {
		t.Fatalf("evidence %+v, want the claim (its run) and the last comment lost", lost.Evidence)
	}
}

func TestCorruptionErrorsFailBusyDoesNot(t *testing.T) {
	path, _ := writesBoard(t)
	entries := []ledger.Entry{
		{Kind: ledger.SQLiteError, PID: 3, Who: "worker", Code: 5, Message: "database is locked"},
		{Kind: ledger.SQLiteError, PID: 3, Who: "worker", Code: 517, Message: "busy snapshot"},
	}
	wantStatus(t, check(t, Input{DBPath: path, Ledger: ledger.History{Entries: entries}}), Pass)
	entries = append(entries,
		ledger.Entry{Kind: ledger.SQLiteError, PID: 4, Who: "d1", Code: 779, Message: "database disk image is malformed (779)"},
		ledger.Entry{Kind: ledger.SQLiteError, PID: 5, Who: "worker", Code: 779, Message: "again"},
		ledger.Entry{Kind: ledger.SQLiteError, PID: 6, Who: "worker", Code: 522, Message: "disk I/O error (522)"})
	v := check(t, Input{DBPath: path, Ledger: ledger.History{Entries: entries}})
	wantStatus(t, v, Fail)
	var msgs []string
	for _, x := range v.Violations {
		if x.Invariant == SQLiteErrors {
			msgs = append(msgs, x.Message)
		}
	}
	if len(msgs) != 2 || !strings.Contains(msgs[0], "SQLITE_IOERR (extended code 522) seen 1×") ||
		!strings.Contains(msgs[1], "SQLITE_CORRUPT (extended code 779) seen 2×; first by d1 pid 4") {
		t.Fatalf("messages %q", msgs)
	}
}

func TestSidecarObservationsFail(t *testing.T) {
	path, _ := writesBoard(t)
	obs := []Observation{
		{Kind: "deleted-sidecar-fd", AtMs: 120, Detail: "fd 9 -> kanban.db-wal (deleted)"},
		{Kind: "deleted-sidecar-fd", AtMs: 140, Detail: "fd 9 -> kanban.db-wal (deleted)"},
		{Kind: "sidecar-replaced", AtMs: 130, Detail: "kanban.db-shm inode 5 -> 6"},
	}
	v := check(t, Input{DBPath: path, Observations: obs})
	wantStatus(t, v, Fail)
	if got := v.Failed(); len(got) != 1 || got[0] != Sidecars || len(v.Violations) != 2 {
		t.Fatalf("violations %+v", v.Violations)
	}
	if !strings.Contains(v.Violations[0].Message, "deleted-sidecar-fd seen 2×") || v.FirstViolationMs() != 120 {
		t.Fatalf("message %q first %v", v.Violations[0].Message, v.FirstViolationMs())
	}
}

// TestWorkerWithoutLedgerIsUnknown: when HERMES_BIN is not a kanbanchaos
// worker, the DB shows spawned workers the ledger never heard of, and a
// spawn count of 0 must not pass as "within the limit".
func TestWorkerWithoutLedgerIsUnknown(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kanban.db")
	b, err := kanban.Connect(ctx, path, kanban.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	var starts []ledger.Entry
	for i := 0; i < 3; i++ {
		id, _ := b.CreateTask(ctx, kanban.NewTask{Assignee: "ghost"})
		run, _, err := b.Claim(ctx, id, "h:1", 60)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.SetWorkerPID(ctx, id, run, 100+i); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			starts = append(starts, ledger.Entry{Kind: ledger.Start, PID: 100, Task: id, Run: run})
		}
	}
	b.Close()
	v := check(t, Input{DBPath: path})
	wantStatus(t, v, Unknown)
	if len(v.Unknowns) != 1 || !strings.Contains(v.Unknowns[0], "3 of 3 spawned workers never wrote their ledger start line") {
		t.Fatalf("unknowns %q", v.Unknowns)
	}
	// One of three missing (a worker killed right after its spawn) is fine.
	starts = append(starts, ledger.Entry{Kind: ledger.Start, PID: 101, Task: "x", Run: 2})
	v = check(t, Input{DBPath: path, Ledger: ledger.History{Entries: starts}})
	if v.Status == Unknown {
		t.Fatalf("2 of 3 started must not be unknown: %q", v.Unknowns)
	}
}

// TestReissuedIDsAreLostWrites: a commit whose rows vanished lets SQLite
// hand the same AUTOINCREMENT ids out again (seen on real Hermes 0.19.0:
// claim_task for run 2 acknowledged twice with event 6). The id is then in
// the board, held by the later commit's row: the earlier commit is lost
// all the same, whether the kinds differ or match.
func TestReissuedIDsAreLostWrites(t *testing.T) {
	path, commits := writesBoard(t)
	var claim ledger.Entry
	for _, c := range commits {
		if len(c.Events) > 0 && c.Op != "" && strings.Contains(strings.ToLower(c.Op), "claim") {
			claim = c
		}
	}
	if len(claim.Events) == 0 {
		t.Fatalf("no claim commit with an event among %+v", commits)
	}
	for _, c := range []struct {
		name  string
		entry func() ledger.Entry
	}{
		// The same commit acknowledged again, as the lost one was.
		{"same kind", func() ledger.Entry { return claim }},
		// A later commit recorded the id under another kind: the first
		// event's row is not the one in the board.
		{"other kind", func() ledger.Entry {
			e := claim
			e.EventKinds = make([]string, len(e.Events))
			for i := range e.EventKinds {
				e.EventKinds[i] = "reclaimed"
			}
			return e
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			entries := append(append([]ledger.Entry{}, commits...), c.entry())
			v := check(t, Input{DBPath: path, Ledger: ledger.History{Entries: entries}})
			wantStatus(t, v, Fail)
			if v.Failed()[0] != NoLostWrites {
				t.Fatalf("want %s, got %+v", NoLostWrites, v.Violations)
			}
		})
	}
}

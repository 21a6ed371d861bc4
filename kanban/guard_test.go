package kanban_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// corruptBoard writes a board with n tasks at path, closes it and damages
// one index page with fill.
func corruptBoard(t *testing.T, path string, n int, fill byte) {
	t.Helper()
	b, err := kanban.Connect(context.Background(), path, kanban.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		create(t, b, kanban.NewTask{Title: "card", Assignee: "a"})
	}
	b.Close()
	if err := kanban.DamageIndex(context.Background(), path, fill); err != nil {
		t.Fatal(err)
	}
}

func guarded(mode string) kanban.Options {
	o := kanban.DefaultOptions()
	o.CorruptGuard, o.BackupMode = true, mode
	return o
}

func backups(t *testing.T, path string) []string {
	t.Helper()
	bs, err := kanban.Backups(path)
	if err != nil {
		t.Fatal(err)
	}
	return bs
}

// TestGuardBackupModes: every detection of a corrupt board refuses the
// connect; copy-ts backs up on every detection (#32593), copy-sha and
// sqlite once per content — and the board file itself is never changed.
func TestGuardBackupModes(t *testing.T) {
	for _, c := range []struct {
		mode string
		want int // backups after three detections
	}{{kanban.BackupCopyTS, 3}, {kanban.BackupCopySHA, 1}, {kanban.BackupSQLite, 1}, {kanban.BackupNone, 0}} {
		t.Run(c.mode, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kanban.db")
			corruptBoard(t, path, 5, 0x5a)
			before, _ := os.ReadFile(path)
			for i := 0; i < 3; i++ {
				// A fresh registry per attempt: each is a new process's first connect.
				o := guarded(c.mode)
				o.Process = kanban.NewProcess()
				_, err := kanban.Connect(context.Background(), path, o)
				var ce *kanban.CorruptError
				if !errors.As(err, &ce) || !errors.Is(err, kanban.ErrCorrupt) {
					t.Fatalf("attempt %d: err = %v, want a CorruptError", i, err)
				}
				if !strings.Contains(ce.Reason, "integrity_check") {
					t.Errorf("reason %q does not name integrity_check", ce.Reason)
				}
				time.Sleep(2 * time.Millisecond) // distinct timestamps for copy-ts
			}
			if got := backups(t, path); len(got) != c.want {
				t.Errorf("%d backups %v, want %d", len(got), got, c.want)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(before, after) {
				t.Error("the corrupt board file changed")
			}
		})
	}
}

// TestGuardSQLiteBackupPerContent: new corrupt content is a new backup,
// and the backup is a readable copy of the board's pages.
func TestGuardSQLiteBackupPerContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanban.db")
	corruptBoard(t, path, 5, 0x5a)
	try := func() {
		o := guarded(kanban.BackupSQLite)
		o.Process = kanban.NewProcess()
		if _, err := kanban.Connect(context.Background(), path, o); !errors.Is(err, kanban.ErrCorrupt) {
			t.Fatalf("err = %v, want ErrCorrupt", err)
		}
	}
	try()
	try()
	// The same page damaged otherwise: new content.
	if err := kanban.DamageIndex(context.Background(), path, 0x33); err != nil {
		t.Fatal(err)
	}
	try()
	got := backups(t, path)
	if len(got) != 2 {
		t.Fatalf("%d backups %v, want 2 (one per content)", len(got), got)
	}
	for _, b := range got {
		if p, err := kanban.IntegrityProblem(context.Background(), b); p == "" && !kanban.IsCorrupt(err) {
			t.Errorf("backup %s: integrity %q, %v; want the same damage as the board", b, p, err)
		}
	}
}

// TestGuardNotADatabase: a file SQLite cannot read is still kept, by a
// plain copy — but only while this process holds no connection to it.
func TestGuardNotADatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanban.db")
	if err := os.WriteFile(path, bytes.Repeat([]byte("not sqlite "), 100), 0o644); err != nil {
		t.Fatal(err)
	}
	o := guarded(kanban.BackupSQLite)
	_, err := kanban.Connect(context.Background(), path, o)
	var ce *kanban.CorruptError
	if !errors.As(err, &ce) || ce.Backup == "" || ce.BackupErr != nil {
		t.Fatalf("err = %v, want a CorruptError with a backup", err)
	}
	if data, _ := os.ReadFile(ce.Backup); !bytes.HasPrefix(data, []byte("not sqlite")) {
		t.Errorf("backup %s does not hold the file's bytes", ce.Backup)
	}
}

// TestGuardHealthyBoard: a healthy board connects, and the guard runs only
// at a process's first connect.
func TestGuardHealthyBoard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanban.db")
	o := guarded(kanban.BackupSQLite)
	b := openAt(t, path, o)
	create(t, b, kanban.NewTask{Title: "card", Assignee: "a"})
	b.Close()
	b = openAt(t, path, o) // existing, non-empty: the guard runs and passes
	if n := count(t, b, `SELECT count(*) FROM tasks`); n != 1 {
		t.Errorf("%d tasks, want 1", n)
	}
	if got := backups(t, path); len(got) != 0 {
		t.Errorf("backups %v of a healthy board", got)
	}
}

// TestRefuseRecreate: a board that exists by its board.json never gets an
// empty DB in place of a missing one (#30687); a fresh board still does.
func TestRefuseRecreate(t *testing.T) {
	home := t.TempDir()
	o := kanban.DefaultOptions()
	o.RefuseRecreate = true
	named := kanban.BoardPath(home, "proj")
	if err := os.MkdirAll(filepath.Dir(named), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(filepath.Dir(named), "board.json"), []byte(`{"slug":"proj"}`), 0o644)
	if _, err := kanban.Connect(context.Background(), named, o); !errors.Is(err, kanban.ErrBoardGone) {
		t.Errorf("missing DB of an existing board: err = %v, want ErrBoardGone", err)
	}
	top := kanban.BoardPath(home, "default")
	meta := filepath.Join(home, "kanban", "boards", "default", "board.json")
	os.MkdirAll(filepath.Dir(meta), 0o755)
	os.WriteFile(meta, []byte(`{"slug":"default"}`), 0o644)
	if _, err := kanban.Connect(context.Background(), top, o); !errors.Is(err, kanban.ErrBoardGone) {
		t.Errorf("missing top-level DB of an existing default board: err = %v, want ErrBoardGone", err)
	}
	for _, p := range []string{named, top} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s was created", p)
		}
	}
	fresh := kanban.BoardPath(home, "new")
	openAt(t, fresh, o) // no board.json: a new board is created as before
	// Without the knob, v0.14 recreates the existing board empty.
	b := openAt(t, named, kanban.DefaultOptions())
	if n := count(t, b, `SELECT count(*) FROM tasks`); n != 0 {
		t.Errorf("recreated board has %d tasks", n)
	}
}

// TestInspectAndFingerprint: what the fixed gateway looks at before it
// resumes a board.
func TestInspectAndFingerprint(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "kanban.db")
	if fp := kanban.FingerprintOf(path); fp.Exists {
		t.Errorf("fingerprint of a missing file: %v", fp)
	}
	b := openAt(t, path, kanban.DefaultOptions())
	b.Close()
	h, err := kanban.Inspect(ctx, path)
	if err != nil || h.Problem != "" || !h.Schema || h.Tasks != 0 {
		t.Errorf("empty schema: %+v, %v", h, err)
	}
	fp := kanban.FingerprintOf(path)
	corruptBoard(t, filepath.Join(dir, "c.db"), 3, 0x5a)
	h, err = kanban.Inspect(ctx, filepath.Join(dir, "c.db"))
	if err != nil || h.Problem == "" {
		t.Errorf("corrupt board: %+v, %v; want a problem", h, err)
	}
	now := time.Now().Add(time.Hour)
	os.Chtimes(path, now, now)
	if kanban.FingerprintOf(path) == fp {
		t.Error("fingerprint unchanged by a new mtime")
	}
}

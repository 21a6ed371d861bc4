package oracle

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// walBoard makes a WAL board with n tasks whose commits are all still in
// the -wal (checkpointed only before them), held open by the returned connection: its close
// is the last closer's checkpoint, which writes them into the DB file and
// deletes the -wal.
func walBoard(t *testing.T, n int) (string, *kanban.Board) {
	t.Helper()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kanban.db")
	o := kanban.DefaultOptions()
	o.WALAutocheckpoint = 100000
	b, err := kanban.Connect(ctx, path, o)
	if err != nil {
		t.Fatal(err)
	}
	// The schema goes into the DB file; the tasks stay in the -wal.
	if _, err := b.DB().Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := b.CreateTask(ctx, kanban.NewTask{Title: "t", Assignee: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	return path, b
}

func tasksIn(t *testing.T, path string) int {
	t.Helper()
	db, err := openReadWrite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM tasks").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCopyBoardDuringTheLastCheckpoint: the last connection closes — its
// checkpoint fills the DB file and deletes the -wal — between the copy's
// read of the DB and of the -wal (m2-eio-downgrade seed 1820973897 on
// fixed: the run's oracle saw the board as of its last checkpoint and 9
// acknowledged commits "lost", which the stored board holds). One read of
// the files gives the board without those commits; CopyBoard now reads
// again, sees the files changed, and copies them once they hold still.
func TestCopyBoardDuringTheLastCheckpoint(t *testing.T) {
	const n = 30
	path, b := walBoard(t, n)
	stale, err := readBoardFiles(path, func() { b.Close() })
	if err != nil {
		t.Fatal(err)
	}
	if stale[1] != nil {
		t.Fatal("the -wal outlived its last connection's close: the race is not reproduced")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "kanban.db"), stale[0], 0o644); err != nil {
		t.Fatal(err)
	}
	if got := tasksIn(t, filepath.Join(dir, "kanban.db")); got == n {
		t.Fatalf("the DB read before the checkpoint already holds all %d tasks: the race is not reproduced", n)
	}

	path, b = walBoard(t, n)
	cp, err := copyBoard(path, t.TempDir(), func() { b.Close() })
	if err != nil {
		t.Fatal(err)
	}
	if got := tasksIn(t, cp); got != n {
		t.Fatalf("the copy taken across the last checkpoint holds %d of %d tasks", got, n)
	}
}

package kanban

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
)

// TestFailClosedChecksTheFileItOpened: a board file that exists
// but holds no schema is refused even when it is not empty on disk — the
// check runs on the connection before anything writes to the file, so a file
// swapped for an empty one between the connect's stat and SQLite's open
// (m6-swap-while-open, found by kanbanchaos fuzz on the fixed variant) is
// refused too. Without FailClosed the schema is created, as Hermes does.
func TestFailClosedChecksTheFileItOpened(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kanban.db")
	db, err := sql.Open("sqlite", FileURI(path))
	if err != nil {
		t.Fatal(err)
	}
	// A valid, non-empty SQLite file without a single table.
	if _, err := db.Exec("PRAGMA user_version = 7"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	o := DefaultOptions()
	o.FailClosed = true
	if b, err := Connect(ctx, path, o); !errors.Is(err, ErrBoardGone) {
		if b != nil {
			b.Close()
		}
		t.Fatalf("FailClosed connect to a schemaless board file: err = %v, want ErrBoardGone", err)
	}
	o.FailClosed = false
	b, err := Connect(ctx, path, o)
	if err != nil {
		t.Fatalf("without FailClosed: %v", err)
	}
	defer b.Close()
	var n int
	if err := b.DB().QueryRow("SELECT count(*) FROM sqlite_master WHERE name = 'tasks'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("schema not created without FailClosed: %d %v", n, err)
	}
}

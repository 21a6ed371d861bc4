package kanban

import (
	"context"
	"database/sql"
	"errors"
	"os"
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

// fixedOptions are the fixed variant's connection knobs that matter here,
// for one process p.
func fixedOptions(p *Process) Options {
	o := DefaultOptions()
	o.WALEveryConnect, o.EIOFallback = false, false
	o.FailClosed, o.InodeGuard, o.GuardRawReads, o.Process = true, true, true, p
	return o
}

// TestFailClosedNeverCreatesABoardThatWasThere: the board file moved aside
// while its -wal and -shm are still at their names (the moment inside an
// m6-swap-while-open swap between moving the DB and moving its sidecars).
// A connect — of the process that holds the board open, or of a new process
// — must refuse and create nothing: before, it let SQLite create an empty
// kanban.db, and SQLite, opening a DB of 0 pages, deleted the -wal by name
// (the live WAL the first process still held: "harness held a deleted
// -wal", fixed-variant seeds 2741923639 and 1901503227), then the connect
// gave the new file WAL mode or, as a new process, a fresh schema.
func TestFailClosedNeverCreatesABoardThatWasThere(t *testing.T) {
	ctx := context.Background()
	for _, who := range []string{"the process holding it", "a new process"} {
		t.Run(who, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kanban.db")
			holder := NewProcess()
			watch, err := Connect(ctx, path, fixedOptions(holder))
			if err != nil {
				t.Fatal(err)
			}
			defer watch.Close()
			if _, err := watch.CreateTask(ctx, NewTask{Title: "t", Assignee: "a"}); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path + "-wal"); err != nil {
				t.Fatalf("no -wal beside a WAL board with an open connection: %v", err)
			}
			if err := os.Rename(path, path+".swapped"); err != nil {
				t.Fatal(err)
			}
			p := holder
			if who == "a new process" {
				p = NewProcess()
			}
			b, err := Connect(ctx, path, fixedOptions(p))
			if b != nil {
				b.Close()
			}
			if !errors.Is(err, ErrBoardGone) {
				t.Errorf("connect to the moved board: err = %v, want ErrBoardGone", err)
			}
			if _, err := os.Stat(path); err == nil {
				t.Errorf("the connect created %s", path)
			}
			if _, err := os.Stat(path + "-wal"); err != nil {
				t.Errorf("the live -wal is gone: %v", err)
			}
		})
	}
}

// TestFailClosedStillCreatesANewBoard: with nothing at the path and beside
// it, a process's first connect creates the board, as Hermes does.
func TestFailClosedStillCreatesANewBoard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanban.db")
	b, err := Connect(context.Background(), path, fixedOptions(NewProcess()))
	if err != nil {
		t.Fatalf("first connect to a new board: %v", err)
	}
	defer b.Close()
	var n int
	if err := b.DB().QueryRow("SELECT count(*) FROM sqlite_master WHERE name = 'tasks'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("no schema in the new board: %d %v", n, err)
	}
}

// TestCreateBoardFileIsExclusive: a file that appears between the connect's
// stat and its create (the swap's empty file) is not the connect's to give
// a schema.
func TestCreateBoardFileIsExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanban.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := createBoardFile(path, NewProcess()); !errors.Is(err, ErrBoardGone) {
		t.Fatalf("create over an existing file: err = %v, want ErrBoardGone", err)
	}
}

// TestOpenedFileRefusesASwap: the path naming another file after SQLite
// opened it than before is refused before SQLite reads anything, and the
// same file is accepted.
func TestOpenedFileRefusesASwap(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "kanban.db")
	b, err := Connect(ctx, path, fixedOptions(NewProcess()))
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	before, err := fileID(path)
	if err != nil {
		t.Fatal(err)
	}
	open := func() *sql.DB {
		db, err := sql.Open("sqlite", FileURI(path)+"?mode=rw")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	if err := openedFile(ctx, open(), path, before); err != nil {
		t.Fatalf("the same file: %v", err)
	}
	if err := os.Rename(path, path+".swapped"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := openedFile(ctx, open(), path, before); !errors.Is(err, ErrBoardGone) {
		t.Fatalf("a swapped file: err = %v, want ErrBoardGone", err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := openedFile(ctx, open(), path, before); !errors.Is(err, ErrBoardGone) {
		t.Fatalf("a missing file: err = %v, want ErrBoardGone", err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("mode=rw created %s", path)
	}
}

// TestSchemaReadDuringASwapIsTheSwap reproduces m6-swap-while-open seed
// 1118628063 on fixed deterministically: a connection opened on the board
// (the open proven to be of the right file) reads it only after the board
// and its sidecars were moved aside while another connection of the same
// process holds WAL frames. SQLite opens a new, empty -wal at the old name
// for the moved file and pairs it with the frames its shared memory still
// counts: SQLITE_IOERR_SHORT_READ (522), which the connect reported as a
// disk I/O error. It is the swap, and the connect now says so.
func TestSchemaReadDuringASwapIsTheSwap(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "kanban.db")
	p := NewProcess()
	watch, err := Connect(ctx, path, fixedOptions(p))
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	if _, err := watch.CreateTask(ctx, NewTask{Title: "t", Assignee: "a"}); err != nil {
		t.Fatal(err)
	}
	want, err := fileID(path)
	if err != nil {
		t.Fatal(err)
	}
	opened := func() *sql.DB {
		db, err := sql.Open("sqlite", FileURI(path)+"?mode=rw")
		if err != nil {
			t.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		t.Cleanup(func() { db.Close() })
		if err := openedFile(ctx, db, path, want); err != nil {
			t.Fatal(err)
		}
		return db
	}
	raw, connect := opened(), opened()
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if err := os.Rename(path+suffix, path+".swapped"+suffix); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var n int
	err = raw.QueryRow("SELECT count(*) FROM sqlite_master").Scan(&n)
	if code, _ := Code(err); code != 522 {
		t.Fatalf("the plain read after the swap: err = %v (code %d), want SQLITE_IOERR_SHORT_READ (522): the race is not reproduced", err, code)
	}
	_, err = schemaObjects(ctx, connect, path, want)
	if !errors.Is(err, ErrBoardGone) {
		t.Fatalf("the connect's read after the swap: err = %v, want ErrBoardGone", err)
	}
	if code, ok := Code(err); ok {
		t.Fatalf("the swap is reported as SQLite error %d: %v", code, err)
	}
}

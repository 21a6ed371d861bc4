package kanban

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// FailClosed's part of Connect: which file the connect means to open, and
// proof that SQLite opened that one. A board path is looked at (stat) and
// then opened by name, and a board swapped, moved aside or deleted between
// the two (M6, recipe R8) must not be opened blindly. Found by kanbanchaos
// fuzz on m6-swap-while-open with the fixed variant: a connect that stat'ed
// no file let SQLite create one, and SQLite, opening a DB of 0 pages,
// deletes the -wal at that name — the live WAL of the board just moved aside,
// whose connections still held it — and the connect then gave the empty file
// WAL mode or a fresh schema.

// boardFile is the file a FailClosed connect means to open.
type boardFile struct {
	key     fileKey
	created bool // this connect created the (empty) file itself
}

// lookBeforeOpen refuses what FailClosed never opens: an existing empty
// file, and a missing file for a board that evidently was there. It returns
// the file that is there to open, if one is (exists).
func lookBeforeOpen(path string, p *Process) (bf boardFile, exists bool, err error) {
	var st syscall.Stat_t
	err = syscall.Stat(path, &st)
	switch {
	case err == nil && st.Size == 0:
		return bf, false, fmt.Errorf("%w: %s exists and is empty; refusing to create a fresh schema in it", ErrBoardGone, path)
	case err == nil:
		return boardFile{key: fileKey{uint64(st.Dev), st.Ino}}, true, nil
	case !errors.Is(err, fs.ErrNotExist):
		return bf, false, fmt.Errorf("kanban: stat %s: %w", path, err)
	}
	if why, there := boardWasThere(path, p); there {
		return bf, false, fmt.Errorf("%w: %s is missing but %s; refusing to create an empty board in its place", ErrBoardGone, path, why)
	}
	return bf, false, nil
}

// boardWasThere says why a missing board file is not a new board: this
// process connected to it before, or its sidecars are still beside it.
func boardWasThere(path string, p *Process) (string, bool) {
	if p.Live(path) > 0 || p.initializedPath(path) {
		return "this process has connected to it before", true
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Stat(path + suffix); err == nil {
			return "its " + suffix + " is still there", true
		}
	}
	return "", false
}

// createBoardFile creates the missing board file itself, exclusively, so
// that it knows which file it is about to give a schema: one that appeared
// meanwhile (an operator's empty file, a swap) is someone else's. The
// plain create and close happen under the registry's lock and only while
// this process holds no connection to path, so they drop no lock of it (M1).
func createBoardFile(path string, p *Process) (boardFile, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live[abs(path)] > 0 || p.initialized[abs(path)] {
		return boardFile{}, fmt.Errorf("%w: %s was missing while this process connected to it", ErrBoardGone, path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return boardFile{}, fmt.Errorf("%w: %s appeared while this connect was about to create it; refusing to give a schema to a file it did not create", ErrBoardGone, path)
	}
	if err != nil {
		return boardFile{}, fmt.Errorf("kanban: create %s: %w", path, err)
	}
	var st syscall.Stat_t
	err = syscall.Fstat(int(f.Fd()), &st)
	f.Close()
	if err != nil {
		return boardFile{}, fmt.Errorf("kanban: stat %s: %w", path, err)
	}
	return boardFile{key: fileKey{uint64(st.Dev), st.Ino}, created: true}, nil
}

// openedFile makes SQLite open the file now — no read yet — and proves it
// is want's: the path named want before the open and names it after, so the
// open (by name) got it. A board swapped meanwhile is refused before
// SQLite reads it: reading a swapped-in empty file deletes the -wal at that
// name, and a moved file paired with a new -wal fails with I/O errors.
func openedFile(ctx context.Context, db *sql.DB, path string, want fileKey) error {
	conn, err := db.Conn(ctx)
	if err != nil {
		if errors.Is(err, ctx.Err()) {
			return err
		}
		return fmt.Errorf("%w: %s could not be opened as the file this connect found (%v)", ErrBoardGone, path, err)
	}
	conn.Close()
	now, err := fileID(path)
	if err != nil || now != want {
		return fmt.Errorf("%w: %s named another file when SQLite opened it (inode %d before, %d after); refusing to use it", ErrBoardGone, path, want.ino, now.ino)
	}
	return nil
}

// schemaObjects counts the schema's objects through db: a FailClosed
// connect's first read. The board may be swapped between the open and this
// read too, and SQLite then reads the moved file without its -wal (moved
// with it): it opens a new, empty -wal at the old name and pairs it with the
// moved file's shared memory, which still counts the old WAL's frames — a
// short read (SQLITE_IOERR_SHORT_READ, 522; m6-swap-while-open seed
// 1118628063 on fixed) or a stale view. Whatever the read returned, a path
// that names another file afterwards makes it ErrBoardGone: the board was
// swapped, the disk is not broken, and nothing is read from it further.
func schemaObjects(ctx context.Context, db *sql.DB, path string, want fileKey) (int, error) {
	var n int
	err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master").Scan(&n)
	if now, serr := fileID(path); serr != nil || now != want {
		read := "it read fine"
		if err != nil {
			read = "the read said: " + err.Error()
		}
		return 0, fmt.Errorf("%w: %s was swapped while this connect read it (%s); refusing to use it", ErrBoardGone, path, read)
	}
	if err != nil {
		return 0, fmt.Errorf("kanban: read the schema of %s: %w", path, err)
	}
	return n, nil
}

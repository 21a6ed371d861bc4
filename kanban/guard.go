package kanban

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Guard is what connect() does about a board file that is corrupt, empty or
// missing (spec/hermes-kanban.md §6, spec/corruption.md §3). Its fields are
// knobs of Options.
type Guard struct {
	// CorruptGuard runs PRAGMA integrity_check at the first connect per
	// process to an existing, non-empty board file, as Hermes'
	// _guard_existing_db_is_healthy does from #30862. On a result other than
	// ok it backs the file up (BackupMode) and refuses the connect with a
	// *CorruptError. Busy or locked is not corruption: that error passes
	// through and nothing is backed up (spec E4).
	CorruptGuard bool `json:"corrupt_guard"`
	// BackupMode is how the guard backs a corrupt board up:
	//
	//	copy-ts   plain copies of the DB, -wal and -shm named
	//	          <db>.corrupt.<timestamp>.bak[-wal|-shm]: Hermes from #30862,
	//	          a new set on every detection (the #32593 backup storm), each
	//	          a raw read of a file other connections may hold (M1c);
	//	copy-sha  the same plain copies, named by the DB's sha256[:16] and
	//	          skipped when that name exists (#33804): one per content,
	//	          still raw reads;
	//	sqlite    the online backup API from a read-only connection into a
	//	          temporary file named by the copy's sha256[:16]: one backup
	//	          per content, no raw read of the board. A file SQLite cannot
	//	          read at all (not a database) is copied plainly, and only
	//	          while this process holds no connection to it;
	//	none      no backup ("" means none too).
	BackupMode string `json:"backup_mode"`
	// RefuseRecreate never creates a missing board file whose board exists
	// by Hermes' metadata (board.json), so that no command gives an empty
	// schema to a board that was there (PR #30701; spec E1, E8).
	RefuseRecreate bool `json:"refuse_recreate"`
}

// Backup modes.
const (
	BackupCopyTS  = "copy-ts"
	BackupCopySHA = "copy-sha"
	BackupSQLite  = "sqlite"
	BackupNone    = "none"
)

// BackupModes lists the valid BackupMode values.
var BackupModes = []string{BackupCopyTS, BackupCopySHA, BackupSQLite, BackupNone}

// ErrCorrupt is matched (errors.Is) by every *CorruptError.
var ErrCorrupt = errors.New("kanban: board DB is corrupt")

// CorruptError is Hermes' KanbanDbCorruptError: the guard found the board
// corrupt, backed it up (Backup, "" when it could not) and refused to
// connect.
type CorruptError struct {
	Path   string
	Backup string
	Reason string
	// BackupErr says why there is no backup, when there is none.
	BackupErr error
}

func (e *CorruptError) Error() string {
	backup := "backup " + e.Backup
	switch {
	case e.BackupErr != nil:
		backup = "no backup: " + e.BackupErr.Error()
	case e.Backup == "":
		backup = "no backup taken"
	}
	return fmt.Sprintf("kanban: %s is corrupt (%s); %s; refusing to connect", e.Path, e.Reason, backup)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// guard runs before Connect opens path: it refuses to recreate a missing
// board (RefuseRecreate) and, at the process's first connect to an existing
// non-empty file, checks its integrity (CorruptGuard).
func (o Options) guard(ctx context.Context, path string) error {
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		if meta, known := boardMeta(path); o.RefuseRecreate && known {
			return fmt.Errorf("%w: %s is missing but its board exists (%s); refusing to create an empty board in its place: "+
				"restore it from a backup or initialize it explicitly", ErrBoardGone, path, meta)
		}
		return nil
	}
	if err != nil || st.Size() == 0 || !o.CorruptGuard || o.Process.initializedPath(path) {
		return nil // a missing or empty file is Connect's (and FailClosed's) business
	}
	// The probe is a connection of this process like any other: counted,
	// so that no raw read elsewhere in the process (M1a/M1b) runs while it
	// is open.
	o.Process.add(path, 1)
	problem, err := IntegrityProblem(ctx, path)
	o.Process.add(path, -1)
	if err != nil {
		if IsCorrupt(err) {
			problem = err.Error()
		} else {
			return fmt.Errorf("kanban: integrity guard on %s: %w", path, err) // busy, locked, …: not corruption
		}
	}
	if problem == "" {
		return nil
	}
	backup, berr := backupCorrupt(ctx, path, o.BackupMode, o.Process)
	return &CorruptError{Path: path, Backup: backup, Reason: problem, BackupErr: berr}
}

// boardMeta finds the board.json that says the board keeping its DB at path
// exists: beside it for a named board, kanban/boards/default/board.json for
// the top-level kanban.db.
func boardMeta(path string) (string, bool) {
	dir := filepath.Dir(path)
	metas := []string{filepath.Join(dir, "board.json")}
	if filepath.Base(path) == "kanban.db" {
		metas = append(metas, filepath.Join(dir, "kanban", "boards", "default", "board.json"))
	}
	for _, m := range metas {
		if _, err := os.Stat(m); err == nil {
			return m, true
		}
	}
	return "", false
}

func (p *Process) initializedPath(path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.initialized[abs(path)]
}

// readOnlyURI is path opened read-only through SQLite: such a connection
// never writes the DB or its WAL and never checkpoints; it only maps the
// -shm, as every reader does.
func readOnlyURI(path string) string {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(5000)")
	return FileURI(path) + "?" + q.Encode()
}

// IntegrityProblem runs PRAGMA integrity_check on path over a read-only
// connection and returns "" when it says ok, else its first messages. The
// error is for the check not running at all (SQLite's code tells a corrupt
// or non-database file from busy).
func IntegrityProblem(ctx context.Context, path string) (string, error) {
	db, err := sql.Open("sqlite", readOnlyURI(path))
	if err != nil {
		return "", err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "PRAGMA integrity_check(20)")
	if err != nil {
		return "", err
	}
	defer rows.Close()
	var msgs []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return "", err
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		if len(msgs) == 0 || !IsCorrupt(err) {
			return "", err
		}
		// The check stops at damage it cannot walk past: what it listed
		// before that is the better evidence.
		msgs = append(msgs, err.Error())
	}
	if len(msgs) == 1 && msgs[0] == "ok" {
		return "", nil
	}
	return "integrity_check: " + strings.Join(msgs[:min(len(msgs), 3)], "; "), nil
}

// Health is what a reader can tell about a board file without writing it.
type Health struct {
	Problem string // "" when integrity_check says ok
	Schema  bool   // the tasks table exists
	Tasks   int    // rows in tasks (0 when there is no schema)
}

// Inspect reads path's health over a read-only connection: what the fixed
// gateway wants to see before it resumes a board it disabled as corrupt.
func Inspect(ctx context.Context, path string) (Health, error) {
	var h Health
	problem, err := IntegrityProblem(ctx, path)
	if err != nil {
		if IsCorrupt(err) {
			h.Problem = err.Error()
			return h, nil
		}
		return h, fmt.Errorf("kanban: inspect %s: %w", path, err)
	}
	if h.Problem = problem; problem != "" {
		return h, nil
	}
	db, err := sql.Open("sqlite", readOnlyURI(path))
	if err != nil {
		return h, err
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type='table' AND name='tasks'`).Scan(&n); err != nil {
		return h, fmt.Errorf("kanban: inspect %s: %w", path, err)
	}
	if h.Schema = n > 0; h.Schema {
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM tasks`).Scan(&h.Tasks); err != nil {
			return h, fmt.Errorf("kanban: inspect %s: %w", path, err)
		}
	}
	return h, nil
}

// Fingerprint is how Hermes' gateway recognizes "the same file" for its
// corrupt-board latch (#28439): the path's modification time and size. It
// is taken with stat, never by opening the file.
type Fingerprint struct {
	Exists  bool  `json:"exists"`
	MtimeNs int64 `json:"mtime_ns"`
	Size    int64 `json:"size"`
}

// FingerprintOf stats path.
func FingerprintOf(path string) Fingerprint {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return Fingerprint{}
	}
	return Fingerprint{Exists: true, MtimeNs: st.Mtim.Nano(), Size: st.Size}
}

func (f Fingerprint) String() string {
	if !f.Exists {
		return "missing"
	}
	return fmt.Sprintf("%d bytes, mtime %s", f.Size, time.Unix(0, f.MtimeNs).UTC().Format(time.RFC3339Nano))
}

// DamageIndex corrupts the closed board at path the way a torn write does:
// it overwrites the last 8 bytes of the cell area of index idx_tasks_status
// with fill. The header, the schema and the tables stay readable, and
// integrity_check reports rows missing from that index. It is a fault for
// tests and reproductions: it writes the file directly, so no connection to
// it may be open in this process, and none should be in any other.
func DamageIndex(ctx context.Context, path string, fill byte) error {
	db, err := sql.Open("sqlite", readOnlyURI(path))
	if err != nil {
		return err
	}
	var root, size int64
	err = db.QueryRowContext(ctx, `SELECT rootpage FROM sqlite_master WHERE name='idx_tasks_status'`).Scan(&root)
	if err == nil {
		err = db.QueryRowContext(ctx, `PRAGMA page_size`).Scan(&size)
	}
	db.Close()
	if err != nil {
		return fmt.Errorf("kanban: damage %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("kanban: damage %s: %w", path, err)
	}
	if _, err := f.WriteAt([]byte{fill, fill, fill, fill, fill, fill, fill, fill}, root*size-8); err != nil {
		f.Close()
		return fmt.Errorf("kanban: damage %s: %w", path, err)
	}
	return f.Close()
}

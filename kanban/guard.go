package kanban

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"modernc.org/sqlite"
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

// Backups lists the guard's backups of the board at path (the main files,
// not their -wal/-shm companions).
func Backups(path string) ([]string, error) {
	return filepath.Glob(escapeGlob(path) + ".corrupt.*.bak")
}

func escapeGlob(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`).Replace(s)
}

// backupCorrupt backs path up as mode says and returns the main backup file.
func backupCorrupt(ctx context.Context, path, mode string, proc *Process) (string, error) {
	switch mode {
	case "", BackupNone:
		return "", nil
	case BackupCopyTS:
		// Microseconds, so that detections in one second do not overwrite
		// each other: every detection is a new backup, as in #32593.
		name := path + ".corrupt." + time.Now().UTC().Format("20060102T150405.000000") + ".bak"
		return name, copySet(path, name)
	case BackupCopySHA:
		sum, err := fileSHA(path) // the raw whole-file read of #33804
		if err != nil {
			return "", err
		}
		name := path + ".corrupt." + sum[:16] + ".bak"
		if _, err := os.Stat(name); err == nil {
			return name, nil
		}
		return name, copySet(path, name)
	case BackupSQLite:
		return sqliteBackup(ctx, path, proc)
	}
	return "", fmt.Errorf("kanban: unknown backup mode %q (valid: %s)", mode, strings.Join(BackupModes, ", "))
}

// copySet copies the DB and whatever -wal/-shm exist with plain file reads,
// as shutil.copy2 does: the mechanism M1c.
func copySet(path, name string) error {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		err := copyFile(path+suffix, name+suffix)
		if errors.Is(err, fs.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			return fmt.Errorf("kanban: back up %s: %w", path, err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func fileSHA(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// backuper is the online-backup method of modernc's driver connection.
type backuper interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

// BackupTo copies the DB at src into the new file dst with SQLite's online
// backup API, from a read-only connection: all pages in one step, so the
// copy is one consistent snapshot (WAL content included) even while other
// processes write, and the source is never opened outside SQLite. Pages are
// copied without being interpreted, so a DB with a damaged B-tree still
// copies; one SQLite cannot read at all fails with its error (NOTADB …).
//
// immutable opens src with immutable=1 instead: no locks, no -wal or -shm
// created. That is only right for a file no process has open, and a caller
// must check afterwards that the file did not change while it was read.
func BackupTo(ctx context.Context, src, dst string, immutable bool) error {
	uri := readOnlyURI(src)
	if immutable {
		uri = FileURI(src) + "?immutable=1"
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		b, ok := dc.(backuper)
		if !ok {
			return fmt.Errorf("kanban: the SQLite driver has no online backup (%T)", dc)
		}
		bk, err := b.NewBackup(FileURI(dst))
		if err != nil {
			return err
		}
		for more := true; more; {
			if more, err = bk.Step(-1); err != nil {
				bk.Finish()
				return err
			}
		}
		return bk.Finish()
	})
}

// sqliteBackup is the fixed backup: through SQLite into a private temporary
// file, named by that copy's content, kept once per content.
func sqliteBackup(ctx context.Context, path string, proc *Process) (string, error) {
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := path + ".corrupt.tmp-" + hex.EncodeToString(rnd[:])
	defer os.Remove(tmp)
	defer os.Remove(tmp + "-journal")
	proc.add(path, 1)
	err := BackupTo(ctx, path, tmp, false)
	proc.add(path, -1)
	if err != nil {
		os.Remove(tmp)
		if code, ok := Code(err); !ok || code&0xff != 26 {
			return "", fmt.Errorf("kanban: back up %s through SQLite: %w", path, err)
		}
		// Not a database to SQLite: only the bytes themselves are left to
		// keep, and reading them is safe only while no connection of this
		// process can lose its locks by it (checked and copied under the
		// registry's lock).
		copied := false
		if err := proc.whileAlone(path, func() error { copied = true; return copyFile(path, tmp) }); err != nil {
			return "", fmt.Errorf("kanban: back up %s: %w", path, err)
		}
		if !copied {
			return "", fmt.Errorf("kanban: %s is not readable by SQLite and this process holds connections to it: no plain copy while they live", path)
		}
	}
	sum, err := fileSHA(tmp) // our own private copy: no one else has it open
	if err != nil {
		return "", fmt.Errorf("kanban: back up %s: %w", path, err)
	}
	name := path + ".corrupt." + sum[:16] + ".bak"
	if _, err := os.Stat(name); err == nil {
		return name, nil
	}
	if err := os.Rename(tmp, name); err != nil {
		return "", fmt.Errorf("kanban: back up %s: %w", path, err)
	}
	return name, nil
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

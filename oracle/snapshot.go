package oracle

// How `kanbanchaos check` reads a board that may be live — a Hermes gateway,
// its workers and the CLI writing it while we look:
//
//   - Never a plain open of the DB file in a process that holds SQLite
//     connections: closing any descriptor of the file drops every POSIX lock
//     the process holds on it (spec/corruption.md M1). The checker process
//     reads the board through SQLite only; plain reads (a hot journal's copy,
//     below) happen only while it holds no connection at all, and plain
//     reads in one process never touch another process's locks.
//   - A snapshot first, then the checks on the snapshot. SQLite's online
//     backup API copies every page, WAL content included, from a read-only
//     connection (mode=ro) in one step, i.e. inside one read transaction: a
//     consistent copy even while others commit. Only then do integrity_check,
//     quick_check and the history queries run, on the private copy, so the
//     live board is held by a reader for the length of a page copy, not of
//     an integrity check (in rollback-journal mode a long reader would make
//     writers wait and, past their busy timeout, fail).
//   - A read-only connection never writes the DB or the WAL, never
//     checkpoints, never deletes the sidecars. What it does write is the
//     -shm wal-index, SQLite's shared memory that every reader maps
//     read-write and marks its read position in. The DB file's bytes are
//     never changed.
//   - A board nobody has open (no -wal, -shm or -journal beside it, no
//     write for a second) is read with immutable=1 instead: no locks and
//     no files created — a read-only connection would create an empty -wal
//     and a -shm to read a WAL board and, being read-only, leave them
//     behind. The file is stat-ed again after the copy; if anything opened
//     or wrote it meanwhile, the copy is thrown away and taken the locked
//     way above.
//   - A hot rollback journal (a writer died mid-commit) cannot be read past
//     by a read-only connection (SQLITE_READONLY_ROLLBACK): the next writer
//     must roll it back. Then the DB and its journal are copied as files,
//     with no SQLite connection open in this process, and the copy is
//     opened read-write, which rolls the journal back in the copy only.
//     The same file copy (DB and -wal) serves a board too damaged for SQLite
//     to copy its pages, so that integrity_check can still say what is
//     wrong.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// ErrNotADatabase is returned by Snapshot for a file SQLite cannot read as
// a database at all.
var ErrNotADatabase = errors.New("not an SQLite database")

// Read methods a snapshot reports.
const (
	ReadBackupAPI    = "SQLite online backup API from a read-only connection (mode=ro), one step, into a private copy"
	ReadImmutable    = "SQLite online backup API from an immutable=1 connection (nobody had the board open), into a private copy"
	ReadHotJournal   = "file copy of the DB and its hot journal (a read-only connection cannot roll it back), taken with no SQLite connection open in this process"
	ReadCorruptCopy  = "file copy of the DB and its -wal (too damaged for SQLite to copy its pages), taken with no SQLite connection open in this process"
	snapshotFileName = "kanban.db"
)

// SnapshotInfo says how a board was read.
type SnapshotInfo struct {
	Path      string        `json:"-"` // the private copy
	Method    string        `json:"method"`
	Bytes     int64         `json:"bytes"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	WALHeader bool          `json:"wal_mode"` // the DB header says journal_mode=WAL
}

// Snapshot copies the board at path into dir (which it owns) as described
// above and returns the copy. ErrNotADatabase: SQLite cannot read the file;
// a corrupt board whose pages cannot even be copied gives an error
// kanban.IsCorrupt reports.
func Snapshot(ctx context.Context, path, dir string) (SnapshotInfo, error) {
	start := time.Now()
	// Sidecars lie beside the real file (SQLite resolves links too).
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	info := SnapshotInfo{Path: filepath.Join(dir, snapshotFileName), Method: ReadBackupAPI}
	var err error
	if before, quiet := quiescent(path); quiet {
		err = kanban.BackupTo(ctx, path, info.Path, true)
		if after, still := quiescent(path); err == nil && still && after == before {
			info.Method = ReadImmutable
		} else {
			// Someone opened it meanwhile, or it would not copy: read it
			// the locked way (which also gives the real error).
			os.Remove(info.Path)
			err = nil
		}
	}
	if info.Method == ReadBackupAPI {
		err = kanban.BackupTo(ctx, path, info.Path, false)
	}
	if code, ok := kanban.Code(err); ok && code == 776 { // SQLITE_READONLY_ROLLBACK
		os.Remove(info.Path)
		info.Method = ReadHotJournal
		err = copyFiles(path, info.Path)
	} else if ok && code&0xff == 11 { // SQLITE_CORRUPT
		// Too damaged for SQLite to copy its pages: take the files as they
		// are (no connection of this process is open now), so that
		// integrity_check can say what is wrong.
		os.Remove(info.Path)
		info.Method = ReadCorruptCopy
		err = copyFiles(path, info.Path)
	}
	if code, ok := kanban.Code(err); ok && code&0xff == 26 {
		return info, fmt.Errorf("%w (SQLite: %v)", ErrNotADatabase, err)
	}
	if err != nil {
		return info, fmt.Errorf("oracle: snapshot %s: %w", path, err)
	}
	info.Elapsed = time.Since(start)
	if st, err := os.Stat(info.Path); err == nil {
		info.Bytes = st.Size()
	}
	// The copy is ours alone: reading its header is safe.
	if f, err := os.Open(info.Path); err == nil {
		head := make([]byte, 20)
		if n, _ := io.ReadFull(f, head); n == 20 {
			info.WALHeader = head[18] == 2
		}
		f.Close()
	}
	return info, nil
}

// quiescent reports whether nobody has the board open, as far as the files
// tell: no -wal, -shm or -journal, and no write to the DB for a second (so
// that any write from now on moves its mtime). It uses stat only.
func quiescent(path string) (kanban.Fingerprint, bool) {
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Lstat(path + suffix); !errors.Is(err, fs.ErrNotExist) {
			return kanban.Fingerprint{}, false
		}
	}
	fp := kanban.FingerprintOf(path)
	return fp, fp.Exists && time.Since(time.Unix(0, fp.MtimeNs)) > time.Second
}

// copyFiles copies the DB and whichever of its -wal and -journal exist, as
// files; the -shm is rebuilt from the -wal by whoever opens the copy.
func copyFiles(path, dst string) error {
	for _, suffix := range []string{"", "-wal", "-journal"} {
		in, err := os.Open(path + suffix)
		if errors.Is(err, fs.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			return err
		}
		out, err := os.Create(dst + suffix)
		if err == nil {
			_, err = io.Copy(out, in)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
		}
		in.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// Sidecar is one file beside a board; Size -1 means absent.
type Sidecar struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// BoardFiles is what lies beside a board file, by stat only (never an open).
type BoardFiles struct {
	Files []Sidecar `json:"files"`
	// CorruptBackups are the integrity guard's backups of this board.
	CorruptBackups int `json:"corrupt_backups"`
}

// BoardFilesOf stats the board's -wal, -shm, -journal and lock files and
// counts its corrupt-board backups.
func BoardFilesOf(path string) BoardFiles {
	var s BoardFiles
	for _, suffix := range []string{"-wal", "-shm", "-journal", ".init.lock", ".dispatch.lock"} {
		sc := Sidecar{Name: filepath.Base(path) + suffix, Size: -1}
		if st, err := os.Stat(path + suffix); err == nil {
			sc.Size = st.Size()
		} else if !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		s.Files = append(s.Files, sc)
	}
	if bs, err := kanban.Backups(path); err == nil {
		s.CorruptBackups = len(bs)
	}
	return s
}

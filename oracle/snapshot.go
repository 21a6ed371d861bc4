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
//   - Nothing is ever created beside the board. A read-only connection to
//     a WAL board creates its -wal and -shm when they are missing (a board
//     closed less than a second ago, a damaged one, a stored artifact) and
//     leaves them behind. So a read-only connection is opened only when it
//     creates nothing: on a WAL board whose -wal and -shm both exist, or on
//     a rollback-journal board. Otherwise the DB and its -wal are copied as
//     files into the private directory (no connection of this process is
//     open; stat before and after must agree, else the copy is taken again)
//     and read there. The same private copy serves a -shm this user may not
//     map (a read-only directory it does not own).
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

// ErrBoardBusy is returned by Snapshot when the board could not be read
// consistently: a writer held it locked past the 5 s busy timeout, or its
// files kept changing under every file copy. Nothing is wrong with the
// board or the input; the audit is undecided.
var ErrBoardBusy = errors.New("the board is busy")

// ErrUnreadable is returned by Snapshot when the board's files cannot be
// read by this user (permissions): the input, not the board, is the problem.
var ErrUnreadable = errors.New("cannot read the board's files")

// Read methods a snapshot reports.
const (
	ReadBackupAPI    = "SQLite online backup API from a read-only connection (mode=ro), one step, into a private copy"
	ReadImmutable    = "SQLite online backup API from an immutable=1 connection (nobody had the board open), into a private copy"
	ReadPrivateFiles = "file copy of the DB and its -wal into a private directory (a read-only connection would have created -wal/-shm beside the board), taken with no SQLite connection open in this process and unchanged while copied, then the backup API from that copy"
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
// above and returns the copy; it never creates a file beside the board.
// ErrNotADatabase: SQLite cannot read the file; ErrBoardBusy: no
// consistent read could be taken; ErrUnreadable: permissions; a corrupt
// board whose pages cannot even be copied gives an error kanban.IsCorrupt
// reports.
func Snapshot(ctx context.Context, path, dir string) (SnapshotInfo, error) {
	start := time.Now()
	// Sidecars lie beside the real file (SQLite resolves links too).
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	info := SnapshotInfo{Path: filepath.Join(dir, snapshotFileName)}
	err := takeSnapshot(ctx, path, dir, &info)
	if code, ok := kanban.Code(err); ok && code&0xff == 26 {
		return info, fmt.Errorf("%w (SQLite: %v)", ErrNotADatabase, err)
	}
	if code, ok := kanban.Code(err); ok && code&0xff == 5 { // SQLITE_BUSY past the busy timeout
		return info, fmt.Errorf("%w: a writer held it locked for more than the 5 s busy timeout (SQLite: %v); try again", ErrBoardBusy, err)
	}
	if errors.Is(err, fs.ErrPermission) {
		return info, fmt.Errorf("%w: %v", ErrUnreadable, err)
	}
	if err != nil {
		return info, fmt.Errorf("oracle: snapshot %s: %w", path, err)
	}
	info.Elapsed = time.Since(start)
	if st, err := os.Stat(info.Path); err == nil {
		info.Bytes = st.Size()
	}
	// The copy is ours alone: reading its header is safe.
	info.WALHeader = walHeader(info.Path)
	return info, nil
}

// takeSnapshot takes the copy by the first method that fits the board's state
// and creates nothing beside it.
func takeSnapshot(ctx context.Context, path, dir string, info *SnapshotInfo) error {
	if before, quiet := quiescent(path); quiet {
		err := kanban.BackupTo(ctx, path, info.Path, true)
		if after, still := quiescent(path); err == nil && still && after == before {
			info.Method = ReadImmutable
			return nil
		}
		// Someone opened it meanwhile, or it would not copy: read it by
		// one of the ways below (which also give the real error).
		os.Remove(info.Path)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if !readOnlyCreatesNothing(path) {
		return privateFiles(ctx, path, dir, info)
	}
	info.Method = ReadBackupAPI
	err := kanban.BackupTo(ctx, path, info.Path, false)
	code, _ := kanban.Code(err)
	switch {
	case err == nil:
		return nil
	case code == 776: // SQLITE_READONLY_ROLLBACK
		os.Remove(info.Path)
		info.Method = ReadHotJournal
		return copyFiles(path, info.Path)
	case code&0xff == 11: // SQLITE_CORRUPT
		// Too damaged for SQLite to copy its pages: take the files as they
		// are (no connection of this process is open now), so that
		// integrity_check can say what is wrong.
		os.Remove(info.Path)
		info.Method = ReadCorruptCopy
		return copyFiles(path, info.Path)
	case code&0xff == 8 || code&0xff == 14: // SQLITE_READONLY_*, SQLITE_CANTOPEN: a -shm we may not map
		os.Remove(info.Path)
		return privateFiles(ctx, path, dir, info)
	}
	return err
}

// readOnlyCreatesNothing reports whether a read-only connection to path
// would leave no file beside it: a WAL board needs its -wal and -shm to
// exist already (a read-only connection creates them and, being
// read-only, leaves them behind); a rollback-journal board's readers
// create nothing. It uses stat and the DB header only.
func readOnlyCreatesNothing(path string) bool {
	wal, shm := exists(path+"-wal"), exists(path+"-shm")
	if wal && shm {
		return true
	}
	return !walHeader(path) && !wal && !shm
}

// privateFiles copies the DB, its -wal and -journal into dir as files and
// takes the snapshot from that copy, where SQLite may create whatever it
// needs. A copy is kept only if the board's files did not change while it
// was taken (nobody opened or wrote the board meanwhile); after a few
// tries that all changed, the board is busy. A copy too damaged for the
// backup API is itself the snapshot, as for ReadCorruptCopy.
func privateFiles(ctx context.Context, path, dir string, info *SnapshotInfo) error {
	src := filepath.Join(dir, "files", snapshotFileName)
	if err := os.MkdirAll(filepath.Dir(src), 0o700); err != nil {
		return err
	}
	stable := false
	for try := 0; try < 5 && !stable; try++ {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		before := fileState(path)
		if err := copyFiles(path, src); err != nil {
			return err
		}
		stable = fileState(path) == before
		if !stable {
			time.Sleep(time.Duration(50<<try) * time.Millisecond)
		}
	}
	if !stable {
		return fmt.Errorf("%w: its files changed under each of 5 file copies", ErrBoardBusy)
	}
	info.Method = ReadPrivateFiles
	err := kanban.BackupTo(ctx, src, info.Path, false)
	if code, ok := kanban.Code(err); ok && code&0xff == 11 {
		os.Remove(info.Path)
		info.Method = ReadCorruptCopy
		return copyFiles(src, info.Path)
	}
	return err
}

// boardFiles is what stat says of a board and its sidecars.
type boardFiles [4]kanban.Fingerprint

func fileState(path string) boardFiles {
	var s boardFiles
	for i, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		s[i] = kanban.FingerprintOf(path + suffix)
	}
	return s
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// walHeader reports whether the file's header says journal_mode=WAL
// (read and write versions 2). A plain read: only of a file no connection
// of this process has open.
func walHeader(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	head := make([]byte, 20)
	if n, _ := io.ReadFull(f, head); n < 20 || string(head[:16]) != "SQLite format 3\x00" {
		return false
	}
	return head[18] == 2 || head[19] == 2
}

// quiescent reports whether nobody has the board open, as far as the files
// tell: no -wal, -shm or -journal, and no write to the DB for a second (so
// that any write from now on moves its mtime). It uses stat only.
func quiescent(path string) (kanban.Fingerprint, bool) {
	for _, suffix := range []string{"-wal", "-shm", "-journal"} {
		if exists(path + suffix) {
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
			os.Remove(dst + suffix) // gone since an earlier try
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

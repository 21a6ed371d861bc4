// Package kanban is the board store: a Hermes-compatible kanban.db schema on
// modernc.org/sqlite, Connect with Hermes' connection pragmas as knobs, board
// and path resolution from the HERMES_KANBAN_* environment, and the
// transactional operations the dispatcher and workers perform. Every write is
// one BEGIN IMMEDIATE transaction, as Hermes' write_txn does.
//
// The package knows nothing about processes: the dispatcher and the fake
// workers decide when to call what.
package kanban

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"modernc.org/sqlite"
)

// Options are the connection knobs. Each mirrors a pragma or a habit of
// Hermes' connect().
type Options struct {
	JournalMode       string `json:"journal_mode"`       // WAL, DELETE, …
	Synchronous       string `json:"synchronous"`        // OFF, NORMAL, FULL
	BusyTimeoutMs     int    `json:"busy_timeout_ms"`    // Python's sqlite3 default timeout is 5 s
	WALAutocheckpoint int    `json:"wal_autocheckpoint"` // pages; 0 leaves SQLite's default (1000)
	// WALEveryConnect re-issues the mutating `PRAGMA journal_mode=WAL` on
	// every connect, as v0.14's apply_wal_with_fallback did (M3). Off: the
	// pragma is skipped when the file is already in that mode.
	WALEveryConnect bool `json:"wal_every_connect"`
	// EIOFallback switches to journal_mode=DELETE when setting WAL fails
	// with "disk I/O error" or a locking-protocol error (M2, v0.14).
	EIOFallback bool `json:"eio_fallback"`
	// RawHeaderRead reads the DB header with a plain open/read/close before
	// every connect (M1a, v0.15).
	RawHeaderRead bool `json:"raw_header_read"`
	// PostCommitProbe re-reads the header's page count after every COMMIT
	// (M1b, v0.15).
	PostCommitProbe bool `json:"post_commit_probe"`
	// GuardRawReads skips every raw read of the file while this process
	// holds a connection to it (the fix): stat only.
	GuardRawReads bool `json:"guard_raw_reads"`
	// InodeGuard remembers the board file's (device, inode) at connect and
	// refuses every write once the path names another file: a board swapped
	// or deleted under an open connection (M6) is not written to blindly.
	InodeGuard bool `json:"inode_guard"`
	// FailClosed refuses to give a schema to an existing empty file: a
	// board that was there is never silently recreated empty (#30687).
	FailClosed bool `json:"fail_closed"`
	// OFDLocking asks for modernc's OFD locks on the main DB file. It is a
	// process-wide switch: processes get it from their environment (OFDEnv).
	OFDLocking bool `json:"ofd_locking"`
	// Guard is the handling of corrupt, empty and missing board files
	// (guard.go).
	Guard

	// Process is the connection registry of the calling OS process (nil:
	// a private one, i.e. this connection is alone in its process).
	Process *Process `json:"-"`
	// OnCommit, if set, is told of every acknowledged COMMIT, after it
	// returned: what the transaction wrote. Processes append it to the ledger.
	OnCommit func(Commit) `json:"-"`
}

// Commit is what one acknowledged transaction wrote.
type Commit struct {
	// Began is when the transaction began checking and writing
	// (CLOCK_MONOTONIC ns): a commit that began before a board file was
	// swapped legitimately went to the old file.
	Began    int64   `json:"began_ns"`
	Op       string  `json:"op"`
	Task     string  `json:"task,omitempty"`
	Run      int64   `json:"run,omitempty"`      // a task_runs row the transaction inserted
	Events   []int64 `json:"events,omitempty"`   // task_events rows it inserted
	Comments []int64 `json:"comments,omitempty"` // task_comments rows it inserted
}

// OFDEnv is the environment variable that turns on modernc's OFD locks for
// the main DB file. The library reads it once, when the process starts, and
// the switch is process-wide, so a process gets OFD locking by being started
// with it (older engines, such as SQLite 3.50.4's modernc v1.39.1, ignore it).
const OFDEnv = "MODERNC_SQLITE_OFD_LOCK"

// OFDFromEnv reports whether this process was started with OFD locking on,
// by the library's own rule: set, and not empty or starting with "0".
func OFDFromEnv() bool {
	v := os.Getenv(OFDEnv)
	return v != "" && !strings.HasPrefix(v, "0")
}

// DefaultOptions are Hermes v0.14's connection settings.
func DefaultOptions() Options {
	return Options{JournalMode: "WAL", Synchronous: "NORMAL", BusyTimeoutMs: 5000, WALEveryConnect: true, EIOFallback: true}
}

// Board is one open connection to a board DB. A Board holds a single SQLite
// connection, like one Hermes connect(), and is not for concurrent use by
// several goroutines that each expect their own transaction.
type Board struct {
	db      *sql.DB
	path    string
	opts    Options
	now     func() float64
	pending *Commit // what the transaction in flight wrote
	closed  bool
	file    fileKey // (device, inode) at connect, for InodeGuard
}

type fileKey struct{ dev, ino uint64 }

// ErrBoardGone is returned when the board file an operation meant is not
// (or no longer) the file at its path.
var ErrBoardGone = errors.New("kanban: board file replaced or emptied")

// monoNow reads CLOCK_MONOTONIC, the clock the ledger uses across processes.
func monoNow() int64 {
	var ts syscall.Timespec
	if err := clockGettime(&ts); err != nil {
		return 0
	}
	return ts.Nano()
}

func fileID(path string) (fileKey, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return fileKey{}, err
	}
	return fileKey{uint64(st.Dev), st.Ino}, nil
}

// Connect opens (creating if needed) the board DB at path with o's pragmas
// and makes sure the schema exists, as Hermes' connect() does.
func Connect(ctx context.Context, path string, o Options) (*Board, error) {
	if o.Process == nil {
		o.Process = NewProcess()
	}
	// Hermes' connect() creates the board directory on first use.
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("kanban: board directory: %w", err)
	}
	existed := false   // a file was at path before this connect opened it
	var want boardFile // with FailClosed: the file this connect opens
	if o.FailClosed {
		var err error
		if want, existed, err = lookBeforeOpen(path, o.Process); err != nil {
			return nil, err
		}
	}
	if o.RawHeaderRead {
		read := func() error { return rawHeaderRead(path) }
		if o.GuardRawReads {
			// Checked and read under the registry's lock: a connection that
			// another goroutine opens meanwhile would lose its fresh locks to
			// this read's close (found by kanbanchaos fuzz on m1-header-probe).
			read = func() error { return o.Process.whileAlone(path, func() error { return rawHeaderRead(path) }) }
		}
		if err := read(); err != nil {
			return nil, err
		}
	}
	if err := o.guard(ctx, path); err != nil {
		return nil, err
	}
	if o.FailClosed && !existed {
		var err error
		if want, err = createBoardFile(path, o.Process); err != nil {
			return nil, err
		}
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.BusyTimeoutMs))
	q.Add("_pragma", "foreign_keys(1)")
	if o.Synchronous != "" {
		q.Add("_pragma", fmt.Sprintf("synchronous(%s)", o.Synchronous))
	}
	if o.WALAutocheckpoint > 0 {
		q.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", o.WALAutocheckpoint))
	}
	q.Set("_txlock", "immediate")
	if o.FailClosed {
		q.Set("mode", "rw") // the file is there (or created above): SQLite never creates one
	}
	db, err := sql.Open("sqlite", FileURI(path)+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("kanban: open %s: %w", path, err)
	}
	// One connection per Board, as one Hermes connect(); pragmas set on it
	// stay for its lifetime.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	b := &Board{db: db, path: path, opts: o, now: wallNow}
	if o.InodeGuard {
		b.file, _ = fileID(path) // a file SQLite is about to create has no id yet: taken at first write
	}
	o.Process.add(path, 1)
	if o.FailClosed {
		if err := openedFile(ctx, db, path, want.key); err != nil {
			b.Close()
			return nil, err
		}
		b.file = want.key
	}
	if existed {
		// The stat above and SQLite's open are not one step: the file may
		// have been swapped for an empty one in between. Asked again through
		// this connection, before anything (the journal mode, the schema)
		// writes to the file it opened.
		objects, err := schemaObjects(ctx, b.db, path, want.key)
		if err != nil {
			b.Close()
			return nil, err
		}
		if objects == 0 {
			b.Close()
			return nil, fmt.Errorf("%w: %s was a file when this connect began but holds no schema now (emptied or replaced meanwhile); refusing to create a fresh schema in it", ErrBoardGone, path)
		}
	}
	if err := b.setJournalMode(ctx); err != nil {
		b.Close()
		return nil, err
	}
	if first, done := o.Process.claimInit(path); first {
		err := b.write(ctx, "init_schema", "", func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, schema)
			return err
		})
		done(err == nil)
		if err != nil {
			b.Close()
			return nil, fmt.Errorf("kanban: create schema in %s: %w", path, err)
		}
	}
	return b, nil
}

func (b *Board) setJournalMode(ctx context.Context) error {
	o := b.opts
	if o.JournalMode == "" {
		return nil
	}
	if !o.WALEveryConnect {
		var cur string
		if err := b.db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&cur); err != nil {
			return fmt.Errorf("kanban: read journal_mode of %s: %w", b.path, err)
		}
		if strings.EqualFold(cur, o.JournalMode) {
			return nil
		}
	}
	got, err := b.pragmaJournal(ctx, o.JournalMode)
	if err != nil && o.EIOFallback && strings.EqualFold(o.JournalMode, "WAL") && walUnsupported(err) {
		// v0.14's apply_wal_with_fallback: treat the error as "WAL not
		// supported here" and switch the live file to DELETE (M2).
		got, err = b.pragmaJournal(ctx, "DELETE")
		if err == nil && strings.EqualFold(got, "delete") {
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("kanban: set journal_mode=%s on %s: %w", o.JournalMode, b.path, err)
	}
	if !strings.EqualFold(got, o.JournalMode) {
		// SQLite answers with the mode it kept when it cannot switch.
		return fmt.Errorf("kanban: set journal_mode=%s on %s: SQLite kept %s", o.JournalMode, b.path, got)
	}
	return nil
}

func (b *Board) pragmaJournal(ctx context.Context, mode string) (string, error) {
	var got string
	err := b.db.QueryRowContext(ctx, "PRAGMA journal_mode="+mode).Scan(&got)
	return got, err
}

// walUnsupported is v0.14's test for "WAL cannot work here": locking
// protocol, not authorized, or any disk I/O error.
func walUnsupported(err error) bool {
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "locking protocol") || strings.Contains(msg, "not authorized") || strings.Contains(msg, "disk i/o error")
}

// Path is the DB file this board was opened on.
func (b *Board) Path() string { return b.path }

// DB exposes the connection for read-only queries in tests and tools.
func (b *Board) DB() *sql.DB { return b.db }

// Close closes the connection.
func (b *Board) Close() error {
	// The connection leaves the registry only once it is closed: until
	// then it holds locks a raw read's close would drop.
	err := b.db.Close()
	if !b.closed {
		b.closed = true
		b.opts.Process.add(b.path, -1)
	}
	return err
}

func wallNow() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// SetClock replaces the board's clock (Unix seconds); tests use it.
func (b *Board) SetClock(now func() float64) { b.now = now }

// Now is the board's clock in Unix seconds.
func (b *Board) Now() float64 { return b.now() }

// write runs fn in one BEGIN IMMEDIATE transaction (the DSN's _txlock),
// tells OnCommit what it wrote once COMMIT returned, then runs the
// post-commit probe if that knob is on.
func (b *Board) write(ctx context.Context, op, task string, fn func(tx *sql.Tx) error) error {
	began := monoNow()
	if b.opts.InodeGuard {
		// stat by path: never an open of the file, which would drop locks.
		now, err := fileID(b.path)
		switch {
		case err != nil:
			return fmt.Errorf("%w: %s: %v", ErrBoardGone, b.path, err)
		case b.file == (fileKey{}):
			b.file = now
		case now != b.file:
			return fmt.Errorf("%w: %s is now another file (inode %d, connected to %d); refusing to write", ErrBoardGone, b.path, now.ino, b.file.ino)
		}
	}
	tx, err := b.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin immediate: %w", err)
	}
	b.pending = &Commit{Began: began, Op: op, Task: task}
	defer func() { b.pending = nil }()
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	if b.opts.OnCommit != nil {
		b.opts.OnCommit(*b.pending)
	}
	if b.opts.PostCommitProbe {
		raw := !(b.opts.GuardRawReads && b.opts.Process.Live(b.path) > 0)
		if err := postCommitProbe(b.path, raw); err != nil {
			return err
		}
	}
	return nil
}

func (b *Board) event(ctx context.Context, tx *sql.Tx, task string, run int64, kind string, payload map[string]any) error {
	var p any
	if payload != nil {
		data, err := json.Marshal(payload)
		if err != nil {
			return fmt.Errorf("encode %s payload: %w", kind, err)
		}
		p = string(data)
	}
	var r any
	if run > 0 {
		r = run
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO task_events (task_id, run_id, kind, payload, created_at) VALUES (?,?,?,?,?)`,
		task, r, kind, p, b.now())
	if err != nil {
		return fmt.Errorf("insert %s event: %w", kind, err)
	}
	if id, err := res.LastInsertId(); err == nil && b.pending != nil {
		b.pending.Events = append(b.pending.Events, id)
	}
	return nil
}

// NewTaskID returns a Hermes-style id: t_ + 8 hex digits.
func NewTaskID() string {
	var buf [4]byte
	rand.Read(buf[:])
	return "t_" + hex.EncodeToString(buf[:])
}

// SQLiteVersion is the version of the SQLite library linked into this
// binary (modernc.org/sqlite v1.62.0 links 3.54.1, v1.39.1 links 3.50.4).
func SQLiteVersion() string {
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		return "unknown"
	}
	defer db.Close()
	var v string
	if err := db.QueryRow("SELECT sqlite_version()").Scan(&v); err != nil {
		return "unknown"
	}
	return v
}

// Code returns SQLite's extended result code carried by err, if any.
func Code(err error) (int, bool) {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code(), true
	}
	return 0, false
}

// IsCorrupt reports whether err says the DB is corrupt or not a database
// (SQLITE_CORRUPT and its extended codes, SQLITE_NOTADB).
func IsCorrupt(err error) bool {
	code, ok := Code(err)
	return ok && (code&0xff == 11 || code&0xff == 26)
}

// truncate cuts s to at most n bytes, as Hermes truncates
// last_failure_error to 500, without splitting a UTF-8 sequence (Python's
// sqlite3 cannot decode a column that ends in half a character).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// FileURI turns a path into an SQLite file: URI. SQLite decodes %XX in a URI
// and ends the path at '?' or '#', so those three are escaped: a board pinned
// at ".../a#b/kanban.db" must not open ".../a".
func FileURI(path string) string {
	return "file:" + strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
}

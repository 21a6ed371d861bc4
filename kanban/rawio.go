package kanban

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Process is what one OS process knows about its own connections: how many
// it holds open per board file. POSIX locks belong to the process, so a plain
// open/close of a board file anywhere in the process drops the locks of all
// its connections to that file (mechanism M1). The fixed variant asks
// Process before any raw read; the buggy variants read regardless.
//
// One Process per OS process: the harness shares one among its in-process
// dispatchers, each worker has its own.
type Process struct {
	mu   sync.Mutex
	live map[string]int
	// initialized is Hermes' _INITIALIZED_PATHS: the schema is ensured on
	// the first connect of a process only.
	initialized map[string]bool
}

// NewProcess returns an empty registry.
func NewProcess() *Process { return &Process{live: map[string]int{}, initialized: map[string]bool{}} }

// claimInit reports whether this is the process's first init of path, and
// marks it done; undo with done(false) when the init failed.
func (p *Process) claimInit(path string) (first bool, done func(ok bool)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := abs(path)
	if p.initialized[key] {
		return false, func(bool) {}
	}
	p.initialized[key] = true
	return true, func(ok bool) {
		if !ok {
			p.mu.Lock()
			delete(p.initialized, key)
			p.mu.Unlock()
		}
	}
}

func (p *Process) add(path string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live[abs(path)] += n
}

// whileAlone runs read only if this process holds no connection to path,
// and keeps the registry locked while it runs. A connection registers (add)
// before it opens the file, so one opened meanwhile by another goroutine
// waits for the read: checking Live and then reading would leave a window in
// which the read's close drops the locks that connection just took (M1).
func (p *Process) whileAlone(path string, read func() error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live[abs(path)] > 0 {
		return nil
	}
	return read()
}

// Live reports how many connections this process holds to path.
func (p *Process) Live(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.live[abs(path)]
}

func abs(path string) string {
	if a, err := filepath.Abs(path); err == nil {
		return a
	}
	return path
}

var sqliteMagic = []byte("SQLite format 3\x00")

// rawHeaderRead is Hermes' _validate_sqlite_header (M1a): a plain
// open/read(64)/close of the DB file. The close drops every POSIX lock this
// process holds on the file, whatever connection took it. A missing or empty
// file passes; anything that is not SQLite fails closed.
func rawHeaderRead(path string) error {
	st, err := os.Stat(path)
	if err != nil || st.Size() == 0 {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("kanban: read header of %s: %w", path, err)
	}
	head := make([]byte, 64)
	n, _ := f.Read(head)
	f.Close()
	if n < len(sqliteMagic) || !bytes.Equal(head[:len(sqliteMagic)], sqliteMagic) {
		return fmt.Errorf("kanban: %s: file is not a database (header %q)", path, head[:min(n, 16)])
	}
	return nil
}

// ErrTornExtend is matched (errors.Is) by the post-commit probe's verdict
// that the file is shorter than its header says. It is raised after the
// COMMIT returned: the write it reports on is durable.
var ErrTornExtend = errors.New("torn extend")

// IsAlarm reports whether err is this code's own verdict that the board is
// corrupt — the post-commit probe's torn extend, the corrupt-board guard —
// rather than an error from SQLite. On an intact board the verdict is
// false (a ledger Alarm; the oracle's no-false-alarm).
func IsAlarm(err error) bool { return errors.Is(err, ErrTornExtend) || errors.Is(err, ErrCorrupt) }

// postCommitProbe is Hermes' _check_file_length_invariant (M1b): after a
// COMMIT, read the header's page count (bytes 28–31) and page size and
// compare with the file size. raw reads them with a plain open/close, which
// drops the process's locks; otherwise only stat is used (the page count the
// check needs comes from SQLite in the fixed design, so nothing is read).
func postCommitProbe(path string, raw bool) error {
	st, err := os.Stat(path)
	if err != nil || !raw {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	head := make([]byte, 32)
	n, _ := f.ReadAt(head, 0)
	f.Close()
	if n < 32 {
		return nil
	}
	pageSize := int64(binary.BigEndian.Uint16(head[16:18]))
	if pageSize == 1 {
		pageSize = 65536
	}
	pages := int64(binary.BigEndian.Uint32(head[28:32]))
	if pages*pageSize > st.Size() {
		return fmt.Errorf("kanban: %s: %w: header says %d pages of %d bytes, file has %d bytes", path, ErrTornExtend, pages, pageSize, st.Size())
	}
	return nil
}

func clockGettime(ts *syscall.Timespec) error {
	var t unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &t); err != nil {
		return err
	}
	ts.Sec, ts.Nsec = t.Sec, t.Nsec
	return nil
}

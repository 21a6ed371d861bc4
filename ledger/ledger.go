// Package ledger is the append-only history that every process of a run
// writes: each worker start and exit, each acknowledged commit, each SQLite
// error a process saw, and each dispatcher tick. The oracle counts spawns
// from it, so the count never depends on the board DB that may itself be
// wrong or corrupt.
//
// The schema is plain JSON with the field names below: processes that are
// not ours (the Python driver of a real Hermes dispatcher) write the same
// lines.
//
// One entry is one JSON line written with a single O_APPEND write(2), so
// concurrent writers never interleave and a process killed at any moment
// leaves either a whole line or nothing.
package ledger

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Kind says what an entry records.
type Kind string

const (
	// Start is written by a worker process before it does anything else.
	Start Kind = "start"
	// SQLiteError is written by a process that saw an error from SQLite.
	SQLiteError Kind = "sqlite_error"
	// Commit is written after a COMMIT returned: what the transaction wrote.
	// The oracle requires every acknowledged write to be in the final DB.
	// A dispatcher's commit may carry its Board.
	Commit Kind = "commit"
	// Exit is written by a worker right before it exits, on every path that
	// knows its task: Exit holds the exit status (a pointer, so that 0 is
	// written too). A worker killed by a signal writes none. The oracle
	// reads the workers' own exit codes from it, whatever the dispatcher
	// booked them as: exit 75 must never count toward the breaker, exit 0
	// without completing spends the protocol budget.
	Exit Kind = "exit"
	// Tick is written by a dispatcher (Who = its name, e.g. "d1") after
	// every tick — one that writes tick entries writes one for each of its
	// ticks, so the oracle times its progress from them. Began is when the
	// tick started and Mono when it ended (both CLOCK_MONOTONIC), Board the
	// board slug, Op "skipped_locked" when the tick was skipped because
	// another dispatcher held the dispatch lock, and Message the error text
	// when the tick raised (empty otherwise).
	Tick Kind = "tick"
	// Settings is written once by a dispatcher at its start: Message holds a
	// JSON object of the settings it actually runs with (tick interval,
	// failure limit, cooldown …), for people reading the ledger.
	Settings Kind = "settings"
	// Alarm is written by a process whose own corruption check — not
	// SQLite — told it the board is damaged (Hermes' post-commit
	// file-length check, "torn-extend detected"; its integrity guard): Op
	// is the call the alarm aborted, Message its text. On an intact board
	// the alarm is false, and the call was told a durable write failed.
	Alarm Kind = "corruption_alarm"
)

// SkippedLocked is a Tick entry's Op when the tick did nothing because
// another dispatcher held the board's dispatch lock.
const SkippedLocked = "skipped_locked"

// Entry is one line of the ledger.
type Entry struct {
	Kind    Kind    `json:"kind"`
	PID     int     `json:"pid"`
	Task    string  `json:"task,omitempty"`
	Run     int64   `json:"run,omitempty"`
	Profile string  `json:"profile,omitempty"`
	Lock    string  `json:"claim_lock,omitempty"`
	Mono    int64   `json:"mono_ns"`        // CLOCK_MONOTONIC: comparable across processes of one boot
	Wall    float64 `json:"wall"`           // Unix seconds, to line entries up with DB timestamps
	Code    int     `json:"code,omitempty"` // SQLiteError: the extended result code
	// Exit entries: the worker's exit status. A pointer because Code's
	// omitempty would drop the most common status, 0.
	Exit    *int   `json:"exit,omitempty"`
	Message string `json:"msg,omitempty"`
	// Who wrote it: "worker", or the dispatcher's name ("d1").
	Who string `json:"who,omitempty"`
	// Board is the board slug a dispatcher's tick (or commit) was for.
	Board string `json:"board,omitempty"`
	// Commit entries: the operation and the rows it inserted.
	Op     string  `json:"op,omitempty"`
	Began  int64   `json:"began_ns,omitempty"` // when the transaction (a Tick: the tick) began (CLOCK_MONOTONIC)
	Events []int64 `json:"events,omitempty"`
	// EventKinds, when set, is the kind of each of Events, in order: after
	// a lost commit SQLite hands the lost rows' ids out again, so an id
	// alone can be found in the board holding another event.
	EventKinds []string `json:"event_kinds,omitempty"`
	Comments   []int64  `json:"comments,omitempty"`
}

// ExitCode is the Exit field for status n.
func ExitCode(n int) *int { return &n }

// ExitStatus is an Exit entry's status; ok is false for other entries and
// for an exit entry without a status.
func (e Entry) ExitStatus() (code int, ok bool) {
	if e.Kind != Exit || e.Exit == nil {
		return 0, false
	}
	return *e.Exit, true
}

// MonoNow reads CLOCK_MONOTONIC. Go's own monotonic clock is private to a
// process, but ledger times must be comparable across processes.
func MonoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return time.Now().UnixNano() // never happens on Linux; keep a usable value
	}
	return ts.Nano()
}

// WallNow is the current time in Unix seconds, as the board stores times.
func WallNow() float64 { return float64(time.Now().UnixNano()) / 1e9 }

// Append writes e as one line with one write(2). Mono and Wall are filled in
// when zero.
func Append(path string, e Entry) error {
	if e.Mono == 0 {
		e.Mono = MonoNow()
	}
	if e.Wall == 0 {
		e.Wall = WallNow()
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("ledger: encode entry: %w", err)
	}
	line = append(line, '\n')
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("ledger: open %s: %w", path, err)
	}
	n, werr := f.Write(line)
	cerr := f.Close()
	if werr != nil {
		return fmt.Errorf("ledger: append to %s: %w", path, werr)
	}
	if n != len(line) {
		return fmt.Errorf("ledger: short append to %s: %d of %d bytes", path, n, len(line))
	}
	if cerr != nil {
		return fmt.Errorf("ledger: close %s: %w", path, cerr)
	}
	return nil
}

// History is a parsed ledger.
type History struct {
	Entries []Entry
	// Malformed counts lines that did not parse. A whole-line writer never
	// produces one, so a non-zero count means something else wrote here.
	Malformed int
}

// Read parses the ledger at path. A missing file is an empty history: a run
// in which no worker started has written nothing.
func Read(path string) (History, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return History{}, nil
	}
	if err != nil {
		return History{}, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	defer f.Close()
	return Parse(f)
}

// Parse reads ledger lines from r.
func Parse(r io.Reader) (History, error) {
	var h History
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var e Entry
		if err := json.Unmarshal(line, &e); err != nil || e.Kind == "" {
			h.Malformed++
			continue
		}
		h.Entries = append(h.Entries, e)
	}
	if err := sc.Err(); err != nil {
		return h, fmt.Errorf("ledger: read: %w", err)
	}
	return h, nil
}

// Starts returns the worker-start entries per task, in ledger order.
func (h History) Starts() map[string][]Entry {
	out := map[string][]Entry{}
	for _, e := range h.Entries {
		if e.Kind == Start {
			out[e.Task] = append(out[e.Task], e)
		}
	}
	return out
}

// Exits returns the worker-exit entries, in ledger order.
func (h History) Exits() []Entry { return h.kind(Exit) }

// Alarms returns the corruption-alarm entries, in ledger order.
func (h History) Alarms() []Entry { return h.kind(Alarm) }

// Ticks returns the dispatchers' tick entries per dispatcher (Who), in
// ledger order.
func (h History) Ticks() map[string][]Entry {
	out := map[string][]Entry{}
	for _, e := range h.kind(Tick) {
		out[e.Who] = append(out[e.Who], e)
	}
	return out
}

func (h History) kind(k Kind) []Entry {
	var out []Entry
	for _, e := range h.Entries {
		if e.Kind == k {
			out = append(out, e)
		}
	}
	return out
}

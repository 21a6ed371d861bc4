package subject

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
)

// observer watches, while connections are open, for the fingerprints of
// lock cancellation (M1): this process holding file descriptors to a
// deleted -wal/-shm, and a sidecar replaced (new inode) under open
// connections. It only reads /proc and stats paths — it never opens a board
// file, which would itself drop this process's locks.
type observer struct {
	db        string
	startMono int64
	mu        sync.Mutex
	seen      []oracle.Observation
	reported  map[string]bool
	inodes    map[string]uint64
	wal       []WALSample // -wal sizes over time, for the checkpoint probe
}

func newObserver(db string, startMono int64) *observer {
	return &observer{db: db, startMono: startMono, reported: map[string]bool{}, inodes: map[string]uint64{}}
}

// run polls every interval until ctx ends.
func (o *observer) run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() {
		o.scanFDs(ctx)
		o.statSidecars(ctx)
	})
}

// every calls poll each interval until ctx ends.
func every(ctx context.Context, interval time.Duration, poll func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		poll()
	}
}

func (o *observer) add(ctx context.Context, kind, key, detail string) {
	if ctx.Err() != nil {
		return // the run is closing its connections; sidecars may go now
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.reported[key] {
		return
	}
	o.reported[key] = true
	ms := float64(ledger.MonoNow()-o.startMono) / 1e6
	o.seen = append(o.seen, oracle.Observation{Kind: kind, AtMs: float64(int64(ms*10)) / 10, Detail: detail})
}

func (o *observer) scanFDs(ctx context.Context) {
	dir := "/proc/self/fd"
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasSuffix(target, " (deleted)") {
			continue
		}
		file := strings.TrimSuffix(target, " (deleted)")
		if file == o.db+"-wal" || file == o.db+"-shm" {
			o.add(ctx, "deleted-sidecar-fd", "fd:"+target, fmt.Sprintf("this process (pid %d) holds fd %s -> %s", os.Getpid(), e.Name(), target))
		}
	}
}

func (o *observer) statSidecars(ctx context.Context) {
	for _, suffix := range []string{"-wal", "-shm"} {
		path := o.db + suffix
		var st syscall.Stat_t
		if err := syscall.Stat(path, &st); err != nil {
			continue // not there (yet, or in a rollback-journal mode)
		}
		o.mu.Lock()
		prev, known := o.inodes[suffix]
		o.inodes[suffix] = st.Ino
		if suffix == "-wal" {
			o.wal = append(o.wal, WALSample{Mono: ledger.MonoNow(), Size: st.Size})
		}
		o.mu.Unlock()
		if known && prev != st.Ino {
			o.add(ctx, "sidecar-replaced", "ino:"+suffix+strconv.FormatUint(st.Ino, 10),
				fmt.Sprintf("%s was replaced (inode %d -> %d) while connections were open", filepath.Base(path), prev, st.Ino))
		}
	}
}

// sampleWAL records the -wal's size every interval until ctx ends, for a
// subject the harness does not run in its own process: a stat, never an
// open, so it drops nobody's locks. (The observer's other watches read this
// process's own descriptors and cannot see a subject's.)
func sampleWAL(ctx context.Context, db string, interval time.Duration) func() []WALSample {
	var mu sync.Mutex
	var wal []WALSample
	done := make(chan struct{})
	go func() {
		defer close(done)
		every(ctx, interval, func() {
			var st syscall.Stat_t
			if syscall.Stat(db+"-wal", &st) == nil {
				mu.Lock()
				wal = append(wal, WALSample{Mono: ledger.MonoNow(), Size: st.Size})
				mu.Unlock()
			}
		})
	}()
	return func() []WALSample {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(wal)
	}
}

// rebaseline forgets the sidecar inodes seen so far.
func (o *observer) rebaseline() {
	o.mu.Lock()
	defer o.mu.Unlock()
	clear(o.inodes)
}

func (o *observer) walSizes() []WALSample {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.wal)
}

func (o *observer) observations() []oracle.Observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]oracle.Observation(nil), o.seen...)
}

// progress tracks each dispatcher's ticks, to find one that stopped
// finishing them: a dispatcher stuck for seconds on a lock that broken
// locking left behind makes no violation of its own, but it is no pass.
type progress struct {
	start   time.Time
	last    map[string]time.Time
	maxGap  map[string]time.Duration
	gapEnds map[string]time.Time
}

func newProgress(start time.Time) *progress {
	return &progress{start: start, last: map[string]time.Time{}, maxGap: map[string]time.Duration{}, gapEnds: map[string]time.Time{}}
}

// tick records a finished tick (callers serialise calls).
func (p *progress) tick(name string) {
	now := time.Now()
	prev, ok := p.last[name]
	if !ok {
		prev = p.start
	}
	if gap := now.Sub(prev); gap > p.maxGap[name] {
		p.maxGap[name], p.gapEnds[name] = gap, now
	}
	p.last[name] = now
}

// stalls reports every dispatcher of names whose longest stretch without a
// finished tick, counting up to end, exceeded limit — one that never
// finished a tick included (from the start).
func (p *progress) stalls(end time.Time, limit time.Duration, names []string) []oracle.Observation {
	var out []oracle.Observation
	for _, n := range slices.Sorted(slices.Values(names)) {
		gap, at := p.maxGap[n], p.gapEnds[n]
		last, ok := p.last[n]
		if !ok {
			last = p.start
		}
		if tail := end.Sub(last); tail > gap {
			gap, at = tail, end
		}
		if gap <= limit {
			continue
		}
		began := at.Add(-gap).Sub(p.start)
		out = append(out, oracle.Observation{Invariant: oracle.DispatcherProgress, Kind: "dispatcher-stalled",
			AtMs:   float64(began.Milliseconds()),
			Detail: fmt.Sprintf("dispatcher %s finished no tick and started no worker for %.1fs (from +%.0fms); limit %v", n, gap.Seconds(), float64(began.Milliseconds()), limit)})
	}
	return out
}

package subject

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestProgressStalls: a dispatcher with no finished tick and no started
// worker (both call progress.tick) for longer than the limit is a stall,
// counted from the run's start; one with progress within the limit is not.
func TestProgressStalls(t *testing.T) {
	start := time.Now().Add(-1500 * time.Millisecond)
	p := newProgress(start)
	p.tick("d2") // 1.5 s after the start: within the limit
	stalls := p.stalls(start.Add(2500*time.Millisecond), 2*time.Second, []string{"d1", "d2"})
	if len(stalls) != 1 || stalls[0].Kind != "dispatcher-stalled" || stalls[0].AtMs != 0 {
		t.Fatalf("stalls %+v: want d1 alone, stalled from the start", stalls)
	}
	p.tick("d1") // now, 1.5 s after the start: d1 too had progress in time
	if stalls := p.stalls(start.Add(2500*time.Millisecond), 2*time.Second, []string{"d1", "d2"}); len(stalls) != 0 {
		t.Fatalf("stalls %+v, want none", stalls)
	}
}

// TestSampleWALOfAnotherProcess: the -wal of a board an external subject
// writes is sampled by size (a stat, never an open), so the checkpoint
// probe can be reached with a subject too — only the reference
// dispatcher's observer sampled it, and no Hermes campaign ever reached it.
func TestSampleWALOfAnotherProcess(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "kanban.db")
	ctx, cancel := context.WithCancel(context.Background())
	sizes := sampleWAL(ctx, db, 5*time.Millisecond)
	time.Sleep(30 * time.Millisecond) // no -wal yet: nothing to sample
	writeWAL(t, db, 4096)
	time.Sleep(30 * time.Millisecond)
	writeWAL(t, db, 8192)
	time.Sleep(200 * time.Millisecond)
	cancel()
	got := sizes() // returns once the sampler has stopped
	if len(got) == 0 {
		t.Fatal("no -wal size sampled")
	}
	for _, w := range got {
		if (w.Size != 4096 && w.Size != 8192) || w.Mono == 0 {
			t.Errorf("sample %+v: a size the file never had, or no time", w)
		}
	}
	if _, err := os.Stat(db); err == nil {
		t.Error("the sampler created the board")
	}
}

// writeWAL gives db a -wal of size bytes in one step (a rename: a file
// written in place is empty for a moment, and the sampler may see that).
func writeWAL(t *testing.T, db string, size int) {
	t.Helper()
	tmp := db + ".tmp"
	if err := os.WriteFile(tmp, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, db+"-wal"); err != nil {
		t.Fatal(err)
	}
}

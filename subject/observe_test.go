package subject

import (
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

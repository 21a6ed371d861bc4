package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kanbanchaos/kanbanchaos/campaign"
	"github.com/kanbanchaos/kanbanchaos/oracle"
)

// TestProgressOffTerminal: off a terminal the progress is plain lines on
// stderr — no carriage return, no escape — and stdout gets only the lines
// printed through it.
func TestProgressOffTerminal(t *testing.T) {
	var out, errb bytes.Buffer
	p := newProgress(&out, &errb)
	p.begin(2)
	p.runStarted()
	p.runStarted()
	p.println("FAIL run 0")
	p.runDone(campaign.RunRecord{Status: oracle.Fail, Spawns: 3, Doublecheck: &campaign.Doublecheck{Status: oracle.Fail}}, false)
	p.runDone(campaign.RunRecord{Status: oracle.Pass}, false)
	p.close()
	if out.String() != "FAIL run 0\n" {
		t.Errorf("stdout: %q", out.String())
	}
	e := errb.String()
	if strings.ContainsAny(e, "\r\033") {
		t.Errorf("escape codes off a terminal: %q", e)
	}
	if !strings.Contains(e, "[2/2 runs] 1 failed") || !strings.Contains(e, "1 replayed, 0 diverged") {
		t.Errorf("want the last run's plain line with the replays, got %q", e)
	}
}

// TestProgressETA: the ETA counts the runs still planned, and once the
// campaign stops at a failure only the runs in flight.
func TestProgressETA(t *testing.T) {
	p := newProgress(&bytes.Buffer{}, &bytes.Buffer{})
	p.begin(10)
	p.began = time.Now().Add(-4 * time.Second)
	for range 4 {
		p.runStarted()
	}
	p.finished = 2
	if got := p.eta(4 * time.Second); got != "16s" {
		t.Errorf("2 of 10 runs in 4s: ETA %q, want 16s", got)
	}
	p.stopping = true
	if got := p.eta(4 * time.Second); !strings.HasPrefix(got, "4s (stopping: 2 run(s) in flight)") {
		t.Errorf("stopping with 2 in flight: ETA %q", got)
	}
}

// TestCut: a line never reaches the terminal's last column.
func TestCut(t *testing.T) {
	line := "[10/10 runs] 0 failed · 0 undecided · 42 spawns/s · 1m0s elapsed · ETA 0s"
	for _, w := range []int{20, 40, 80} {
		if n := utf8.RuneCountInString(cut(line, w)); n >= w {
			t.Errorf("width %d: %d runes", w, n)
		}
	}
	if cut(line, 0) != line || cut(line, 200) != line {
		t.Error("a line that fits, or an unknown width, is cut")
	}
}

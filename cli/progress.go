package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/kanbanchaos/kanbanchaos/campaign"
	"github.com/kanbanchaos/kanbanchaos/oracle"
)

// progress is the progress line of a command that carries out many runs.
// It goes to stderr — stdout holds the command's output, which may be
// JSON for a machine. On a terminal (TERM not dumb) it is one line, cut to
// the terminal's width and redrawn in place; elsewhere it is a plain line
// every plainEvery, and one at the end. Lines of output printed through it
// clear the live line first, so the two never mix.
type progress struct {
	mu     sync.Mutex
	out    io.Writer // the command's output (stdout)
	err    io.Writer // the progress line (stderr)
	live   bool      // redraw in place
	width  func() int
	closed bool
	shown  bool // a live line is on the screen
	stop   chan struct{}

	began, lastPlain time.Time
	planned, started int
	finished, fail   int
	unknown, errs    int
	replayed, diverg int
	spawns           int
	// stopping: no run starts any more (the first failure without
	// --keep-going); what is left is the runs in flight, then shrinking.
	stopping bool
	then     string // what follows the runs, for the ETA ("then shrinking ≤2m0s")
}

// plainEvery is how often a plain progress line is written off a terminal.
const plainEvery = 10 * time.Second

// newProgress writes the command's lines to out and progress to err,
// redrawn in place when err is a terminal and TERM is not dumb.
func newProgress(out, err io.Writer) *progress {
	p := &progress{out: out, err: err, stop: make(chan struct{}), width: func() int { return 0 }}
	if f, ok := err.(*os.File); ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb" {
		p.live = true
		p.width = func() int {
			w, _, err := term.GetSize(int(f.Fd()))
			if err != nil {
				return 0
			}
			return w
		}
	}
	return p
}

// begin starts the clock for planned runs, and on a terminal the redraw
// every second (the elapsed time and ETA move without any run ending).
func (p *progress) begin(planned int) {
	p.mu.Lock()
	p.planned, p.began, p.lastPlain = planned, time.Now(), time.Now()
	p.mu.Unlock()
	if !p.live {
		return
	}
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.draw()
				p.mu.Unlock()
			}
		}
	}()
}

// runStarted counts a run that started.
func (p *progress) runStarted() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.started++
}

// runDone counts a finished run; stopping says no further run will start.
func (p *progress) runDone(r campaign.RunRecord, stopping bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.finished++
	p.spawns += r.Spawns
	switch r.Status {
	case oracle.Pass:
	case oracle.Fail:
		p.fail++
	case oracle.Unknown:
		p.unknown++
	default:
		p.errs++
	}
	if d := r.Doublecheck; d != nil {
		p.replayed++
		if d.Diverged {
			p.diverg++
		}
	}
	p.stopping = p.stopping || stopping
	p.draw()
	if !p.live && (time.Since(p.lastPlain) >= plainEvery || p.finished == p.planned) {
		fmt.Fprintln(p.err, p.line())
		p.lastPlain = time.Now()
	}
}

// line is the progress in words.
func (p *progress) line() string {
	el := time.Since(p.began)
	var b strings.Builder
	fmt.Fprintf(&b, "[%d/%d runs] %d failed · %d undecided", p.finished, p.planned, p.fail, p.unknown)
	if p.errs > 0 {
		fmt.Fprintf(&b, " · %d errors", p.errs)
	}
	if p.replayed > 0 {
		fmt.Fprintf(&b, " · %d replayed, %d diverged", p.replayed, p.diverg)
	}
	fmt.Fprintf(&b, " · %.0f spawns/s · %v elapsed", float64(p.spawns)/max(el.Seconds(), 1e-3), el.Round(time.Second))
	fmt.Fprintf(&b, " · ETA %s", p.eta(el))
	return b.String()
}

// eta is the time the runs still planned will take at the pace so far:
// every run not finished, or once the campaign is stopping only the ones
// in flight — followed by what comes after them.
func (p *progress) eta(el time.Duration) string {
	left := p.planned - p.finished
	if p.stopping {
		left = p.started - p.finished
	}
	s := "?"
	switch {
	case left <= 0:
		s = "0s"
	case p.finished > 0:
		s = (time.Duration(float64(el) / float64(p.finished) * float64(left))).Round(time.Second).String()
	}
	if p.stopping {
		s = fmt.Sprintf("%s (stopping: %d run(s) in flight)", s, max(left, 0))
	}
	if p.then != "" {
		s += ", then " + p.then
	}
	return s
}

// draw redraws the live line (p.mu held).
func (p *progress) draw() {
	if !p.live || p.closed || p.began.IsZero() {
		return
	}
	fmt.Fprint(p.err, "\r\033[K"+cut(p.line(), p.width()))
	p.shown = true
}

// cut shortens s to fit a terminal width (0: unknown, no cut), leaving the
// last column free so the cursor never wraps.
func cut(s string, width int) string {
	if width <= 1 || utf8.RuneCountInString(s) < width {
		return s
	}
	r := []rune(s)
	return string(r[:width-2]) + "…"
}

// println prints a line of the command's output.
func (p *progress) println(line string) {
	p.emit(func() { fmt.Fprintln(p.out, line) })
}

// emit writes to the output with the live line out of the way.
func (p *progress) emit(write func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	write()
	p.draw()
}

func (p *progress) clear() {
	if p.shown {
		fmt.Fprint(p.err, "\r\033[K")
		p.shown = false
	}
}

// close removes the live line for good.
func (p *progress) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	close(p.stop)
	p.clear()
}

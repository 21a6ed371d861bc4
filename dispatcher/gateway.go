package dispatcher

import (
	"context"
	"errors"
	"fmt"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// Corrupt-board latches (Knobs.CorruptLatch): what a gateway does with a
// board it found corrupt.
const (
	// LatchNone retries the board on the next tick, as v0.14 did: every
	// tick reconnects, and the integrity guard backs the file up again.
	LatchNone = "none"
	// LatchFingerprint disables the board until its (mtime, size) changes
	// (#28439, disabled_corrupt_boards) — and then resumes it, whatever the
	// file now is: an empty recreated board included (#30687).
	LatchFingerprint = "fingerprint"
	// LatchVerified re-checks a changed file before resuming: it must pass
	// integrity_check and hold tasks. A fingerprint change alone is never
	// enough (spec I13, E1).
	LatchVerified = "verified"
)

// CorruptLatches lists the valid CorruptLatch values.
var CorruptLatches = []string{LatchNone, LatchFingerprint, LatchVerified}

// Gateway is one board in a Hermes gateway's dispatch loop (gateway/run.py's
// _tick_once_for_board): every tick it dispatches the board — connecting
// first when it has no dispatcher yet — unless the board is disabled as
// corrupt. Hermes keeps the gateway's dispatchers in one process; so does a
// Gateway, through Config.Process.
type Gateway struct {
	cfg      Config
	d        *Dispatcher
	disabled *latch
}

// latch is the gateway's disabled_corrupt_boards entry for the board: the
// file's fingerprint when it was last found corrupt.
type latch struct {
	fp kanban.Fingerprint
}

// Gateway tick actions.
const (
	ActionDispatched = "dispatched" // DispatchOnce ran
	ActionCorrupt    = "corrupt"    // connect or dispatch found the board corrupt
	ActionSkipped    = "skipped"    // disabled as corrupt; the file is unchanged
	ActionKept       = "kept-disabled"
	ActionError      = "error" // any other failure (busy, I/O …): logged, retried next tick
)

// GatewayTick is what one gateway tick did.
type GatewayTick struct {
	Action string `json:"action"`
	Detail string `json:"detail,omitempty"`
	// Retried says the board had been disabled and was retried because its
	// file changed ("database changed; retrying dispatch").
	Retried bool  `json:"retried,omitempty"`
	Tick    *Tick `json:"tick,omitempty"`
}

func (t GatewayTick) String() string {
	s := t.Action
	if t.Retried {
		s += " (database changed; retrying dispatch)"
	}
	if t.Detail != "" {
		s += ": " + t.Detail
	}
	return s
}

// NewGateway returns a gateway slot for cfg's board; it connects on its
// first tick.
func NewGateway(cfg Config) (*Gateway, error) {
	if cfg.Children == nil {
		return nil, errors.New("dispatcher: Config.Children is nil")
	}
	if cfg.Process == nil {
		cfg.Process = kanban.NewProcess()
	}
	return &Gateway{cfg: cfg}, nil
}

// Tick runs one gateway tick for the board.
func (g *Gateway) Tick(ctx context.Context) GatewayTick {
	retried := false
	if g.disabled != nil {
		if skip, ok := g.stayDisabled(ctx); !ok {
			return skip
		}
		g.disabled, retried = nil, true
	}
	if g.d == nil {
		d, err := New(ctx, g.cfg)
		if err != nil {
			return g.failed(err, retried, nil)
		}
		g.d = d
	}
	t, err := g.d.DispatchOnce(ctx)
	if err != nil {
		return g.failed(err, retried, &t)
	}
	out := GatewayTick{Action: ActionDispatched, Retried: retried, Tick: &t}
	var tasks int
	if err := g.d.Watch().DB().QueryRowContext(ctx, `SELECT count(*) FROM tasks`).Scan(&tasks); err == nil {
		out.Detail = fmt.Sprintf("board holds %d tasks", tasks)
	}
	return out
}

// stayDisabled decides, for a disabled board, whether this tick retries it
// (ok) or not (the GatewayTick to report).
func (g *Gateway) stayDisabled(ctx context.Context) (GatewayTick, bool) {
	mode := g.cfg.Knobs.CorruptLatch
	if mode == LatchNone || mode == "" {
		return GatewayTick{}, true
	}
	fp := kanban.FingerprintOf(g.cfg.DBPath)
	if fp == g.disabled.fp {
		return GatewayTick{Action: ActionSkipped, Detail: "disabled as corrupt, file unchanged (" + fp.String() + ")"}, false
	}
	if mode == LatchFingerprint {
		return GatewayTick{}, true
	}
	// LatchVerified: a changed file earns a look, not a resume.
	h, err := kanban.Inspect(ctx, g.cfg.DBPath)
	why := ""
	switch {
	case err != nil:
		why = "the file changed but cannot be read: " + err.Error()
	case h.Problem != "":
		why = "the file changed but is still corrupt: " + h.Problem
	case h.Tasks == 0:
		why = "the file changed but holds no tasks (a recreated or emptied board); restore a backup or initialize the board explicitly"
	default:
		return GatewayTick{}, true
	}
	g.disabled.fp = fp // look again only when it changes again
	return GatewayTick{Action: ActionKept, Detail: why}, false
}

// failed reports a tick's error and, when it says the board is corrupt,
// drops the board's connections and disables it as the latch says.
func (g *Gateway) failed(err error, retried bool, t *Tick) GatewayTick {
	if !errors.Is(err, kanban.ErrCorrupt) && !kanban.IsCorrupt(err) {
		return GatewayTick{Action: ActionError, Detail: err.Error(), Retried: retried, Tick: t}
	}
	if g.d != nil {
		g.d.Close()
		g.d = nil
	}
	out := GatewayTick{Action: ActionCorrupt, Detail: err.Error(), Retried: retried, Tick: t}
	if mode := g.cfg.Knobs.CorruptLatch; mode == LatchFingerprint || mode == LatchVerified {
		g.disabled = &latch{fp: kanban.FingerprintOf(g.cfg.DBPath)}
		out.Detail += "; dispatch disabled for this board until the file changes"
	}
	return out
}

// Close closes the gateway's connections to the board.
func (g *Gateway) Close() error {
	if g.d == nil {
		return nil
	}
	err := g.d.Close()
	g.d = nil
	return err
}

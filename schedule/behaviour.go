package schedule

// The worker behaviours a profile plays: the modes, their parsing and
// their descriptions.

import (
	"fmt"
	"strconv"
	"strings"
)

// Worker modes a fake worker can play. Each mode is what a real Hermes worker
// has been seen to do.
const (
	ModeExitNow         = "exit-now"             // exit with the code at once
	ModeOpenBoardExit   = "open-board-then-exit" // connect to the board, read its task, exit with the code
	ModeHeartbeatCrash  = "heartbeat-then-crash" // connect, heartbeat once, exit with the code
	ModeComplete        = "complete"             // connect, heartbeat, complete the task, exit 0
	ModeExit75          = "exit-75"              // rate limited: exit 75
	ModeExit0NoComplete = "exit-0-without-completing"
	ModeHang            = "hang" // sleep until killed
	// ModeCreateOnBoard calls kanban_create(board=SLUG) the way a Hermes
	// worker's tool does, then completes its own task: with HERMES_KANBAN_DB
	// pinned, v0.14 writes the card into the worker's own board (#30678).
	ModeCreateOnBoard = "create-on-board"
	// Writer modes write like a Hermes worker: heartbeat, then progress
	// comments, each its own transaction.
	ModeWriteComplete    = "write-complete" // write K comments, complete, close, exit 0
	ModeWriteExit        = "write-exit"     // write comments, exit N without closing
	ModeKillInTxn        = "kill-in-txn"    // write comments, then SIGKILL itself inside BEGIN IMMEDIATE
	defaultWrites        = 20
	RateLimitedExitCode  = 75 // Hermes' KANBAN_RATE_LIMIT_EXIT_CODE
	defaultCrashExitCode = 1
)

// Modes lists every worker mode with a one-line description.
var Modes = []struct{ Name, Doc string }{
	{ModeExitNow + ":N", "exit with code N at once (after the delay)"},
	{ModeOpenBoardExit + ":N", "open the board through kanban.Connect, read the task, exit N without closing"},
	{ModeHeartbeatCrash + "[:N]", "open the board, heartbeat once, exit N (default 1)"},
	{ModeComplete, "open the board, heartbeat, complete the task with its run id, exit 0"},
	{ModeExit75, "exit 75 (rate limited; must never count as a failure)"},
	{ModeExit0NoComplete, "exit 0 without completing (a protocol violation)"},
	{ModeHang, "sleep until killed"},
	{ModeCreateOnBoard + ":SLUG", "kanban_create(board=SLUG) as a pinned worker does, then complete the task"},
	{ModeWriteComplete + ":K", "open the board, heartbeat, write K progress comments (one transaction each), complete, close, exit 0"},
	{ModeWriteExit + ":N", "open the board, heartbeat, write 20 progress comments, exit N without closing"},
	{ModeKillInTxn, "open the board, heartbeat, write 10 progress comments, then SIGKILL itself inside BEGIN IMMEDIATE"},
}

// Behaviour is what a fake worker does once started.
type Behaviour struct {
	Mode    string `json:"mode"`
	Exit    int    `json:"exit,omitempty"`
	DelayMs int    `json:"delay_ms,omitempty"` // wait this long after the ledger line, before acting
	Board   string `json:"board,omitempty"`    // create-on-board: the explicit board= slug
	Writes  int    `json:"writes,omitempty"`   // writer modes: progress comments to write
}

// ParseBehaviour reads "exit-now:1", "hang", "heartbeat-then-crash:3" …
func ParseBehaviour(s string) (Behaviour, error) {
	name, arg, hasArg := strings.Cut(s, ":")
	b := Behaviour{Mode: name}
	code := func(def int) error {
		if !hasArg {
			b.Exit = def
			return nil
		}
		n, err := strconv.Atoi(arg)
		if err != nil || n < 0 || n > 255 {
			return fmt.Errorf("worker mode %q: exit code %q is not 0..255", s, arg)
		}
		b.Exit = n
		return nil
	}
	switch name {
	case ModeExitNow, ModeOpenBoardExit:
		if !hasArg {
			return b, fmt.Errorf("worker mode %q needs an exit code, e.g. %s:1", s, name)
		}
		return b, code(0)
	case ModeHeartbeatCrash:
		return b, code(defaultCrashExitCode)
	case ModeWriteExit:
		b.Writes = defaultWrites
		if !hasArg {
			return b, fmt.Errorf("worker mode %q needs an exit code, e.g. %s:1", s, name)
		}
		return b, code(0)
	case ModeWriteComplete:
		n, err := strconv.Atoi(arg)
		if !hasArg || err != nil || n < 0 || n > 100000 {
			return b, fmt.Errorf("worker mode %q needs a number of writes 0..100000, e.g. %s:20", s, name)
		}
		b.Writes = n
	case ModeKillInTxn:
		if hasArg {
			return b, fmt.Errorf("worker mode %q takes no argument", name)
		}
		b.Writes = defaultWrites / 2
	case ModeExit75, ModeExit0NoComplete:
		if hasArg {
			return b, fmt.Errorf("worker mode %q takes no argument (use %s:N for another code)", name, ModeExitNow)
		}
		b.Mode, b.Exit = ModeExitNow, RateLimitedExitCode
		if name == ModeExit0NoComplete {
			b.Exit = 0
		}
	case ModeCreateOnBoard:
		if !profileName.MatchString(strings.ToLower(arg)) {
			return b, fmt.Errorf("worker mode %q needs a board slug, e.g. %s:other", s, name)
		}
		b.Board = strings.ToLower(arg)
	case ModeComplete, ModeHang:
		if hasArg {
			return b, fmt.Errorf("worker mode %q takes no argument", name)
		}
	default:
		return b, fmt.Errorf("unknown worker mode %q (valid: %s)", s, ModeNames())
	}
	return b, nil
}

// ModeNames lists the valid mode spellings for error messages.
func ModeNames() string {
	var names []string
	for _, m := range Modes {
		names = append(names, m.Name)
	}
	return strings.Join(names, ", ")
}

func (b Behaviour) String() string {
	switch b.Mode {
	case ModeComplete, ModeHang:
		return b.Mode
	case ModeCreateOnBoard:
		return b.Mode + ":" + b.Board
	case ModeWriteComplete:
		return fmt.Sprintf("%s:%d", b.Mode, b.Writes)
	case ModeKillInTxn:
		return b.Mode
	}
	return fmt.Sprintf("%s:%d", b.Mode, b.Exit)
}

// Bounded reports whether the worker's runs end in a failure that counts
// toward the breaker (a crash, a protocol violation, a hang ended by a
// timeout). Such a task must be spawned at most failure-limit times. A
// rate-limited exit (75) never counts; a completing worker needs one spawn.
func (b Behaviour) Bounded() bool {
	exits := b.Mode == ModeExitNow || b.Mode == ModeOpenBoardExit || b.Mode == ModeHeartbeatCrash || b.Mode == ModeWriteExit
	return !(exits && b.Exit == RateLimitedExitCode)
}

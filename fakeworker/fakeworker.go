// Package fakeworker is the worker side of a run: what HERMES_BIN starts.
// It accepts Hermes' worker command line (`-p <profile> [flags…] chat -q
// "work kanban task <id>"`) and the HERMES_KANBAN_* environment, appends its
// start to the run's ledger before anything else, then plays the behaviour
// the run's worker config gives its profile: exit at once, open the board and
// exit, heartbeat then crash, complete, exit 75, exit 0 without completing,
// or hang; right before it exits it appends its exit status. It never
// decides whether a run passed.
package fakeworker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Environment variables the harness sets on the dispatcher; Hermes passes
// the dispatcher's environment on to every worker, so they arrive here.
const (
	EnvLedger = "KANBANCHAOS_LEDGER"        // the run's ledger file
	EnvConfig = "KANBANCHAOS_WORKER_CONFIG" // the run's Config file
)

// InvokedAs is the program name under which a binary acts as the worker:
// the harness points HERMES_BIN at a symlink of this name.
const InvokedAs = "hermes"

// Config tells the workers of one run what to do.
type Config struct {
	Connect    kanban.Options                `json:"connect"`      // the same pragmas the dispatcher uses
	ClaimTTLMs int                           `json:"claim_ttl_ms"` // for heartbeats
	Profiles   map[string]schedule.Behaviour `json:"profiles"`
	// PinBeatsBoard is the board-resolution precedence of the build under
	// test: HERMES_KANBAN_DB beats an explicit board= (v0.14, #30678).
	PinBeatsBoard bool `json:"pin_beats_board"`
}

// WriteConfig stores c for the workers.
func WriteConfig(path string, c Config) error {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("fakeworker: encode config: %w", err)
	}
	return os.WriteFile(path, data, 0o644)
}

// Exit codes for a worker that cannot even tell what to do. They are
// crashes as far as the dispatcher knows, and the log says why.
const (
	exitUsage  = 64 // EX_USAGE: not a Hermes worker command line
	exitConfig = 78 // EX_CONFIG: no or bad worker config
)

// invocation is what the command line and environment say.
type invocation struct {
	profile, task, lock, dbPath string
	run                         int64
}

func parse(args []string, getenv func(string) string) (invocation, error) {
	inv := invocation{
		task:   getenv("HERMES_KANBAN_TASK"),
		lock:   getenv("HERMES_KANBAN_CLAIM_LOCK"),
		dbPath: getenv("HERMES_KANBAN_DB"),
	}
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-p", "--profile":
			if i+1 < len(args) {
				inv.profile = args[i+1]
				i++
			}
		case "-q", "--query":
			if i+1 < len(args) {
				if id, ok := strings.CutPrefix(args[i+1], "work kanban task "); ok && inv.task == "" {
					inv.task = strings.TrimSpace(id)
				}
				i++
			}
		}
	}
	if inv.profile == "" {
		inv.profile = getenv("HERMES_PROFILE")
	}
	if run := getenv("HERMES_KANBAN_RUN_ID"); run != "" {
		n, err := strconv.ParseInt(run, 10, 64)
		if err != nil {
			return inv, fmt.Errorf("HERMES_KANBAN_RUN_ID=%q is not a run id", run)
		}
		inv.run = n
	}
	if inv.profile == "" || inv.task == "" {
		return inv, fmt.Errorf("not a Hermes worker command line: want -p <profile> … chat -q \"work kanban task <id>\", got %q", args)
	}
	return inv, nil
}

// Main runs the worker with args (without the program name) and returns its
// exit code. Diagnostics go to stderr, which Hermes appends to the task log.
// A worker that knows its task appends its start to the ledger first and
// its exit status last, on every path that returns; one killed by a signal
// (kill-in-txn, a hang ended by the dispatcher) leaves only its start.
func Main(args []string, getenv func(string) string, stderr io.Writer) int {
	// The power-loss fault's writeback helper rides on the worker binary,
	// which every harness setup already provides (see Writeback).
	if len(args) > 0 && args[0] == WritebackFlag {
		return Writeback(args[1:], stderr)
	}
	start := ledger.MonoNow()
	inv, parseErr := parse(args, getenv)
	ledgerPath := getenv(EnvLedger)
	if ledgerPath == "" && inv.dbPath != "" {
		ledgerPath = filepath.Join(filepath.Dir(inv.dbPath), "kanbanchaos-ledger.jsonl")
	}
	record := inv.task != "" && ledgerPath != ""
	// The start line comes first — even before a bad command line is
	// refused — so a worker that dies at any later point has been counted.
	if record {
		if err := ledger.Append(ledgerPath, ledger.Entry{Kind: ledger.Start, PID: os.Getpid(), Task: inv.task,
			Run: inv.run, Profile: inv.profile, Lock: inv.lock, Mono: start}); err != nil {
			fmt.Fprintln(stderr, "kanbanchaos worker:", err)
		}
	}
	code := work(inv, parseErr, ledgerPath, getenv, stderr)
	if record {
		if err := ledger.Append(ledgerPath, ledger.Entry{Kind: ledger.Exit, PID: os.Getpid(), Task: inv.task,
			Run: inv.run, Profile: inv.profile, Lock: inv.lock, Who: "worker", Exit: ledger.ExitCode(code)}); err != nil {
			fmt.Fprintln(stderr, "kanbanchaos worker:", err)
		}
	}
	return code
}

// work is everything between the start line and the exit line.
func work(inv invocation, parseErr error, ledgerPath string, getenv func(string) string, stderr io.Writer) int {
	if parseErr != nil {
		fmt.Fprintln(stderr, "kanbanchaos worker:", parseErr)
		return exitUsage
	}
	cfg, b, err := loadBehaviour(getenv(EnvConfig), inv.profile)
	if err != nil {
		fmt.Fprintln(stderr, "kanbanchaos worker:", err)
		return exitConfig
	}
	if b.DelayMs > 0 {
		time.Sleep(time.Duration(b.DelayMs) * time.Millisecond)
	}
	w := worker{inv: inv, cfg: cfg, ledger: ledgerPath, stderr: stderr, getenv: getenv}
	return w.play(context.Background(), b)
}

func loadBehaviour(path, profile string) (Config, schedule.Behaviour, error) {
	var c Config
	if path == "" {
		return c, schedule.Behaviour{}, fmt.Errorf("%s is not set: no behaviour for profile %q", EnvConfig, profile)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return c, schedule.Behaviour{}, fmt.Errorf("read worker config: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, schedule.Behaviour{}, fmt.Errorf("worker config %s: %w", path, err)
	}
	b, ok := c.Profiles[profile]
	if !ok {
		return c, b, fmt.Errorf("worker config %s has no behaviour for profile %q", path, profile)
	}
	return c, b, nil
}

type worker struct {
	getenv func(string) string
	inv    invocation
	cfg    Config
	ledger string
	stderr io.Writer
}

func (w worker) play(ctx context.Context, b schedule.Behaviour) int {
	switch b.Mode {
	case schedule.ModeExitNow:
		return b.Exit
	case schedule.ModeHang:
		// Until the dispatcher or the harness kills us — or the harness is
		// gone (killed itself): then nobody would.
		for !HarnessGone(w.getenv(EnvHarness)) {
			time.Sleep(200 * time.Millisecond)
		}
		fmt.Fprintln(w.stderr, "kanbanchaos worker: the harness is gone; exiting")
		return 1
	}
	opts := w.cfg.Connect
	opts.Process = kanban.NewProcess() // this worker is its own OS process
	opts.OnCommit = func(c kanban.Commit) {
		ledger.Append(w.ledger, ledger.Entry{Kind: ledger.Commit, PID: os.Getpid(), Who: "worker", Op: c.Op, Began: c.Began,
			Task: c.Task, Run: c.Run, Events: c.Events, Comments: c.Comments})
	}
	if opts.OFDLocking != kanban.OFDFromEnv() {
		// The lock kind is fixed when the process starts; a mismatch means
		// the run would not test what it says it tests.
		fmt.Fprintf(w.stderr, "kanbanchaos worker: ofd_locking=%v but this process was started with %s=%q\n",
			opts.OFDLocking, kanban.OFDEnv, os.Getenv(kanban.OFDEnv))
		return exitConfig
	}
	board, err := kanban.Connect(ctx, w.inv.dbPath, opts)
	if err != nil {
		return w.fail("connect", err)
	}
	// No Close on the crash paths: a crashing worker does not clean up.
	if _, err := board.Task(ctx, w.inv.task); err != nil {
		return w.fail("read task", err)
	}
	if b.Mode == schedule.ModeOpenBoardExit {
		return b.Exit
	}
	ttl := float64(w.cfg.ClaimTTLMs) / 1000
	if err := board.Heartbeat(ctx, w.inv.task, w.inv.run, w.inv.lock, ttl); err != nil {
		return w.fail("heartbeat", err)
	}
	if b.Mode == schedule.ModeHeartbeatCrash {
		return b.Exit
	}
	if b.Mode == schedule.ModeCreateOnBoard {
		if code := w.createOnBoard(ctx, b.Board); code != 0 {
			return code
		}
	}
	if code, done := w.writeProgress(ctx, board, b); done {
		return code
	}
	if err := board.Complete(ctx, w.inv.task, w.inv.run, "done by kanbanchaos fake worker"); err != nil {
		return w.fail("complete", err)
	}
	board.Close()
	return 0
}

// fail reports a board error on stderr and, for SQLite errors and the
// code's own corruption verdicts, in the ledger (the oracle looks for
// corruption codes and false alarms there), then exits 1 like a worker whose
// tool call raised.
func (w worker) fail(what string, err error) int {
	fmt.Fprintf(w.stderr, "kanbanchaos worker: %s: %v\n", what, err)
	if code, ok := kanban.Code(err); ok {
		ledger.Append(w.ledger, ledger.Entry{Kind: ledger.SQLiteError, PID: os.Getpid(), Task: w.inv.task, Run: w.inv.run,
			Code: code, Message: what + ": " + err.Error()})
	}
	if kanban.IsAlarm(err) {
		ledger.Append(w.ledger, ledger.Entry{Kind: ledger.Alarm, PID: os.Getpid(), Who: "worker", Task: w.inv.task, Run: w.inv.run,
			Op: what, Message: err.Error()})
	}
	return 1
}

// createOnBoard is a worker's kanban_create(board=slug): it resolves the
// board as the build under test does — with the pin first in v0.14 — and
// says on stderr (the task log) where the card landed.
func (w worker) createOnBoard(ctx context.Context, slug string) int {
	res, err := kanban.Resolve(kanban.EnvFrom(w.getenv), slug, w.cfg.PinBeatsBoard)
	if err != nil {
		return w.fail("kanban_create", err)
	}
	fmt.Fprintf(w.stderr, "kanban_create(board=%s) resolved to %s (%s)\n", slug, res.Path, res.Source)
	target, err := kanban.Connect(ctx, res.Path, w.cfg.Connect)
	if err != nil {
		return w.fail("kanban_create connect", err)
	}
	defer target.Close()
	id, err := target.CreateTask(ctx, kanban.NewTask{Title: "card for board " + slug, Assignee: w.inv.profile, CreatedBy: w.inv.profile})
	if err != nil {
		return w.fail("kanban_create", err)
	}
	fmt.Fprintf(w.stderr, "kanban_create: created %s in %s\n", id, res.Path)
	return 0
}

// writeProgress plays the writer modes: progress comments, each its own
// transaction, like an agent reporting as it works; then, for write-exit,
// the exit without a Close and, for kill-in-txn, a SIGKILL inside BEGIN
// IMMEDIATE. done is false when the caller goes on to complete the task.
func (w worker) writeProgress(ctx context.Context, board *kanban.Board, b schedule.Behaviour) (code int, done bool) {
	switch b.Mode {
	case schedule.ModeWriteComplete, schedule.ModeWriteExit, schedule.ModeKillInTxn:
	default:
		return 0, false
	}
	rng := rand.New(rand.NewPCG(uint64(os.Getpid()), uint64(w.inv.run)))
	for i := 0; i < b.Writes; i++ {
		if err := board.Comment(ctx, w.inv.task, w.inv.run, w.inv.profile, progressNote(rng, i)); err != nil {
			return w.fail("comment", err), true
		}
	}
	switch b.Mode {
	case schedule.ModeWriteExit:
		return b.Exit, true
	case schedule.ModeKillInTxn:
		err := board.CommentThen(ctx, w.inv.task, w.inv.run, w.inv.profile, progressNote(rng, b.Writes), func() {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way; never COMMIT
		})
		return w.fail("comment", err), true
	}
	return 0, false
}

// progressNote is 100–1600 bytes of text, enough to split pages.
func progressNote(rng *rand.Rand, i int) string {
	const words = "claim heartbeat worker board commit page index rowid checkpoint journal spawn crash breaker limit "
	var sb strings.Builder
	fmt.Fprintf(&sb, "step %d: ", i)
	n := 100 + rng.IntN(1500)
	for sb.Len() < n {
		start := rng.IntN(len(words) - 12)
		sb.WriteString(words[start : start+12])
	}
	return sb.String()
}

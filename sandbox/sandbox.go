// Package sandbox owns the directory layout of one run — the Hermes home
// with its board, the ledger, the trace, the go file, the worker config and
// HERMES_BIN — and the processes that belong to it: every process a run
// starts carries the sandbox's ledger path in its environment (Env), so the
// run finds, counts and kills them by that mark through /proc, never by a
// pid list that a reused pid could fool.
//
// It sits below the packages that use a run's directory (subject, faults,
// harness) and must not import them; it decides nothing about a run and
// never opens a board file (a plain open and close of the board in a
// process hosting dispatchers drops their locks, M1).
package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// Dir is one run's sandbox directory.
type Dir struct {
	Root string
}

// New makes a fresh, private sandbox in the temp directory, named after the
// run so that a leftover says whose it was. The error is the temp
// directory's, for the caller to mark (ErrEnvironment).
func New(scenario string, seed uint64) (Dir, error) {
	root, err := os.MkdirTemp("", fmt.Sprintf("kanbanchaos-%s-%d-", scenario, seed))
	return Dir{Root: root}, err
}

// Home is the Hermes home (HERMES_KANBAN_HOME, HERMES_HOME).
func (d Dir) Home() string { return filepath.Join(d.Root, "home") }

// DB is the board the run seeds and the dispatchers use.
func (d Dir) DB() string { return kanban.BoardPath(d.Home(), "default") }

// Ledger is the run's append-only history (ledger.jsonl).
func (d Dir) Ledger() string { return filepath.Join(d.Root, "ledger.jsonl") }

// Trace is the in-process dispatchers' ticks and the faults (trace.jsonl).
func (d Dir) Trace() string { return filepath.Join(d.Root, "trace.jsonl") }

// GoFile is the file whose creation tells a ready external subject to
// begin ticking.
func (d Dir) GoFile() string { return filepath.Join(d.Root, "go") }

// WorkerConfig is the fake workers' configuration (worker.json).
func (d Dir) WorkerConfig() string { return filepath.Join(d.Root, "worker.json") }

// HermesBin is what HERMES_BIN names: bin/hermes, a symlink to the worker
// binary (or the Hermes worker of a hermes: run with Hermes workers).
func (d Dir) HermesBin() string { return filepath.Join(d.Root, "bin", fakeworker.InvokedAs) }

// Env is the dispatchers' environment, inherited by every worker: the
// user's environment without any HERMES_* or KANBANCHAOS_* setting that
// could point a worker at a real board, plus the sandbox's — whose ledger
// path marks every process of the run (Marker).
func (d Dir) Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "HERMES_") || strings.HasPrefix(kv, "KANBANCHAOS_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		kanban.OFDEnv+"="+OFDValue(kanban.OFDFromEnv()),
		"HERMES_BIN="+d.HermesBin(),
		fakeworker.EnvHarness+"="+fakeworker.HarnessToken(os.Getpid()),
		"HERMES_KANBAN_HOME="+d.Home(),
		"HERMES_HOME="+d.Home(),
		fakeworker.EnvLedger+"="+d.Ledger(),
		fakeworker.EnvConfig+"="+d.WorkerConfig(),
	)
}

// OFDValue is kanban.OFDEnv's value for a lock kind.
func OFDValue(ofd bool) string {
	if ofd {
		return "1"
	}
	return "0"
}

// ErrEnvironment marks a run that could not happen for a reason of the
// machine, not of the input or of kanbanchaos: a build of another SQLite
// engine that failed, a subject that could not be started, a disk that
// would not take the sandbox. The CLI reports it as undecided (exit 3).
var ErrEnvironment = errors.New("environment")

// Package cli is the kanbanchaos command line: flags, output formats and
// exit codes. The work is done by the packages below it. It is a package, not
// just package main, so the same CLI can be linked against another SQLite
// engine (engines/sqlite3504).
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/oracle"
)

// Exit codes shared by every command.
const (
	exitPass     = 0 // every invariant held
	exitFail     = 1 // an invariant failed
	exitUsage    = 2 // bad usage or bad input
	exitUnknown  = 3 // the run could not decide
	exitInternal = 4 // the harness itself failed
)

// exitFor is the exit code of a verdict. A status this CLI does not know
// (none at all, say) means the tool failed to decide anything: internal.
func exitFor(s oracle.Status) int {
	switch s {
	case oracle.Pass:
		return exitPass
	case oracle.Fail:
		return exitFail
	case oracle.Unknown:
		return exitUnknown
	}
	return exitInternal
}

// Main runs the command line args (without the program name) and returns the
// exit code. Invoked as HERMES_BIN (the harness's "hermes" symlink), or with
// Hermes' worker argv directly, it is the fake worker.
func Main(argv0 string, args []string) int {
	if filepath.Base(argv0) == fakeworker.InvokedAs || (len(args) > 0 && args[0] == "-p") {
		return fakeworker.Main(args, os.Getenv, os.Stderr)
	}
	// A hang-up (the terminal closed, an ssh session dropped) ends a run
	// like Ctrl-C: undecided, with its evidence kept — not exit 129.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	return run(ctx, args, os.Stdout, os.Stderr)
}

const usage = `kanbanchaos — reproduce and gate the crash-loop and corruption bugs of SQLite-backed kanban dispatchers
(first of all Hermes Agent's kanban.db).

Usage:
  kanbanchaos run SCENARIO [flags]   run one scenario against a dispatcher variant, check every invariant
  kanbanchaos replay SCHEDULE.json|ARTIFACT_DIR [--json] [--artifacts DIR] [--keep]
                                     rerun a written schedule (an artifact directory's schedule.json)
  kanbanchaos fuzz [--scenario S|all] [--variant V] [--runs N] [--seed S] [--shard i/n] [--json] [--junit FILE] …
                                     property-based campaign: swarm schedules, shrink failures, write regression.txtar
  kanbanchaos gate --subject S [--seeds N] [--pins NAME,…] [--junit FILE] [--shard i/n] [--json]
                                     the regression gate: every known regression as a rule, held/violated/not checked
  kanbanchaos merge SHARD…           combine the --json outputs of fuzz or gate shards into one verdict
  kanbanchaos compare --a SUBJECT --b SUBJECT --scenario S|all [--runs N] [--seed S] [--json] [--report]
                                     patch A/B: the same seeds against two dispatcher builds, side by side
  kanbanchaos report DIR [--out FILE]
                                     offline report.html of a run's artifacts (timelines) or of a comparison
  kanbanchaos check PATH [--json]    audit an existing kanban.db (or a run's artifact directory) without writing it
  kanbanchaos scenarios              list the scenarios and the Hermes issues they reproduce
  kanbanchaos variants               list the dispatcher variants and the knobs they are made of
  kanbanchaos dispatch [--variant V] [--once] [--interval D] …
                                     the reference dispatcher as its own process (HERMES_BIN, HERMES_KANBAN_HOME)
  kanbanchaos hermes install [VERSION…] | list
                                     install real Hermes releases from PyPI for --subject hermes:VERSION
  kanbanchaos version [--json]       the module version, VCS revision, Go and both SQLite engines
  kanbanchaos worker -p PROFILE … chat -q "work kanban task ID"
                                     the fake worker (what HERMES_BIN runs)
  kanbanchaos help [COMMAND]         this text, or a command's help (also: kanbanchaos COMMAND --help)

Exit codes: 0 all invariants hold · 1 an invariant failed · 2 bad usage or input · 3 unknown · 4 internal error.
Help goes to stdout and exits 0; results go to stdout, progress and diagnostics to stderr.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch {
	case wantsHelp(args[1:]):
		return help(ctx, args[0], stdout, stderr)
	case args[0] == "help" && len(args) > 2:
		fmt.Fprintf(stderr, "kanbanchaos help: want at most one command, got %q\n", args[1:])
		return exitUsage
	case args[0] == "help" && len(args) == 2:
		return help(ctx, args[1], stdout, stderr)
	}
	return dispatch(ctx, args, stdout, stderr)
}

// dispatch runs the command args[0].
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "replay":
		return cmdReplay(ctx, args[1:], stdout, stderr)
	case "fuzz":
		return cmdFuzz(ctx, args[1:], stdout, stderr)
	case "merge":
		return cmdMerge(args[1:], stdout, stderr)
	case "compare":
		return cmdCompare(ctx, args[1:], stdout, stderr)
	case "report":
		return cmdReport(args[1:], stdout, stderr)
	case "check":
		return cmdCheck(ctx, args[1:], stdout, stderr)
	case "scenarios":
		return cmdScenarios(args[1:], stdout, stderr)
	case "variants":
		return cmdVariants(args[1:], stdout, stderr)
	case "dispatch":
		return cmdDispatch(ctx, args[1:], stdout, stderr)
	case "hermes":
		return cmdHermes(ctx, args[1:], stdout, stderr)
	case "gate":
		return cmdGate(ctx, args[1:], stdout, stderr)
	case "version":
		return cmdVersion(ctx, args[1:], stdout, stderr)
	case "worker":
		if len(args) == 1 {
			fmt.Fprint(stderr, workerHelp)
			return exitUsage
		}
		return fakeworker.Main(args[1:], os.Getenv, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitPass
	}
	fmt.Fprintf(stderr, "kanbanchaos: unknown command %q (valid: %s)\n", args[0], strings.Join(commands, ", "))
	return exitUsage
}

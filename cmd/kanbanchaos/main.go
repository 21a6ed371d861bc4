// Command kanbanchaos is a chaos/fuzz harness and reproducer for SQLite-backed
// kanban dispatchers, first of all Hermes Agent's kanban board. This file is
// the CLI only: flags, output formats and exit codes; the work is done by the
// packages below it.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/kanbanchaos/kanbanchaos/fakeworker"
)

// Exit codes shared by every command.
const (
	exitPass     = 0 // every invariant held
	exitFail     = 1 // an invariant failed
	exitUsage    = 2 // bad usage or bad input
	exitUnknown  = 3 // the run could not decide
	exitInternal = 4 // the harness itself failed
)

func main() {
	// Invoked as HERMES_BIN (the harness's "hermes" symlink), or with Hermes'
	// worker argv directly: be the fake worker.
	if filepath.Base(os.Args[0]) == fakeworker.InvokedAs || (len(os.Args) > 1 && os.Args[1] == "-p") {
		os.Exit(fakeworker.Main(os.Args[1:], os.Getenv, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `kanbanchaos — reproduce and gate the crash-loop and corruption bugs of SQLite-backed kanban dispatchers
(first of all Hermes Agent's kanban.db).

Usage:
  kanbanchaos run SCENARIO [flags]   run one scenario against a dispatcher variant, check every invariant
  kanbanchaos scenarios              list the scenarios and the Hermes issues they reproduce
  kanbanchaos variants               list the dispatcher variants and the knobs they are made of
  kanbanchaos worker -p PROFILE … chat -q "work kanban task ID"
                                     the fake worker (what HERMES_BIN runs)

Exit codes: 0 all invariants hold · 1 an invariant failed · 2 bad usage or input · 3 unknown · 4 internal error.
Run 'kanbanchaos run --help' for the run flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return cmdRun(ctx, args[1:], stdout, stderr)
	case "scenarios":
		return cmdScenarios(args[1:], stdout, stderr)
	case "variants":
		return cmdVariants(args[1:], stdout, stderr)
	case "worker":
		return fakeworker.Main(args[1:], os.Getenv, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return exitPass
	}
	fmt.Fprintf(stderr, "kanbanchaos: unknown command %q (valid: run, scenarios, variants, worker, help)\n", args[0])
	return exitUsage
}

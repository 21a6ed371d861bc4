package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
)

// commands are the command names, in the order the usage lists them.
var commands = []string{"run", "replay", "fuzz", "gate", "merge", "compare", "report", "check",
	"scenarios", "variants", "dispatch", "hermes", "version", "worker", "help"}

// wantsHelp reports whether a command's arguments ask for its help. A
// "--" ends the flags: what follows it is an argument, whatever it says.
func wantsHelp(args []string) bool {
	for _, a := range args {
		switch a {
		case "--":
			return false
		case "-h", "-help", "--help":
			return true
		}
	}
	return false
}

// help prints the help of command cmd on stdout and exits 0, whether asked
// as 'kanbanchaos help CMD' or 'kanbanchaos CMD --help'. A command whose
// flag set prints its own help is run with --help and both streams on
// stdout: its help is then exactly what its flags say.
func help(ctx context.Context, cmd string, stdout, stderr io.Writer) int {
	switch cmd {
	case "help":
		fmt.Fprint(stdout, usage)
		return exitPass
	case "scenarios":
		fmt.Fprint(stdout, scenariosHelp)
		return exitPass
	case "variants":
		fmt.Fprint(stdout, variantsHelp)
		return exitPass
	case "worker":
		fmt.Fprint(stdout, workerHelp)
		return exitPass
	}
	if !slices.Contains(commands, cmd) {
		fmt.Fprintf(stderr, "kanbanchaos help: unknown command %q (valid: %v)\n", cmd, commands)
		return exitUsage
	}
	return dispatch(ctx, []string{cmd, "--help"}, stdout, stdout)
}

const scenariosHelp = `Usage: kanbanchaos scenarios

Lists every scenario: its name, its default dispatcher variant and SQLite engine, the Hermes issue or
corruption mechanism it reproduces, and what it does. Run one with 'kanbanchaos run NAME'.
`

const variantsHelp = `Usage: kanbanchaos variants

Lists the reference dispatcher's variants (hermes-0.14, pr30973, hermes-0.15, hermes-0.19, fixed), what
each models, and the value of every knob in each; then every knob with what it does. Set any knob alone
with 'kanbanchaos run SCENARIO --knob name=value'.
`

const workerHelp = `Usage: kanbanchaos worker -p PROFILE … chat -q "work kanban task ID"

The fake worker: what HERMES_BIN runs when a dispatcher spawns a worker for a task. It takes Hermes'
worker command line and environment (HERMES_KANBAN_TASK, HERMES_KANBAN_DB, …), appends its start to the
run's ledger (KANBANCHAOS_LEDGER) before anything else, then does what its profile's behaviour in
KANBANCHAOS_WORKER_CONFIG says: exit N at once, crash after a heartbeat, hang, complete the task, exit 75,
create a card on another board… The harness starts it for you; you never need to.

It is the one command whose exit code is not kanbanchaos's 0–4: it plays a Hermes worker, so it exits
with the code its behaviour scripts (1, 75, 0 …), and 64 (EX_USAGE) when its command line is not a
Hermes worker's.
`

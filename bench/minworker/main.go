// Command minworker is the floor the fake worker's start cost is measured
// against (bench/): a Go binary that does only what a crash-at-once worker
// must — append its start line to the run's ledger — and exits 1. It links
// nothing but the ledger package.
package main

import (
	"os"
	"strconv"

	"github.com/kanbanchaos/kanbanchaos/ledger"
)

func main() {
	task := os.Getenv("HERMES_KANBAN_TASK")
	run, _ := strconv.ParseInt(os.Getenv("HERMES_KANBAN_RUN_ID"), 10, 64)
	if path := os.Getenv("KANBANCHAOS_LEDGER"); path != "" && task != "" {
		ledger.Append(path, ledger.Entry{Kind: ledger.Start, PID: os.Getpid(), Task: task, Run: run})
	}
	os.Exit(1)
}

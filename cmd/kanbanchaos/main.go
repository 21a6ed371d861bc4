// Command kanbanchaos is a chaos/fuzz harness and reproducer for SQLite-backed
// kanban dispatchers, first of all Hermes Agent's kanban board (kanban.db).
// See package cli for the command line.
package main

import (
	"os"

	"github.com/kanbanchaos/kanbanchaos/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[0], os.Args[1:]))
}

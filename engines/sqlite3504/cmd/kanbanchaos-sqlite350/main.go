// Command kanbanchaos-sqlite350 is kanbanchaos linked against SQLite 3.50.4
// (modernc.org/sqlite v1.39.1) instead of the 3.54.1 the main module uses.
//
// It exists because WAL-mode lock-cancellation corruption only reproduces on
// SQLite < 3.51 (Hermes' bundled Python ships 3.50.4), and one Go module
// cannot link two versions of modernc.org/sqlite. This nested module requires
// the parent through a replace directive and pins the older engine, so the
// CLI, dispatchers and fake workers are the same code on another SQLite.
// A schedule with "engine": "3.50" run by the main binary is handed to this
// one: kanbanchaos finds it installed next to itself or on PATH (from
// engines/sqlite3504: go install ./cmd/kanbanchaos-sqlite350), or builds it
// from the checkout into the user's cache (harness.EngineBinary).
//
// Run go mod tidy in engines/sqlite3504 whenever the parent module's
// requirements change, since this module keeps its own go.mod and go.sum.
package main

import (
	"os"

	"github.com/kanbanchaos/kanbanchaos/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[0], os.Args[1:]))
}

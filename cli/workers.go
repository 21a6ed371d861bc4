package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// workerFlags are --workers and --python-sqlite, shared by the commands
// that run a hermes: subject. They become part of the subject, so a
// schedule.json replays them.
type workerFlags struct{ workers, pythonSQLite string }

func (f *workerFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.workers, "workers", "", "what HERMES_BIN starts: go (our Go fake worker, the default) or hermes (the behaviour played\n"+
		"through the release's own kanban tools and connect(); needs --subject hermes:…)")
	fs.StringVar(&f.pythonSQLite, "python-sqlite", "", "the libsqlite3 a hermes: subject's Python (driver and Hermes workers) loads: system (the default)\n"+
		"or a version built by 'kanbanchaos hermes install-sqlite VERSION', e.g. 3.53.4")
}

// apply puts the flags into sub and checks they fit it.
func (f workerFlags) apply(sub schedule.Subject) (schedule.Subject, error) {
	if f.workers != "" && f.workers != hermes.WorkersGo && f.workers != hermes.WorkersHermes {
		return sub, fmt.Errorf("--workers %q: want %s", f.workers, strings.Join(hermes.WorkerKinds, " or "))
	}
	if err := hermes.ParsePythonSQLite(f.pythonSQLite); err != nil {
		return sub, err
	}
	if f.workers == hermes.WorkersHermes {
		sub.Workers = f.workers
	}
	if f.pythonSQLite != "" && f.pythonSQLite != hermes.PythonSQLiteSystem {
		sub.PythonSQLite = f.pythonSQLite
	}
	if err := sub.Validate(); err != nil {
		return sub, err
	}
	if sub.PythonSQLite != "" {
		if _, err := hermes.LocateSQLite(sub.PythonSQLite); err != nil {
			return sub, err
		}
	}
	return sub, nil
}

// args are the flags as a command line that reproduces them.
func (f workerFlags) args() []string {
	var out []string
	if f.workers == hermes.WorkersHermes {
		out = append(out, "--workers", f.workers)
	}
	if f.pythonSQLite != "" && f.pythonSQLite != hermes.PythonSQLiteSystem {
		out = append(out, "--python-sqlite", f.pythonSQLite)
	}
	return out
}

// printWorkers says in a run's header what the workers are.
func printWorkers(w io.Writer, s schedule.Schedule, sub schedule.Subject) {
	switch {
	case sub.Workers == hermes.WorkersHermes:
		fmt.Fprintf(w, "  Hermes workers: the release's own kanban tools and connect(); Python's SQLite: %s\n", orSystem(sub.PythonSQLite))
	case sub.Hermes != "":
		fmt.Fprintf(w, "  Go fake workers connect as variant %s does; the release's Python SQLite: %s\n", s.Variant, orSystem(sub.PythonSQLite))
	default:
		fmt.Fprintf(w, "  fake workers connect as variant %s does\n", s.Variant)
	}
}

func orSystem(v string) string {
	if v == "" {
		return hermes.PythonSQLiteSystem
	}
	return v
}

func orNone(v string) string {
	if v == "" {
		return "(no worker started)"
	}
	return v
}

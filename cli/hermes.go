package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/hermes"
)

// cmdHermes manages the real Hermes releases runs can test (--subject
// hermes:VERSION): install them from PyPI into cached virtualenvs, list them.
func cmdHermes(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hermes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		root, _ := hermes.CacheRoot()
		fmt.Fprintf(stderr, "Usage:\n"+
			"  kanbanchaos hermes install [VERSION…]   install hermes-agent releases from PyPI (default: %s)\n"+
			"  kanbanchaos hermes list                 the installed releases, with the Python and SQLite they run on\n"+
			"  kanbanchaos hermes install-sqlite VERSION\n"+
			"                                          build Debian's libsqlite3 VERSION (e.g. 3.53.4) for --python-sqlite VERSION\n\n"+
			"Each release gets its own virtualenv under %s/hermes/VERSION (set %s to move it),\n"+
			"installed with pip the ordinary way; installing again is a no-op, so it works offline once cached.\n"+
			"A run then tests the release's own dispatcher: kanbanchaos run issue-30896 --subject hermes:%s\n"+
			"A source checkout needs no install: --subject hermes:/path/to/hermes-agent (its .venv, if any, runs it).\n",
			strings.Join(hermes.Defaults, " "), root, hermes.EnvCache, hermes.Release30896)
	}
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) == 0 {
		fs.Usage()
		return exitUsage
	}
	switch pos[0] {
	case "install":
		versions := pos[1:]
		if len(versions) == 0 {
			versions = hermes.Defaults
		}
		for _, v := range versions {
			if !hermes.IsVersion(v) {
				fmt.Fprintf(stderr, "kanbanchaos hermes install: %q is not a release version (e.g. %s)\n", v, hermes.Release30896)
				return exitUsage
			}
		}
		failed := 0
		for _, v := range versions {
			in, err := hermes.InstallRelease(ctx, v, stderr)
			if err != nil {
				fmt.Fprintln(stderr, "kanbanchaos hermes install:", err)
				failed++
				continue
			}
			fmt.Fprintf(stdout, "hermes:%s ready (%s)\n", v, in.Python)
		}
		if failed > 0 {
			return exitInternal
		}
		return exitPass
	case "list":
		if len(pos) > 1 {
			fmt.Fprintf(stderr, "kanbanchaos hermes list: takes no arguments, got %q\n", pos[1:])
			return exitUsage
		}
		for _, v := range hermes.Defaults {
			in, err := hermes.Locate(v)
			switch {
			case errors.Is(err, hermes.ErrNotInstalled):
				fmt.Fprintf(stdout, "hermes:%-8s not installed (kanbanchaos hermes install %s)\n", v, v)
			case err != nil:
				fmt.Fprintf(stdout, "hermes:%-8s %v\n", v, err)
			default:
				sqlite, err := hermes.Probe(ctx, in)
				if err != nil {
					fmt.Fprintf(stdout, "hermes:%-8s broken install: %v\n", v, err)
					continue
				}
				fmt.Fprintf(stdout, "hermes:%-8s %s (SQLite %s)\n", v, in.Python, sqlite)
			}
		}
		return exitPass
	case "install-sqlite":
		if len(pos) != 2 {
			fmt.Fprintln(stderr, "kanbanchaos hermes install-sqlite: want one SQLite version, e.g. 3.53.4")
			return exitUsage
		}
		if err := hermes.ParsePythonSQLite(pos[1]); err != nil || pos[1] == hermes.PythonSQLiteSystem {
			fmt.Fprintf(stderr, "kanbanchaos hermes install-sqlite: %q is not a SQLite version such as 3.53.4\n", pos[1])
			return exitUsage
		}
		python := ""
		if in, err := hermes.Locate(hermes.Newest); err == nil {
			python = in.Python // verifies the build loads and reports the version
		}
		lib, err := hermes.InstallSQLite(ctx, pos[1], python, stderr)
		if err != nil {
			fmt.Fprintln(stderr, "kanbanchaos hermes install-sqlite:", err)
			return exitInternal
		}
		fmt.Fprintf(stdout, "libsqlite3 %s ready (%s): --python-sqlite %s\n", pos[1], lib, pos[1])
		return exitPass
	}
	fmt.Fprintf(stderr, "kanbanchaos hermes: unknown subcommand %q (valid: install, list, install-sqlite)\n", pos[0])
	return exitUsage
}

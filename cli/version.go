package cli

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/kanbanchaos/kanbanchaos/buildinfo"
	"github.com/kanbanchaos/kanbanchaos/harness"
)

// schemaVersion is the version of every JSON document the CLI prints
// (docs/kanbanchaos.schema.json): it grows when a field changes meaning or
// goes away, not when one is added.
const schemaVersion = 1

const versionHelp = `Usage: kanbanchaos version [--json]

Prints what this binary is: the module version, the VCS revision it was built from (+dirty when the
checkout had uncommitted changes), the Go toolchain, and both SQLite engines — the one this binary links
and where the other comes from (installed next to it or on PATH, or built from the checkout on first use),
or the command that installs it. Every JSON output, JUnit file and HTML report carries the same facts.

Flags:
`

func cmdVersion(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", versionHelp, stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "kanbanchaos version: takes no arguments, got %q\n", pos)
		return exitUsage
	}
	info := buildinfo.Read()
	var engines []harness.EngineLocation
	for _, e := range engineNames() {
		engines = append(engines, harness.LocateEngine(ctx, e))
	}
	if *asJSON {
		writeDoc(stdout, "version", struct {
			Engines []harness.EngineLocation `json:"engines"`
		}{engines}, true)
		return exitPass
	}
	fmt.Fprintf(stdout, "kanbanchaos %s\n", info.Version)
	fmt.Fprintf(stdout, "  module    %s\n", info.Module)
	if info.Revision != "" {
		dirty := ""
		if info.Modified {
			dirty = " (+dirty: uncommitted changes)"
		}
		fmt.Fprintf(stdout, "  revision  %s%s %s\n", info.Revision, dirty, info.Time)
	} else {
		fmt.Fprintf(stdout, "  revision  not recorded (go build and go install stamp it in a git clone, unless -buildvcs=false; go run and go test never do)\n")
	}
	fmt.Fprintf(stdout, "  go        %s\n", info.Go)
	for _, e := range engines {
		switch {
		case e.Err != "":
			fmt.Fprintf(stdout, "  sqlite    %s (--sqlite %s): not available — %s\n", e.SQLite, e.Engine, e.Err)
		case e.Binary != "":
			fmt.Fprintf(stdout, "  sqlite    %s (--sqlite %s): %s, %s\n", e.SQLite, e.Engine, e.How, e.Binary)
		default:
			fmt.Fprintf(stdout, "  sqlite    %s (--sqlite %s): %s\n", e.SQLite, e.Engine, e.How)
		}
	}
	return exitPass
}

// newFlagSet is a command's flag set, its help and errors on stderr. The
// help reaches stdout, with exit 0, because help() runs the command with
// stdout as its stderr.
func newFlagSet(name, help string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, help)
		fs.PrintDefaults()
	}
	return fs
}

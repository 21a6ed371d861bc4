package cli

// The listing commands: scenarios and variants.

import (
	"fmt"
	"io"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
)

func cmdScenarios(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "kanbanchaos scenarios: takes no arguments, got %q\n", args)
		return exitUsage
	}
	for _, s := range scenarios.All() {
		e := s.Build(1, "").EngineOrDefault()
		fmt.Fprintf(stdout, "%s  (default variant %s, SQLite %s)\n  %s\n  %s\n\n", s.Name, s.Variant, e, s.Issue, s.Summary)
	}
	return exitPass
}

func cmdVariants(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "kanbanchaos variants: takes no arguments, got %q\n", args)
		return exitUsage
	}
	for _, v := range dispatcher.Variants() {
		fmt.Fprintf(stdout, "%s\n  %s\n ", v.Name, v.Doc)
		vals := v.Knobs.Values()
		for _, n := range dispatcher.KnobNames() {
			fmt.Fprintf(stdout, " %s=%s", n, vals[n])
		}
		fmt.Fprint(stdout, "\n\n")
	}
	fmt.Fprintf(stdout, "Knobs (set any alone with --knob name=value):\n  %s\n", strings.Join(dispatcher.KnobDocs(), "\n  "))
	return exitPass
}

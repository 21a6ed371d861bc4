package cli

import (
	"fmt"
	"io"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/oracle"
)

// printInvariants prints what a verdict says of each invariant beyond its
// violations: one line for those that held, then one line per invariant
// that was not checked, with why. run, replay and check print it right
// after their verdict line:
//
//	held: spawns, integrity, run-bookkeeping
//	not checked: no-lost-writes — the subject (exec:CMD) records none of its own commits: …
func printInvariants(w io.Writer, v oracle.Verdict) {
	if held := v.Held(); len(held) > 0 {
		fmt.Fprintf(w, "held: %s\n", strings.Join(held, ", "))
	}
	for _, s := range v.NotChecked {
		fmt.Fprintf(w, "not checked: %s — %s\n", s.Invariant, s.Why)
	}
}

// heldText is what a PASS line may claim — the invariants that held, never
// more: "spawns, integrity held", or "no invariant held" when nothing was
// checked.
func heldText(v oracle.Verdict) string {
	held := v.Held()
	if len(held) == 0 {
		return "no invariant held"
	}
	return strings.Join(held, ", ") + " held"
}

// notCheckedNote ends a verdict line with how many invariants were not
// checked ("; 3 not checked (below)"), or nothing when all were.
func notCheckedNote(v oracle.Verdict) string {
	if len(v.NotChecked) == 0 {
		return ""
	}
	return fmt.Sprintf("; %d not checked (below)", len(v.NotChecked))
}

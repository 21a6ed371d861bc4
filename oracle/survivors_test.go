package oracle

import (
	"slices"
	"strings"
	"testing"
)

// TestNoSurvivorsStates: held only when there was something to clean up
// and nothing survived; violated with the survivors' pids; not checked,
// with why, when the harness did not or could not look, or nothing was
// alive at the stop.
func TestNoSurvivorsStates(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c       *Cleanup
		want    string // held, violated, not checked
		mention string
	}{
		{"no scan", nil, "not checked", "did not look"},
		{"no /proc", &Cleanup{Why: "/proc could not be read"}, "not checked", "/proc"},
		{"nothing to clean up", &Cleanup{Scanned: true}, "not checked", "nothing to clean up"},
		{"cleaned up", &Cleanup{Scanned: true, AliveAtStop: 7}, "held", ""},
		{"survivor", &Cleanup{Scanned: true, AliveAtStop: 7, Survivors: []Survivor{{PID: 4242, Command: "sleep 1000"}}}, "violated", "4242 (sleep 1000)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v Verdict
			checkSurvivors(&v, tc.c)
			v.settle()
			got, text := "not checked", ""
			switch {
			case slices.Contains(v.Failed(), NoSurvivors):
				got, text = "violated", v.Violations[0].Message
			case slices.Contains(v.Held(), NoSurvivors):
				got = "held"
			default:
				if len(v.NotChecked) != 1 {
					t.Fatalf("not checked %+v, want %s alone", v.NotChecked, NoSurvivors)
				}
				text = v.NotChecked[0].Why
			}
			if got != tc.want || !strings.Contains(text, tc.mention) {
				t.Errorf("%s: %q, want %s mentioning %q", got, text, tc.want, tc.mention)
			}
		})
	}
}

package oracle

import "testing"

// After a power cut only durable commits from before it are owed; without
// one, everything is.
func TestSurvivesCut(t *testing.T) {
	for _, c := range []struct {
		in   Input
		mono int64
		want bool
	}{
		{Input{}, 5, true},
		{Input{DurableCommits: true}, 5, true},
		{Input{PowerCutMono: 10}, 5, false},                        // OFF/NORMAL: may be lost
		{Input{PowerCutMono: 10, DurableCommits: true}, 5, true},   // FULL: owed
		{Input{PowerCutMono: 10, DurableCommits: true}, 10, false}, // acknowledged at the cut: not owed
		{Input{PowerCutMono: 10, DurableCommits: true}, 12, false},
	} {
		if got := c.in.survivesCut(c.mono); got != c.want {
			t.Errorf("%+v survivesCut(%d) = %v, want %v", c.in, c.mono, got, c.want)
		}
	}
}

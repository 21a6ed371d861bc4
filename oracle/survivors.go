package oracle

import (
	"fmt"
	"strings"
)

// NoSurvivors: no process of the run's sandbox — a worker, a subject's
// helper, anything started with the sandbox's environment — is alive once
// the run is over. Skipped cleanup used to be caught only by unit tests of
// the process table; this makes every run check it, on the danger a hanging
// worker and a dispatcher stopped mid-tick set up.
const NoSurvivors = "no-survivors"

// Cleanup is what the harness saw of the sandbox's processes, found in
// /proc by the sandbox's paths in their environment (which a reused pid
// never carries).
type Cleanup struct {
	// Scanned: the harness could look (a /proc to read). False: Why says
	// why not.
	Scanned bool   `json:"scanned"`
	Why     string `json:"why,omitempty"`
	// AliveAtStop is how many sandbox processes were alive when the run's
	// time was up, before the harness killed anything: what there was to
	// clean up.
	AliveAtStop int `json:"alive_at_stop"`
	// Survivors are the ones still alive after the harness's cleanup.
	Survivors []Survivor `json:"survivors,omitempty"`
}

// Survivor is one process of the sandbox alive after the run.
type Survivor struct {
	PID     int    `json:"pid"`
	Command string `json:"command"`
}

// checkSurvivors decides NoSurvivors. Nothing alive at the stop is nothing
// cleaned up: held would claim a danger the run never went through, so it
// is not checked then.
func checkSurvivors(v *Verdict, c *Cleanup) {
	switch {
	case c == nil:
		v.skip(NoSurvivors, "the harness did not look for the sandbox's processes after the run (no cleanup scan recorded)")
		return
	case !c.Scanned:
		v.skip(NoSurvivors, "the harness could not look for the sandbox's processes: "+c.Why)
		return
	case len(c.Survivors) == 0 && c.AliveAtStop == 0:
		v.skip(NoSurvivors, "no process of the sandbox was alive when the run's time was up: there was nothing to clean up")
		return
	}
	v.check(NoSurvivors)
	if len(c.Survivors) == 0 {
		return
	}
	var names []string
	for i, s := range c.Survivors {
		if i == 5 {
			names = append(names, fmt.Sprintf("… %d more", len(c.Survivors)-5))
			break
		}
		names = append(names, fmt.Sprintf("%d (%s)", s.PID, s.Command))
	}
	v.Violations = append(v.Violations, Violation{
		Invariant: NoSurvivors,
		Message: fmt.Sprintf("%d process(es) of the sandbox outlived the run (%d were alive at its stop): %s",
			len(c.Survivors), c.AliveAtStop, strings.Join(names, ", ")),
		Evidence: map[string]any{"survivors": c.Survivors, "alive_at_stop": c.AliveAtStop},
	})
}

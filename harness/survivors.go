package harness

import (
	"time"

	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/sandbox"
)

// The cleanup scan: the harness counts the sandbox's processes when the
// run's time is up (Phases.AliveAtStop: what there is to clean up) and
// looks again after its cleanup (what survived it); the oracle's
// no-survivors invariant judges the two. A survivor is then swept, so it
// does not outlive the harness either.

// cleanupScan looks for survivors after the run's own cleanup, records
// them, and then kills them (a survivor is a finding, never a leftover).
func cleanupScan(sb sandbox.Dir, alive int, grace time.Duration) *oracle.Cleanup {
	c := &oracle.Cleanup{AliveAtStop: max(alive, 0)}
	pids, err := sb.Scan()
	if err != nil || alive < 0 {
		c.Why = "/proc could not be read"
		return c
	}
	c.Scanned = true
	for _, pid := range pids {
		c.Survivors = append(c.Survivors, oracle.Survivor{PID: pid, Command: sandbox.CommandOf(pid)})
	}
	if len(pids) > 0 {
		sb.Kill(grace)
	}
	return c
}

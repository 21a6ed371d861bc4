package harness

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/oracle"
)

// The cleanup scan: every process a run starts — its workers, an external
// subject and whatever they start — carries the sandbox's ledger path in
// its environment (workerEnv). The harness counts them when the run's time
// is up (what there is to clean up) and looks again after its cleanup (what
// survived it); the oracle's no-survivors invariant judges the two. A
// survivor is then swept, so it does not outlive the harness either.

// sandboxMarker is the environment entry every process of sb carries.
func sandboxMarker(sb sandbox) []byte {
	return []byte(fakeworker.EnvLedger + "=" + sb.ledger() + "\x00")
}

// scanSandbox lists the live (not zombie) processes of sb; the error says
// /proc could not be read at all.
func scanSandbox(sb sandbox) ([]int, error) {
	if _, err := os.ReadDir("/proc"); err != nil {
		return nil, fmt.Errorf("harness: /proc: %w", err)
	}
	return sandboxPIDs(sandboxMarker(sb)), nil
}

// aliveAtStop counts the sandbox's processes before any cleanup; -1 when
// /proc cannot be read.
func aliveAtStop(sb sandbox) int {
	pids, err := scanSandbox(sb)
	if err != nil {
		return -1
	}
	return len(pids)
}

// cleanupScan looks for survivors after the run's own cleanup, records
// them, and then kills them (a survivor is a finding, never a leftover).
func cleanupScan(sb sandbox, alive int, opt Options) *oracle.Cleanup {
	c := &oracle.Cleanup{AliveAtStop: max(alive, 0)}
	pids, err := scanSandbox(sb)
	if err != nil || alive < 0 {
		c.Why = "/proc could not be read"
		return c
	}
	c.Scanned = true
	for _, pid := range pids {
		c.Survivors = append(c.Survivors, oracle.Survivor{PID: pid, Command: commandOf(pid)})
	}
	if len(pids) > 0 {
		killSandboxProcesses(sb, opt.StopGrace)
	}
	return c
}

// commandOf is pid's command line, for the evidence.
func commandOf(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return "?"
	}
	args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
	return strings.Join(slices.DeleteFunc(args, func(a string) bool { return a == "" }), " ")
}

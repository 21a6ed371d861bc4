package sandbox

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/fakeworker"
)

// The processes of a run: every process a run starts — its workers, an
// external subject and whatever they start — carries the sandbox's ledger
// path in its environment (Env). The harness counts them when the run's time
// is up (what there is to clean up) and looks again after its cleanup (what
// survived it); an external subject's are killed by that mark, since they
// are its children, not ours.

// Marker is the environment entry every process of d carries.
func (d Dir) Marker() []byte {
	return []byte(fakeworker.EnvLedger + "=" + d.Ledger() + "\x00")
}

// Scan lists the live (not zombie) processes of d; the error says /proc
// could not be read at all.
func (d Dir) Scan() ([]int, error) {
	if _, err := os.ReadDir("/proc"); err != nil {
		return nil, fmt.Errorf("sandbox: /proc: %w", err)
	}
	return pidsMarked(d.Marker()), nil
}

// AliveAtStop counts the sandbox's processes before any cleanup; -1 when
// /proc cannot be read.
func (d Dir) AliveAtStop() int {
	pids, err := d.Scan()
	if err != nil {
		return -1
	}
	return len(pids)
}

// Kill kills every process of d — an external subject's workers (each in
// its own session) and any helper it forked — and waits until none is left
// or timeout (0: 10 s); it returns those still alive. Matching the
// environment, not a pid list, means a reused pid is never hit.
func (d Dir) Kill(timeout time.Duration) []int {
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	marker := d.Marker()
	deadline := time.Now().Add(timeout)
	for {
		pids := pidsMarked(marker)
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pidsMarked lists the live processes, other than this one, whose
// environment holds marker.
func pidsMarked(marker []byte) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		envb, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !containsEnv(envb, marker) {
			continue
		}
		if !dispatcher.Alive(pid) {
			continue // a zombie: its parent will reap it, nothing to kill
		}
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}

func containsEnv(environ, marker []byte) bool {
	return strings.HasPrefix(string(environ), string(marker)) || strings.Contains(string(environ), "\x00"+string(marker))
}

// CommandOf is pid's command line, for the evidence.
func CommandOf(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return "?"
	}
	args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
	return strings.Join(slices.DeleteFunc(args, func(a string) bool { return a == "" }), " ")
}

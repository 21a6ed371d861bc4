package fakeworker

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// EnvHarness names the harness process every process of a run lives for,
// as "PID:STARTTIME" (the start time, field 22 of /proc/PID/stat, tells a
// reused pid from the harness). The processes that could outlive a
// harness killed by SIGKILL — a hanging worker in a session of its own, a
// long-running subject's dispatcher, the Hermes driver — watch it and exit
// when it is gone: nothing of a run survives its harness.
const EnvHarness = "KANBANCHAOS_HARNESS"

// HarnessToken is the EnvHarness value for process pid ("" if unknown).
func HarnessToken(pid int) string {
	start, ok := startTime(pid)
	if !ok {
		return ""
	}
	return strconv.Itoa(pid) + ":" + start
}

// HarnessGone reports whether the harness token names is gone (dead, or
// its pid now another process). An empty or malformed token is no harness
// at all: false.
func HarnessGone(token string) bool {
	pid, start, ok := strings.Cut(token, ":")
	n, err := strconv.Atoi(pid)
	if !ok || err != nil || n <= 0 {
		return false
	}
	now, alive := startTime(n)
	return !alive || now != start
}

// startTime reads field 22 of /proc/pid/stat; a zombie counts as gone.
func startTime(pid int) (string, bool) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", false
	}
	f := strings.Fields(s[i+1:]) // fields 3 … : state is f[0], starttime f[19]
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return "", false
	}
	return f[19], true
}

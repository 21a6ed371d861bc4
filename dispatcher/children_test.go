package dispatcher

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestKillAllDuringStarts: KillAll while several goroutines start
// processes (no longer forked under the table's lock) leaves none of them
// alive once it has returned — those entered in the table are killed by
// KillAll, one born meanwhile by its own Start — and every Start after it
// is refused.
func TestKillAllDuringStarts(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep binary:", err)
	}
	dir := t.TempDir()
	marker := "kanbanchaos-children-test-" + strconv.Itoa(os.Getpid())
	c := NewChildren()
	spec := Spec{Argv: []string{sleep, "60"}, Env: []string{"MARKER=" + marker}, Dir: dir, Log: filepath.Join(dir, "log")}
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if _, err := c.Start("d1", spec); errors.Is(err, errClosed) {
					mu.Lock()
					refused++
					mu.Unlock()
					return
				} else if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	if left := c.KillAll(5 * time.Second); len(left) > 0 {
		t.Errorf("processes %v survived KillAll", left)
	}
	if alive := withEnv(marker); len(alive) > 0 {
		t.Errorf("processes %v alive after KillAll returned", alive)
	}
	wg.Wait()
	if refused != 8 {
		t.Errorf("%d of 8 starting goroutines were refused after KillAll, want all", refused)
	}
	if alive := withEnv(marker); len(alive) > 0 {
		t.Errorf("processes %v alive after every Start returned", alive)
	}
}

// withEnv lists the live (not zombie) processes whose environment holds
// MARKER=marker.
func withEnv(marker string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err == nil && strings.Contains(string(env), "MARKER="+marker) && Alive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/oracle"
)

// TestCleanupScenarioHoldsNoSurvivors: the cleanup scenario's hanging
// workers are alive when the run's time is up, and none outlives the run.
// On a loaded machine (load 15) a run can end with none of its workers
// alive — nothing to clean up, so nothing checked: the next seed is tried,
// up to three; a survivor fails at once.
func TestCleanupScenarioHoldsNoSurvivors(t *testing.T) {
	t.Parallel()
	var v oracle.Verdict
	for seed := uint64(1); seed <= 3; seed++ {
		res, err := Run(context.Background(), build(t, "cleanup-hang", "fixed", seed), Options{})
		if err != nil {
			t.Fatal(err)
		}
		v = res.Verdict
		if slices.Contains(v.Failed(), oracle.NoSurvivors) {
			t.Fatalf("seed %d: %+v", seed, v.Violations)
		}
		if slices.Contains(v.Held(), oracle.NoSurvivors) {
			return
		}
		t.Logf("seed %d: %s not checked (%+v); trying the next seed", seed, oracle.NoSurvivors, v.NotChecked)
	}
	t.Fatalf("%s not held on seeds 1-3: verdict %s, failed %v, not checked %+v, unknowns %q", oracle.NoSurvivors, v.Status, v.Failed(), v.NotChecked, v.Unknowns)
}

// TestSurvivorFailsTheRun: a process of the sandbox that the harness's
// process table does not know (started in a session of its own, as a
// daemonising worker would) survives the table's cleanup. The run fails
// no-survivors with its pid, and the process is killed all the same.
func TestSurvivorFailsTheRun(t *testing.T) {
	t.Parallel()
	s := build(t, "cleanup-hang", "fixed", 2)
	var stray *exec.Cmd
	started := make(chan error, 1)
	// The harness names its sandbox before dispatching: a process carrying
	// that sandbox's ledger path is one of the run's.
	log := lineWriter(func(line string) {
		root, ok := strings.CutPrefix(line, "sandbox ")
		if !ok || stray != nil {
			return
		}
		stray = exec.Command("sleep", "1000")
		stray.Env = append(os.Environ(), fakeworker.EnvLedger+"="+filepath.Join(root, "ledger.jsonl"))
		stray.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		started <- stray.Start()
	})
	res, err := Run(context.Background(), s, Options{Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	defer stray.Process.Kill()
	v := res.Verdict
	if !slices.Contains(v.Failed(), oracle.NoSurvivors) {
		t.Fatalf("verdict %s %v, want %s violated by pid %d", v.Status, v.Failed(), oracle.NoSurvivors, stray.Process.Pid)
	}
	// Swept after it was recorded: it does not outlive the harness either.
	done := make(chan error, 1)
	go func() { done <- stray.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the survivor %d was not killed after the run", stray.Process.Pid)
	}
}

// lineWriter calls f with each line written to it.
type lineWriter func(string)

func (f lineWriter) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		f(line)
	}
	return len(p), nil
}

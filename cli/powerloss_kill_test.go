package cli

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountsUnder lists the mount points below dir (/proc/mounts escapes a
// space as \040; the test's paths have none).
func mountsUnder(dir string) []string {
	data, _ := os.ReadFile("/proc/mounts")
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && strings.HasPrefix(f[1], dir+"/") {
			out = append(out, f[1])
		}
	}
	return out
}

// loopsUnder lists the loop devices backed by a file below dir.
func loopsUnder(t *testing.T, dir string) []string {
	out, err := exec.Command("losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE").CombinedOutput()
	if err != nil {
		t.Fatalf("losetup: %v: %s", err, out)
	}
	var devs []string
	for _, line := range strings.Split(string(out), "\n") {
		if dev, back, ok := strings.Cut(strings.TrimSpace(line), " "); ok && strings.Contains(back, dir+"/") {
			devs = append(devs, dev)
		}
	}
	return devs
}

// TestNothingOutlivesAKilledPowerLossRun: SIGKILL a power-loss run once
// its dispatch phase began (its own progress line says so) — the board's
// home is a loop-mounted disk and the writeback helper and workers run.
// No process of the sandbox survives it; the mount it could not clean up
// is swept by the next power-loss run's start, which says so, and then no
// mount and no loop device of either run remain.
//
// Not parallel: a power-loss run started beside it could sweep the killed
// run's mount first, and then the next run would have nothing to report.
func TestNothingOutlivesAKilledPowerLossRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts power-loss runs as processes")
	}
	if os.Getuid() != 0 {
		t.Skip("power-loss runs need root (loop devices, mount)")
	}
	for _, tool := range []string{"losetup", "mkfs.ext4", "mount", "umount"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("power-loss runs need %s", tool)
		}
	}
	tmp := t.TempDir()
	// Whatever the test's outcome, nothing stays mounted or attached.
	t.Cleanup(func() {
		for _, mp := range mountsUnder(tmp) {
			exec.Command("umount", "--lazy", mp).Run()
		}
		for _, dev := range loopsUnder(t, tmp) {
			exec.Command("losetup", "--detach", dev).Run()
		}
	})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, "kanbanchaos")
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "powerloss-sync-off", "--seed", "1", "--duration", "30s", "--time-scale", "0.001")
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	dispatching := false
	for !dispatching && sc.Scan() {
		dispatching = strings.HasPrefix(sc.Text(), "dispatching:")
	}
	if !dispatching {
		cmd.Wait()
		t.Skipf("the power-loss run never reached its dispatch phase (power loss unsupported here?): exit %d", cmd.ProcessState.ExitCode())
	}
	mounted := mountsUnder(tmp)
	if len(mounted) == 0 || len(sandboxProcesses(tmp)) == 0 {
		t.Fatalf("mounts %q, processes %v under %s: the test would prove nothing", mounted, sandboxProcesses(tmp), tmp)
	}
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for left := sandboxProcesses(tmp); len(left) > 0; left = sandboxProcesses(tmp) {
		if time.Now().After(deadline) {
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			t.Fatalf("processes %v of the killed power-loss run are still running", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(mountsUnder(tmp)) == 0 {
		t.Fatal("the killed run left no mount: nothing for the next start to sweep")
	}

	// The next power-loss run sweeps and reports what the killed one left.
	next := exec.Command(bin, "run", "powerloss-sync-off", "--seed", "2")
	next.Env = append(os.Environ(), "TMPDIR="+tmp)
	out, _ := next.CombinedOutput()
	for _, mp := range mounted {
		if !strings.Contains(string(out), "swept what a killed run left behind: unmounted "+mp) {
			t.Errorf("the next run did not report sweeping %s:\n%s", mp, out)
		}
	}
	if !strings.Contains(string(out), "swept what a killed run left behind: detached ") {
		t.Errorf("the next run did not report detaching the killed run's loop device:\n%s", out)
	}
	if left := mountsUnder(tmp); len(left) > 0 {
		t.Errorf("still mounted after the next run: %q", left)
	}
	if left := loopsUnder(t, tmp); len(left) > 0 {
		t.Errorf("loop devices still attached after the next run: %q", left)
	}
	if left := sandboxProcesses(tmp); len(left) > 0 {
		t.Errorf("processes %v left after the next run", left)
	}
}

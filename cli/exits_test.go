package cli

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/internal/runtest"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
)

// TestInterruptedSetupIsUndecided: an interrupt (the context Main cancels
// on SIGINT, SIGTERM and SIGHUP) that comes before or during a command's
// setup leaves it undecided, exit 3 — never an internal error.
func TestInterruptedSetupIsUndecided(t *testing.T) {
	dir := t.TempDir()
	sched := filepath.Join(dir, "schedule.json")
	if err := runtest.Build(t, "issue-30417", "fixed", 1).Write(sched); err != nil {
		t.Fatal(err)
	}
	board := closedWALBoard(t, dir)
	cases := [][]string{
		{"run", "issue-30417", "--variant", "fixed", "--seed", "1"},
		{"run", "powerloss-sync-off", "--seed", "1"},
		{"replay", sched},
		{"fuzz", "--scenario", "issue-30417", "--variant", "fixed", "--runs", "2", "--seed", "1"},
		{"compare", "--a", "hermes-0.15", "--b", "fixed", "--scenario", "issue-30417", "--runs", "1"},
		{"check", board},
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, args := range cases {
		var stdout, stderr bytes.Buffer
		code := run(ctx, args, &stdout, &stderr)
		out := stdout.String() + stderr.String()
		if code != exitUnknown || !strings.Contains(out, "interrupted") {
			t.Errorf("%q interrupted at once: exit %d, want 3 saying interrupted\n%s", args, code, out)
		}
	}
}

// TestOutputPathsCheckedUpFront: an output path that could not be written
// is bad input, refused before anything runs (exit 2, naming the flag) —
// not found after the whole campaign ran.
func TestOutputPathsCheckedUpFront(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a-file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "no-such-dir", "out.xml")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "issue-30417", "--variant", "fixed", "--artifacts", file}, "--artifacts " + file + " is not a regular file"},
		{[]string{"run", "issue-30417", "--variant", "fixed", "--artifacts", "/proc/kanbanchaos"}, "--artifacts /proc/kanbanchaos cannot be created"},
		{[]string{"fuzz", "--runs", "1", "--junit", missing}, "does not exist"},
		{[]string{"fuzz", "--runs", "1", "--junit", dir}, "--junit " + dir + " is a directory"},
		{[]string{"fuzz", "--runs", "1", "--artifacts", file}, "--artifacts " + file},
		{[]string{"gate", "--subject", "fixed", "--junit", missing}, "--junit"},
		{[]string{"compare", "--a", "hermes-0.15", "--b", "fixed", "--scenario", "issue-30417", "--artifacts", file}, "--artifacts"},
		{[]string{"merge", "--junit", dir, file}, "--junit " + dir + " is a directory"},
		{[]string{"report", dir, "--out", "/proc/kanbanchaos/report.html"}, "--out"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		start := time.Now()
		code := run(context.Background(), c.args, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("%q took %v: the path was not checked before the work", c.args, took)
		}
	}
}

// TestReplayRefusesUnknownVariantOrKnob: a schedule.json naming a variant
// or knob that does not exist is bad input (exit 2), found before the run.
func TestReplayRefusesUnknownVariantOrKnob(t *testing.T) {
	sc, err := scenarios.Lookup("issue-30417")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ variant, knob, want string }{
		{"hermes-9", "", `unknown variant "hermes-9"`},
		{"fixed", "nope", `unknown knob "nope"`},
	} {
		s := sc.Build(1, c.variant)
		if c.knob != "" {
			s.Knobs = map[string]string{c.knob: "1"}
		}
		path := filepath.Join(t.TempDir(), "schedule.json")
		if err := s.Write(path); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"replay", path}, &stdout, &stderr); code != exitUsage || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("replay with variant %q knob %q: exit %d, stderr %q; want 2 and %q", c.variant, c.knob, code, stderr.String(), c.want)
		}
	}
}

// TestFinishedCampaignPrintsItsVerdict: when the JUnit file cannot be
// written after the campaign (the disk filled, the directory went away),
// the verdict and summary are printed all the same and the exit code is
// the verdict's, or undecided for a pass — never an internal error.
func TestFinishedCampaignPrintsItsVerdict(t *testing.T) {
	t.Parallel()
	f := fuzzFlags{scenario: "issue-30417", variant: "fixed", runs: 1, seed: 3, votes: 1, concurrency: 1, keep: 20, shard: "0/1",
		junit: filepath.Join(t.TempDir(), "gone", "fuzz.xml")}
	var stderr bytes.Buffer
	c, code := f.campaign(context.Background(), map[string]bool{"seed": true}, func(format string, a ...any) int { t.Fatalf(format, a...); return 0 })
	if code >= 0 {
		t.Fatalf("campaign: exit %d", code)
	}
	var stdout bytes.Buffer
	code = runCampaign(context.Background(), c, f, &stdout, &stderr)
	if !strings.Contains(stdout.String(), "verdict: ") {
		t.Errorf("no verdict printed:\n%s\n%s", stdout.String(), stderr.String())
	}
	if code == exitInternal || code == exitPass || !strings.Contains(stderr.String(), "could not be written") {
		t.Errorf("exit %d, stderr %q; want the verdict's code (3 for a pass) and the JUnit file named", code, stderr.String())
	}
}

// kanbanchaosCommand is this test binary as `kanbanchaos` (TestMain), in a
// process of its own, so that signals reach its Main.
func kanbanchaosCommand(t *testing.T, args ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "kanbanchaos")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	return exec.Command(link, args...)
}

// TestSignalsEndCommandsUndecided: SIGINT, SIGTERM and SIGHUP in the middle
// of run, fuzz and compare end them undecided (exit 3) with the verdict
// printed. Each signal is sent once the command's own progress output says
// it reached the phase — never after a sleep, which a loaded machine
// stretches.
func TestSignalsEndCommandsUndecided(t *testing.T) {
	runtest.Long(t, "starts kanbanchaos processes")
	cases := []struct {
		name   string
		args   []string
		marker string // a progress line on stderr (or stdout) that says the phase began
		sig    syscall.Signal
		want   string // in stdout
	}{
		{"run SIGINT dispatching", []string{"run", "cleanup-hang", "--seed", "1"}, "dispatching:", syscall.SIGINT, "verdict: UNKNOWN"},
		{"run SIGTERM dispatching", []string{"run", "cleanup-hang", "--seed", "2"}, "dispatching:", syscall.SIGTERM, "verdict: UNKNOWN"},
		{"run SIGHUP quiet phase", []string{"run", "cleanup-hang", "--seed", "3"}, "quiet phase:", syscall.SIGHUP, "verdict: UNKNOWN"},
		{"fuzz SIGTERM after a run", []string{"fuzz", "--scenario", "issue-30417", "--variant", "fixed", "--runs", "40", "--seed", "1", "-v", "--concurrency", "1"},
			" run 0 seed=", syscall.SIGTERM, "verdict: UNKNOWN"},
		{"compare SIGINT after a seed", []string{"compare", "--a", "hermes-0.15", "--b", "fixed", "--scenario", "issue-30417", "--runs", "20"},
			"[1/", syscall.SIGINT, "interrupted"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel() // each a process of its own, signalled on its own output
			cmd := kanbanchaosCommand(t, c.args...)
			var stdout bytes.Buffer
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stdout = &stdout
			cmd.Stderr = pw
			if c.name[:4] == "fuzz" {
				cmd.Stdout, cmd.Stderr = pw, pw // fuzz -v prints its run lines on stdout
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pw.Close()
			done := make(chan struct{})
			var out strings.Builder
			go func() {
				defer close(done)
				sc := bufio.NewScanner(pr)
				signalled := false
				for sc.Scan() {
					out.WriteString(sc.Text() + "\n")
					if !signalled && strings.Contains(sc.Text(), c.marker) {
						cmd.Process.Signal(c.sig)
						signalled = true
					}
				}
			}()
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			select {
			case <-waited:
			case <-time.After(3 * time.Minute):
				cmd.Process.Kill()
				t.Fatalf("still running 3 min after start; output:\n%s", out.String())
			}
			<-done
			all := stdout.String() + out.String()
			if code := cmd.ProcessState.ExitCode(); code != exitUnknown || !strings.Contains(all, c.want) {
				t.Errorf("exit %d, want 3 with %q:\n%s", code, c.want, all)
			}
		})
	}
}

// TestSubjectThatDidNotRunIsUndecided: a subject that exits at once, or a
// command that does not exist, could not be tested: undecided (exit 3),
// never a pass and never an internal error.
func TestSubjectThatDidNotRunIsUndecided(t *testing.T) {
	for _, subject := range []string{"exec:true", "exec:/nonexistent/dispatcher"} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"run", "issue-30417", "--seed", "1", "--duration", "500ms", "--subject", subject}, &stdout, &stderr)
		if code != exitUnknown {
			t.Errorf("--subject %s: exit %d, want 3\n%s\n%s", subject, code, stdout.String(), stderr.String())
		}
	}
}

// TestVerdictStandsWhenArtifactsFail: a run whose verdict was reached but
// whose artifacts directory cannot be written at the end (it went away,
// the disk filled) still gives its verdict — with why its evidence is not
// there — never an internal error without one.
func TestVerdictStandsWhenArtifactsFail(t *testing.T) {
	s := runtest.Build(t, "issue-30417", "hermes-0.15", 1) // fails: it must be kept
	var stderr bytes.Buffer
	res, code := runSchedule(context.Background(), "run", s, harness.Options{ArtifactsDir: "/proc/kanbanchaos-gone"}, &stderr)
	if code >= 0 || res.Verdict.Status == "" || !strings.Contains(stderr.String(), "the verdict below stands") {
		t.Fatalf("code %d, verdict %q, stderr %q; want the verdict and why its artifacts are missing", code, res.Verdict.Status, stderr.String())
	}
}

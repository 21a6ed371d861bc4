package cli

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain makes the test binary both `kanbanchaos` (for the scripts) and
// `hermes` (the fake worker the harness points HERMES_BIN at).
func TestMain(m *testing.M) {
	testscript.Main(privateTmp{m}, map[string]func(){
		// The same entry as the real binary, signal handling included.
		"kanbanchaos": func() { os.Exit(Main("kanbanchaos", os.Args[1:])) },
		fakeworker.InvokedAs: func() {
			os.Exit(fakeworker.Main(os.Args[1:], os.Getenv, os.Stderr))
		},
	})
}

// privateTmp runs the tests with TMPDIR set to a directory of their own,
// removed afterwards: runs that fail keep their sandbox in the temp dir by
// design, and a test run must not leave dozens of them in /tmp.
type privateTmp struct{ m *testing.M }

func (p privateTmp) Run() int {
	dir, err := os.MkdirTemp("", "kanbanchaos-cli-tests-")
	if err != nil {
		return p.m.Run()
	}
	defer os.RemoveAll(dir)
	os.Setenv("TMPDIR", dir)
	// Runs that fail keep their evidence in the artifact store: here, not
	// in the package directory.
	os.Setenv(EnvArtifacts, dir+"/artifacts")
	parallelByDefault(2 * runtime.GOMAXPROCS(0))
	return p.m.Run()
}

// parallelByDefault sets -test.parallel to n unless it was given. These
// tests wait on dispatcher ticks and worker processes far more than they
// compute, so twice as many as there are CPUs run at once.
func parallelByDefault(n int) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		flag.Set("test.parallel", strconv.Itoa(n))
	}
}

// TestScripts runs every pinned behaviour in testdata/script. Parallel
// with the other tests: each script has its own work directory and
// HOME, and its in-process commands change no process state.
func TestScripts(t *testing.T) {
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 "../testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		// [hermes:0.19.0] holds when that release is installed (`kanbanchaos
		// hermes install 0.19.0`), [libsqlite:3.53.4] when that libsqlite3 is
		// built: a real-release regression skips without them.
		Condition: installedRelease,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": cmdExitCode,
			// pins_test.go
			"board": cmdBoard, "gateway": cmdGateway, "hermescli": cmdHermesCLIScript, "sha": cmdSHA, "backups": cmdBackups,
		},
	})
}

// installedRelease decides testscript conditions of the form hermes:VERSION
// (a release installed by `kanbanchaos hermes install`) and
// libsqlite:VERSION (a libsqlite3 built by `kanbanchaos hermes install-sqlite`).
func installedRelease(cond string) (bool, error) {
	if version, ok := strings.CutPrefix(cond, "libsqlite:"); ok {
		_, err := hermes.LocateSQLite(version)
		return err == nil, nil
	}
	version, ok := strings.CutPrefix(cond, "hermes:")
	if !ok {
		return false, fmt.Errorf("unknown condition %q (want hermes:VERSION or libsqlite:VERSION)", cond)
	}
	_, err := hermes.Locate(version)
	return err == nil, nil
}

// cmdExitCode runs `kanbanchaos ARGS…` in-process and checks its exit code:
// `exitcode 2 run nope`. testscript's own `! exec` only tells zero from
// non-zero, but our exit codes carry meaning (1 fail, 2 usage, 3 unknown).
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 {
		ts.Fatalf("usage: exitcode N kanbanchaos-args…")
	}
	var stdout, stderr bytes.Buffer
	got := run(context.Background(), args[1:], &stdout, &stderr)
	ts.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	// Leave the output where `stdout`/`stderr` assertions look for it.
	ts.Check(os.WriteFile(ts.MkAbs("exitcode.stdout"), stdout.Bytes(), 0o644))
	ts.Check(os.WriteFile(ts.MkAbs("exitcode.stderr"), stderr.Bytes(), 0o644))
	if want := args[0]; want != strconv.Itoa(got) {
		ts.Fatalf("exit code %d, want %s", got, want)
	}
}

// TestUsageErrors: every kind of bad input exits 2 and names the valid
// choices.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string // in stderr
	}{
		{[]string{"run", "issue-99999"}, "valid: cleanup-hang, exit-75-cooldown, fault-delete-sidecars, issue-28712, issue-30417, issue-30678, issue-30896"},
		{[]string{"run", "issue-30896", "--variant", "hermes-9"}, "valid: hermes-0.14, pr30973, hermes-0.15, hermes-0.19, fixed"},
		{[]string{"run", "issue-30896", "--knob", "nope=1"}, "valid: journal_mode, synchronous"},
		{[]string{"run", "issue-30896", "--knob", "backoff=maybe"}, `"maybe" is not true/false`},
		{[]string{"run", "issue-30896", "--knob", "backoff"}, "want name=value"},
		{[]string{"run", "issue-30896", "--no-such-flag"}, "flag provided but not defined: -no-such-flag"},
		{[]string{"run", "issue-30896", "--dispatchers", "0x"}, "invalid value"},
		{[]string{"run", "issue-30896", "--time-scale", "5"}, "time_scale = 5, want 0 < x <= 1"},
		{[]string{"run", "issue-30417", "--dispatchers", "-1"}, "--dispatchers -1: want a positive value"},
		// Zero never silently means "the scenario's own" once typed.
		{[]string{"run", "issue-30417", "--dispatchers", "0"}, "--dispatchers 0: want a positive value"},
		{[]string{"run", "issue-30417", "--duration", "0s"}, "--duration 0s: want a positive value"},
		{[]string{"run", "issue-30417", "--time-scale", "0"}, "--time-scale 0: want a positive value"},
		{[]string{"run", "issue-30417", "--time-scale", "NaN"}, "--time-scale NaN: want a positive value"},
		{[]string{"run", "issue-30417", "--dispatchers", "100000000"}, "dispatchers = 100000000, want 1..64"},
		{[]string{"run"}, "want exactly one scenario (valid: cleanup-hang, exit-75-cooldown, fault-delete-sidecars, issue-28712, issue-30417, issue-30678, issue-30896"},
		{[]string{"run", "issue-30896", "issue-30417"}, "want exactly one scenario"},
		{[]string{"frobnicate"}, "unknown command \"frobnicate\" (valid: run, replay, fuzz, gate, merge, compare, report, check, scenarios, variants, dispatch, hermes, version, worker, help)"},
		{nil, "Usage:"},
		{[]string{"scenarios", "extra"}, "takes no arguments"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), c.args, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("kanbanchaos %q: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
}

func TestHelpExitsZero(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"run", "--help"}, &stdout, &stderr); code != exitPass {
		t.Fatalf("run --help: exit %d", code)
	}
	for _, want := range []string{"Usage: kanbanchaos run SCENARIO", "-time-scale", "issue-30896", "hermes-0.14", "atomic_failure"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("run --help lacks %q on stdout", want)
		}
	}
}

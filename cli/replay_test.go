package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/internal/runtest"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func writeSchedule(t *testing.T, scenario, variant string, seed uint64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sched.json")
	if err := runtest.Build(t, scenario, variant, seed).Write(path); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReplay: a written schedule replays to the verdict of its run, and so
// does the artifact directory the failing replay leaves.
func TestReplay(t *testing.T) {
	t.Parallel()
	t.Run("fixed passes", func(t *testing.T) {
		t.Parallel()
		file := writeSchedule(t, "issue-30417", "fixed", 3)
		code, out, errs := runCLI("replay", file)
		if code != exitPass || !strings.Contains(out, "verdict: PASS") {
			t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errs)
		}
	})
	t.Run("hermes-0.15 fails, then its artifacts replay", func(t *testing.T) {
		t.Parallel()
		file := writeSchedule(t, "issue-30417", "hermes-0.15", 3)
		arts := t.TempDir()
		code, out, errs := runCLI("replay", file, "--artifacts", arts)
		for _, want := range []string{
			"kanbanchaos replay " + file + "  scenario=issue-30417  variant=hermes-0.15  seed=3",
			"sqlite " + schedule.Engines["3.54"],
			"FAIL breaker-holds",
			"artifacts: " + arts + "/20", // the store: <time>-issue-30417-3
			"-issue-30417-3\n",
			" replay " + file + "\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q", want)
			}
		}
		if code != exitFail {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, out, errs)
		}

		dir := filepath.Join(arts, "latest")
		code, out, errs = runCLI("replay", dir, "--json")
		if code != exitFail {
			t.Fatalf("replay %s: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", dir, code, out, errs)
		}
		var res struct {
			harness.Result
			Replay string `json:"replay"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("--json output: %v\n%s", err, out)
		}
		if res.Verdict.Status != "fail" || res.Schedule.Seed != 3 || res.SQLite != schedule.Engines["3.54"] ||
			!strings.HasSuffix(res.Replay, " replay "+filepath.Join(dir, "schedule.json")) {
			t.Fatalf("replay of the artifact dir: %s seed %d sqlite %q replay %q", res.Verdict.Status, res.Schedule.Seed, res.SQLite, res.Replay)
		}
		if !strings.Contains(errs, "dispatching:") {
			t.Errorf("progress goes to stderr also with --json, got %q", errs)
		}
	})
}

// TestReplayBadInput: everything that is not a runnable schedule exits 2
// and says which problem it is.
func TestReplayBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	valid, err := os.ReadFile(writeSchedule(t, "issue-30417", "fixed", 1))
	if err != nil {
		t.Fatal(err)
	}
	invalid := strings.Replace(string(valid), `"dispatchers": 1`, `"dispatchers": 0`, 1)
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"replay", filepath.Join(dir, "nope.json")}, "nope.json: no such schedule file or artifact directory"},
		{[]string{"replay", write("other.json", `{"foo": 1}`)}, "other.json is not a schedule (no scenario, seed, variant, dispatchers, tasks)"},
		{[]string{"replay", write("verdict.json", `{"schedule": {}, "verdict": {}}`)}, `a verdict.json?): pass the artifact directory or its schedule.json`},
		{[]string{"replay", write("text.json", "hello")}, "text.json is not a schedule (not a JSON object"},
		{[]string{"replay", write("typed.json", `{"scenario": 1, "seed": 1, "variant": "x", "dispatchers": 1, "tasks": []}`)}, "typed.json is not a schedule: json: cannot unmarshal"},
		{[]string{"replay", write("invalid.json", invalid)}, "invalid.json is an invalid schedule: schedule: dispatchers = 0, want 1..64"},
		{[]string{"replay", empty}, "empty has no schedule.json: it is not an artifact directory of a kanbanchaos run"},
		{[]string{"replay"}, "want exactly one schedule file or artifact directory, got 0 arguments"},
		{[]string{"replay", "a.json", "b.json"}, "got 2 arguments"},
		{[]string{"replay", "a.json", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"run", "issue-30417", "--sqlite", "3.8"}, `--sqlite "3.8" is not an engine (valid: 3.54, 3.50)`},
	}
	for _, c := range cases {
		code, _, errs := runCLI(c.args...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("kanbanchaos %q: exit %d, stderr %q; want exit 2 and %q", c.args, code, errs, c.want)
		}
	}
}

// TestSQLiteFlagInReplayCommand: --sqlite is echoed unless it is the default.
func TestSQLiteFlagInReplayCommand(t *testing.T) {
	if got := replayCommand("issue-30417", runFlags{seed: 3, sqlite: "3.50"}, "fixed"); !strings.Contains(got, "run issue-30417 --variant fixed --seed 3 --sqlite 3.50") {
		t.Errorf("replay command %q lacks --sqlite 3.50", got)
	}
	if got := replayCommand("issue-30417", runFlags{seed: 3, sqlite: defaultEngine}, "fixed"); strings.Contains(got, "--sqlite") {
		t.Errorf("replay command %q names the default engine", got)
	}
}

// TestRunOnSQLite350: run --sqlite 3.50 hands the run to the 3.50.4 engine
// (built once per user; harness's tests build it too) and says so.
func TestRunOnSQLite350(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the SQLite 3.50 engine is built with the go command, which is not on PATH")
	}
	code, out, errs := runCLI("run", "issue-30417", "--variant", "fixed", "--seed", "3", "--sqlite", "3.50")
	if code != exitPass {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{"sqlite 3.50.4\n", "verdict: PASS", "--seed 3 --sqlite 3.50\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
}

package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/campaign/gate"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/internal/runtest"
)

// TestGateWorkflowCommands runs the commands of the GitHub Actions workflow
// Hermes can copy (examples/github-actions/kanbanchaos-gate.yml), read from
// the file itself: the three gate shards against a Hermes checkout (here
// the installed 0.14.0's own files), then the merge that publishes JUnit.
// Only the seeds are cut to one, to keep the test short.
func TestGateWorkflowCommands(t *testing.T) {
	runtest.Long(t, "runs a whole gate")
	in, err := hermes.Locate(hermes.Release30896)
	if err != nil {
		t.Skipf("needs hermes %s (.ci/install-hermes): %v", hermes.Release30896, err)
	}
	checkouts, _ := filepath.Glob(filepath.Join(filepath.Dir(filepath.Dir(in.Python)), "lib", "python3*", "site-packages"))
	if len(checkouts) != 1 {
		t.Skipf("no single site-packages beside %s", in.Python)
	}
	data, err := os.ReadFile("../examples/github-actions/kanbanchaos-gate.yml")
	if err != nil {
		t.Fatal(err)
	}
	// The run: blocks' kanbanchaos commands, continuation lines joined.
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	gateCmd := regexp.MustCompile(`kanbanchaos (gate [^|\n]*?) > (\S.*?\.json)`).FindStringSubmatch(text)
	mergeCmd := regexp.MustCompile(`run: kanbanchaos (merge [^\n]*)`).FindStringSubmatch(text)
	if gateCmd == nil || mergeCmd == nil {
		t.Fatalf("the workflow has no gate or merge command:\n%s", text)
	}
	// Each command is a kanbanchaos process of its own, in the workflow's
	// directory, with the checkout's Python in its environment: nothing
	// of this test process changes, so it runs beside the other tests.
	dir := t.TempDir()
	kanbanchaos := func(args ...string) (code int, stdout, stderr string) {
		cmd := kanbanchaosCommand(t, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), hermes.EnvPython+"="+in.Python)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil && cmd.ProcessState == nil {
			t.Fatalf("%q: %v", args, err)
		}
		return cmd.ProcessState.ExitCode(), out.String(), errb.String()
	}
	for shard := range 3 {
		sub := func(s string) string {
			s = strings.ReplaceAll(s, "${{ matrix.shard }}", string(rune('0'+shard)))
			return strings.ReplaceAll(s, "hermes:.", "hermes:"+checkouts[0])
		}
		args := strings.Fields(sub(gateCmd[1]))
		for i, a := range args {
			if a == "--seeds" {
				args[i+1] = "1"
			}
		}
		code, stdout, stderr := kanbanchaos(args...)
		if code != exitFail && code != exitPass {
			t.Fatalf("%q: exit %d\n%s", args, code, stderr)
		}
		os.WriteFile(filepath.Join(dir, sub(gateCmd[2])), []byte(stdout), 0o644)
	}
	shards, _ := filepath.Glob(filepath.Join(dir, "gate-shard-*.json"))
	args := strings.Fields(mergeCmd[1])
	args = append(args[:1], append(shards, args[2:]...)...) // the shell expands the glob
	code, stdout, stderr := kanbanchaos(args...)
	// The real 0.14.0 has regressions (README's gate table): exit 1, and
	// the merged JUnit holds every entry once.
	if code != exitFail || !strings.Contains(stdout, "gate: FAIL") {
		t.Fatalf("merge: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if names := junitNames(t, filepath.Join(dir, "gate.xml")); len(names) != len(gate.Names()) {
		t.Errorf("merged JUnit has %d cases, want one per entry: %q", len(names), names)
	}
}

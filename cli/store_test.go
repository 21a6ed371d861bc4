package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/internal/runtest"
	"github.com/rogpeppe/go-internal/testscript"
)

// TestSaveRegression: fuzz --save-regression DIR writes the shrunk
// failure's testscript into DIR under a name of its own, and the script
// runs there as a pin does — failing on the buggy variant, passing on the
// fixed one.
func TestSaveRegression(t *testing.T) {
	runtest.Long(t, "runs a campaign and its regression")
	pins := t.TempDir()
	code, _, stderr := kc(t, "fuzz", "--scenario", "issue-30896", "--variant", "hermes-0.15", "--runs", "1", "--seed", "5",
		"--max-duration", "800ms", "--shrink-time", "5s", "--artifacts", filepath.Join(t.TempDir(), "fz"), "--save-regression", pins)
	if code != exitFail {
		t.Fatalf("fuzz: exit %d, want 1\n%s", code, stderr)
	}
	files, _ := filepath.Glob(filepath.Join(pins, "fuzz-issue-30896-*.txtar"))
	if len(files) != 1 || !strings.Contains(stderr, "regression saved: "+files[0]) {
		t.Fatalf("saved %v; stderr:\n%s", files, stderr)
	}
	testscript.Run(t, testscript.Params{Dir: pins, RequireExplicitExec: true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){"exitcode": cmdExitCode}})

	if code, _, stderr := kc(t, "fuzz", "--runs", "1", "--save-regression", filepath.Join(pins, "nope")); code != exitUsage || !strings.Contains(stderr, "not a directory") {
		t.Errorf("--save-regression to a missing directory: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(pins, "nope")); err == nil {
		t.Error("a missing --save-regression directory was created")
	}
}

package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/internal/runtest"
	"github.com/rogpeppe/go-internal/testscript"
)

// recipeSections are the README sections whose commands a new user types
// first: each runs here exactly as written, unless it cannot run offline.
var recipeSections = []string{"## Quick start", "### Reproduce #30896 locally", "### Audit my board",
	"### Validate a patch A/B", "### Gate a Hermes PR in CI", "### Find new bugs with fuzz"}

// offline says why a README command cannot run in this test, or "".
func offline(cmd string) string {
	switch {
	case strings.HasPrefix(cmd, "git clone"), strings.HasPrefix(cmd, "go install"):
		return "needs the network; the test binary is the installed kanbanchaos"
	case strings.Contains(cmd, "~/"):
		return "reads the user's own Hermes board"
	case strings.Contains(cmd, "hermes:"):
		return "needs a real Hermes release or checkout (.ci/install-hermes; TestGateWorkflowCommands runs the CI recipe against one)"
	case strings.HasPrefix(cmd, "go test"):
		return "the test suite itself"
	case strings.HasPrefix(cmd, "kanbanchaos fuzz"):
		return "a campaign with a 2-minute shrink (TestSaveRegression runs fuzz --save-regression)"
	}
	return ""
}

// TestReadmeRecipes turns the README's quick start and recipes into
// testscripts and runs them: every command that can run offline, in order,
// in one directory as a user would, with the exit code its comment states
// (0 when it states none); and the sample output the README pastes after
// a command must match that command's real output line by line, numbers,
// times and ids aside. A section that uses nothing an earlier one left
// (no kanbanchaos-artifacts path) starts a script of its own, in a
// directory of its own, so the scripts run side by side: the A/B compare
// (20 whole schedules) does not wait for the quick start.
func TestReadmeRecipes(t *testing.T) {
	runtest.Long(t, "runs the README's scenarios")
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i, script := range recipeScripts(t, string(data)) {
		t.Logf("the README as a testscript, part %d:\n%s", i+1, script)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("readme-%d.txtar", i+1)), []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testscript.Run(t, testscript.Params{Dir: dir, Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
		"kexit": cmdKexit,
	}})
}

// recipeScripts builds the scripts: for every command line of a recipe
// section, "kexit N ARGS…"; for a sample output block (``` without a
// language) after it, one stdout pattern per line. A section that runs a
// command and names no kanbanchaos-artifacts path in any starts a new
// script; the others go on in the script before them.
func recipeScripts(t *testing.T, readme string) []string {
	var scripts []string
	for _, section := range recipeSections {
		text, commands := recipeSection(t, readme, section)
		usesEarlier := slices.ContainsFunc(commands, func(c string) bool { return strings.Contains(c, "kanbanchaos-artifacts") })
		if len(scripts) == 0 || (len(commands) > 0 && !usesEarlier) {
			scripts = append(scripts, "")
		}
		scripts[len(scripts)-1] += text
	}
	return scripts
}

// recipeSection is one section's part of a script, and the kanbanchaos
// commands it runs.
func recipeSection(t *testing.T, readme, section string) (string, []string) {
	var b strings.Builder
	var commands []string
	exitRE := regexp.MustCompile(`exit (\d)`)
	i := strings.Index(readme, "\n"+section+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", section)
	}
	body := readme[i+len(section)+2:]
	if j := regexp.MustCompile(`\n#{1,3} `).FindStringIndex(body); j != nil {
		body = body[:j[0]]
	}
	fmt.Fprintf(&b, "# %s\n", section)
	blocks := strings.Split(body, "```")
	for k := 1; k < len(blocks); k += 2 {
		block := blocks[k]
		lang, text, _ := strings.Cut(block, "\n")
		if lang == "sh" {
			for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
				cmd, comment, _ := strings.Cut(line, " #")
				cmd = strings.TrimSpace(cmd)
				if why := offline(cmd); why != "" {
					fmt.Fprintf(&b, "# skipped: %s — %s\n", cmd, why)
					continue
				}
				// go run of the checkout's command is the installed
				// kanbanchaos, which the test binary stands for.
				cmd = strings.Replace(cmd, "go run ./cmd/kanbanchaos ", "kanbanchaos ", 1)
				args, ok := strings.CutPrefix(cmd, "kanbanchaos ")
				if !ok {
					t.Fatalf("%s: a command that is not kanbanchaos's: %q", section, cmd)
				}
				code := "0"
				if m := exitRE.FindStringSubmatch(comment); m != nil {
					code = m[1]
				}
				fmt.Fprintf(&b, "kexit %s %s\n", code, args)
				commands = append(commands, args)
			}
			continue
		}
		// A sample: "$ kanbanchaos ARGS  # exit N" runs it first; a
		// block without one is the output of the last command run.
		lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
		if cmd, ok := strings.CutPrefix(lines[0], "$ kanbanchaos "); ok {
			cmd, comment, _ := strings.Cut(cmd, " #")
			code := "0"
			if m := exitRE.FindStringSubmatch(comment); m != nil {
				code = m[1]
			}
			fmt.Fprintf(&b, "kexit %s %s\n", code, strings.TrimSpace(cmd))
			commands = append(commands, strings.TrimSpace(cmd))
			lines = lines[1:]
		} else if len(commands) == 0 {
			t.Fatalf("%s: sample output before any command", section)
		}
		for _, line := range lines {
			if p := samplePattern(line); p != "" {
				fmt.Fprintf(&b, "stdout '%s'\n", strings.ReplaceAll(p, "'", "''"))
			}
		}
	}
	return b.String(), commands
}

// samplePattern is the regexp a pasted output line must match: the line
// itself, with every number, time and task id free, and a path's
// elided part (/…/) any path. The lines that say how check read the
// board, what state the task ended in and what lies beside the board
// (a run stopped at its decision may leave its -wal and -shm, or a last
// checkpoint may have folded them in) depend on timing and are left out
// ("").
//
// So does whether a run ended for want of news from its worker: a run
// stopped at its decision can leave a worker's run open, and the audit
// then finds it reclaimed. unrecorded-workers is therefore held in one
// sample and not checked in another: its "not checked" line is left
// out, and the "held:" line must start with the invariants the sample
// lists, whatever follows.
func samplePattern(line string) string {
	trimmed := strings.TrimSpace(line)
	if strings.HasPrefix(trimmed, "read:") || strings.HasPrefix(trimmed, "board:") || strings.HasPrefix(trimmed, "beside it:") ||
		strings.HasPrefix(trimmed, "not checked: unrecorded-workers") {
		return ""
	}
	if strings.HasPrefix(line, "held: ") {
		return "^" + regexp.QuoteMeta(line) + "(, [a-z-]+)*$"
	}
	// Paths in the artifact store and task ids first, as placeholders no
	// number rule touches.
	line = regexp.MustCompile(`kanbanchaos-artifacts/[^ ]+`).ReplaceAllString(line, "\x01")
	p := regexp.QuoteMeta(line)
	p = regexp.MustCompile(`t_[0-9a-f]{8}`).ReplaceAllString(p, "\x00")
	p = regexp.MustCompile(`[0-9]+(\\\.[0-9]+)?`).ReplaceAllString(p, `[0-9]+(\.[0-9]+)?`)
	p = strings.ReplaceAll(p, "\x00", `t_[0-9a-f]{8}`)
	p = strings.ReplaceAll(p, "\x01", `kanbanchaos-artifacts/[^ ]+`)
	p = strings.ReplaceAll(p, "/…/", "/.*/")
	return "^" + p + "$"
}

// cmdKexit runs the kanbanchaos binary as a user would — a process of its
// own, in the script's directory, with the script's environment — and
// checks its exit code: "kexit 1 run issue-30896 --seed 1". Its output is
// what the script's stdout and stderr checks see.
func cmdKexit(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: kexit N kanbanchaos-args…")
	}
	err := ts.Exec("kanbanchaos", args[1:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("kanbanchaos %s: %v", strings.Join(args[1:], " "), err)
	}
	if fmt.Sprint(got) != args[0] {
		ts.Fatalf("kanbanchaos %s: exit %d, want %s", strings.Join(args[1:], " "), got, args[0])
	}
}

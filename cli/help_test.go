package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelpOnStdout: every command's help — asked as 'COMMAND --help',
// 'COMMAND -h' or 'help COMMAND' — goes to stdout, says how to use it, and
// exits 0 with nothing on stderr; 'help' alone is the whole usage.
func TestHelpOnStdout(t *testing.T) {
	for _, cmd := range commands {
		for _, args := range [][]string{{cmd, "--help"}, {cmd, "-h"}, {"help", cmd}} {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), args, &stdout, &stderr)
			if code != exitPass || stderr.Len() != 0 || !strings.Contains(stdout.String(), "Usage") {
				t.Errorf("kanbanchaos %q: exit %d, stdout %d bytes (Usage: %v), stderr %q; want exit 0, the help on stdout, nothing on stderr",
					args, code, stdout.Len(), strings.Contains(stdout.String(), "Usage"), stderr.String())
			}
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"help"}, &stdout, &stderr); code != exitPass || stdout.String() != usage {
		t.Errorf("help: exit %d, stdout %q; want 0 and the usage", code, stdout.String())
	}
	// The help of a command that takes positional arguments is its help,
	// wherever --help stands, and "--" ends the flags.
	stdout.Reset()
	if code := run(context.Background(), []string{"run", "issue-30896", "--help"}, &stdout, &stderr); code != exitPass ||
		!strings.Contains(stdout.String(), "Usage: kanbanchaos run SCENARIO") {
		t.Errorf("run issue-30896 --help: exit %d, stdout %q", code, stdout.String())
	}
}

// TestUsageErrorsStayOnStderr: a bad flag, an unknown command or 'help' of
// one exits 2 with the problem on stderr and nothing on stdout.
func TestUsageErrorsStayOnStderr(t *testing.T) {
	for _, args := range [][]string{{"help", "frobnicate"}, {"help", "run", "fuzz"}, {"version", "--nope"},
		{"scenarios", "--nope"}, {"variants", "x"}, {"worker"}, {"gate", "--nope"}} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		if code != exitUsage || stdout.Len() != 0 || stderr.Len() == 0 {
			t.Errorf("kanbanchaos %q: exit %d, stdout %q, stderr %q; want exit 2, the problem on stderr only", args, code, stdout.String(), stderr.String())
		}
	}
}

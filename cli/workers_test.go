package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/hermes"
)

// TestWorkerFlagsRefused: --workers and --python-sqlite are refused (exit 2,
// naming the problem) wherever they cannot mean what they say.
func TestWorkerFlagsRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "issue-30896", "--workers", "hermes"}, "--workers hermes needs a hermes: subject"},
		{[]string{"run", "issue-30896", "--workers", "python"}, `--workers "python": want go or hermes`},
		{[]string{"run", "issue-30896", "--subject", "exec:true", "--workers", "hermes"}, "needs a hermes: subject"},
		{[]string{"run", "issue-30896", "--python-sqlite", "3.53.4"}, "--python-sqlite 3.53.4 needs a hermes: subject"},
		{[]string{"run", "issue-30896", "--python-sqlite", "newest"}, "want system or a SQLite version"},
		{[]string{"gate", "--subject", "fixed", "--workers", "hermes"}, "needs a hermes: subject"},
		{[]string{"fuzz", "--scenario", "issue-30896", "--workers", "hermes"}, "needs a hermes: subject"},
		{[]string{"compare", "--a", "hermes:0.14.0,workers=rust", "--b", "fixed", "--scenario", "issue-30896"}, "workers="},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), c.args, &stdout, &stderr)
		if code != exitUsage || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("kanbanchaos %q: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
}

// TestGateRefusesUnplayableEntry: a gate entry whose workers the release's
// tools cannot play is refused up front, naming the entry (0.14.0's
// kanban_create has no board argument: board-routing).
func TestGateRefusesUnplayableEntry(t *testing.T) {
	if _, err := hermes.Locate(hermes.Release30896); err != nil {
		t.Skipf("real Hermes %s is not available (%v)", hermes.Release30896, err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"gate", "--subject", "hermes:" + hermes.Release30896, "--workers", "hermes"}, &stdout, &stderr)
	if code != exitUsage || !strings.Contains(stderr.String(), "entry board-routing") || !strings.Contains(stderr.String(), "no board argument") {
		t.Errorf("exit %d, stderr %q; want exit 2 naming board-routing and why", code, stderr.String())
	}
}

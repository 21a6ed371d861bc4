package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
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

// Package runtest is the scaffolding shared by the tests of the packages
// that run schedules (harness, campaign, subject, cli): a TestMain that makes
// the test binary the fake worker HERMES_BIN runs, gives the tests a
// private temp directory and checks that no goroutine outlives them;
// Build, a named scenario's schedule; Long, the mark of a test too long for
// -short. It is imported by tests only.
package runtest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Main runs m as a package's TestMain, and never returns. Invoked as
// "hermes" the binary is the fake worker. Failing runs keep their sandbox
// in the temp dir by design, so the tests get a temp dir of their own
// (named after pkg), removed when they end. And no goroutine outlives the
// tests: a dispatcher, a subject's waiter or an observer left running
// would be a run that never ended.
func Main(m *testing.M, pkg string) {
	if filepath.Base(os.Args[0]) == fakeworker.InvokedAs {
		os.Exit(fakeworker.Main(os.Args[1:], os.Getenv, os.Stderr))
	}
	dir, err := os.MkdirTemp("", "kanbanchaos-"+pkg+"-tests-")
	if err == nil {
		os.Setenv("TMPDIR", dir)
	}
	code := m.Run()
	if code == 0 {
		if leak := goleak.Find(); leak != nil {
			fmt.Fprintln(os.Stderr, "goleak:", leak)
			code = 1
		}
	}
	if err == nil {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// Build is scenario's schedule for seed on variant ("": its own).
func Build(t testing.TB, scenario, variant string, seed uint64) schedule.Schedule {
	t.Helper()
	sc, err := scenarios.Lookup(scenario)
	if err != nil {
		t.Fatal(err)
	}
	return sc.Build(seed, variant)
}

// Long marks a test that runs real scenarios or processes: it runs in
// parallel with the others, and -short skips it, saying why.
func Long(t *testing.T, why string) {
	t.Helper()
	t.Parallel()
	if testing.Short() {
		t.Skip(why)
	}
}

package harness

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// TestEngine350 builds the SQLite 3.50.4 engine once for this test binary
// (the expensive part: everything else reuses it), checks it lands in the
// cache under the hash of this checkout's sources and that a later call does
// not build again, and runs issue-30417 on it: hermes-0.15 fails "breaker
// holds", fixed passes, both on SQLite 3.50.4.
//
// Not parallel: the build must be done before the parallel tests that run
// on 3.50 (TestCorruptionScenarios) start, or each would build it too.
func TestEngine350(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the SQLite 3.50 engine is built with the go command, which is not on PATH")
	}
	ctx := context.Background()
	cache, err := hermes.CacheRoot()
	if err != nil {
		t.Skip("no cache directory:", err)
	}
	root, err := repoRoot(engineModules["3.50"])
	if err != nil {
		t.Fatal(err)
	}
	sum, err := sourceHash(root)
	if err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(cache, "engines", "sqlite-3.50.4", sum, "kanbanchaos")
	start := time.Now()
	bin, err := buildEngine(ctx, "3.50", "3.50.4", io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("engine build: %v", time.Since(start))
	if bin != cached {
		t.Fatalf("engine binary %s, want %s (keyed by the sources' hash)", bin, cached)
	}
	var log bytes.Buffer
	if again, err := buildEngine(ctx, "3.50", "3.50.4", &log); err != nil || again != bin || log.Len() != 0 {
		t.Fatalf("a second build of the same sources: %q, %v, log %q; want %q, no build", again, err, log.String(), bin)
	}
	if got, err := EngineBinary(ctx, "3.50", &log); err != nil || got != bin || log.Len() != 0 {
		t.Fatalf("EngineBinary: %q, %v, log %q; want %q, no error, no build", got, err, log.String(), bin)
	}

	t.Run("own engine is this executable", func(t *testing.T) {
		exe, _ := os.Executable()
		if got, err := EngineBinary(ctx, "3.54", nil); err != nil || got != exe {
			t.Fatalf("EngineBinary(3.54) = %q, %v; want %s (this binary links %s)", got, err, exe, kanban.SQLiteVersion())
		}
		if _, err := EngineBinary(ctx, "3.7", nil); err == nil || !strings.Contains(err.Error(), "3.54, 3.50") {
			t.Fatalf("unknown engine: %v, want an error naming the valid ones", err)
		}
	})

	for _, c := range []struct {
		variant string
		want    oracle.Status
	}{{"hermes-0.15", oracle.Fail}, {"fixed", oracle.Pass}} {
		t.Run("issue-30417 "+c.variant, func(t *testing.T) {
			t.Parallel()
			s := build(t, "issue-30417", c.variant, 3)
			s.Engine = "3.50"
			arts := t.TempDir()
			var progress bytes.Buffer
			res, err := Run(ctx, s, Options{ArtifactsDir: arts, Replay: "kanbanchaos run issue-30417 --sqlite 3.50", Log: &progress})
			if err != nil {
				t.Fatal(err)
			}
			if res.SQLite != "3.50.4" {
				t.Fatalf("ran on SQLite %q, want 3.50.4", res.SQLite)
			}
			if res.Verdict.Status != c.want {
				t.Fatalf("%s: %s %+v %v", c.variant, res.Verdict.Status, res.Verdict.Violations, res.Verdict.Unknowns)
			}
			if !strings.Contains(progress.String(), "dispatching: 1 dispatcher(s)") {
				t.Errorf("the engine's progress lines must reach Options.Log, got %q", progress.String())
			}
			if c.want == oracle.Pass {
				if res.Artifacts != "" {
					t.Fatalf("a passing run keeps nothing unless asked, got %s", res.Artifacts)
				}
				return
			}
			if !slices.Contains(res.Verdict.Failed(), oracle.BreakerHolds) {
				t.Fatalf("want %s among %v", oracle.BreakerHolds, res.Verdict.Failed())
			}
			if latest, err := filepath.EvalSymlinks(filepath.Join(arts, "latest")); err != nil || latest != res.Artifacts ||
				!strings.HasSuffix(res.Artifacts, "-issue-30417-3") {
				t.Fatalf("artifacts in %q (latest → %q, %v), want the store's newest <time>-issue-30417-3 under %s", res.Artifacts, latest, err, arts)
			}
			// repro.sh replays the run that asked, not the engine's temporary schedule.
			script, err := os.ReadFile(filepath.Join(res.Artifacts, "repro.sh"))
			if err != nil || !strings.Contains(string(script), "exec kanbanchaos run issue-30417 --sqlite 3.50\n") {
				t.Fatalf("repro.sh: %v\n%s", err, script)
			}
			kept, err := schedule.Read(filepath.Join(res.Artifacts, "schedule.json"))
			if err != nil || kept.Engine != "3.50" {
				t.Fatalf("kept schedule: engine %q, %v", kept.Engine, err)
			}
		})
	}

	t.Run("interrupted", func(t *testing.T) {
		t.Parallel()
		// As TestNothingOutlivesTheRun, one process further away.
		checkInterruptedRun(t, ctx, "3.50", 1500*time.Millisecond)
	})
}

// TestEngineFailureIsAnError: an engine that rejects the schedule (exit 2)
// or prints no result is a harness error carrying the end of its stderr.
func TestEngineFailureIsAnError(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ script, want, stderr string }{
		{"echo 'kanbanchaos replay: bad schedule' >&2; exit 2", "rejected the schedule", "kanbanchaos replay: bad schedule"},
		{"echo 'half a result' >&2; echo '{'; exit 1", "printed no result", "half a result"},
		{"kill -9 $$", "did not finish", ""},
	} {
		bin := filepath.Join(dir, "engine")
		if err := os.WriteFile(bin, []byte("#!/bin/sh\n"+c.script+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		s := build(t, "issue-30417", "fixed", 1)
		_, err := runInEngine(context.Background(), s, Options{}, bin)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasSuffix(err.Error(), c.stderr+"\n") {
			t.Errorf("%s: error %v, want %q and the engine's stderr %q at the end", c.script, err, c.want, c.stderr)
		}
		os.Remove(bin)
	}
}

// TestSourceHash: the engine cache key changes with any source's content or
// name, and not with dates, tests or testdata — two checkouts of the same
// sources share one binary, different sources never do.
func TestSourceHash(t *testing.T) {
	root := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hash := func() string {
		t.Helper()
		sum, err := sourceHash(root)
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	write("go.mod", "module x\n")
	write("a/a.go", "package a\n")
	base := hash()
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	os.Chtimes(filepath.Join(root, "a/a.go"), old, old)
	write("a/a_test.go", "package a\n")
	write("a/testdata/x.go", "package x\n")
	write(".git/y.go", "package y\n")
	if got := hash(); got != base {
		t.Fatalf("dates, tests, testdata or hidden dirs changed the key: %s → %s", base, got)
	}
	write("a/a.go", "package a // edited\n")
	edited := hash()
	if edited == base {
		t.Fatal("an edited source kept the key")
	}
	write("a/a.go", "package a\n")
	os.Rename(filepath.Join(root, "a"), filepath.Join(root, "b"))
	if got := hash(); got == base || got == edited {
		t.Fatalf("a renamed package kept a key: %s", got)
	}
}

// TestPruneEngines: a build unused for longer than the idle time is
// removed, and so are the least recently used beyond the count kept; the
// one just built always stays.
func TestPruneEngines(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	used := map[string]time.Time{
		"kept":   now.Add(-30 * 24 * time.Hour),
		"stale":  now.Add(-8 * 24 * time.Hour),
		"newest": now.Add(-time.Minute),
		"newer":  now.Add(-time.Hour),
		"older":  now.Add(-2 * time.Hour),
	}
	for name, at := range used {
		if err := os.MkdirAll(filepath.Join(root, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(filepath.Join(root, name), at, at); err != nil {
			t.Fatal(err)
		}
	}
	pruneEngines(root, "kept", 7*24*time.Hour, 2)
	want := map[string]bool{"kept": true, "stale": false, "newest": true, "newer": true, "older": false}
	for name, present := range want {
		if _, err := os.Stat(filepath.Join(root, name)); (err == nil) != present {
			t.Errorf("%s: present=%v, want %v", name, err == nil, present)
		}
	}
}

// TestEngineBuildInUseOutlivesPruning: a campaign's engine build is dated
// on every run that asks for it, so another checkout's pruning keeps it;
// and a build removed all the same is looked for again, never handed to
// a run as a path that no longer exists (the 1,000-run soak of issue 12
// lost its 3.50 build after 14 minutes and every later 3.50 run failed).
func TestEngineBuildInUseOutlivesPruning(t *testing.T) {
	root := filepath.Join(t.TempDir(), "engines", "sqlite-3.50.4")
	hour := time.Now().Add(-time.Hour)
	bin := ""
	for _, name := range []string{"campaign", "a", "b"} {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "kanbanchaos"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(dir, hour, hour); err != nil {
			t.Fatal(err)
		}
		if name == "campaign" {
			bin = filepath.Join(dir, "kanbanchaos")
		}
	}
	// The campaign's build was found an hour ago; a run asks for it now.
	if !stillThere(bin) {
		t.Fatalf("%s is there", bin)
	}
	// Another checkout builds "new" and keeps one other build.
	pruneEngines(root, "new", 7*24*time.Hour, 1)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the build in use was pruned: %v", err)
	}
	for _, name := range []string{"a", "b"} {
		if _, err := os.Stat(filepath.Join(root, name)); err == nil {
			t.Errorf("%s, unused for an hour, was kept over the build in use", name)
		}
	}
	if err := os.RemoveAll(filepath.Dir(bin)); err != nil {
		t.Fatal(err)
	}
	if stillThere(bin) {
		t.Fatal("a removed build is reported there")
	}
}

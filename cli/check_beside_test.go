package cli

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/internal/runtest"
	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// dirNames lists a directory's entries, recursively, with their sizes for
// files: what check must leave exactly as it found it.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// closedWALBoard writes a WAL board and closes it: SQLite deletes its -wal
// and -shm on the last close, so only kanban.db is left, written just now.
func closedWALBoard(t *testing.T, dir string) string {
	t.Helper()
	db := filepath.Join(dir, "kanban.db")
	seedBoard(t, db, 30, "p")
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(db + suffix); err == nil {
			t.Fatalf("%s left after the last close", suffix)
		}
	}
	return db
}

func age(t *testing.T, path string) {
	t.Helper()
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// damage overwrites the b-tree page header of every page after the
// first: the file header still says SQLite, the b-trees are garbage.
func damage(t *testing.T, db string) {
	t.Helper()
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	for off := 4096; off+16 < len(data); off += 4096 {
		copy(data[off:], bytes.Repeat([]byte{0xA5}, 16))
	}
	if err := os.WriteFile(db, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// hotJournalBoard leaves a rollback-journal board with a hot journal: a
// writer (a Python process, SQLite's own pager) spills a big update into
// the DB file with its journal beside it and dies before it commits.
func hotJournalBoard(t *testing.T, dir string) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 (the writer that dies mid-transaction) is not installed")
	}
	db := filepath.Join(dir, "kanban.db")
	opts := kanban.DefaultOptions()
	opts.JournalMode = "DELETE"
	b, err := kanban.Connect(context.Background(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if _, err := b.CreateTask(context.Background(), kanban.NewTask{Title: strings.Repeat("card ", 40), Assignee: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	script := `import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("pragma journal_mode=delete")
c.execute("pragma cache_size=2")
c.execute("begin immediate")
c.execute("update tasks set title = title || title")
os._exit(9)
`
	if out, err := exec.Command("python3", "-c", script, db).CombinedOutput(); err != nil && !strings.Contains(err.Error(), "exit status 9") {
		t.Fatalf("writer: %v\n%s", err, out)
	}
	if st, err := os.Stat(db + "-journal"); err != nil || st.Size() == 0 {
		t.Fatalf("no hot journal left beside the board: %v", err)
	}
	return db
}

// TestCheckCreatesNothingBeside lists the board's directory before and
// after check, for every state a board can be in: check never leaves a
// file beside it (a read-only connection to a WAL board without its -wal
// and -shm creates them and leaves them).
func TestCheckCreatesNothingBeside(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		setup    func(t *testing.T, dir string) (arg string, watch []string)
		wantCode int
	}{
		{"fresh WAL", func(t *testing.T, dir string) (string, []string) {
			return closedWALBoard(t, dir), []string{dir}
		}, exitPass},
		{"old WAL", func(t *testing.T, dir string) (string, []string) {
			db := closedWALBoard(t, dir)
			age(t, db)
			return db, []string{dir}
		}, exitPass},
		{"damaged, fresh", func(t *testing.T, dir string) (string, []string) {
			db := closedWALBoard(t, dir)
			damage(t, db)
			return db, []string{dir}
		}, exitFail},
		{"damaged, old", func(t *testing.T, dir string) (string, []string) {
			db := closedWALBoard(t, dir)
			damage(t, db)
			age(t, db)
			return db, []string{dir}
		}, exitFail},
		{"hot journal", func(t *testing.T, dir string) (string, []string) {
			return hotJournalBoard(t, dir), []string{dir}
		}, exitPass},
		{"symlink", func(t *testing.T, dir string) (string, []string) {
			real := filepath.Join(dir, "real")
			links := filepath.Join(dir, "links")
			os.MkdirAll(real, 0o755)
			os.MkdirAll(links, 0o755)
			db := closedWALBoard(t, real)
			link := filepath.Join(links, "kanban.db")
			if err := os.Symlink(db, link); err != nil {
				t.Fatal(err)
			}
			return link, []string{real, links}
		}, exitPass},
		{"artifact board", func(t *testing.T, dir string) (string, []string) {
			s := runtest.Build(t, "issue-30417", "fixed", 3)
			s.DurationMs, s.QuietMs = 1200, 300
			res, err := harness.Run(context.Background(), s, harness.Options{ArtifactsDir: dir, Keep: true})
			if err != nil || res.Artifacts == "" {
				t.Fatalf("run: %v, artifacts %q", err, res.Artifacts)
			}
			return res.Artifacts, []string{res.Artifacts}
		}, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			arg, watch := c.setup(t, t.TempDir())
			var before [][]string
			for _, d := range watch {
				before = append(before, dirNames(t, d))
			}
			rep, code := runCheck(t, arg)
			if c.wantCode >= 0 && code != c.wantCode {
				t.Errorf("exit %d, want %d: %+v", code, c.wantCode, rep.Verdict)
			}
			if code > exitFail {
				t.Errorf("exit %d: the audit did not decide", code)
			}
			t.Logf("read: %s", rep.Read.Method)
			for i, d := range watch {
				if after := dirNames(t, d); !slices.Equal(before[i], after) {
					t.Errorf("%s changed: before %q, after %q", d, before[i], after)
				}
			}
		})
	}
}

// TestCheckReadOnlyDirAsNonOwner: a board in a directory the checking user
// may not write (another user's board, read-only to us) is audited, not
// refused: the -wal/-shm a read-only connection would need cannot be
// created there, so the files are read into a private copy. It runs check
// as nobody in a child process, so it needs root to drop to that user.
func TestCheckReadOnlyDirAsNonOwner(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run check as another user (uid 65534) in a child process")
	}
	// The test binary is kanbanchaos when invoked under that name; nobody
	// must be able to execute it, so it is copied out of the build cache.
	// Under /tmp itself: the tests' own TMPDIR is private to root.
	shared, err := os.MkdirTemp("/tmp", "kanbanchaos-ro-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(shared)
	os.Chmod(shared, 0o755)
	tmp := filepath.Join(shared, "tmp")
	os.Mkdir(tmp, 0o777)
	os.Chmod(tmp, 0o1777)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(shared, "kanbanchaos")
	if err := copyExecutable(exe, bin); err != nil {
		t.Fatal(err)
	}
	for _, state := range []string{"fresh WAL", "live WAL sidecars"} {
		t.Run(state, func(t *testing.T) {
			dir := filepath.Join(shared, strings.ReplaceAll(state, " ", "-"))
			os.MkdirAll(dir, 0o755)
			db := closedWALBoard(t, dir)
			if state == "live WAL sidecars" {
				// A writer's -wal and -shm, left as a live gateway has them.
				for _, suffix := range []string{"-wal", "-shm"} {
					if err := os.WriteFile(db+suffix, nil, 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := os.Chmod(dir, 0o555); err != nil {
				t.Fatal(err)
			}
			before := dirNames(t, dir)
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, "check", db)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "HOME="+tmp)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			err := cmd.Run()
			code := cmd.ProcessState.ExitCode()
			if err != nil && code < 0 {
				t.Fatalf("check as nobody: %v", err)
			}
			if code != exitPass {
				t.Errorf("exit %d, want 0 (the board is readable)\nstdout %s\nstderr %s", code, stdout.String(), stderr.String())
			}
			if after := dirNames(t, dir); !slices.Equal(before, after) {
				t.Errorf("%s changed: before %q, after %q", dir, before, after)
			}
		})
	}
}

func copyExecutable(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// lockedBoard starts a writer (a Python process) that holds an exclusive
// lock on a rollback-journal board with its journal written, and returns
// once it holds it; the writer is killed when the test ends.
func lockedBoard(t *testing.T, dir string) string {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 (the writer that holds the lock) is not installed")
	}
	db := filepath.Join(dir, "kanban.db")
	opts := kanban.DefaultOptions()
	opts.JournalMode = "DELETE"
	b, err := kanban.Connect(context.Background(), db, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTask(context.Background(), kanban.NewTask{Title: "card", Assignee: "p"}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	script := `import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("begin exclusive")
c.execute("update tasks set title = 'locked'")
print("locked", flush=True)
time.sleep(120)
`
	cmd := exec.Command("python3", "-c", script, db)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make([]byte, 7)
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "locked\n" {
		t.Fatalf("writer did not take the lock: %q %v", line, err)
	}
	return db
}

// TestCheckLockedBoardIsUndecided: a writer that holds the board past the
// 5 s busy timeout leaves the audit undecided (exit 3, saying so), not an
// internal error: nothing is wrong with the board or the input.
func TestCheckLockedBoardIsUndecided(t *testing.T) {
	t.Parallel()
	db := lockedBoard(t, t.TempDir())
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"check", db}, &stdout, &stderr)
	if code != exitUnknown || !strings.Contains(stderr.String(), "locked for more than the 5 s busy timeout") {
		t.Fatalf("exit %d, stderr %q; want 3 and the lock named", code, stderr.String())
	}
}

// TestCheckInterruptedIsUndecided: Ctrl-C or SIGTERM (the context Main
// cancels) while check reads the board is undecided, exit 3.
func TestCheckInterruptedIsUndecided(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := closedWALBoard(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"check", db}, &stdout, &stderr); code != exitUnknown || !strings.Contains(stderr.String(), "interrupted") {
		t.Fatalf("exit %d, stderr %q; want 3, interrupted", code, stderr.String())
	}
}

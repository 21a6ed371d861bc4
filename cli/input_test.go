package cli

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/internal/runtest"
	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// kcWithin runs a command in-process but fails the test if it does not
// return within d: an unbounded read or a blocked open would hang forever.
func kcWithin(t *testing.T, d time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	type result struct {
		code           int
		stdout, stderr string
	}
	done := make(chan result, 1)
	go func() {
		c, o, e := kc(t, args...)
		done <- result{c, o, e}
	}()
	select {
	case r := <-done:
		return r.code, r.stdout, r.stderr
	case <-time.After(d):
		t.Fatalf("%q did not return within %v", args, d)
	}
	return
}

// TestInputsAreBounded: replay and merge refuse what is not a regular file
// (a device never ends, a FIFO blocks the open) and say why, at once.
func TestInputsAreBounded(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("no FIFO here: %v", err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"replay", "/dev/zero"}, "/dev/zero is a device, not a regular file"},
		{[]string{"replay", fifo}, "is a FIFO, not a regular file"},
		{[]string{"merge", fifo}, "is a FIFO, not a regular file"},
		{[]string{"merge", "/dev/zero"}, "is a device, not a regular file"},
	} {
		code, _, stderr := kcWithin(t, 10*time.Second, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 saying %q", c.args, code, stderr, c.want)
		}
	}
	big := filepath.Join(t.TempDir(), "schedule.json")
	f, _ := os.Create(big)
	f.Truncate(maxScheduleBytes + 1)
	f.Close()
	if code, _, stderr := kc(t, "replay", big); code != exitUsage || !strings.Contains(stderr, "more than the") {
		t.Errorf("an oversized schedule: exit %d, %q", code, stderr)
	}
}

// TestReportKeepsTheEvidence: report --out never overwrites a run's board,
// ledger or verdict with HTML.
func TestReportKeepsTheEvidence(t *testing.T) {
	t.Parallel()
	arts := t.TempDir()
	if code, out, stderr := kc(t, "run", "unknown-assignee", "--variant", "fixed", "--seed", "1", "--keep", "--artifacts", arts); code != exitPass {
		t.Fatalf("run: exit %d\n%s\n%s", code, out, stderr)
	}
	dir := filepath.Join(arts, "latest") // the store's newest: this run
	for _, victim := range []string{"verdict.json", "ledger.jsonl", filepath.Join("home", "kanban.db")} {
		path := filepath.Join(dir, victim)
		before, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		code, _, stderr := kc(t, "report", dir, "--out", path)
		after, _ := os.ReadFile(path)
		if code != exitUsage || string(after) != string(before) {
			t.Errorf("report --out %s: exit %d (%s); the file changed: %v", victim, code, stderr, string(after) != string(before))
		}
	}
	if code, _, stderr := kc(t, "report", dir, "--out", filepath.Join(dir, "mine.html")); code != exitPass {
		t.Errorf("an .html path inside the artifacts is fine: exit %d %s", code, stderr)
	}
}

// TestHangUpIsUndecided: SIGHUP (a closed terminal) ends a run like Ctrl-C —
// undecided, exit 3, with its evidence kept — instead of killing it with
// no verdict (exit 129).
func TestHangUpIsUndecided(t *testing.T) {
	runtest.Long(t, "starts a run as a process")
	bin := filepath.Join(t.TempDir(), "kanbanchaos")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "issue-30896", "--variant", "fixed", "--seed", "1", "--duration", "20s")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGHUP)
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != exitUnknown || !strings.Contains(out.String(), "interrupted") {
		t.Fatalf("after SIGHUP: %v, want exit 3 saying the run was interrupted\n%s", err, out.String())
	}
}

// TestCheckThroughASymlink: a board named through a symlink is judged by
// what lies beside the real file — its -wal included. The breaker's
// re-promotion below lives only in the -wal of a connection still open:
// read as a board nobody has open (immutable, no WAL), it would pass.
func TestCheckThroughASymlink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	real := filepath.Join(t.TempDir(), "kanban.db")
	seedBoard(t, real, 1, "ghost") // schema and a task, checkpointed into the file
	b, err := kanban.Connect(ctx, real, kanban.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close() // open for the whole check: the events stay in the -wal
	for _, kind := range []string{"gave_up", "promoted"} {
		if _, err := b.DB().ExecContext(ctx, `INSERT INTO task_events (task_id, kind, payload, created_at)
			SELECT id, ?, '{"failures": 2, "effective_limit": 2}', 1000 FROM tasks LIMIT 1`, kind); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(real + "-wal"); err != nil {
		t.Fatalf("the events should be in the -wal: %v", err)
	}
	// Nothing wrote the file itself lately: only the -wal says it is live.
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(real, old, old); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "board.db")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := kc(t, "check", link)
	if code != exitFail || !strings.Contains(stdout, "breaker-holds") {
		t.Fatalf("check through a symlink: exit %d, want 1 with breaker-holds\n%s\n%s", code, stdout, stderr)
	}
	if _, err := os.Lstat(link + "-wal"); err == nil {
		t.Errorf("check created %s-wal beside the link", link)
	}
}

// TestNothingOutlivesAKilledHarness: SIGKILL the harness mid-run — it gets
// no chance to stop anything — and every process of its sandbox (the exec
// subject's dispatchers, a real Hermes driver, the workers they spawned)
// is gone within seconds: they watch the harness and exit without it.
func TestNothingOutlivesAKilledHarness(t *testing.T) {
	runtest.Long(t, "starts runs as processes")
	subjects := []string{"exec:kanbanchaos dispatch --variant hermes-0.15 --interval 20ms"}
	if _, err := hermes.Locate(hermes.Newest); err == nil {
		subjects = append(subjects, "hermes:"+hermes.Newest)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, subject := range subjects {
		t.Run(strings.Fields(subject)[0], func(t *testing.T) {
			tmp := t.TempDir() // the sandbox lives here: its processes say so in their environment
			bin := filepath.Join(tmp, "kanbanchaos")
			if err := os.Symlink(exe, bin); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(bin, "run", "issue-30896", "--variant", "hermes-0.15", "--seed", "1", "--duration", "30s", "--full-duration", "--subject", subject)
			cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Killed once the run's processes are there (a loaded machine
			// may take long to start them), not after a fixed sleep.
			for start := time.Now(); len(sandboxProcesses(tmp)) < 2; time.Sleep(50 * time.Millisecond) {
				if time.Since(start) > time.Minute {
					cmd.Process.Kill()
					t.Fatalf("no process of the run found under %s within a minute: the test would prove nothing", tmp)
				}
			}
			cmd.Process.Kill()
			cmd.Wait()
			deadline := time.Now().Add(8 * time.Second)
			for left := sandboxProcesses(tmp); len(left) > 0; left = sandboxProcesses(tmp) {
				if time.Now().After(deadline) {
					for _, pid := range left {
						syscall.Kill(pid, syscall.SIGKILL)
					}
					t.Fatalf("processes %v of the killed harness's sandbox are still running", left)
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
}

// sandboxProcesses lists the live processes whose environment points into
// dir (TMPDIR, the sandbox's paths).
func sandboxProcesses(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !strings.Contains(string(env), "KANBANCHAOS_LEDGER="+dir) {
			continue
		}
		if stat, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 && f[0] == "Z" {
				continue
			}
		}
		out = append(out, pid)
	}
	return out
}

// TestCheckEscapesBoardText: a board's own text (here an event payload
// holding a terminal escape sequence, and one without the failure count)
// is printed inert: no control byte reaches the terminal, no "<nil>".
func TestCheckEscapesBoardText(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "kanban.db")
	seedBoard(t, db, 1, "ghost")
	b, err := kanban.Connect(ctx, db, kanban.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range [][2]string{{"gave_up", `{"effective_limit": "\u001b[2J\u001b[31mpwned"}`}, {"promoted", "{}"}} {
		if _, err := b.DB().ExecContext(ctx, `INSERT INTO task_events (task_id, kind, payload, created_at) SELECT id, ?, ?, 1000 FROM tasks`, e[0], e[1]); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	code, stdout, _ := kc(t, "check", db)
	if code != exitFail || !strings.Contains(stdout, "breaker-holds") {
		t.Fatalf("exit %d\n%s", code, stdout)
	}
	if strings.ContainsRune(stdout, 0x1b) || strings.Contains(stdout, "<nil>") {
		t.Errorf("check printed a raw escape or <nil>:\n%q", stdout)
	}
}

// TestMergeRefusesGarbage: a shard file with lines that are not fuzz
// --json output is refused, naming the line, instead of skipped silently.
func TestMergeRefusesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shard.jsonl")
	os.WriteFile(path, []byte(`{"type":"run","index":0}`+"\nwarning: something\n"+`{"type":"summary","runs":1}`+"\n"), 0o644)
	code, _, stderr := kc(t, "merge", path)
	if code != exitUsage || !strings.Contains(stderr, "line 2 is not a line of 'kanbanchaos fuzz --json' output") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

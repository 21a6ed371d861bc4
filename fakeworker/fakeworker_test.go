package fakeworker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// ---- helpers ----

type env map[string]string

func (e env) get(k string) string { return e[k] }

// workerArgs is Hermes' worker command line for profile and task, with the
// extra flags Hermes may put between --accept-hooks and chat.
func workerArgs(profile, task string) []string {
	return []string{"-p", profile, "--accept-hooks", "--skills", "X", "-m", "model", "--toolsets", "a,b",
		"chat", "-q", "work kanban task " + task}
}

func writeConfig(t *testing.T, dir string, profiles map[string]schedule.Behaviour) string {
	t.Helper()
	path := filepath.Join(dir, "worker-config.json")
	if err := WriteConfig(path, Config{Connect: kanban.DefaultOptions(), ClaimTTLMs: 900_000, Profiles: profiles}); err != nil {
		t.Fatal(err)
	}
	return path
}

func behaviour(t *testing.T, s string) schedule.Behaviour {
	t.Helper()
	b, err := schedule.ParseBehaviour(s)
	if err != nil {
		t.Fatalf("ParseBehaviour(%q): %v", s, err)
	}
	return b
}

func readLedger(t *testing.T, path string) ledger.History {
	t.Helper()
	h, err := ledger.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if h.Malformed != 0 {
		t.Fatalf("ledger %s has %d malformed lines", path, h.Malformed)
	}
	return h
}

// wantExit checks that the ledger ends with the worker's exit line: its
// pid, task, run and profile, Who "worker" and status code.
func wantExit(t *testing.T, h ledger.History, task string, run int64, profile string, code int) {
	t.Helper()
	if len(h.Entries) == 0 {
		t.Fatalf("empty ledger, want an exit line last")
	}
	last := h.Entries[len(h.Entries)-1]
	got, ok := last.ExitStatus()
	if !ok || got != code || last.PID != os.Getpid() || last.Task != task || last.Run != run || last.Profile != profile || last.Who != "worker" {
		t.Errorf("last ledger entry %+v (status %d, %v), want exit %d of pid %d task %s run %d profile %s by worker",
			last, got, ok, code, os.Getpid(), task, run, profile)
	}
	if n := len(h.Exits()); n != 1 {
		t.Errorf("%d exit lines, want 1", n)
	}
}

func run(t *testing.T, args []string, e env) (code int, stderr string) {
	t.Helper()
	var buf bytes.Buffer
	code = Main(args, e.get, &buf)
	return code, buf.String()
}

// ---- exit-now and start line ----

func TestExitNowWritesOneStartLineFirst(t *testing.T) {
	dir := t.TempDir()
	led := filepath.Join(dir, "ledger.jsonl")
	e := env{
		EnvLedger:              led,
		EnvConfig:              writeConfig(t, dir, map[string]schedule.Behaviour{"ghost": behaviour(t, "exit-now:3")}),
		"HERMES_KANBAN_RUN_ID": "17",
	}
	before := ledger.MonoNow()
	code, stderr := run(t, workerArgs("ghost", "t_0123abcd"), e)
	if code != 3 {
		t.Fatalf("exit code %d, want 3 (stderr %q)", code, stderr)
	}
	h := readLedger(t, led)
	if len(h.Entries) != 2 {
		t.Fatalf("%d ledger entries, want exactly 2 (start, exit): %+v", len(h.Entries), h.Entries)
	}
	got := h.Entries[0]
	if got.Kind != ledger.Start || got.PID != os.Getpid() || got.Task != "t_0123abcd" || got.Run != 17 || got.Profile != "ghost" {
		t.Errorf("start entry %+v, want start pid %d task t_0123abcd run 17 profile ghost", got, os.Getpid())
	}
	if got.Mono < before || got.Mono > ledger.MonoNow() || got.Wall <= 0 {
		t.Errorf("start entry times mono=%d wall=%v, want the time Main started", got.Mono, got.Wall)
	}
	wantExit(t, h, "t_0123abcd", 17, "ghost", 3)
	if exit := h.Entries[1]; exit.Mono < got.Mono || exit.Mono > ledger.MonoNow() {
		t.Errorf("exit at mono %d, want after the start (%d) and before now", exit.Mono, got.Mono)
	}
	if stderr != "" {
		t.Errorf("stderr %q, want nothing for a clean exit-now", stderr)
	}
}

func TestStartLineCarriesEnvironment(t *testing.T) {
	dir := t.TempDir()
	led := filepath.Join(dir, "ledger.jsonl")
	e := env{
		EnvLedger:                  led,
		EnvConfig:                  writeConfig(t, dir, map[string]schedule.Behaviour{"reviewer": behaviour(t, "exit-now:0")}),
		"HERMES_KANBAN_TASK":       "t_000000e1", // the environment wins over -q
		"HERMES_KANBAN_CLAIM_LOCK": "host:123:abc",
		"HERMES_PROFILE":           "reviewer", // used when there is no -p
	}
	code, stderr := run(t, []string{"chat", "-q", "work kanban task t_000000q1"}, e)
	if code != 0 {
		t.Fatalf("exit code %d, want 0 (stderr %q)", code, stderr)
	}
	h := readLedger(t, led)
	if len(h.Entries) != 2 {
		t.Fatalf("%d entries, want 2", len(h.Entries))
	}
	got := h.Entries[0]
	if got.Task != "t_000000e1" || got.Profile != "reviewer" || got.Lock != "host:123:abc" || got.Run != 0 {
		t.Errorf("start entry %+v, want task from HERMES_KANBAN_TASK, profile from HERMES_PROFILE, the claim lock, no run", got)
	}
	wantExit(t, h, "t_000000e1", 0, "reviewer", 0) // exit 0 is written, not dropped as a zero value
}

func TestLedgerDefaultsNextToTheBoard(t *testing.T) {
	dir := t.TempDir()
	e := env{
		EnvConfig:          writeConfig(t, dir, map[string]schedule.Behaviour{"ghost": behaviour(t, "exit-now:1")}),
		"HERMES_KANBAN_DB": filepath.Join(dir, "kanban.db"),
	}
	if code, stderr := run(t, workerArgs("ghost", "t_0000000d"), e); code != 1 {
		t.Fatalf("exit code %d, want 1 (stderr %q)", code, stderr)
	}
	h := readLedger(t, filepath.Join(dir, "kanbanchaos-ledger.jsonl"))
	if len(h.Entries) != 2 || h.Entries[0].Kind != ledger.Start || h.Entries[0].Task != "t_0000000d" {
		t.Errorf("ledger next to the board = %+v, want a start and an exit for t_0000000d", h.Entries)
	}
	wantExit(t, h, "t_0000000d", 0, "ghost", 1)
	if _, err := os.Stat(filepath.Join(dir, "kanban.db")); err == nil {
		t.Errorf("exit-now created the board DB")
	}
}

func TestRateLimitedAndNoCompleteExitCodes(t *testing.T) {
	for spec, want := range map[string]int{"exit-75": 75, "exit-0-without-completing": 0, "exit-now:255": 255} {
		dir := t.TempDir()
		e := env{EnvLedger: filepath.Join(dir, "l.jsonl"), EnvConfig: writeConfig(t, dir, map[string]schedule.Behaviour{"p1": behaviour(t, spec)})}
		if code, stderr := run(t, workerArgs("p1", "t_0000000e"), e); code != want {
			t.Errorf("%s: exit code %d, want %d (stderr %q)", spec, code, want, stderr)
		}
		wantExit(t, readLedger(t, filepath.Join(dir, "l.jsonl")), "t_0000000e", 0, "p1", want)
	}
}

// ---- cannot tell what to do ----

func TestNotAWorkerCommandLine(t *testing.T) {
	cases := map[string][]string{
		"no arguments": nil,
		"no profile":   {"chat", "-q", "work kanban task t_00000001"},
		"no task":      {"-p", "ghost", "chat", "-q", "hello"},
		"dangling -p":  {"chat", "-q", "work kanban task t_00000001", "-p"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			e := env{EnvLedger: filepath.Join(dir, "l.jsonl"), EnvConfig: writeConfig(t, dir, map[string]schedule.Behaviour{"ghost": behaviour(t, "exit-now:0")})}
			code, stderr := run(t, args, e)
			if code != 64 {
				t.Errorf("exit code %d, want 64", code)
			}
			if !strings.Contains(stderr, "not a Hermes worker command line") {
				t.Errorf("stderr %q does not say what is wrong", stderr)
			}
			// A worker that knows its task is counted and its exit recorded;
			// one that does not has nothing to record either.
			h := readLedger(t, filepath.Join(dir, "l.jsonl"))
			if slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "work kanban task ") }) {
				wantExit(t, h, "t_00000001", 0, "", 64)
			} else if len(h.Entries) != 0 {
				t.Errorf("ledger %+v, want nothing from a worker without a task", h.Entries)
			}
		})
	}
}

func TestBadRunIDIsUsage(t *testing.T) {
	dir := t.TempDir()
	e := env{EnvLedger: filepath.Join(dir, "l.jsonl"), EnvConfig: writeConfig(t, dir, map[string]schedule.Behaviour{"ghost": behaviour(t, "exit-now:0")}),
		"HERMES_KANBAN_RUN_ID": "seven"}
	code, stderr := run(t, workerArgs("ghost", "t_00000001"), e)
	if code != 64 || !strings.Contains(stderr, `"seven"`) {
		t.Errorf("exit %d stderr %q, want 64 naming the bad run id", code, stderr)
	}
	wantExit(t, readLedger(t, filepath.Join(dir, "l.jsonl")), "t_00000001", 0, "ghost", 64)
}

func TestConfigProblemsExit78AfterTheStartLine(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, config, want string
	}{
		{"config not set", "", EnvConfig + " is not set"},
		{"config missing", filepath.Join(dir, "missing.json"), "read worker config"},
		{"config not JSON", garbage, "garbage.json"},
		{"profile not in config", writeConfig(t, dir, map[string]schedule.Behaviour{"other": behaviour(t, "exit-now:0")}), `no behaviour for profile "ghost"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			led := filepath.Join(t.TempDir(), "l.jsonl")
			e := env{EnvLedger: led, "HERMES_KANBAN_RUN_ID": "5"}
			if tc.config != "" {
				e[EnvConfig] = tc.config
			}
			code, stderr := run(t, workerArgs("ghost", "t_00000078"), e)
			if code != 78 {
				t.Errorf("exit code %d, want 78", code)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.want)
			}
			h := readLedger(t, led)
			if len(h.Entries) != 2 || h.Entries[0].Kind != ledger.Start || h.Entries[0].Task != "t_00000078" || h.Entries[0].Run != 5 {
				t.Errorf("ledger %+v, want the start counted before the config was read, then the exit", h.Entries)
			}
			wantExit(t, h, "t_00000078", 5, "ghost", 78)
		})
	}
}

func TestUnwritableLedgerStillPlays(t *testing.T) {
	dir := t.TempDir()
	e := env{EnvLedger: filepath.Join(dir, "no", "such", "dir", "l.jsonl"),
		EnvConfig: writeConfig(t, dir, map[string]schedule.Behaviour{"ghost": behaviour(t, "exit-now:9")})}
	code, stderr := run(t, workerArgs("ghost", "t_00000009"), e)
	if code != 9 {
		t.Errorf("exit code %d, want 9", code)
	}
	if !strings.Contains(stderr, "ledger") {
		t.Errorf("stderr %q does not report the ledger failure", stderr)
	}
}

// ---- against a real board ----

type boardSetup struct {
	dir, db, ledger, task, lock string
	run                         int64
}

// claimedTask makes a board with one claimed task and closes it.
func claimedTask(t *testing.T) boardSetup {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	s := boardSetup{dir: dir, db: filepath.Join(dir, "kanban.db"), ledger: filepath.Join(dir, "ledger.jsonl"),
		task: "t_0000c0de", lock: "host:1:lock"}
	b, err := kanban.Connect(ctx, s.db, kanban.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTask(ctx, kanban.NewTask{ID: s.task, Title: "do it", Assignee: "coder"}); err != nil {
		t.Fatal(err)
	}
	run, ok, err := b.Claim(ctx, s.task, s.lock, 900)
	if err != nil || !ok {
		t.Fatalf("Claim = %d, %v, %v", run, ok, err)
	}
	s.run = run
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s boardSetup) env(t *testing.T, mode string, run int64) env {
	return env{
		EnvLedger:                  s.ledger,
		EnvConfig:                  writeConfig(t, s.dir, map[string]schedule.Behaviour{"coder": behaviour(t, mode)}),
		"HERMES_KANBAN_DB":         s.db,
		"HERMES_KANBAN_TASK":       s.task,
		"HERMES_KANBAN_RUN_ID":     strconv.FormatInt(run, 10),
		"HERMES_KANBAN_CLAIM_LOCK": s.lock,
	}
}

// inspect reopens the board and reads the task status and event counts.
func (s boardSetup) inspect(t *testing.T) (status string, events map[string]int) {
	t.Helper()
	b, err := kanban.Connect(context.Background(), s.db, kanban.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	task, err := b.Task(context.Background(), s.task)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := b.DB().Query(`SELECT kind, count(*) FROM task_events WHERE task_id=? GROUP BY kind`, s.task)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	events = map[string]int{}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		events[k] = n
	}
	return task.Status, events
}

func TestCompleteFinishesTheTask(t *testing.T) {
	s := claimedTask(t)
	code, stderr := run(t, workerArgs("coder", s.task), s.env(t, "complete", s.run))
	if code != 0 {
		t.Fatalf("exit code %d, want 0 (stderr %q)", code, stderr)
	}
	status, events := s.inspect(t)
	if status != kanban.StatusDone {
		t.Errorf("status %s, want done", status)
	}
	if events[kanban.EventHeartbeat] != 1 || events[kanban.EventCompleted] != 1 {
		t.Errorf("events %v, want one heartbeat and one completed", events)
	}
	h := readLedger(t, s.ledger)
	starts := h.Starts()[s.task]
	if len(starts) != 1 || starts[0].Run != s.run || starts[0].Lock != s.lock {
		t.Errorf("ledger %+v, want one start for run %d with the claim lock", h.Entries, s.run)
	}
	// Every acknowledged write is in the ledger: the heartbeat and the
	// completion, each with the event it inserted.
	var ops []string
	for _, e := range h.Entries {
		if e.Kind == ledger.Commit && e.Task == s.task {
			ops = append(ops, e.Op)
			if len(e.Events) != 1 {
				t.Errorf("commit %s lists events %v, want the one it inserted", e.Op, e.Events)
			}
		}
	}
	if strings.Join(ops, " ") != "heartbeat completed" {
		t.Errorf("commits %v, want heartbeat then completed", ops)
	}
	wantExit(t, h, s.task, s.run, "coder", 0)
}

func TestCompleteWithStaleRunFails(t *testing.T) {
	s := claimedTask(t)
	code, stderr := run(t, workerArgs("coder", s.task), s.env(t, "complete", s.run+1))
	if code != 1 {
		t.Fatalf("exit code %d, want 1 (stderr %q)", code, stderr)
	}
	if !strings.Contains(stderr, "stale run") || !strings.Contains(stderr, "heartbeat") {
		t.Errorf("stderr %q does not name the stale run at heartbeat", stderr)
	}
	for _, e := range readLedger(t, s.ledger).Entries {
		if e.Kind == ledger.SQLiteError {
			t.Errorf("a stale run is not a SQLite error, but the ledger has %+v", e)
		}
	}
	status, events := s.inspect(t)
	if status != kanban.StatusRunning || events[kanban.EventHeartbeat] != 0 || events[kanban.EventCompleted] != 0 {
		t.Errorf("status %s events %v: a stale worker wrote to the board", status, events)
	}
}

func TestHeartbeatThenCrash(t *testing.T) {
	s := claimedTask(t)
	code, stderr := run(t, workerArgs("coder", s.task), s.env(t, "heartbeat-then-crash:5", s.run))
	if code != 5 {
		t.Fatalf("exit code %d, want 5 (stderr %q)", code, stderr)
	}
	status, events := s.inspect(t)
	if status != kanban.StatusRunning || events[kanban.EventHeartbeat] != 1 || events[kanban.EventCompleted] != 0 {
		t.Errorf("status %s events %v, want still running after one heartbeat", status, events)
	}
	wantExit(t, readLedger(t, s.ledger), s.task, s.run, "coder", 5)
}

// envKillInTxn makes the test binary play one kill-in-txn worker in
// TestKillInTxnWritesNoExit's child process.
const envKillInTxn = "KANBANCHAOS_TEST_KILL_IN_TXN"

// A worker killed by a signal cannot write its exit: kill-in-txn SIGKILLs
// itself inside a transaction, so its ledger has the start and the commits
// it saw acknowledged, and no exit line — which is how the oracle tells a
// killed worker from one that exited.
func TestKillInTxnWritesNoExit(t *testing.T) {
	if spec := os.Getenv(envKillInTxn); spec != "" {
		var e env
		if err := json.Unmarshal([]byte(spec), &e); err != nil {
			t.Fatal(err)
		}
		Main(workerArgs("coder", e["HERMES_KANBAN_TASK"]), e.get, os.Stderr)
		t.Fatal("kill-in-txn returned")
	}
	s := claimedTask(t)
	spec, err := json.Marshal(s.env(t, "kill-in-txn", s.run))
	if err != nil {
		t.Fatal(err)
	}
	cmd := osexec.Command(os.Args[0], "-test.run=^TestKillInTxnWritesNoExit$")
	cmd.Env = append(os.Environ(), envKillInTxn+"="+string(spec))
	out, err := cmd.CombinedOutput()
	var exitErr *osexec.ExitError
	if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed by SIGKILL; output %s", err, out)
	}
	h := readLedger(t, s.ledger)
	if len(h.Starts()[s.task]) != 1 {
		t.Errorf("ledger %+v, want the start", h.Entries)
	}
	if exits := h.Exits(); len(exits) != 0 {
		t.Errorf("exit lines %+v from a worker killed by a signal", exits)
	}
}

func TestOpenBoardThenExit(t *testing.T) {
	s := claimedTask(t)
	code, stderr := run(t, workerArgs("coder", s.task), s.env(t, "open-board-then-exit:2", s.run))
	if code != 2 {
		t.Fatalf("exit code %d, want 2 (stderr %q)", code, stderr)
	}
	status, events := s.inspect(t)
	if status != kanban.StatusRunning || events[kanban.EventHeartbeat] != 0 {
		t.Errorf("status %s events %v: open-board-then-exit wrote to the task", status, events)
	}
}

func TestOpenBoardUnknownTaskFails(t *testing.T) {
	s := claimedTask(t)
	e := s.env(t, "open-board-then-exit:2", s.run)
	e["HERMES_KANBAN_TASK"] = "t_00000404"
	code, stderr := run(t, workerArgs("coder", "t_00000404"), e)
	if code != 1 || !strings.Contains(stderr, "read task") {
		t.Errorf("exit %d stderr %q, want 1 and the failed read", code, stderr)
	}
}

// A board that is not a database makes the worker fail with a SQLite error,
// which it records in the ledger with its code (NOTADB, 26).
func TestSQLiteErrorGoesToTheLedger(t *testing.T) {
	s := claimedTask(t)
	bogus := filepath.Join(s.dir, "bogus.db")
	if err := os.WriteFile(bogus, bytes.Repeat([]byte("not a database "), 512), 0o644); err != nil {
		t.Fatal(err)
	}
	e := s.env(t, "complete", s.run)
	e["HERMES_KANBAN_DB"] = bogus
	code, stderr := run(t, workerArgs("coder", s.task), e)
	if code != 1 {
		t.Fatalf("exit code %d, want 1 (stderr %q)", code, stderr)
	}
	h := readLedger(t, s.ledger)
	if len(h.Entries) != 3 || h.Entries[0].Kind != ledger.Start || h.Entries[1].Kind != ledger.SQLiteError {
		t.Fatalf("ledger %+v, want start, sqlite_error, exit", h.Entries)
	}
	wantExit(t, h, s.task, s.run, "coder", 1)
	got := h.Entries[1]
	if got.Code&0xff != 26 || got.Task != s.task || got.Run != s.run || got.PID != os.Getpid() || !strings.HasPrefix(got.Message, "connect: ") {
		t.Errorf("sqlite_error entry %+v, want code 26 for the task and run, message from connect", got)
	}
}

// hang never returns (select {}), so it is not run in-process; the harness
// and dispatcher tests exercise it in a subprocess.

package harness

// A run on another engine: the schedule handed to that engine's binary as
// a replay, its result read back, and the process stopped like one of our
// own runs when the caller gives up.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// runInEngine runs s in bin, a kanbanchaos binary linked against s's engine,
// as `bin replay SCHEDULE --json`, and returns the Result it prints. Its
// progress lines (stderr) go to opt.Log. bin is its own dispatcher host and
// fake worker, so opt.WorkerBin does not apply, and opt.OnTick is never
// called: the ticks happen in another process (they are in trace.jsonl).
// Numbers in violation evidence come back as float64, as JSON decodes them.
//
// On ctx's end the engine gets SIGTERM, like an interrupted run of our own:
// it stops its workers, checks the evidence and reports; if it has not exited
// after the grace period its process group gets SIGKILL (its workers, each
// in a session of its own, die with it through Pdeathsig).
func runInEngine(ctx context.Context, s schedule.Schedule, opt Options, bin string, env ...string) (Result, error) {
	res := Result{Schedule: s}
	dir, err := os.MkdirTemp("", "kanbanchaos-engine-")
	if err != nil {
		return res, fmt.Errorf("harness: engine run: %w", err)
	}
	defer os.RemoveAll(dir)
	file := filepath.Join(dir, "schedule.json")
	if err := s.Write(file); err != nil {
		return res, err
	}
	// The schedule file is gone when the run is over: the engine records
	// our replay command instead of its own.
	// --artifacts always: an empty one (keep in the temp dir) must not
	// become the engine's default store.
	args := []string{"replay", file, "--harness-json", "--replay-command", opt.Replay, "--artifacts", opt.ArtifactsDir}
	if opt.Keep {
		args = append(args, "--keep")
	}
	if opt.FullDuration {
		args = append(args, "--full-duration")
	}
	if len(opt.StopOn) > 0 {
		args = append(args, "--stop-on", strings.Join(opt.StopOn, ","))
	}
	grace := opt.StopGrace
	if grace == 0 {
		grace = 10 * time.Second
	}
	// Stopping dispatchers, then workers, takes up to a grace each; then the
	// oracle runs.
	grace = 2*grace + 10*time.Second

	var stdout bytes.Buffer
	stderr := &tailWriter{max: 8 << 10}
	cmd := exec.CommandContext(ctx, bin, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout = &stdout
	cmd.Stderr = stderr
	if opt.Log != nil {
		cmd.Stderr = io.MultiWriter(stderr, opt.Log)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var (
		killMu sync.Mutex
		kill   *time.Timer
		exited bool
	)
	cmd.Cancel = func() error {
		pgid := cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		killMu.Lock()
		defer killMu.Unlock()
		if !exited {
			kill = time.AfterFunc(grace, func() {
				killMu.Lock()
				defer killMu.Unlock()
				// Once reaped, the pgid may belong to someone else.
				if !exited {
					syscall.Kill(-pgid, syscall.SIGKILL)
				}
			})
		}
		return nil
	}
	// Backstop: Wait gives up on the process and its pipes after this.
	cmd.WaitDelay = grace + 5*time.Second
	err = cmd.Run()
	killMu.Lock()
	exited = true
	if kill != nil {
		kill.Stop()
	}
	killMu.Unlock()

	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	fail := func(why string) (Result, error) {
		return res, fmt.Errorf("harness: SQLite %s engine %s %s (exit %d, run error %v); its stderr ends:\n%s",
			schedule.Engines[s.EngineOrDefault()], bin, why, code, err, stderr.String())
	}
	switch code {
	case 0, 1, 3: // pass, fail, unknown: a result
	case 2:
		return fail("rejected the schedule")
	case 4:
		return fail("failed")
	default:
		return fail("did not finish")
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return fail("printed no result: " + err.Error())
	}
	if res.SQLite == "" {
		return fail("printed a result without its SQLite version")
	}
	return res, nil
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	max int
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-w.max:]...)
	}
	return len(p), nil
}

func (w *tailWriter) String() string { return string(w.buf) }

// tail is the last n bytes of b.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

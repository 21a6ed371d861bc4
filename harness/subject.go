package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// dispatchExec is the dispatch phase for an external subject: the board is
// prepared exactly as for the reference dispatcher, but the dispatching is
// done by the subject's command — once per schedule dispatcher, long-running
// or re-run every tick — with Hermes' environment pointing it at the
// sandbox.
func dispatchExec(ctx context.Context, sb sandbox, s schedule.Schedule, knobs dispatcher.Knobs, timing dispatcher.Timing, opt Options,
	logf func(string, ...any)) (phases, error) {
	env, err := subjectEnv(sb, timing, knobs.Connect.OFDLocking)
	if err != nil {
		return phases{}, err
	}
	logf("dispatching with exec:%s (%d instance(s), %s)", opt.Subject.Exec, s.Dispatchers,
		map[bool]string{true: "re-run every tick", false: "long-running"}[opt.Subject.OneShot])
	return dispatchExternal(ctx, sb, s, timing, opt, logf, func(name string, _ time.Duration) (instance, error) {
		return instance{
			command: func() *exec.Cmd { return exec.Command("/bin/sh", "-c", opt.Subject.Exec) },
			env:     slices.Concat(env, []string{"KANBANCHAOS_DISPATCHER=" + name}),
			oneShot: opt.Subject.OneShot,
		}, nil
	})
}

// instance is how to run one instance of an external subject.
type instance struct {
	command func() *exec.Cmd // a fresh command for each start
	env     []string
	oneShot bool // re-run every tick instead of once
	// ownOffset: the subject delays its own first tick by the dispatcher's
	// offset (after the go file), so it is started at once.
	ownOffset bool
	// ready, when set, reports that the instance can tick (a Hermes driver
	// that imported its release): the run's clock starts once every
	// instance is ready, and the go file tells them to begin.
	ready func() bool
}

// readyWait bounds how long a run waits for its subject to start (a
// release's import on a loaded machine takes seconds, not minutes).
const readyWait = 2 * time.Minute

// dispatchExternal runs one instance of an external subject per schedule
// dispatcher for the dispatch and quiet phases, injects the faults, then
// stops them. Their workers are their children, not ours, so when the run
// ends they are found through /proc by the sandbox's ledger path in their
// environment and killed, with the subject's process groups.
func dispatchExternal(ctx context.Context, sb sandbox, s schedule.Schedule, timing dispatcher.Timing, opt Options,
	logf func(string, ...any), newInstance func(name string, offset time.Duration) (instance, error)) (phases, error) {
	total := time.Duration(s.DurationMs+s.QuietMs) * time.Millisecond
	// No deadline until the subject is up (instance.ready): the run's clock
	// starts when it can tick.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var ph phases
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	var readies []func() bool
	ended := make(chan struct{}, s.Dispatchers)
	for i := 0; i < s.Dispatchers; i++ {
		name := "d" + strconv.Itoa(i+1)
		offset := time.Duration(0)
		if i < len(s.DispatcherOffsetsMs) {
			offset = time.Duration(s.DispatcherOffsetsMs[i]) * time.Millisecond
		}
		in, err := newInstance(name, offset)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if in.ready != nil {
			readies = append(readies, in.ready)
		}
		if in.ownOffset {
			offset = 0
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { ended <- struct{}{} }()
			// Pdeathsig fires when the thread that started the child ends,
			// not the process: start every instance from a thread of its own
			// that lives as long as the instance.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			err := runSubject(runCtx, in.command, in.oneShot, in.env, sb.root, offset, timing.Tick, opt.StopGrace)
			mu.Lock()
			defer mu.Unlock()
			if exited := (subjectExited{}); errors.As(err, &exited) {
				// A dead subject is no pass and no harness failure: the run
				// could not test it.
				ph.unknowns = append(ph.unknowns, fmt.Sprintf("subject %s: %v", name, exited.err))
			} else if err != nil {
				errs = append(errs, fmt.Errorf("subject %s: %w", name, err))
			}
		}()
	}
	if len(readies) > 0 {
		why := awaitReady(runCtx, readies, ended, readyWait)
		if err := os.WriteFile(sb.goFile(), nil, 0o644); err != nil {
			why = fmt.Sprintf("the go file could not be written: %v", err)
		}
		if why != "" {
			mu.Lock()
			ph.unknowns = append(ph.unknowns, why)
			mu.Unlock()
		}
	}
	mu.Lock()
	ph.startMono, ph.startWall = ledger.MonoNow(), ledger.WallNow()
	ph.quietWall = ph.startWall + float64(s.DurationMs)/1000
	mu.Unlock()
	start := time.Now()
	deadline := time.AfterFunc(total, cancel)
	defer deadline.Stop()
	decision := stopWhenDecided(runCtx, cancel, opt.FullDuration, sb.ledger(), s, ph.startMono, opt.StopOn, evidenceTicks*timing.Tick)
	injected := make(chan struct{})
	go func() {
		defer close(injected)
		injectFaults(runCtx, sb, s.Faults, start, func(in Injection) {
			mu.Lock()
			defer mu.Unlock()
			ph.injections = append(ph.injections, in)
			logf("fault %s at +%dms: %s", in.Kind, in.AtMs, in.Result)
		})
	}()
	wg.Wait()
	cancel()
	ph.decided = decision()
	<-injected
	ph.elapsed = time.Since(start)
	if ctx.Err() != nil {
		ph.unknowns = append(ph.unknowns, "run interrupted: "+ctx.Err().Error())
	}
	ph.aliveAtStop = aliveAtStop(sb)
	if left := killSandboxProcesses(sb, opt.StopGrace); len(left) > 0 {
		ph.unknowns = append(ph.unknowns, fmt.Sprintf("processes %v of the subject did not die after SIGKILL", left))
	}
	return ph, errors.Join(errs...)
}

// awaitReady waits until every ready reports true. It says why the run may
// not have tested its subject when an instance ended first or limit passed
// ("" when all are ready, or the run was stopped: the caller says so).
func awaitReady(ctx context.Context, ready []func() bool, ended <-chan struct{}, limit time.Duration) string {
	timeout := time.After(limit)
	for {
		if !slices.ContainsFunc(ready, func(r func() bool) bool { return !r() }) {
			return ""
		}
		select {
		case <-ctx.Done():
			return ""
		case <-ended:
			return "an instance of the subject ended before every one was ready"
		case <-timeout:
			return fmt.Sprintf("the subject was not ready to tick within %v", limit)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// subjectEnv is what the subject's command runs with: the sandbox's Hermes
// home and HERMES_BIN (so a real Hermes spawns our fake workers), Hermes'
// own time settings in the whole seconds it can parse, and PATH led by the
// sandbox's bin directory, where `kanbanchaos` is this binary (so
// `exec:'kanbanchaos dispatch …'` needs no install) and `hermes` is the fake
// worker (releases without HERMES_BIN spawn `hermes` from PATH).
func subjectEnv(sb sandbox, timing dispatcher.Timing, ofd bool) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("harness: own executable: %w", err)
	}
	bin := filepath.Dir(sb.hermesBin())
	if err := os.Symlink(exe, filepath.Join(bin, "kanbanchaos")); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("harness: kanbanchaos symlink: %w", err)
	}
	// exec.Cmd keeps the last of duplicate variables: the knob's lock kind
	// wins over this process's for the subject and its workers.
	env := append(workerEnv(sb), kanban.OFDEnv+"="+map[bool]string{true: "1", false: "0"}[ofd])
	for i, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			env[i] = "PATH=" + bin + ":" + strings.TrimPrefix(kv, "PATH=")
		}
	}
	secs := wholeSeconds(timing)
	return slices.Concat(env, secs.Env(), []string{
		"KANBANCHAOS_TIME_SCALE=" + strconv.FormatFloat(timing.Scale, 'g', -1, 64),
	}), nil
}

// wholeSeconds is the run's timing as an external subject gets it.
func wholeSeconds(timing dispatcher.Timing) hermes.Seconds {
	return hermes.WholeSeconds(timing.CrashGrace, timing.ClaimTTL, timing.RateLimitCooldown)
}

// runSubject runs one instance of the subject until ctx ends: a one-shot
// command every tick, or a long-running one once, stopped with SIGTERM and
// then SIGKILL to its process group. command makes a fresh exec.Cmd for
// each start.
func runSubject(ctx context.Context, command func() *exec.Cmd, oneShot bool, env []string, dir string, offset, tick, grace time.Duration) error {
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(offset):
	}
	if grace == 0 {
		grace = 10 * time.Second
	}
	for {
		cmd := command()
		cmd.Env, cmd.Dir = env, dir
		log, err := os.OpenFile(filepath.Join(dir, "subject.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		cmd.Stdout, cmd.Stderr = log, log
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		err = cmd.Start()
		log.Close()
		if err != nil {
			return fmt.Errorf("start %q: %w: %w", cmd.Args, ErrEnvironment, err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if !oneShot {
				if ctx.Err() != nil {
					return nil
				}
				return subjectExited{fmt.Errorf("%q exited before the run ended: %v (see subject.log)", cmd.Args, err)}
			}
		case <-ctx.Done():
			stopGroup(cmd.Process.Pid, done, grace)
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(tick):
		}
	}
}

// subjectExited is a long-running subject that ended on its own.
type subjectExited struct{ err error }

func (e subjectExited) Error() string { return e.err.Error() }

// stopGroup sends SIGTERM to the group, waits up to grace, then SIGKILL.
func stopGroup(pgid int, done <-chan error, grace time.Duration) {
	syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	syscall.Kill(-pgid, syscall.SIGKILL) // stragglers left in the group
}

// killSandboxProcesses kills every process whose environment points at this
// sandbox's ledger — the subject's workers (each in its own session) and any
// helper it forked — and waits until none is left or timeout. Matching the
// environment, not a pid list, means a reused pid is never hit.
func killSandboxProcesses(sb sandbox, timeout time.Duration) []int {
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	marker := []byte(fakeworker.EnvLedger + "=" + sb.ledger() + "\x00")
	deadline := time.Now().Add(timeout)
	for {
		pids := sandboxPIDs(marker)
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func sandboxPIDs(marker []byte) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		envb, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !containsEnv(envb, marker) {
			continue
		}
		if !dispatcher.Alive(pid) {
			continue // a zombie: its parent will reap it, nothing to kill
		}
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids
}

func containsEnv(environ, marker []byte) bool {
	return strings.HasPrefix(string(environ), string(marker)) || strings.Contains(string(environ), "\x00"+string(marker))
}

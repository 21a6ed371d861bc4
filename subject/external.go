package subject

// What the external subjects (exec:, hermes:) share: one instance per
// schedule dispatcher in a process group of its own, the run's clock
// started once every instance is ready, the environment that points them
// at the sandbox, and the stop — SIGTERM, then SIGKILL to the group, then
// every process carrying the sandbox's mark, since their workers are
// their children, not ours.

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
	"github.com/kanbanchaos/kanbanchaos/faults"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/sandbox"
)

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
func dispatchExternal(ctx context.Context, r Run, newInstance func(name string, offset time.Duration) (instance, error)) (Phases, error) {
	s, sb := r.Schedule, r.Sandbox
	total := time.Duration(s.DurationMs+s.QuietMs) * time.Millisecond
	// No deadline until the subject is up (instance.ready): the run's clock
	// starts when it can tick.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var ph Phases
	var mu sync.Mutex
	var wg sync.WaitGroup
	var errs []error
	var readies []func() bool
	ended := make(chan struct{}, s.Dispatchers)
	for i := 0; i < s.Dispatchers; i++ {
		name := "d" + strconv.Itoa(i+1)
		offset := offset(s, i)
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
			err := runSubject(runCtx, in.command, in.oneShot, in.env, sb.Root, offset, r.Timing.Tick, r.StopGrace)
			mu.Lock()
			defer mu.Unlock()
			if exited := (subjectExited{}); errors.As(err, &exited) {
				// A dead subject is no pass and no harness failure: the run
				// could not test it.
				ph.Unknowns = append(ph.Unknowns, fmt.Sprintf("subject %s: %v", name, exited.err))
			} else if err != nil {
				errs = append(errs, fmt.Errorf("subject %s: %w", name, err))
			}
		}()
	}
	if len(readies) > 0 {
		why := awaitReady(runCtx, readies, ended, readyWait)
		if err := os.WriteFile(sb.GoFile(), nil, 0o644); err != nil {
			why = fmt.Sprintf("the go file could not be written: %v", err)
		}
		if why != "" {
			mu.Lock()
			ph.Unknowns = append(ph.Unknowns, why)
			mu.Unlock()
		}
	}
	mu.Lock()
	ph.StartMono, ph.StartWall = ledger.MonoNow(), ledger.WallNow()
	ph.QuietWall = ph.StartWall + float64(s.DurationMs)/1000
	mu.Unlock()
	start := time.Now()
	deadline := time.AfterFunc(total, cancel)
	defer deadline.Stop()
	walSizes := sampleWAL(runCtx, sb.DB(), 20*time.Millisecond)
	// The moment runCtx ends (the schedule's end, a decision, an
	// interruption) is when the subject was told to stop; stopped closes
	// once it is recorded, so ph is whole before it is returned.
	stopped := make(chan struct{})
	context.AfterFunc(runCtx, func() {
		defer close(stopped)
		mu.Lock()
		defer mu.Unlock()
		ph.StopMono = ledger.MonoNow()
	})
	wait := r.beside(runCtx, cancel, Clock{Start: start, Mono: ph.StartMono}, func(in faults.Injection) {
		mu.Lock()
		defer mu.Unlock()
		ph.Injections = append(ph.Injections, in)
		r.Logf("fault %s at +%dms: %s", in.Kind, in.AtMs, in.Result)
	})
	wg.Wait()
	cancel()
	<-stopped
	wait()
	ph.Elapsed = time.Since(start)
	ph.WAL = walSizes()
	if ctx.Err() != nil {
		ph.Unknowns = append(ph.Unknowns, "run interrupted: "+ctx.Err().Error())
	}
	// The subject's workers are its children, not ours: counted, then
	// killed by the sandbox's mark.
	ph.AliveAtStop = sb.AliveAtStop()
	if left := sb.Kill(r.StopGrace); len(left) > 0 {
		ph.Unknowns = append(ph.Unknowns, fmt.Sprintf("processes %v of the subject did not die after SIGKILL", left))
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
func subjectEnv(sb sandbox.Dir, timing dispatcher.Timing, ofd bool) ([]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("subject: own executable: %w", err)
	}
	bin := filepath.Dir(sb.HermesBin())
	if err := os.Symlink(exe, filepath.Join(bin, "kanbanchaos")); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("subject: kanbanchaos symlink: %w", err)
	}
	// exec.Cmd keeps the last of duplicate variables: the knob's lock kind
	// wins over this process's for the subject and its workers.
	env := append(sb.Env(), kanban.OFDEnv+"="+sandbox.OFDValue(ofd))
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
			return fmt.Errorf("start %q: %w: %w", cmd.Args, sandbox.ErrEnvironment, err)
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

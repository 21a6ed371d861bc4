package dispatcher

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Children is the table of worker processes started by the dispatchers of
// one OS process. It owns the only calls to wait4 for them, so a pid is never
// signalled after it was reaped (and possibly reused by an unrelated
// process). Every worker gets its own session (Hermes' start_new_session) and
// Pdeathsig=SIGKILL, so it can be killed as a group and dies with us.
type Children struct {
	mu    sync.Mutex
	procs map[int]*child
	// births counts Starts between their check that the table is open and
	// their entry of the new pid: KillAll waits for them, and a Start that
	// finds the table closed meanwhile kills its own child, so no process
	// outlives KillAll although none is forked under mu (Go forks several
	// processes at once; under mu the dispatchers of a process took turns,
	// each waiting for the other's child to exec).
	births sync.WaitGroup
	// orphanable workers outlive this process, as Hermes' Popen workers
	// outlive a one-shot `hermes kanban dispatch`: no Pdeathsig.
	orphanable bool
}

type child struct {
	owner   string
	started time.Time
	reaped  bool
	status  syscall.WaitStatus
}

// NewChildren returns an empty table whose workers die with this process
// (Pdeathsig): the harness hosts dispatchers in its own process and must
// leave nothing behind, even when it crashes.
func NewChildren() *Children { return &Children{procs: map[int]*child{}} }

// NewOrphanableChildren returns a table whose workers outlive this process,
// as Hermes' do: a dispatcher process that exits after one tick must not
// take its workers with it. Whoever runs such a dispatcher cleans up.
func NewOrphanableChildren() *Children { return &Children{procs: map[int]*child{}, orphanable: true} }

// Spec is one process to start.
type Spec struct {
	Argv []string
	Env  []string
	Dir  string
	Log  string // stdout and stderr are appended here
}

// Start starts spec for owner and returns its pid. The child is never waited
// on synchronously: Reap collects its status later.
func (c *Children) Start(owner string, spec Spec) (int, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer devnull.Close()
	logf, err := os.OpenFile(spec.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open worker log: %w", err)
	}
	defer logf.Close()
	c.mu.Lock()
	if c.procs == nil {
		c.mu.Unlock()
		return 0, errClosed
	}
	c.births.Add(1)
	c.mu.Unlock()
	defer c.births.Done()
	p, err := os.StartProcess(spec.Argv[0], spec.Argv, &os.ProcAttr{
		Dir:   spec.Dir,
		Env:   spec.Env,
		Files: []*os.File{devnull, logf, logf},
		Sys:   c.sysProcAttr(),
	})
	if err != nil {
		return 0, err
	}
	pid := p.Pid
	p.Release() // we wait with wait4 ourselves
	c.mu.Lock()
	closed := c.procs == nil
	if !closed {
		c.procs[pid] = &child{owner: owner, started: time.Now()}
	}
	c.mu.Unlock()
	if closed {
		// KillAll ran while this child was being born: it is ours to kill.
		killAndReap(pid, 5*time.Second)
		return 0, errClosed
	}
	return pid, nil
}

var errClosed = errors.New("children: table closed, refusing to start a process")

// killAndReap SIGKILLs pid's group and pid, and reaps it, waiting at most
// timeout (a process in uninterruptible sleep is left to Pdeathsig).
func killAndReap(pid int, timeout time.Duration) {
	syscall.Kill(-pid, syscall.SIGKILL)
	syscall.Kill(pid, syscall.SIGKILL)
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		var st syscall.WaitStatus
		got, err := syscall.Wait4(pid, &st, syscall.WNOHANG, nil)
		if got == pid || (err != nil && !errors.Is(err, syscall.EINTR)) {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (c *Children) sysProcAttr() *syscall.SysProcAttr {
	if c.orphanable {
		return &syscall.SysProcAttr{Setsid: true}
	}
	return &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
}

// Reap collects the exit status of owner's exited children (all owners when
// owner is "") without blocking.
func (c *Children) Reap(owner string) map[int]syscall.WaitStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int]syscall.WaitStatus{}
	for pid, ch := range c.procs {
		if ch.reaped || (owner != "" && ch.owner != owner) {
			continue
		}
		if st, ok := c.tryWait(pid, ch); ok {
			out[pid] = st
		}
	}
	return out
}

// ReapPID collects pid's status if it is a child of owner that has exited.
func (c *Children) ReapPID(owner string, pid int) (syscall.WaitStatus, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.procs[pid]
	if !ok || ch.owner != owner {
		return 0, false
	}
	if ch.reaped {
		return ch.status, true
	}
	return c.tryWait(pid, ch)
}

func (c *Children) tryWait(pid int, ch *child) (syscall.WaitStatus, bool) {
	var st syscall.WaitStatus
	got, err := syscall.Wait4(pid, &st, syscall.WNOHANG, nil)
	for errors.Is(err, syscall.EINTR) { // a signal (Go's preemption) interrupted it
		got, err = syscall.Wait4(pid, &st, syscall.WNOHANG, nil)
	}
	if got == pid {
		ch.reaped, ch.status = true, st
		return st, true
	}
	if errors.Is(err, syscall.ECHILD) {
		// Reaped by someone else in this process; the status is lost.
		ch.reaped = true
	}
	return 0, false
}

// Unreaped reports whether pid is a child of owner not reaped yet: not gone
// for good, whatever /proc says of it.
func (c *Children) Unreaped(owner string, pid int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.procs[pid]
	return ok && ch.owner == owner && !ch.reaped
}

// Signal sends sig to pid's process group if pid is a live, unreaped child.
// It reports whether a signal was sent.
func (c *Children) Signal(pid int, sig syscall.Signal) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.procs[pid]
	if !ok || ch.reaped {
		return false
	}
	return syscall.Kill(-pid, sig) == nil
}

// Known reports whether pid was started through this table.
func (c *Children) Known(pid int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.procs[pid]
	return ok
}

// Running reaps the children that have exited and counts those that have
// not (a run stopping early lets them finish before it kills the rest).
func (c *Children) Running() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for pid, ch := range c.procs {
		if !ch.reaped {
			if _, ok := c.tryWait(pid, ch); !ok && !ch.reaped {
				n++
			}
		}
	}
	return n
}

// Started counts every process started through the table.
func (c *Children) Started() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.procs)
}

// KillAll SIGKILLs the process group of every unreaped child, reaps them, and
// refuses further starts; a Start under way kills and reaps its own child
// before KillAll returns. It returns the pids still not reaped after
// timeout (a process stuck in uninterruptible sleep).
func (c *Children) KillAll(timeout time.Duration) []int {
	c.mu.Lock()
	live := []int{}
	for pid, ch := range c.procs {
		if !ch.reaped {
			syscall.Kill(-pid, syscall.SIGKILL)
			syscall.Kill(pid, syscall.SIGKILL) // in case it left its group
			live = append(live, pid)
		}
	}
	procs := c.procs
	c.procs = nil
	c.mu.Unlock()
	c.births.Wait() // a child born meanwhile was killed by its Start

	deadline := time.Now().Add(timeout)
	for {
		var left []int
		for _, pid := range live {
			ch := procs[pid]
			if _, ok := c.tryWait(pid, ch); !ok && !ch.reaped {
				left = append(left, pid)
			}
		}
		live = left
		if len(live) == 0 || time.Now().After(deadline) {
			return live
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Alive reports whether pid is a running process. Zombies count as dead,
// as in Hermes (Linux /proc State Z).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name, which may contain
	// spaces and parentheses itself.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return true
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

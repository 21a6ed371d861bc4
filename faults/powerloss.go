package faults

// The power-loss fault (schedule.FaultPowerLoss; spec sqlite-faults.md §2.5).
//
// A run with this fault keeps the board's home directory on a fresh 256 MB
// ext4 image, attached to a loop device and mounted with commit=1. While the
// run goes on, a helper process pushes random byte ranges of the board and
// its -wal/-journal to the "disk" (the image) with sync_file_range, as the
// kernel's background writeback would, in no particular order. At the cut
// the helper and every worker are SIGKILLed and the dispatchers are stopped;
// then the image is copied without syncing the mounted file system, so the
// copy holds only what had reached the disk. The copy is mounted elsewhere
// (ext4 replays its journal, as at the next boot), the first open of the
// board recovers its WAL or hot journal, and the oracle checks that board.
//
// Why the dispatchers stop before the copy rather than after: they are
// goroutines of this process and cannot be SIGKILLed, and `cp` reads the
// image over some milliseconds. A dispatcher committing with
// synchronous=FULL during that window writes into the image as it is read,
// so the copy could hold the database pages of one moment and the WAL of a
// later one — a torn snapshot that no disk ever held, which would flag FULL
// falsely. Stopped first, nothing writes to the image while it is copied.
// Their closing connections' last writes (a checkpoint on close) are synced
// under FULL and stay in the page cache — lost like every other unsynced
// write — under OFF/NORMAL, so the cut still falls on a live, unsynced board.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/sandbox"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

const (
	// powerLossImageMB is the size of the ext4 image under the board (the
	// measured setup; the file is sparse, so it costs ~10 MB).
	powerLossImageMB = 256
	// writebackInterval is how often, on average, a random range of each
	// board file is written back.
	writebackInterval = 150 * time.Millisecond
	// cleanupTimeout bounds unmounting and detaching, which must run even
	// after the run's own context is done.
	cleanupTimeout = 30 * time.Second
)

// HasPowerLoss reports whether s cuts the power at some point.
func HasPowerLoss(s schedule.Schedule) bool {
	return slices.ContainsFunc(s.Faults, func(f schedule.Fault) bool { return f.Kind == schedule.FaultPowerLoss })
}

// PowerLossSkipped is the verdict of a power-loss run on a machine that
// cannot host one: undecided, never a pass.
func PowerLossSkipped(why string) oracle.Verdict {
	v := oracle.Verdict{Spawns: map[string]int{}}
	v.AddUnknown("skipped: needs root and loop devices (" + why + ")")
	return v
}

// PowerLoss is the fault's state for one run: the live disk under the
// board's home, the writeback helper, and after the cut the mounted copy.
type PowerLoss struct {
	work     string // <sandbox>/powerloss: the images and the copy's mount point
	live     *loopDisk
	children *dispatcher.Children
	grace    time.Duration

	mu        sync.Mutex
	crash     *loopDisk
	writeback *exec.Cmd
	wbDone    chan struct{}
	stopRun   context.CancelFunc // ends the dispatch phase early
	haltMono  int64              // when the writers were killed (0: not yet)
	closed    bool
	// swept is what this run's start cleared of runs killed before it
	// (sweepStale), for the run to report.
	swept []string
}

// Swept says what the power-loss set-up cleared of runs killed before this
// one: each unmount and loop detach.
func (p *PowerLoss) Swept() []string {
	return p.swept
}

// NewPowerLoss mounts a fresh ext4 image at the sandbox's home directory,
// before anything is created there. It first clears what earlier runs left
// behind when their process was killed outright (see sweepStale).
func NewPowerLoss(ctx context.Context, sb sandbox.Dir, children *dispatcher.Children, grace time.Duration) (*PowerLoss, error) {
	swept := sweepStale(ctx)
	p := &PowerLoss{work: filepath.Join(sb.Root, "powerloss"), children: children, grace: grace, swept: swept}
	if err := os.MkdirAll(p.work, 0o755); err != nil {
		return nil, fmt.Errorf("powerloss: %w", err)
	}
	// Written before anything is mounted: a later run's sweep tells by it
	// whether this run's process is still alive.
	if err := os.WriteFile(filepath.Join(p.work, ownerFile), []byte(processID(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("powerloss: %w", err)
	}
	live, err := mountFresh(ctx, filepath.Join(p.work, "live.img"), sb.Home(), powerLossImageMB)
	if err != nil {
		os.RemoveAll(p.work) // nothing is mounted; the image must not stay behind
		return nil, err
	}
	p.live = live
	return p, nil
}

// Start makes the seeded board durable — the run starts from a synced disk,
// as in the measured setup — and starts the writeback helper. syncfs goes
// through the mount point's directory, not a board file, so no lock is
// touched.
func (p *PowerLoss) Start(sb sandbox.Dir, seed uint64) error {
	dir, err := os.Open(sb.Home())
	if err != nil {
		return fmt.Errorf("powerloss: %w", err)
	}
	err = unix.Syncfs(int(dir.Fd()))
	dir.Close()
	if err != nil {
		return fmt.Errorf("powerloss: syncfs %s: %w", sb.Home(), err)
	}
	return p.startWriteback(sb, seed)
}

// startWriteback starts the helper that writes back random ranges of the
// board files (fakeworker.Writeback). It must be a separate process: it
// opens and closes those files by path, and in this process, which holds the
// dispatchers' connections, any close of a board fd drops their POSIX locks
// (M1). It runs as the worker binary in a hidden mode because that binary is
// the one thing every host of a run provides — the CLI, the engine binaries
// and the test binaries all act as "hermes" — whereas xfs_io or python3 may
// be missing, and coreutils has no sync_file_range. Its own process group
// and Pdeathsig make sure it dies with the run.
func (p *PowerLoss) startWriteback(sb sandbox.Dir, seed uint64) error {
	logf, err := os.OpenFile(filepath.Join(sb.Root, "writeback.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("powerloss: writeback log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	db := sb.DB()
	cmd := exec.Command(sb.HermesBin(), fakeworker.WritebackFlag, strconv.Itoa(int(writebackInterval.Milliseconds())),
		strconv.FormatUint(seed, 10), db, db+"-wal", db+"-journal")
	cmd.Env = sb.Env()
	cmd.Dir = sb.Root
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("powerloss: closed")
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("powerloss: start writeback helper: %w", err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	p.writeback, p.wbDone = cmd, done
	return nil
}

// stopWriteback SIGKILLs the helper's process group and reaps it. Callers
// hold p.mu.
func (p *PowerLoss) stopWriteback() {
	if p.writeback == nil {
		return
	}
	syscall.Kill(-p.writeback.Process.Pid, syscall.SIGKILL)
	select {
	case <-p.wbDone:
	case <-time.After(p.grace):
	}
	p.writeback, p.wbDone = nil, nil
}

// SetStop hands over the function that ends the dispatch phase.
func (p *PowerLoss) SetStop(stop context.CancelFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopRun = stop
}

// Halt is the fault at its time: writeback stops, every worker is
// SIGKILLed and the dispatchers are told to stop; the image is copied once
// they have (see cut). KillAll also refuses any later start, which is what a
// machine without power does.
func (p *PowerLoss) Halt() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.haltMono != 0 {
		return "the power is already off"
	}
	p.stopWriteback()
	left := p.children.KillAll(p.grace)
	p.haltMono = ledger.MonoNow()
	if p.stopRun != nil {
		p.stopRun()
	}
	msg := "power cut: writeback stopped, every worker SIGKILLed, dispatchers stopping"
	if len(left) > 0 {
		msg += fmt.Sprintf(" (pids %v did not die)", left)
	}
	return msg
}

// cut copies the disk as the power cut left it, mounts the copy, keeps its
// board files in <sandbox>/crash-image, and returns the board's path in the
// copy and when the copy began. Called once the dispatchers have stopped. halted
// is false when the fault never fired (the run was interrupted first).
func (p *PowerLoss) cut(ctx context.Context, sb sandbox.Dir) (db string, cutMono int64, halted bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopWriteback()
	if p.haltMono == 0 {
		return "", 0, false, nil
	}
	// The evidence must be taken even if the run was interrupted.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	image := filepath.Join(p.work, "crash.img")
	cutMono = ledger.MonoNow()
	if err := p.live.Cut(ctx, image); err != nil {
		return "", 0, true, err
	}
	crash, err := mountImage(ctx, image, filepath.Join(p.work, "crash"), "")
	if err != nil {
		return "", 0, true, err
	}
	p.crash = crash
	rel, err := filepath.Rel(sb.Home(), sb.DB())
	if err != nil {
		return "", 0, true, fmt.Errorf("powerloss: %w", err)
	}
	db = filepath.Join(crash.dir, rel)
	if err := saveBoardFiles(db, filepath.Join(sb.Root, "crash-image")); err != nil {
		return "", 0, true, err
	}
	return db, cutMono, true, nil
}

// CrashBoard is the board the oracle checks after a power-loss run.
type CrashBoard struct {
	Path    string // the board in the mounted copy, or the live board if the power was never cut
	CutMono int64  // when the image copy began (0: no cut)
	Note    string // what the cut did, for the fault's record
	Unknown string // why the run cannot be decided as a power-loss run
}

// Board does the cut once the dispatchers have stopped and recovers the
// board in the copy.
func (p *PowerLoss) Board(ctx context.Context, sb sandbox.Dir) (CrashBoard, error) {
	db, cutMono, halted, err := p.cut(ctx, sb)
	if err != nil {
		return CrashBoard{}, err
	}
	if !halted {
		return CrashBoard{Path: sb.DB(), Unknown: "the power cut never happened (the run ended first): the live board was checked instead"}, nil
	}
	p.mu.Lock()
	after := time.Duration(cutMono - p.haltMono)
	p.mu.Unlock()
	// The oracle checks a read-write copy of this board (Input.CheckCopy),
	// so SQLite rolls back a hot journal or replays the WAL as the first
	// process after the reboot would.
	return CrashBoard{Path: db, CutMono: cutMono,
		Note: fmt.Sprintf("disk image copied %v after the kill, once the dispatchers had stopped; the copy was mounted (ext4 replayed its journal)",
			after.Round(time.Millisecond))}, nil
}

// DurableCommits reports whether the connection settings make every
// acknowledged commit survive a power cut: synchronous=FULL ("" is SQLite's
// default, FULL), except with a DELETE journal ("" is SQLite's default,
// DELETE). There the commit point is the journal's unlink, which FULL does
// not sync (only EXTRA syncs the directory), so the last transaction may
// legitimately roll back after a power cut — measured here: DELETE/FULL lost
// its last acknowledged claim in 2 of 8 cuts, never with damage. WAL,
// TRUNCATE and PERSIST sync their commit point under FULL.
func DurableCommits(c kanban.Options) bool {
	full := c.Synchronous == "" || strings.EqualFold(c.Synchronous, "FULL")
	return full && c.JournalMode != "" && !strings.EqualFold(c.JournalMode, "DELETE")
}

// saveBoardFiles copies the board and whatever sidecars exist into dir, as
// the disk held them (before any recovery). These files are in the copied
// image, which no connection of this process has open, so reading them here
// drops no lock.
func saveBoardFiles(db, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("powerloss: %w", err)
	}
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		src, err := os.Open(db + suffix)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("powerloss: keep crash image: %w", err)
		}
		dst, err := os.Create(filepath.Join(dir, filepath.Base(db)+suffix))
		if err == nil {
			_, err = io.Copy(dst, src)
			if cerr := dst.Close(); err == nil {
				err = cerr
			}
		}
		src.Close()
		if err != nil {
			return fmt.Errorf("powerloss: keep crash image: %w", err)
		}
	}
	return nil
}

// KeepHome replaces the sandbox's home mount point with a copy of the live
// disk's files (worker logs, the board as the writers last saw it), so a
// kept sandbox looks like any other run's. By now no process of the run has
// a board file open, and cp is a separate process anyway.
func (p *PowerLoss) KeepHome(ctx context.Context, sb sandbox.Dir) error {
	saved := sb.Home() + ".live"
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if _, err := command(ctx, "cp", "-a", sb.Home()+"/.", saved+"/"); err != nil {
		return fmt.Errorf("powerloss: keep the live home: %w", err)
	}
	os.RemoveAll(filepath.Join(saved, "lost+found"))
	if err := p.Close(); err != nil {
		return err
	}
	if err := os.Remove(sb.Home()); err != nil {
		return fmt.Errorf("powerloss: %w", err)
	}
	if err := os.Rename(saved, sb.Home()); err != nil {
		return fmt.Errorf("powerloss: %w", err)
	}
	return nil
}

// Close stops the helper, kills every worker (they may hold files on the
// disk), unmounts and detaches both disks, and removes the images. Safe to
// call more than once; the deferred call in Run covers errors, deadlines and
// panics.
func (p *PowerLoss) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	p.stopWriteback()
	p.children.KillAll(p.grace)
	errs := []error{p.crash.Close(), p.live.Close()}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Only once nothing is mounted: the images must not follow a kept
	// sandbox into the artifacts.
	if err := os.RemoveAll(p.work); err != nil {
		return fmt.Errorf("powerloss: %w", err)
	}
	return nil
}

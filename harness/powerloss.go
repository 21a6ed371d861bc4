package harness

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

// hasPowerLoss reports whether s cuts the power at some point.
func hasPowerLoss(s schedule.Schedule) bool {
	return slices.ContainsFunc(s.Faults, func(f schedule.Fault) bool { return f.Kind == schedule.FaultPowerLoss })
}

// powerLossSkipped is the verdict of a power-loss run on a machine that
// cannot host one: undecided, never a pass.
func powerLossSkipped(why string) oracle.Verdict {
	v := oracle.Verdict{Spawns: map[string]int{}}
	v.AddUnknown("skipped: needs root and loop devices (" + why + ")")
	return v
}

// powerLossSupported probes, without side effects, for what the fault
// needs: root with CAP_SYS_ADMIN (mount, losetup), a loop-control device
// with a free loop device, and the tools.
func powerLossSupported() (ok bool, why string) {
	if os.Geteuid() != 0 {
		return false, fmt.Sprintf("running as uid %d, not root", os.Geteuid())
	}
	if !hasCapSysAdmin() {
		return false, "no CAP_SYS_ADMIN (an unprivileged container?)"
	}
	for _, t := range []string{"mkfs.ext4", "losetup", "mount", "umount", "cp"} {
		if _, err := findTool(t); err != nil {
			return false, err.Error()
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return false, "no /dev/loop-control: " + err.Error()
	}
	losetup, _ := findTool("losetup")
	if out, err := exec.Command(losetup, "--find").CombinedOutput(); err != nil {
		return false, fmt.Sprintf("losetup --find: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return true, ""
}

// hasCapSysAdmin reads the effective capability set of this process.
func hasCapSysAdmin() bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return err == nil && caps&(1<<unix.CAP_SYS_ADMIN) != 0
		}
	}
	return false
}

// findTool finds a system tool on PATH or, since root's tools live there and
// PATH under `go test` or sudo may lack them, in /usr/sbin and /sbin.
func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (PATH, /usr/sbin, /sbin)", name)
}

// command runs a system tool in its own process group, killed with the
// group when ctx ends and with this process (Pdeathsig), and returns its
// stdout; the error carries stderr.
func command(ctx context.Context, name string, args ...string) (string, error) {
	path, err := findTool(name)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// loopDisk is an ext4 file system in an image file, attached to a loop
// device and mounted at dir.
type loopDisk struct {
	image, dir string
}

// mountFresh creates a new sizeMB ext4 image (sparse) and mounts it at dir
// with commit=1: the journal commits every second, as in the measured setup.
func mountFresh(ctx context.Context, image, dir string, sizeMB int) (*loopDisk, error) {
	f, err := os.OpenFile(image, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("powerloss: create image: %w", err)
	}
	err = f.Truncate(int64(sizeMB) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("powerloss: size image: %w", err)
	}
	if _, err := command(ctx, "mkfs.ext4", "-q", "-F", image); err != nil {
		return nil, fmt.Errorf("powerloss: %w", err)
	}
	// noinit_itable: no background zeroing of inode tables writing to the
	// image while it is copied.
	return mountImage(ctx, image, dir, "commit=1,noinit_itable")
}

// mountImage attaches image to a free loop device and mounts it at dir
// (read-write, so ext4 replays its journal). On failure nothing stays
// attached or mounted.
func mountImage(ctx context.Context, image, dir, opts string) (d *loopDisk, err error) {
	d = &loopDisk{image: image, dir: dir}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return d, fmt.Errorf("powerloss: mountpoint: %w", err)
	}
	out, err := command(ctx, "losetup", "--find", "--show", image)
	if err != nil {
		return d, fmt.Errorf("powerloss: attach %s: %w", filepath.Base(image), err)
	}
	dev := strings.TrimSpace(out)
	args := []string{"-t", "ext4"}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	if _, err := command(ctx, "mount", append(args, dev, dir)...); err != nil {
		return d, fmt.Errorf("powerloss: mount %s: %w", filepath.Base(image), err)
	}
	return d, nil
}

// Cut copies the backing image to dest as a power cut leaves the disk: no
// sync of the mounted file system first, so dirty pages that never reached
// the loop device are not in the copy. cp is a separate process and reads
// the image, which is no SQLite file, so it cannot touch any lock.
func (d *loopDisk) Cut(ctx context.Context, dest string) error {
	if _, err := command(ctx, "cp", "--sparse=always", d.image, dest); err != nil {
		return fmt.Errorf("powerloss: copy image: %w", err)
	}
	return nil
}

// Close unmounts the file system and detaches every loop device backed by
// the image. It is safe to call more than once and on a disk that was only
// partly set up; it runs on a context of its own, since it must also run
// after the run's deadline. A mount that stays busy is detached lazily, so
// no mount point is left behind.
func (d *loopDisk) Close() error {
	if d == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	var errs []error
	if isMounted(d.dir) {
		var err error
		for try := 0; try < 40; try++ {
			if _, err = command(ctx, "umount", d.dir); err == nil || !isMounted(d.dir) {
				err = nil
				break
			}
			time.Sleep(50 * time.Millisecond) // a just-killed process may still hold a file
		}
		if err != nil {
			if _, lerr := command(ctx, "umount", "--lazy", d.dir); lerr != nil {
				errs = append(errs, fmt.Errorf("powerloss: unmount %s: %w (lazy: %v)", d.dir, err, lerr))
			}
		}
	}
	devs, err := loopDevices(ctx, d.image)
	if err != nil {
		errs = append(errs, err)
	}
	for _, dev := range devs {
		// A device still in use (lazy unmount) is marked to detach itself
		// once its last user is gone.
		if _, err := command(ctx, "losetup", "--detach", dev); err != nil {
			errs = append(errs, fmt.Errorf("powerloss: detach: %w", err))
		}
	}
	return errors.Join(errs...)
}

// loopDevices lists the loop devices backed by image.
func loopDevices(ctx context.Context, image string) ([]string, error) {
	out, err := command(ctx, "losetup", "--associated", image)
	if err != nil {
		return nil, fmt.Errorf("powerloss: list loop devices of %s: %w", filepath.Base(image), err)
	}
	var devs []string
	for _, line := range strings.Split(out, "\n") {
		if dev, _, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(dev, "/dev/") {
			devs = append(devs, dev)
		}
	}
	return devs, nil
}

// isMounted reports whether dir is a mount point (per /proc/mounts).
func isMounted(dir string) bool {
	return slices.Contains(mountPoints(), dir)
}

// mountPoints lists the mount points in /proc/mounts, unescaped.
func mountPoints() []string {
	data, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			out = append(out, unescapeMount(f[1]))
		}
	}
	return out
}

// unescapeMount undoes /proc/mounts' octal escapes (\040 for a space …).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// powerLoss is the fault's state for one run: the live disk under the
// board's home, the writeback helper, and after the cut the mounted copy.
type powerLoss struct {
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
func (p *powerLoss) Swept() []string {
	if p == nil {
		return nil
	}
	return p.swept
}

// newPowerLoss mounts a fresh ext4 image at the sandbox's home directory,
// before anything is created there. It first clears what earlier runs left
// behind when their process was killed outright (see sweepStale).
func newPowerLoss(ctx context.Context, sb sandbox, children *dispatcher.Children, grace time.Duration) (*powerLoss, error) {
	swept := sweepStale(ctx)
	p := &powerLoss{work: filepath.Join(sb.root, "powerloss"), children: children, grace: grace, swept: swept}
	if err := os.MkdirAll(p.work, 0o755); err != nil {
		return nil, fmt.Errorf("powerloss: %w", err)
	}
	// Written before anything is mounted: a later run's sweep tells by it
	// whether this run's process is still alive.
	if err := os.WriteFile(filepath.Join(p.work, ownerFile), []byte(processID(os.Getpid())), 0o644); err != nil {
		return nil, fmt.Errorf("powerloss: %w", err)
	}
	live, err := mountFresh(ctx, filepath.Join(p.work, "live.img"), sb.home(), powerLossImageMB)
	if err != nil {
		os.RemoveAll(p.work) // nothing is mounted; the image must not stay behind
		return nil, err
	}
	p.live = live
	return p, nil
}

// start makes the seeded board durable — the run starts from a synced disk,
// as in the measured setup — and starts the writeback helper. syncfs goes
// through the mount point's directory, not a board file, so no lock is
// touched.
func (p *powerLoss) start(sb sandbox, seed uint64) error {
	if p == nil {
		return nil
	}
	dir, err := os.Open(sb.home())
	if err != nil {
		return fmt.Errorf("powerloss: %w", err)
	}
	err = unix.Syncfs(int(dir.Fd()))
	dir.Close()
	if err != nil {
		return fmt.Errorf("powerloss: syncfs %s: %w", sb.home(), err)
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
func (p *powerLoss) startWriteback(sb sandbox, seed uint64) error {
	logf, err := os.OpenFile(filepath.Join(sb.root, "writeback.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("powerloss: writeback log: %w", err)
	}
	defer logf.Close() // the child has its own copy
	db := sb.db()
	cmd := exec.Command(sb.hermesBin(), fakeworker.WritebackFlag, strconv.Itoa(int(writebackInterval.Milliseconds())),
		strconv.FormatUint(seed, 10), db, db+"-wal", db+"-journal")
	cmd.Env = workerEnv(sb)
	cmd.Dir = sb.root
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
func (p *powerLoss) stopWriteback() {
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

// setStop hands over the function that ends the dispatch phase.
func (p *powerLoss) setStop(stop context.CancelFunc) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopRun = stop
}

// halt is the fault at its time: writeback stops, every worker is
// SIGKILLed and the dispatchers are told to stop; the image is copied once
// they have (see cut). KillAll also refuses any later start, which is what a
// machine without power does.
func (p *powerLoss) halt() string {
	if p == nil {
		return "no loop-mounted disk under the board: power loss not injected"
	}
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
func (p *powerLoss) cut(ctx context.Context, sb sandbox) (db string, cutMono int64, halted bool, err error) {
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
	rel, err := filepath.Rel(sb.home(), sb.db())
	if err != nil {
		return "", 0, true, fmt.Errorf("powerloss: %w", err)
	}
	db = filepath.Join(crash.dir, rel)
	if err := saveBoardFiles(db, filepath.Join(sb.root, "crash-image")); err != nil {
		return "", 0, true, err
	}
	return db, cutMono, true, nil
}

// crashBoard is the board the oracle checks after a power-loss run.
type crashBoard struct {
	path    string // the board in the mounted copy, or the live board if the power was never cut
	cutMono int64  // when the image copy began (0: no cut)
	note    string // what the cut did, for the fault's record
	unknown string // why the run cannot be decided as a power-loss run
}

// board does the cut once the dispatchers have stopped and recovers the
// board in the copy. Without a power-loss fault it is the live board.
func (p *powerLoss) board(ctx context.Context, sb sandbox) (crashBoard, error) {
	if p == nil {
		return crashBoard{path: sb.db()}, nil
	}
	db, cutMono, halted, err := p.cut(ctx, sb)
	if err != nil {
		return crashBoard{}, err
	}
	if !halted {
		return crashBoard{path: sb.db(), unknown: "the power cut never happened (the run ended first): the live board was checked instead"}, nil
	}
	p.mu.Lock()
	after := time.Duration(cutMono - p.haltMono)
	p.mu.Unlock()
	// The oracle checks a read-write copy of this board (Input.CheckCopy),
	// so SQLite rolls back a hot journal or replays the WAL as the first
	// process after the reboot would.
	return crashBoard{path: db, cutMono: cutMono,
		note: fmt.Sprintf("disk image copied %v after the kill, once the dispatchers had stopped; the copy was mounted (ext4 replayed its journal)",
			after.Round(time.Millisecond))}, nil
}

// durableCommits reports whether the connection settings make every
// acknowledged commit survive a power cut: synchronous=FULL ("" is SQLite's
// default, FULL), except with a DELETE journal ("" is SQLite's default,
// DELETE). There the commit point is the journal's unlink, which FULL does
// not sync (only EXTRA syncs the directory), so the last transaction may
// legitimately roll back after a power cut — measured here: DELETE/FULL lost
// its last acknowledged claim in 2 of 8 cuts, never with damage. WAL,
// TRUNCATE and PERSIST sync their commit point under FULL.
func durableCommits(c kanban.Options) bool {
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

// keepHome replaces the sandbox's home mount point with a copy of the live
// disk's files (worker logs, the board as the writers last saw it), so a
// kept sandbox looks like any other run's. By now no process of the run has
// a board file open, and cp is a separate process anyway.
func (p *powerLoss) keepHome(ctx context.Context, sb sandbox) error {
	if p == nil {
		return nil
	}
	saved := sb.home() + ".live"
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if _, err := command(ctx, "cp", "-a", sb.home()+"/.", saved+"/"); err != nil {
		return fmt.Errorf("powerloss: keep the live home: %w", err)
	}
	os.RemoveAll(filepath.Join(saved, "lost+found"))
	if err := p.Close(); err != nil {
		return err
	}
	if err := os.Remove(sb.home()); err != nil {
		return fmt.Errorf("powerloss: %w", err)
	}
	if err := os.Rename(saved, sb.home()); err != nil {
		return fmt.Errorf("powerloss: %w", err)
	}
	return nil
}

// Close stops the helper, kills every worker (they may hold files on the
// disk), unmounts and detaches both disks, and removes the images. Safe to
// call more than once; the deferred call in Run covers errors, deadlines and
// panics.
func (p *powerLoss) Close() error {
	if p == nil {
		return nil
	}
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

// ownerFile in <sandbox>/powerloss names the process that mounted there.
const ownerFile = "owner"

// processID is "pid starttime": unlike a bare pid, it is never reused.
func processID(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The fields after the parenthesised command name (which may hold
	// spaces); starttime is field 22 of the line, the 20th after it.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return strconv.Itoa(pid) + " " + f[19]
}

// sweepStale unmounts and detaches what power-loss runs left behind when
// their process was SIGKILLed (no deferred cleanup ran), in whatever temp
// directory they lay (a test binary's own TMPDIR, another user setting): a
// leaked mount or loop device would otherwise pile up and poison later
// runs. A sandbox counts as abandoned only if its owner file names a
// process that is gone; without an owner file it is left alone (a run just
// starting), unless its image was deleted, which no live run does before
// detaching. Best effort: what fails here is retried by the next run. It
// returns what it did, for the run to report.
func sweepStale(ctx context.Context) (swept []string) {
	abandoned := func(root string) bool {
		data, err := os.ReadFile(filepath.Join(root, "powerloss", ownerFile))
		if err != nil {
			return false
		}
		id := strings.TrimSpace(string(data))
		pid, _, _ := strings.Cut(id, " ")
		n, err := strconv.Atoi(pid)
		return err == nil && processID(n) != id
	}
	// A sandbox is a kanbanchaos-… directory; whose it is, its owner file
	// says.
	sandbox := func(root string) bool { return strings.HasPrefix(filepath.Base(root), "kanbanchaos-") }
	for _, mp := range mountPoints() {
		root := ""
		switch {
		case strings.HasSuffix(mp, "/home"):
			root = strings.TrimSuffix(mp, "/home")
		case strings.HasSuffix(mp, "/powerloss/crash"):
			root = strings.TrimSuffix(mp, "/powerloss/crash")
		}
		if root != "" && sandbox(root) && abandoned(root) {
			if _, err := command(ctx, "umount", "--lazy", mp); err == nil {
				swept = append(swept, "unmounted "+mp)
			} else {
				swept = append(swept, fmt.Sprintf("could not unmount %s: %v", mp, err))
			}
		}
	}
	out, err := command(ctx, "losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE")
	if err != nil {
		return swept
	}
	for _, line := range strings.Split(out, "\n") {
		dev, back, ok := strings.Cut(strings.TrimSpace(line), " ")
		back = strings.TrimSpace(back)
		if !ok {
			continue
		}
		deleted := strings.HasSuffix(back, " (deleted)")
		image := strings.TrimSuffix(back, " (deleted)")
		root := filepath.Dir(filepath.Dir(image))
		if filepath.Base(filepath.Dir(image)) != "powerloss" || !sandbox(root) {
			continue
		}
		if deleted || abandoned(root) {
			if _, err := command(ctx, "losetup", "--detach", dev); err == nil {
				swept = append(swept, "detached "+dev+" ("+back+")")
			} else {
				swept = append(swept, fmt.Sprintf("could not detach %s (%s): %v", dev, back, err))
			}
		}
	}
	return swept
}

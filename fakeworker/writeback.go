package fakeworker

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/kanbanchaos/kanbanchaos/ledger"
)

// WritebackFlag as the first argument makes the worker binary the power-loss
// fault's writeback helper instead of a worker (see Writeback). No Hermes
// command line starts with it, so it cannot be mistaken for a worker's.
const WritebackFlag = "--kanbanchaos-writeback"

// Writeback imitates the kernel's unordered background writeback for the
// power-loss fault: every interval (jittered ±50 %) it pushes one random
// byte range of each of the given files from the page cache to the disk with
// sync_file_range(WRITE|WAIT_AFTER). Without it, a crash image is simply the
// last synced state; with it, some unsynced pages reach the disk and others
// do not, in no particular order — the crash states a real power cut
// leaves (spec sqlite-faults.md §2.5).
//
// args: INTERVAL_MS SEED FILE… . It runs until it is killed, or until its
// parent is gone. It is its own process on purpose: it opens and closes the
// board files by path on every round, which in the harness process (that
// holds the dispatchers' connections) would drop their POSIX locks (M1). It
// takes no locks and never writes, so a worker process is the safe place.
// Files that do not exist at a round (a -journal between transactions, a
// -wal after a checkpoint deleted it) are skipped; they are opened anew every
// round so a re-created file is followed.
func Writeback(args []string, stderr io.Writer) int {
	if len(args) < 3 {
		fmt.Fprintf(stderr, "kanbanchaos writeback: usage: %s INTERVAL_MS SEED FILE…\n", WritebackFlag)
		return exitUsage
	}
	ms, err := strconv.Atoi(args[0])
	if err != nil || ms <= 0 {
		fmt.Fprintf(stderr, "kanbanchaos writeback: interval %q is not a positive number of ms\n", args[0])
		return exitUsage
	}
	seed, err := strconv.ParseUint(args[1], 10, 64)
	if err != nil {
		fmt.Fprintf(stderr, "kanbanchaos writeback: seed %q is not a number\n", args[1])
		return exitUsage
	}
	files := args[2:]
	rng := rand.New(rand.NewPCG(seed, uint64(os.Getpid())))
	parent := os.Getppid()
	start := ledger.MonoNow()
	interval := time.Duration(ms) * time.Millisecond
	for {
		time.Sleep(interval/2 + time.Duration(rng.Int64N(int64(interval))))
		// Pdeathsig normally ends us with the harness; this is the backstop
		// (a reparented helper would otherwise write back forever).
		if os.Getppid() != parent {
			return 0
		}
		for _, f := range files {
			off, n, err := syncRandomRange(rng, f)
			at := float64(ledger.MonoNow()-start) / 1e6
			switch {
			case errors.Is(err, os.ErrNotExist):
			case err != nil:
				fmt.Fprintf(stderr, "+%.0fms %s: %v\n", at, filepath.Base(f), err)
			case n > 0:
				fmt.Fprintf(stderr, "+%.0fms %s: wrote back [%d, %d)\n", at, filepath.Base(f), off, off+n)
			}
		}
	}
}

// syncRandomRange writes back one random range of path: a random start in
// the file and a random length up to its end.
func syncRandomRange(rng *rand.Rand, path string) (off, n int64, err error) {
	// O_RDONLY is enough for sync_file_range, and a read-only fd can never
	// change the file.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return 0, 0, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, 0, fmt.Errorf("fstat: %w", err)
	}
	if st.Size == 0 {
		return 0, 0, nil
	}
	off = rng.Int64N(st.Size)
	n = 1 + rng.Int64N(st.Size-off)
	if err := unix.SyncFileRange(fd, off, n, unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER); err != nil {
		return off, 0, fmt.Errorf("sync_file_range: %w", err)
	}
	return off, n, nil
}

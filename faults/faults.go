// Package faults breaks things on a run's schedule: the injectors that
// unlink, truncate, swap or naively copy the board's files (faults.go), and
// the power-loss fault — a loop-mounted ext4 disk under the board's home,
// its background writeback, the cut and the board the cut left
// (powerloss.go, disk.go, sweep.go). It acts by path or through separate
// processes, never through a file descriptor of the hosting process, which
// holds the in-process dispatchers' connections (closing a board fd would
// drop their locks, M1). It decides nothing: what it did is recorded as an
// Injection for the oracle and the report. It must not import the harness
// or a subject.
package faults

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/sandbox"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Injection is one fault as it was carried out.
type Injection struct {
	schedule.Fault
	Mono   int64  `json:"mono_ns"` // when it happened (CLOCK_MONOTONIC, as the ledger)
	Result string `json:"result"`  // what it did, or why it did nothing
}

// Inject carries out the schedule's faults at their times after start,
// until ctx ends, and hands each to record. disk is the run's disk (the
// power-loss fault cuts its power). Every fault acts by path (unlink, truncate, rename) or through a
// separate process (cp), never through a file descriptor of this process:
// this process holds the dispatchers' connections, and closing any fd of the
// board would drop their locks (M1) and corrupt the run's own evidence.
func Inject(ctx context.Context, sb sandbox.Dir, disk Disk, faults []schedule.Fault, start time.Time, record func(Injection)) {
	faults = slices.Clone(faults)
	slices.SortStableFunc(faults, func(a, b schedule.Fault) int { return a.AtMs - b.AtMs })
	for _, f := range faults {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(start.Add(time.Duration(f.AtMs) * time.Millisecond))):
		}
		result := inject(ctx, sb, disk, f.Kind)
		record(Injection{Fault: f, Mono: ledger.MonoNow(), Result: result})
	}
}

func inject(ctx context.Context, sb sandbox.Dir, disk Disk, kind string) string {
	db := sb.DB()
	switch kind {
	case schedule.FaultDeleteWAL:
		return unlink(db + "-wal")
	case schedule.FaultDeleteSHM:
		return unlink(db + "-shm")
	case schedule.FaultDeleteSidecars:
		return unlink(db+"-wal") + "; " + unlink(db+"-shm")
	case schedule.FaultTruncateWAL:
		if err := syscall.Truncate(db+"-wal", 0); err != nil {
			return "truncate -wal: " + err.Error()
		}
		return "truncated -wal to 0 bytes"
	case schedule.FaultDeleteJournal:
		return unlink(db + "-journal")
	case schedule.FaultNaiveCopy:
		dir := filepath.Join(sb.Root, "naive-backup")
		os.MkdirAll(dir, 0o755)
		out := ""
		for _, suffix := range []string{"", "-wal"} {
			// cp runs in its own process: its open/close cannot touch our locks.
			cmd := exec.CommandContext(ctx, "cp", db+suffix, filepath.Join(dir, "kanban.db"+suffix))
			if b, err := cmd.CombinedOutput(); err != nil {
				out += fmt.Sprintf("cp kanban.db%s: %v %s; ", suffix, err, b)
				continue
			}
			out += "copied kanban.db" + suffix + "; "
		}
		return out
	case schedule.FaultSwap:
		aside := ""
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(db+suffix, db+".swapped"+suffix); err == nil {
				aside += "kanban.db" + suffix + " "
			}
		}
		if err := os.WriteFile(db, nil, 0o644); err != nil {
			return "renamed " + aside + "aside; create empty file: " + err.Error()
		}
		return "renamed " + aside + "aside (.swapped) and created an empty kanban.db"
	case schedule.FaultPowerLoss:
		return disk.Halt() // the image is copied once the dispatchers have stopped (powerloss.go)
	}
	return "unknown fault " + kind
}

func unlink(path string) string {
	err := syscall.Unlink(path)
	switch {
	case err == nil:
		return "unlinked " + filepath.Base(path)
	case errors.Is(err, syscall.ENOENT):
		return filepath.Base(path) + " was not there"
	}
	return "unlink " + filepath.Base(path) + ": " + err.Error()
}

// SwapMono is when the first swap fault happened (0: none).
func SwapMono(injections []Injection) int64 {
	for _, in := range injections {
		if in.Kind == schedule.FaultSwap {
			return in.Mono
		}
	}
	return 0
}

package faults

import (
	"context"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/sandbox"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Disk is the disk under a run's board home, with its lifecycle: Start
// once the board is seeded, SetStop before the run's clock starts, Halt
// when the schedule cuts the power, Board once the subject has stopped
// (the board the oracle checks), KeepHome before the sandbox is kept or
// removed, Close whatever happens. A power-loss run's is a *PowerLoss;
// every other run's is PlainDisk, where all of it does nothing.
type Disk interface {
	Start(sb sandbox.Dir, seed uint64) error
	SetStop(stop context.CancelFunc)
	Halt() string
	Board(ctx context.Context, sb sandbox.Dir) (CrashBoard, error)
	KeepHome(ctx context.Context, sb sandbox.Dir) error
	// Swept says what the set-up cleared of runs killed before this one.
	Swept() []string
	Close() error
}

// NewDisk is the disk s needs under sb's home: for a schedule that cuts
// the power, a fresh loop-mounted one (NewPowerLoss), else PlainDisk.
func NewDisk(ctx context.Context, sb sandbox.Dir, s schedule.Schedule, children *dispatcher.Children, grace time.Duration) (Disk, error) {
	if !HasPowerLoss(s) {
		return PlainDisk{}, nil
	}
	p, err := NewPowerLoss(ctx, sb, children, grace)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// PlainDisk is the sandbox's own directory: no power to cut, the live
// board to check.
type PlainDisk struct{}

func (PlainDisk) Start(sandbox.Dir, uint64) error { return nil }
func (PlainDisk) SetStop(context.CancelFunc)      {}

// Halt: a power-loss fault without the disk for it does nothing, and says
// so.
func (PlainDisk) Halt() string {
	return "no loop-mounted disk under the board: power loss not injected"
}

func (PlainDisk) Board(_ context.Context, sb sandbox.Dir) (CrashBoard, error) {
	return CrashBoard{Path: sb.DB()}, nil
}
func (PlainDisk) KeepHome(context.Context, sandbox.Dir) error { return nil }
func (PlainDisk) Swept() []string                             { return nil }
func (PlainDisk) Close() error                                { return nil }

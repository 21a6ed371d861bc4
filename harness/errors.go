package harness

import (
	"context"
	"errors"

	"github.com/kanbanchaos/kanbanchaos/oracle"
)

// ErrEnvironment marks a run that could not happen for a reason of the
// machine, not of the input or of kanbanchaos: a build of another SQLite
// engine that failed, a subject that could not be started, a disk that
// would not take the sandbox. The CLI reports it as undecided (exit 3).
var ErrEnvironment = errors.New("environment")

// ErrArtifacts marks a run whose verdict was reached but whose sandbox
// could not be written or kept (verdict.json, the artifacts copy): the
// verdict stands and is in the Result; the evidence on disk is not.
var ErrArtifacts = errors.New("the run's artifacts could not be kept")

// undecidedIfInterrupted turns a campaign run that ended in an error because
// the campaign was interrupted (Ctrl-C, SIGTERM, SIGHUP during its setup)
// into an undecided run: an interruption is no harness error.
func undecidedIfInterrupted(ctx context.Context, rec *RunRecord) {
	if rec.Status != statusError || ctx.Err() == nil {
		return
	}
	rec.Status = oracle.Unknown
	rec.Unknowns = append(rec.Unknowns, "run interrupted ("+ctx.Err().Error()+"): "+rec.Error)
	rec.Error = ""
}

package harness

import (
	"errors"

	"github.com/kanbanchaos/kanbanchaos/sandbox"
)

// ErrEnvironment marks a run that could not happen for a reason of the
// machine, not of the input or of kanbanchaos (sandbox.ErrEnvironment: a
// build of another SQLite engine that failed, a subject that could not be
// started, a disk that would not take the sandbox). The CLI reports it as
// undecided (exit 3).
var ErrEnvironment = sandbox.ErrEnvironment

// ErrArtifacts marks a run whose verdict was reached but whose sandbox
// could not be written or kept (verdict.json, the artifacts copy): the
// verdict stands and is in the Result; the evidence on disk is not.
var ErrArtifacts = errors.New("the run's artifacts could not be kept")

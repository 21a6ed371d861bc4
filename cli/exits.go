package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"

	"github.com/kanbanchaos/kanbanchaos/harness"
)

// The exit classes are a contract: 2 the user's input is wrong (checked
// before any run starts), 3 undecided (interrupted, the environment, a
// subject that did not run), 4 a bug in kanbanchaos only. errorExit sorts an
// error that ended a command into them and says which it was.
func errorExit(ctx context.Context, cmd string, err error, stderr io.Writer) int {
	var execErr *exec.Error
	var engine *harness.EngineUnavailableError
	switch {
	case errors.As(err, &engine):
		// The environment lacks an SQLite engine: the message says the
		// command that installs it.
		fmt.Fprintf(stderr, "kanbanchaos %s: %v\n", cmd, engine)
		return exitUsage
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "kanbanchaos %s: interrupted (%v): undecided — %v\n", cmd, context.Cause(ctx), err)
		return exitUnknown
	case errors.Is(err, errInput):
		fmt.Fprintf(stderr, "kanbanchaos %s: %v\n", cmd, err)
		return exitUsage
	case errors.Is(err, harness.ErrEnvironment), errors.As(err, &execErr):
		fmt.Fprintf(stderr, "kanbanchaos %s: undecided: %v\n", cmd, err)
		return exitUnknown
	}
	fmt.Fprintf(stderr, "kanbanchaos %s: internal error: %v\n", cmd, err)
	return exitInternal
}

// outputFailed is the exit code after a finished command's verdict was
// printed but one of its output files could not be written: the verdict
// stands when it is a failure (1); otherwise the run is undecided for
// whoever needed that file (3), never an internal error.
func outputFailed(cmd, what string, err error, verdictCode int, stderr io.Writer) int {
	fmt.Fprintf(stderr, "kanbanchaos %s: the verdict above stands, but %s could not be written: %v\n", cmd, what, err)
	if verdictCode == exitFail {
		return exitFail
	}
	return exitUnknown
}

// usageError is cmd's report of bad usage: the message on stderr, naming
// the command, and the exit code for it.
func usageError(stderr io.Writer, cmd string) func(format string, args ...any) int {
	return func(format string, args ...any) int {
		fmt.Fprintf(stderr, "kanbanchaos "+cmd+": "+format+"\n", args...)
		return exitUsage
	}
}

package hermes

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Worker kinds: what HERMES_BIN starts in a run.
const (
	// WorkersGo is our Go fake worker (package fakeworker): the default.
	WorkersGo = "go"
	// WorkersHermes is worker.py under the release's own interpreter: it
	// plays the behaviour through the release's kanban tools and connect().
	WorkersHermes = "hermes"
)

// WorkerKinds lists the valid --workers values.
var WorkerKinds = []string{WorkersGo, WorkersHermes}

//go:embed worker.py
var workerSource []byte

const workerScript = "kanbanchaos_worker.py"

// WriteWorker writes the Hermes worker program and the recording module it
// shares with the driver into dir, and at bin an executable that runs it
// under the release's interpreter (what HERMES_BIN names). The workers
// inherit the driver's environment, so they import the same release with
// the same libsqlite3.
func WriteWorker(dir, bin string, in Install) error {
	if err := writeAtomic(filepath.Join(dir, workerScript), workerSource); err != nil {
		return fmt.Errorf("hermes: worker: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, recordModule), recordSource); err != nil {
		return fmt.Errorf("hermes: worker: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return fmt.Errorf("hermes: worker: %w", err)
	}
	// It replaces whatever is at bin (the Go worker's symlink). exec: the
	// worker keeps the pid the release's dispatcher spawned.
	if err := os.Remove(bin); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("hermes: worker: %w", err)
	}
	wrapper := fmt.Sprintf("#!/bin/sh\n# kanbanchaos: a Hermes worker through the release's own kanban tools\nexec %s -u %s \"$@\"\n",
		shellQuote(in.Python), shellQuote(filepath.Join(dir, workerScript)))
	if err := os.WriteFile(bin, []byte(wrapper), 0o755); err != nil {
		return fmt.Errorf("hermes: worker: %w", err)
	}
	return nil
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// WorkerModes are the worker modes a release's tools can play, and for
// each mode they cannot, why.
type WorkerModes struct {
	Modes  []string          `json:"modes"`
	Cannot map[string]string `json:"cannot"`
}

// ProbeWorkerModes asks the release (worker.py --modes, under its own
// interpreter with env) which worker modes it can express.
func ProbeWorkerModes(ctx context.Context, in Install, env []string) (WorkerModes, error) {
	dir, err := os.MkdirTemp("", "kanbanchaos-hermes-worker-")
	if err != nil {
		return WorkerModes{}, err
	}
	defer os.RemoveAll(dir)
	if err := WriteWorker(dir, filepath.Join(dir, "hermes"), in); err != nil {
		return WorkerModes{}, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "hermes"), "--modes")
	cmd.Env = in.Env(append(env, "HERMES_HOME="+dir, "HERMES_KANBAN_HOME="+dir))
	out, err := cmd.Output()
	var m WorkerModes
	if err == nil {
		err = json.Unmarshal(out, &m)
	}
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = tail(ee.Stderr)
		}
		return m, fmt.Errorf("hermes workers: %s cannot load the release's kanban tools (tools.kanban_tools): %v\n%s", in.Python, err, msg)
	}
	return m, nil
}

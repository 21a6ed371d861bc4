package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/buildinfo"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/sandbox"
)

// Discard removes the run's kept sandbox, if any.
func (res Result) Discard() {
	if res.Artifacts != "" {
		os.RemoveAll(res.Artifacts)
	}
}

// finish writes verdict.json (and repro.sh), then keeps or removes the
// sandbox. By now every connection and process is gone, so copying the
// board files cannot drop anyone's locks.
func finish(sb sandbox.Dir, res Result, opt Options, logf func(string, ...any)) (Result, error) {
	info := buildinfo.Read()
	res.Binary = &info
	keep := res.Verdict.Status != oracle.Pass || opt.Keep
	dest := ""
	if keep && opt.ArtifactsDir != "" {
		// Named before verdict.json is written, so that it says where the
		// run is kept.
		var err error
		if dest, err = NewStoreDir(opt.ArtifactsDir, fmt.Sprintf("%s-%d", res.Schedule.Scenario, res.Schedule.Seed)); err != nil {
			return res, err
		}
		res.Artifacts = dest
	}
	data, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return res, fmt.Errorf("harness: encode verdict: %w", err)
	}
	if err := os.WriteFile(filepath.Join(sb.Root, "verdict.json"), append(data, '\n'), 0o644); err != nil {
		return res, fmt.Errorf("harness: %w", err)
	}
	if !keep {
		res.Artifacts = ""
		return res, os.RemoveAll(sb.Root)
	}
	if opt.Replay != "" {
		if err := writeRepro(sb.Root, opt.Replay); err != nil {
			return res, err
		}
	}
	// HERMES_BIN's symlink points into the build cache when the harness
	// runs from go run or go test: keep the binary itself.
	if err := materializeBin(sb.Root); err != nil {
		return res, err
	}
	if dest == "" {
		return res, nil
	}
	// The sandbox was made private (MkdirTemp); the store is the user's.
	os.Chmod(sb.Root, 0o755)
	if err := os.Rename(sb.Root, dest); err != nil {
		// Another file system: copy, then remove.
		if err := os.CopyFS(dest, os.DirFS(sb.Root)); err != nil {
			return res, fmt.Errorf("harness: copy artifacts to %s: %w", dest, err)
		}
		os.RemoveAll(sb.Root)
	}
	subject := res.Schedule.Variant
	if res.Schedule.Subject.External() {
		subject = res.Schedule.Subject.String()
	}
	if err := RecordInStore(opt.ArtifactsDir, dest, StoreEntry{Kind: "run", Scenario: res.Schedule.Scenario, Seed: res.Schedule.Seed,
		Subject: subject, Status: string(res.Verdict.Status), Failed: res.Verdict.Failed(), Replay: opt.Replay}); err != nil {
		return res, err
	}
	logf("artifacts in %s", dest)
	return res, nil
}

// writeRepro writes dir/repro.sh, the script that replays the run. A
// replay through go run needs the checkout it was run from, so the script
// goes there first.
func writeRepro(dir, replay string) error {
	script := "#!/bin/sh\n# Replays this run: same scenario, variant, knobs and seed.\n"
	if strings.HasPrefix(replay, "go run ") {
		if wd, err := os.Getwd(); err == nil {
			script += "cd " + shellPath(wd) + " || exit 2\n"
		}
	}
	script += "exec " + replay + "\n"
	if err := os.WriteFile(filepath.Join(dir, "repro.sh"), []byte(script), 0o755); err != nil {
		return fmt.Errorf("harness: %w", err)
	}
	return nil
}

// UniqueDir returns parent/name, or parent/name-2, -3 … if taken; the
// directory does not exist yet (CopyFS creates it).
func UniqueDir(parent, name string) (string, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("harness: artifacts dir: %w", err)
	}
	for i := 1; ; i++ {
		dir := filepath.Join(parent, name)
		if i > 1 {
			dir += "-" + strconv.Itoa(i)
		}
		if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
			return dir, nil
		}
	}
}

package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kanbanchaos/kanbanchaos/campaign"
	"github.com/kanbanchaos/kanbanchaos/harness"
)

// EnvArtifacts moves the default artifact store (./kanbanchaos-artifacts).
const EnvArtifacts = "KANBANCHAOS_ARTIFACTS"

// defaultStore is the artifact store when --artifacts is not given:
// $KANBANCHAOS_ARTIFACTS, else ./kanbanchaos-artifacts.
func defaultStore() string {
	if dir := os.Getenv(EnvArtifacts); dir != "" {
		return dir
	}
	return harness.DefaultStore
}

const storeFlagDoc = "the artifact store: a failing or undecided run (or any with --keep) is kept in DIR/<time>-<scenario>-<seed>/,\n" +
	"DIR/latest links to it and DIR/" + harness.StoreIndex + " lists it (default $" + EnvArtifacts + ", else ./" + harness.DefaultStore + ");\n" +
	"--artifacts '' keeps it in the temp directory instead"

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// isDir reports whether path is a directory.
func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// saveRegression copies a shrunk failure's regression.txtar into dir as
// fuzz-<scenario>-<seed>.txtar (-2, -3 … if taken: never over another pin).
func saveRegression(sr campaign.ShrinkResult, dir string) (string, error) {
	data, err := os.ReadFile(filepath.Join(sr.Artifacts, "regression.txtar"))
	if err != nil {
		return "", fmt.Errorf("save regression: %w", err)
	}
	base := fmt.Sprintf("fuzz-%s-%d", sr.Scenario, sr.Seed)
	for i := 1; ; i++ {
		name := base
		if i > 1 {
			name += fmt.Sprintf("-%d", i)
		}
		path := filepath.Join(dir, name+".txtar")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("save regression: %w", err)
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return "", fmt.Errorf("save regression: %w", err)
		}
		return path, f.Close()
	}
}

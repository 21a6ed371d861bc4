package cli

import (
	"os"

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

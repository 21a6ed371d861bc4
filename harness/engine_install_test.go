package harness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInstalledEngineFromOtherCode: an engine command on PATH that links
// the right SQLite but was built from other code is never handed a run;
// the reason is kept for the error that says how to install the right one.
func TestInstalledEngineFromOtherCode(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\n" + `echo '{"schema_version":1,"kanbanchaos":{"module":"m","version":"(devel)","revision":"0123456789abcdef","go":"go1","sqlite":"3.50.4"}}'` + "\n"
	if err := os.WriteFile(filepath.Join(dir, EngineCommands["3.50"]), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	bin, mismatch := installedEngine(context.Background(), "3.50", "3.50.4")
	if bin != "" || !strings.Contains(mismatch, "built from other code") || !strings.Contains(mismatch, "0123456789ab") {
		t.Fatalf("installedEngine = %q, %q; want none, and why: built from other code (0123456789ab)", bin, mismatch)
	}
	err := unavailable("3.50", "3.50.4", mismatch, errors.New("harness: no checkout"))
	var e *EngineUnavailableError
	if !errors.As(err, &e) || !strings.Contains(e.Fix, "go install ./cmd/"+EngineCommands["3.50"]) || !strings.Contains(err.Error(), "built from other code") {
		t.Fatalf("unavailable: %v; want an EngineUnavailableError with the go install command and the mismatch", err)
	}
}

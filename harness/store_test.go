package harness

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestRecordInStoreSideBySide: runs side by side in one process (a gate's
// seeds, a fuzz campaign's runs) record in one store at once; every record
// lands, latest names one of them, and no temporary link is left. With one
// pid-named temporary link per process, one run renamed the other's away
// ("rename .latest-PID latest: no such file or directory", seen in CI).
func TestRecordInStoreSideBySide(t *testing.T) {
	store := t.TempDir()
	const runs = 16
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	for i := range runs {
		dir, err := NewStoreDir(store, "run")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- RecordInStore(store, dir, StoreEntry{Kind: "run", Scenario: "s", Seed: uint64(i)})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	index, err := os.ReadFile(filepath.Join(store, StoreIndex))
	if err != nil || strings.Count(string(index), "\n") != runs {
		t.Errorf("index has %d lines (%v), want %d", strings.Count(string(index), "\n"), err, runs)
	}
	if _, err := os.Stat(filepath.Join(store, "latest")); err != nil {
		t.Errorf("latest: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(store, ".latest-*")); len(left) > 0 {
		t.Errorf("temporary links left: %v", left)
	}
}

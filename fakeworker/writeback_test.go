package fakeworker

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSyncRandomRange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kanban.db")
	if err := os.WriteFile(path, make([]byte, 64<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 50; i++ {
		off, n, err := syncRandomRange(rng, path)
		if err != nil {
			t.Fatal(err)
		}
		if off < 0 || n < 1 || off+n > 64<<10 {
			t.Fatalf("range [%d, %d) outside the 64 KiB file", off, off+n)
		}
	}
	if _, _, err := syncRandomRange(rng, path+"-journal"); !os.IsNotExist(err) {
		t.Fatalf("missing file: %v, want not-exist", err)
	}
	empty := path + "-wal"
	os.WriteFile(empty, nil, 0o644)
	if _, n, err := syncRandomRange(rng, empty); err != nil || n != 0 {
		t.Fatalf("empty file: n=%d err=%v", n, err)
	}
}

// The hidden mode is reached through Main, and refuses a bad command line
// without writing a ledger line.
func TestWritebackUsage(t *testing.T) {
	ledger := filepath.Join(t.TempDir(), "ledger.jsonl")
	getenv := func(k string) string {
		if k == EnvLedger {
			return ledger
		}
		return ""
	}
	for _, args := range [][]string{{WritebackFlag}, {WritebackFlag, "x", "1", "f"}, {WritebackFlag, "150", "y", "f"}} {
		var stderr bytes.Buffer
		if code := Main(args, getenv, &stderr); code != exitUsage || !strings.Contains(stderr.String(), "writeback") {
			t.Errorf("Main(%q) = %d, %q", args, code, stderr.String())
		}
	}
	if _, err := os.Stat(ledger); !os.IsNotExist(err) {
		t.Errorf("the writeback helper wrote a ledger: %v", err)
	}
}

package ledger

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestConcurrentAppendsStayWholeLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if err := Append(path, Entry{Kind: Start, PID: g, Task: "t_00000001", Run: int64(i), Message: strings.Repeat("x", 300)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	h, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if h.Malformed != 0 || len(h.Entries) != 1600 {
		t.Fatalf("got %d entries, %d malformed; want 1600 whole lines", len(h.Entries), h.Malformed)
	}
	if got := len(h.Starts()["t_00000001"]); got != 1600 {
		t.Fatalf("Starts: %d", got)
	}
}

func TestReadMissingIsEmptyAndGarbageIsCounted(t *testing.T) {
	dir := t.TempDir()
	h, err := Read(filepath.Join(dir, "none.jsonl"))
	if err != nil || len(h.Entries) != 0 {
		t.Fatalf("missing ledger: %v %v", h, err)
	}
	p := filepath.Join(dir, "l.jsonl")
	os.WriteFile(p, []byte("{\"kind\":\"start\",\"pid\":1}\nnot json\n{}\n"), 0o644)
	h, err = Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Entries) != 1 || h.Malformed != 2 {
		t.Fatalf("entries=%d malformed=%d", len(h.Entries), h.Malformed)
	}
}

func TestMonoIsMonotonic(t *testing.T) {
	a := MonoNow()
	b := MonoNow()
	if b < a || a <= 0 {
		t.Fatalf("mono went %d -> %d", a, b)
	}
}

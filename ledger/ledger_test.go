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

// Exit status 0 is the common case and must survive a round trip; the new
// kinds keep their fields, and a line another writer (Python) wrote with
// the same names reads the same.
func TestExitTickSettingsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.jsonl")
	entries := []Entry{
		{Kind: Exit, PID: 10, Task: "t_00000001", Run: 3, Profile: "p", Who: "worker", Exit: ExitCode(0)},
		{Kind: Exit, PID: 11, Task: "t_00000001", Run: 4, Who: "worker", Exit: ExitCode(75)},
		{Kind: Tick, PID: 12, Who: "d1", Board: "default", Began: 100, Mono: 200, Op: SkippedLocked},
		{Kind: Tick, PID: 12, Who: "d1", Board: "default", Began: 300, Mono: 400, Message: "database is locked"},
		{Kind: Settings, PID: 12, Who: "d1", Message: `{"tick_s":1}`},
	}
	for _, e := range entries {
		if err := Append(path, e); err != nil {
			t.Fatal(err)
		}
	}
	python := `{"kind": "exit", "pid": 13, "task": "t_00000002", "run": 5, "who": "worker", "exit": 0, "mono_ns": 5, "wall": 1.5}` + "\n" +
		`{"kind": "tick", "pid": 14, "who": "d2", "board": "b", "began_ns": 7, "mono_ns": 9, "wall": 1.6}` + "\n"
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(python)
	f.Close()

	h, err := Read(path)
	if err != nil || h.Malformed != 0 || len(h.Entries) != 7 {
		t.Fatalf("Read: %d entries, %d malformed, %v", len(h.Entries), h.Malformed, err)
	}
	exits := h.Exits()
	if len(exits) != 3 {
		t.Fatalf("Exits = %+v, want 3", exits)
	}
	for i, want := range []int{0, 75, 0} {
		if code, ok := exits[i].ExitStatus(); !ok || code != want {
			t.Errorf("exit %d: ExitStatus = %d, %v; want %d, true (entry %+v)", i, code, ok, want, exits[i])
		}
	}
	if _, ok := h.Entries[2].ExitStatus(); ok {
		t.Errorf("a tick entry has an exit status")
	}
	ticks := h.Ticks()
	if d1 := ticks["d1"]; len(d1) != 2 || d1[0].Op != SkippedLocked || d1[0].Began != 100 || d1[0].Mono != 200 || d1[0].Board != "default" ||
		d1[1].Message != "database is locked" {
		t.Errorf("d1 ticks = %+v", d1)
	}
	if d2 := ticks["d2"]; len(d2) != 1 || d2[0].Board != "b" || d2[0].Began != 7 || d2[0].Mono != 9 {
		t.Errorf("d2 ticks = %+v", d2)
	}
	if h.Entries[4].Kind != Settings || h.Entries[4].Message != `{"tick_s":1}` {
		t.Errorf("settings entry = %+v", h.Entries[4])
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `"exit":0`) {
		t.Errorf("exit 0 was not written: %s", data)
	}
}

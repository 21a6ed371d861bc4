package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/campaign"
	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/internal/runtest"
)

// Native fuzz targets over kanbanchaos' own inputs (go test -fuzz). Each
// asserts what the command guarantees for any input: no panic, a message
// for bad input, an exit code in its class — never 4 for what a user can
// type or hand over. .ci/run runs each for a few seconds; crashers found go
// into testdata/fuzz/<target>/ and are fixed.

// FuzzMergeShard: any bytes given to merge as a shard file end in a
// verdict or in exit 2 with a message, never a panic.
func FuzzMergeShard(f *testing.F) {
	f.Add([]byte(`{"type":"run","index":0,"seed":1,"scenario":"issue-30417","variant":"fixed","status":"pass"}` + "\n" +
		`{"type":"summary","seed":1,"runs":1,"shard":"0/1","scenarios":["issue-30417"],"verdict":"pass","executed":1,"passed":1}` + "\n"))
	f.Add([]byte(`{"type":"gate","subject":"fixed","seeds":1,"shard":"0/1","entries":[]}` + "\n"))
	f.Add([]byte("warning: not json\n"))
	f.Add([]byte(`{"type":"summary","runs":-1,"shard":"9/3"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "shard.jsonl")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"merge", path}, &stdout, &stderr)
		switch {
		case code < 0 || code > exitInternal:
			t.Fatalf("exit %d", code)
		case code == exitUsage && stderr.Len() == 0:
			t.Fatalf("exit 2 without a message")
		case code == exitInternal && !strings.Contains(stdout.String()+stderr.String(), "error"):
			// 4 is merge's "a shard had harness errors": the shard must say so.
			t.Fatalf("exit 4 without a harness error in the shard:\n%s\n%s", stdout.String(), stderr.String())
		}
	})
}

// FuzzFlagValues: --knob, --shard and --subject values are refused with an
// error or accepted as what they say, never a panic.
func FuzzFlagValues(f *testing.F) {
	f.Add("backoff=true", "0/4", "exec:kanbanchaos dispatch --variant fixed")
	f.Add("journal_mode=DELETE", "3/4", "hermes:0.14.0")
	f.Add("=", "-1/0", "exec:")
	f.Add("crash_limit=configured", "9223372036854775807/9223372036854775807", "hermes:/tmp/../x")
	f.Fuzz(func(t *testing.T, knob, shard, subject string) {
		knobs := knobFlags{}
		if knobs.Set(knob) == nil {
			if _, err := dispatcher.Resolve("fixed", knobs); err == nil {
				name, _, _ := strings.Cut(knob, "=")
				if !slices.Contains(dispatcher.KnobNames(), name) {
					t.Fatalf("knob %q accepted but not a knob", name)
				}
			}
		}
		if sh, err := campaign.ParseShard(shard); err == nil {
			if sh.Count < 1 || sh.Index < 0 || sh.Index >= sh.Count {
				t.Fatalf("--shard %q accepted as %+v", shard, sh)
			}
		}
		if sub, err := parseSubject(subject, false); err == nil {
			switch {
			case subject == "" && sub.External():
				t.Fatalf("empty --subject accepted as %+v", sub)
			case subject != "" && !sub.External():
				t.Fatalf("--subject %q accepted as the reference dispatcher", subject)
			case sub.Exec != "" && !strings.HasPrefix(subject, "exec:"):
				t.Fatalf("--subject %q accepted as exec:%s", subject, sub.Exec)
			}
		}
	})
}

// FuzzCheckBoard: check on any bytes as a board ends in a verdict (0, 1),
// bad input (2, with a message) or undecided (3) — never 4, never a panic
// — and leaves nothing beside the file. The seed corpus
// (testdata/fuzz/FuzzCheckBoard) holds real boards from the scenarios,
// damaged and truncated ones included; old marks a board nobody wrote for
// an hour (the immutable read), else it was written just now.
func FuzzCheckBoard(f *testing.F) {
	f.Add([]byte("SQLite format 3\x00"), false)
	f.Add([]byte{}, true)
	f.Fuzz(func(t *testing.T, data []byte, old bool) {
		dir := t.TempDir()
		db := filepath.Join(dir, "kanban.db")
		if err := os.WriteFile(db, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if old {
			then := time.Now().Add(-time.Hour)
			os.Chtimes(db, then, then)
		}
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), []string{"check", db}, &stdout, &stderr)
		switch {
		case code < exitPass || code > exitUnknown:
			t.Fatalf("exit %d:\n%s\n%s", code, stdout.String(), stderr.String())
		case code >= exitUsage && stderr.Len() == 0:
			t.Fatalf("exit %d without a message", code)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("check left files beside the board: %q", names)
		}
	})
}

// TestWriteCheckCorpus regenerates FuzzCheckBoard's seed corpus from real
// runs when KANBANCHAOS_WRITE_CORPUS=1: the boards a crash-looping scenario
// and the cleanup scenario left, each also damaged (b-tree page headers overwritten)
// and truncated to half.
func TestWriteCheckCorpus(t *testing.T) {
	if os.Getenv("KANBANCHAOS_WRITE_CORPUS") != "1" {
		t.Skip("set KANBANCHAOS_WRITE_CORPUS=1 to rewrite testdata/fuzz/FuzzCheckBoard")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzCheckBoard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte, old bool) {
		entry := "go test fuzz v1\n[]byte(" + strconv.Quote(string(data)) + ")\nbool(" + strconv.FormatBool(old) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(entry), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ scenario, variant string }{{"issue-30417", "hermes-0.15"}, {"cleanup-hang", "fixed"}} {
		s := runtest.Build(t, c.scenario, c.variant, 1)
		res, err := harness.Run(context.Background(), s, harness.Options{Keep: true})
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(res.Artifacts)
		data, err := os.ReadFile(filepath.Join(res.Artifacts, "home", "kanban.db"))
		if err != nil {
			t.Fatal(err)
		}
		write(c.scenario, data, true)
		damaged := slices.Clone(data)
		for off := 4096; off+16 < len(damaged); off += 4096 * 3 {
			copy(damaged[off:], bytes.Repeat([]byte{0xA5}, 16))
		}
		write(c.scenario+"-damaged", damaged, false)
		write(c.scenario+"-truncated", data[:len(data)/2], true)
	}
}

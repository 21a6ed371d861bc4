package dispatcher

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// corruptNamedBoard makes board proj under a fresh home with n unassigned
// tasks (nothing to spawn), then damages one of its index pages.
func corruptNamedBoard(t *testing.T, n int) (home, path string) {
	t.Helper()
	ctx := context.Background()
	home = t.TempDir()
	path = kanban.BoardPath(home, "proj")
	b, err := kanban.Connect(ctx, path, kanban.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := b.CreateTask(ctx, kanban.NewTask{Title: "card"}); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	if err := kanban.DamageIndex(ctx, path, 0x5a); err != nil {
		t.Fatal(err)
	}
	return home, path
}

func gatewayFor(t *testing.T, variant, home, path string) *Gateway {
	t.Helper()
	knobs, err := Resolve(variant, nil)
	if err != nil {
		t.Fatal(err)
	}
	children := NewChildren()
	t.Cleanup(func() { children.KillAll(time.Second) })
	g, err := NewGateway(Config{Name: "g", Home: home, Board: "proj", DBPath: path, HermesBin: "/bin/false",
		Knobs: knobs, Timing: HermesTiming(0.001), Children: children})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func ticks(t *testing.T, g *Gateway, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, g.Tick(context.Background()).Action)
	}
	return out
}

func countBackups(t *testing.T, path string) int {
	t.Helper()
	bs, err := kanban.Backups(path)
	if err != nil {
		t.Fatal(err)
	}
	return len(bs)
}

func touch(t *testing.T, path string) {
	t.Helper()
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
}

// recreateEmpty puts what #30687's `boards switch && list` left in place of
// the board: a fresh schema with no rows.
func recreateEmpty(t *testing.T, path string) {
	t.Helper()
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	b, err := kanban.Connect(context.Background(), path, kanban.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// TestGatewayLatchNone: v0.14 retries a corrupt board on every tick and the
// guard backs it up every time (#32593).
func TestGatewayLatchNone(t *testing.T) {
	home, path := corruptNamedBoard(t, 3)
	g := gatewayFor(t, "hermes-0.14", home, path)
	for i, a := range ticks(t, g, 4) {
		if a != ActionCorrupt {
			t.Errorf("tick %d: %s, want %s", i+1, a, ActionCorrupt)
		}
		time.Sleep(time.Millisecond)
	}
	if n := countBackups(t, path); n != 4 {
		t.Errorf("%d backups after 4 ticks, want 4 (one per detection)", n)
	}
}

// TestGatewayLatchFingerprint: v0.15 disables the board until the file
// changes — then resumes on whatever the file is, an empty board included
// (#30687), and backs the unchanged corrupt content up again.
func TestGatewayLatchFingerprint(t *testing.T) {
	home, path := corruptNamedBoard(t, 3)
	g := gatewayFor(t, "hermes-0.15", home, path)
	if got := ticks(t, g, 3); got[0] != ActionCorrupt || got[1] != ActionSkipped || got[2] != ActionSkipped {
		t.Fatalf("ticks %v, want corrupt, skipped, skipped", got)
	}
	touch(t, path) // same bytes, new mtime
	if tk := g.Tick(context.Background()); tk.Action != ActionCorrupt || !tk.Retried {
		t.Errorf("after touch: %+v, want a retry that finds it corrupt again", tk)
	}
	if n := countBackups(t, path); n != 2 {
		t.Errorf("%d backups of one content, want 2 (the copy-ts storm)", n)
	}
	recreateEmpty(t, path)
	if tk := g.Tick(context.Background()); tk.Action != ActionDispatched || !tk.Retried || tk.Detail != "board holds 0 tasks" {
		t.Errorf("after recreation: %+v, want dispatch resumed on the empty board", tk)
	}
}

// TestGatewayLatchVerified: the fixed gateway resumes only a file that
// passes integrity_check and holds tasks; one backup per content.
func TestGatewayLatchVerified(t *testing.T) {
	home, path := corruptNamedBoard(t, 3)
	g := gatewayFor(t, "fixed", home, path)
	if got := ticks(t, g, 3); got[0] != ActionCorrupt || got[1] != ActionSkipped || got[2] != ActionSkipped {
		t.Fatalf("ticks %v, want corrupt, skipped, skipped", got)
	}
	touch(t, path)
	if tk := g.Tick(context.Background()); tk.Action != ActionKept {
		t.Errorf("after touch: %+v, want kept-disabled (still corrupt)", tk)
	}
	// A gateway restart finds it corrupt again: the same content, no new backup.
	g2 := gatewayFor(t, "fixed", home, path)
	if tk := g2.Tick(context.Background()); tk.Action != ActionCorrupt {
		t.Errorf("restarted gateway: %+v, want corrupt", tk)
	}
	if n := countBackups(t, path); n != 1 {
		t.Errorf("%d backups of one content, want 1", n)
	}
	recreateEmpty(t, path)
	if tk := g.Tick(context.Background()); tk.Action != ActionKept {
		t.Errorf("after recreation: %+v, want kept-disabled (no tasks)", tk)
	}
	// The operator restores a healthy board with its tasks: dispatch resumes.
	os.Remove(path)
	b, err := kanban.Connect(context.Background(), path, kanban.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTask(context.Background(), kanban.NewTask{Title: "restored"}); err != nil {
		t.Fatal(err)
	}
	b.Close()
	touch(t, path)
	if tk := g.Tick(context.Background()); tk.Action != ActionDispatched || !tk.Retried {
		t.Errorf("after restore: %+v, want dispatched", tk)
	}
}

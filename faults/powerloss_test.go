package faults

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/oracle"
)

// TestPowerLossSkipped: where the fault cannot run, the verdict is
// unknown with the reason, never a pass.
func TestPowerLossSkipped(t *testing.T) {
	v := PowerLossSkipped("running as uid 1000, not root")
	if v.Status != oracle.Unknown || len(v.Unknowns) != 1 ||
		v.Unknowns[0] != "skipped: needs root and loop devices (running as uid 1000, not root)" {
		t.Fatalf("verdict %+v", v)
	}
	if ok, why := PowerLossSupported(); !ok && why == "" {
		t.Fatal("unsupported without a reason")
	}
}

// TestPowerLossFailedMountDetaches: an image that is no file system fails to
// mount, and its loop device is detached again.
func TestPowerLossFailedMountDetaches(t *testing.T) {
	if ok, why := PowerLossSupported(); !ok {
		t.Skip("power loss unsupported here: " + why)
	}
	dir := t.TempDir()
	image := filepath.Join(dir, "zero.img")
	if err := os.WriteFile(image, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := mountImage(context.Background(), image, filepath.Join(dir, "mnt"), "")
	if err == nil {
		d.Close()
		t.Fatal("a zero-filled image mounted as ext4")
	}
	if devs, err := loopDevices(context.Background(), image); err != nil || len(devs) > 0 {
		t.Fatalf("loop devices left for the image: %v %v", devs, err)
	}
	if isMounted(filepath.Join(dir, "mnt")) {
		t.Fatal("left mounted")
	}
	// Close is idempotent.
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPowerLossUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{`/tmp/a\040b`: "/tmp/a b", `/x\134y`: `/x\y`, `/plain`: "/plain", `/end\04`: `/end\04`} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPowerLossDurableCommits(t *testing.T) {
	for _, c := range []struct {
		opts kanban.Options
		want bool
	}{
		{kanban.Options{JournalMode: "WAL", Synchronous: "FULL"}, true},
		{kanban.Options{JournalMode: "WAL"}, true}, // SQLite's default synchronous is FULL
		{kanban.Options{JournalMode: "TRUNCATE", Synchronous: "full"}, true},
		{kanban.Options{JournalMode: "WAL", Synchronous: "NORMAL"}, false},
		{kanban.Options{JournalMode: "WAL", Synchronous: "OFF"}, false},
		{kanban.Options{JournalMode: "DELETE", Synchronous: "FULL"}, false}, // the journal's unlink is not synced
		{kanban.Options{Synchronous: "FULL"}, false},                        // SQLite's default journal is DELETE
	} {
		if got := DurableCommits(c.opts); got != c.want {
			t.Errorf("durableCommits(%+v) = %v, want %v", c.opts, got, c.want)
		}
	}
}

// TestPowerLossSweepStale: a sandbox whose owner process is gone (a run
// SIGKILLed outright) is unmounted and detached by the next run's sweep; a
// live owner's is left alone.
func TestPowerLossSweepStale(t *testing.T) {
	if ok, why := PowerLossSupported(); !ok {
		t.Skip("power loss unsupported here: " + why)
	}
	tmp := t.TempDir()
	ctx := context.Background()
	mount := func(parent, name, owner string) *loopDisk {
		root := filepath.Join(parent, "kanbanchaos-"+name)
		work := filepath.Join(root, "powerloss")
		if err := os.MkdirAll(work, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, ownerFile), []byte(owner), 0o644); err != nil {
			t.Fatal(err)
		}
		d, err := mountFresh(ctx, filepath.Join(work, "live.img"), filepath.Join(root, "home"), 32)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	dead := mount(tmp, "dead", strconv.Itoa(os.Getpid())+" 1") // our pid, another start time: a reused pid
	alive := mount(tmp, "alive", processID(os.Getpid()))
	// A run killed under another TMPDIR (another test binary's) is swept too.
	elsewhere := mount(t.TempDir(), "elsewhere", strconv.Itoa(os.Getpid())+" 1")
	swept := sweepStale(ctx)
	if !slices.ContainsFunc(swept, func(s string) bool { return s == "unmounted "+dead.dir }) ||
		!slices.ContainsFunc(swept, func(s string) bool { return strings.HasPrefix(s, "detached ") && strings.Contains(s, dead.image) }) {
		t.Errorf("the sweep reports %q, want the unmount of %s and the detach of %s", swept, dead.dir, dead.image)
	}
	if isMounted(dead.dir) {
		t.Error("the abandoned sandbox is still mounted")
	}
	if devs, _ := loopDevices(ctx, dead.image); len(devs) > 0 {
		t.Errorf("the abandoned image still backs %v", devs)
	}
	if isMounted(elsewhere.dir) {
		t.Error("an abandoned sandbox under another temp directory is still mounted")
	}
	if !isMounted(alive.dir) {
		t.Error("the sweep unmounted a live run's disk")
	}
}

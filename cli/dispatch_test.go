package cli

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/internal/runtest"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// TestDispatchRecordsTicksInTheLedger: two `kanbanchaos dispatch` processes
// (the fixed variant, whose dispatch lock keeps their ticks apart) write
// their settings once and an entry after every tick, so the oracle holds an
// exec subject made of them to dispatcher-progress and one-writer-per-tick
// as it holds the in-process reference dispatcher.
func TestDispatchRecordsTicksInTheLedger(t *testing.T) {
	runtest.Long(t, "starts two dispatcher processes and their workers")
	sb := newDispatchSandbox(t, "fixed", "finisher", 6, schedule.Behaviour{Mode: schedule.ModeComplete})
	root, home, db, bin, cfg := sb.root, sb.home, sb.db, sb.bin, sb.cfg
	ledgerPath := filepath.Join(root, "ledger.jsonl")
	startMono := ledger.MonoNow()
	var cmds []*exec.Cmd
	for _, name := range []string{"d1", "d2"} {
		cmd := exec.Command(filepath.Join(bin, "kanbanchaos"), "dispatch", "--variant", "fixed", "--time-scale", "0.001", "--interval", "20ms")
		cmd.Env = append(os.Environ(), "HERMES_KANBAN_HOME="+home, "HERMES_HOME="+home, "HERMES_BIN="+filepath.Join(bin, fakeworker.InvokedAs),
			fakeworker.EnvLedger+"="+ledgerPath, fakeworker.EnvConfig+"="+cfg, kanban.OFDEnv+"=0", envDispatcherName+"="+name)
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	time.Sleep(1500 * time.Millisecond)
	for _, cmd := range cmds {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}

	h, err := ledger.Read(ledgerPath)
	if err != nil || h.Malformed != 0 {
		t.Fatalf("ledger: %v, %d malformed", err, h.Malformed)
	}
	settings := map[string]map[string]any{}
	for _, e := range h.Entries {
		if e.Kind != ledger.Settings {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(e.Message), &m); err != nil {
			t.Fatalf("settings of %s: %v: %s", e.Who, err, e.Message)
		}
		settings[e.Who] = m
	}
	for _, name := range []string{"d1", "d2"} {
		m := settings[name]
		resolved, _ := m["resolved"].(map[string]any)
		if m["variant"] != "fixed" || m["tick_s"] != 0.02 || m["board"] != "default" || m["max_spawn"] != nil || resolved["rate_limit_cooldown_s"] != 0.3 {
			t.Errorf("settings of %s = %v, want variant fixed, tick_s 0.02, board default, no max_spawn, a 0.3 s cooldown", name, m)
		}
	}
	ticks := h.Ticks()
	for _, name := range []string{"d1", "d2"} {
		ts := ticks[name]
		if len(ts) < 5 { // 75 at most; a loaded machine ticks fewer
			t.Errorf("%s wrote %d tick entries in 1.5 s of 20 ms ticks", name, len(ts))
		}
		for _, e := range ts {
			if e.Board != "default" || e.Began <= 0 || e.Began > e.Mono || e.PID <= 0 || e.Message != "" {
				t.Errorf("tick entry %+v, want board default, began ≤ ended, a pid, no error", e)
				break
			}
		}
	}

	s := schedule.Schedule{Dispatchers: 2, TickMs: 20, TimeScale: 0.001, DurationMs: 1500, Expect: []string{oracle.OneWriterPerTick},
		Profiles: []schedule.Profile{{Name: "finisher", Worker: schedule.Behaviour{Mode: schedule.ModeComplete}}}}
	v, err := oracle.Check(context.Background(), oracle.Input{DBPath: db, Ledger: h, Schedule: s, RunStartMono: startMono, CheckCopy: true,
		Subject: oracle.Observability{Name: "exec:kanbanchaos dispatch --variant fixed", Errors: true}})
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != oracle.Pass {
		t.Fatalf("verdict %s: %+v %q", v.Status, v.Violations, v.Unknowns)
	}
	for _, inv := range []string{oracle.DispatcherProgress, oracle.OneWriterPerTick, oracle.NoLostWrites, oracle.SQLiteErrors} {
		if !slices.Contains(v.Held(), inv) {
			t.Errorf("held %q lacks %s; not checked %+v", v.Held(), inv, v.NotChecked)
		}
	}
}

// dispatchSandbox lays out what a `kanbanchaos dispatch` process needs: a
// Hermes home with one registered profile and n tasks assigned to it, a bin
// directory where `kanbanchaos` and `hermes` (the fake worker) are this test
// binary, and the workers' config with variant's connection settings.
type dispatchSandbox struct{ root, home, db, bin, cfg string }

func newDispatchSandbox(t *testing.T, variant, profile string, n int, worker schedule.Behaviour) dispatchSandbox {
	t.Helper()
	sb := dispatchSandbox{root: t.TempDir()}
	sb.home = filepath.Join(sb.root, "home")
	sb.db = kanban.BoardPath(sb.home, "default")
	sb.bin = filepath.Join(sb.root, "bin")
	sb.cfg = filepath.Join(sb.root, "worker.json")
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(sb.bin, 0o755)
	for _, name := range []string{"kanbanchaos", fakeworker.InvokedAs} {
		if err := os.Symlink(exe, filepath.Join(sb.bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(sb.home, "profiles", profile), 0o755)
	seedBoard(t, sb.db, n, profile)
	knobs, err := dispatcher.Resolve(variant, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := fakeworker.WriteConfig(sb.cfg, fakeworker.Config{Connect: knobs.Connect, ClaimTTLMs: 900, PinBeatsBoard: knobs.PinBeatsBoard,
		Profiles: map[string]schedule.Behaviour{profile: worker}}); err != nil {
		t.Fatal(err)
	}
	return sb
}

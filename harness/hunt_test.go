package harness

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// TestStoredMaxRuntime: the reference dispatcher scales max_runtime_seconds
// itself, so it is seeded as written; a real release reads wall-clock whole
// seconds, so it gets the scaled value rounded up, never 0 (0 would mean no
// limit at all, not a short one).
func TestStoredMaxRuntime(t *testing.T) {
	for _, tc := range []struct {
		hermes     string
		scale      float64
		maxRuntime int
		want       float64
	}{
		{"", 0.001, 1800, 1800},
		{"", 0.001, 0, 0},
		{"0.19.0", 0.001, 1000, 1},
		{"0.19.0", 0.001, 1800, 2},
		{"0.19.0", 0.001, 10, 1},
		{"0.19.0", 0.5, 7, 4},
		{"0.19.0", 0.001, 0, 0},
	} {
		s := schedule.Schedule{TimeScale: tc.scale, Subject: schedule.Subject{Hermes: tc.hermes}}
		if got := storedMaxRuntime(s, schedule.Task{MaxRuntimeS: tc.maxRuntime}); got != tc.want {
			t.Errorf("subject %q, scale %g, max_runtime_s %d: stored %g, want %g", tc.hermes, tc.scale, tc.maxRuntime, got, tc.want)
		}
	}
}

// TestProbesOfAHermesDriver: a real release leaves no trace.jsonl; its
// driver's ledger records say a breaker tripped (a commit that wrote
// gave_up), a task was held back (respawn_guarded) and a tick lost the
// dispatch lock (skipped_locked). The 0.19.0 campaign said "breaker-trip
// never reached" over 293 runs whose boards were full of gave_up events.
func TestProbesOfAHermesDriver(t *testing.T) {
	s := schedule.Schedule{Dispatchers: 2, Profiles: []schedule.Profile{{Name: "ghost", Worker: schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 1}}},
		Tasks: []schedule.Task{{ID: "t_00000001", Assignee: "ghost"}}}
	k, err := dispatcher.Resolve("hermes-0.19", nil)
	if err != nil {
		t.Fatal(err)
	}
	hist := ledger.History{Entries: []ledger.Entry{
		{Kind: ledger.Commit, Who: "d1", Op: "_record_task_failure", Task: "t_00000001", EventKinds: []string{"gave_up"}},
		{Kind: ledger.Commit, Who: "d1", Op: "_dispatch_once_locked", Task: "t_00000001", EventKinds: []string{"respawn_guarded"}},
		{Kind: ledger.Tick, Who: "d2", Op: "skipped_locked"},
	}}
	p := probeRun(filepath.Join(t.TempDir(), "no-trace.jsonl"), hist, s, k, nil, nil)
	for _, want := range []string{ProbeBreakerTrip, ProbeBackoff, ProbeDispatchLock} {
		if !slices.Contains(p.Reached, want) {
			t.Errorf("probe %s not reached from the driver's ledger: %+v", want, p)
		}
	}
	p = probeRun(filepath.Join(t.TempDir(), "no-trace.jsonl"), ledger.History{}, s, k, nil, nil)
	if len(p.Reached) != 0 {
		t.Errorf("an empty ledger reached %v", p.Reached)
	}
}

// TestFalseAlarmNeedsACheckpoint: no-false-alarm is held only by a run in
// which a checkpoint ran while processes were committing — what a
// post-commit check races. With wal_autocheckpoint far above what one card
// writes, no checkpoint runs: not checked, with why; the scenario as it is
// checkpoints, and fixed (which never reads the file) holds it.
func TestFalseAlarmNeedsACheckpoint(t *testing.T) {
	t.Parallel()
	small := build(t, "torn-extend-checkpoint", "fixed", 1)
	small.Tasks = small.Tasks[:1]
	small.Knobs = map[string]string{"wal_autocheckpoint": "1000000"}
	small.DurationMs, small.QuietMs = 2000, 500
	res, err := Run(context.Background(), small, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if why := notCheckedWhy(res.Verdict, oracle.NoFalseAlarm); !strings.Contains(why, ProbeCheckpoint) {
		t.Errorf("no checkpoint: no-false-alarm held %v, why not checked %q", slices.Contains(res.Verdict.Held(), oracle.NoFalseAlarm), why)
	}
	res, err = Run(context.Background(), build(t, "torn-extend-checkpoint", "fixed", 1), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Probes.Reached, ProbeCheckpoint) || !slices.Contains(res.Verdict.Held(), oracle.NoFalseAlarm) {
		t.Errorf("sixteen writers: probes %v, held %v", res.Probes.Reached, res.Verdict.Held())
	}
}

func notCheckedWhy(v oracle.Verdict, inv string) string {
	for _, x := range v.NotChecked {
		if x.Invariant == inv {
			return x.Why
		}
	}
	return ""
}

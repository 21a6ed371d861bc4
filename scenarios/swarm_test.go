package scenarios

import (
	"reflect"
	"testing"
)

// TestSwarmDrawsValidSchedules: every scenario's swarm draws schedules that
// validate, stay within the bounds (1–8 dispatchers, 1–50 tasks,
// crash delays 0–200 ms, failure_limit 0–5) and keep the scenario's fixed
// parts.
func TestSwarmDrawsValidSchedules(t *testing.T) {
	for _, sc := range All() {
		w := sc.Swarm()
		base := sc.Build(1, "")
		for seed := uint64(1); seed <= 40; seed++ {
			p := w.Draw(seed)
			if !w.Valid(p) {
				t.Fatalf("%s seed %d: drew %+v outside its own ranges", sc.Name, seed, p)
			}
			s := w.Schedule(p, seed, "fixed")
			if err := s.Validate(); err != nil {
				t.Fatalf("%s seed %d: %v\n%s", sc.Name, seed, err, p.Key())
			}
			if s.Dispatchers < 1 || s.Dispatchers > 8 || len(s.Tasks) < 1 || len(s.Tasks) > 50 || s.FailureLimit > 5 {
				t.Errorf("%s seed %d: out of bounds: %d dispatchers, %d tasks, failure_limit %d", sc.Name, seed, s.Dispatchers, len(s.Tasks), s.FailureLimit)
			}
			for _, pr := range s.Profiles {
				if pr.Worker.DelayMs < 0 || pr.Worker.DelayMs > 200 {
					t.Errorf("%s seed %d: crash delay %d ms", sc.Name, seed, pr.Worker.DelayMs)
				}
			}
			if s.Variant != "fixed" || s.Engine != base.Engine || s.TimeScale != base.TimeScale ||
				!reflect.DeepEqual(s.Knobs, base.Knobs) || len(s.Faults) != len(base.Faults) {
				t.Errorf("%s seed %d: the scenario's fixed parts changed: %+v", sc.Name, seed, s)
			}
			checkOffsets(t, s)
		}
	}
}

// TestSwarmIsDeterministicPerSeed: a run's schedule depends on its seed
// alone, not on what was drawn before (so any run index replays and shards).
func TestSwarmIsDeterministicPerSeed(t *testing.T) {
	w := mustLookup(t, "issue-30896").Swarm()
	a := encode(t, w.Schedule(w.Draw(99), 99, ""))
	for seed := uint64(1); seed < 10; seed++ {
		w.Draw(seed)
	}
	if b := encode(t, w.Schedule(w.Draw(99), 99, "")); a != b {
		t.Fatalf("seed 99 drew\n%s\nthen\n%s", a, b)
	}
	if a == encode(t, w.Schedule(w.Draw(100), 100, "")) {
		t.Fatal("seeds 99 and 100 drew the same schedule")
	}
}

// TestSwarmShrinksStructurally: gopter's shrink stream offers fewer tasks,
// fewer dispatchers and zero delays, all within the ranges — the FlatMap
// trap (no outer shrinking) would offer none of the first two.
func TestSwarmShrinksStructurally(t *testing.T) {
	w := mustLookup(t, "r5-crash-loop").Swarm()
	var p Params
	for seed := uint64(1); ; seed++ {
		if p = w.Draw(seed); len(p.Tasks) >= 4 && p.Dispatchers >= 3 && p.Tasks[0].DelayMs > 0 {
			break
		}
	}
	fewerTasks, fewerDispatchers, zeroDelay := false, false, false
	shrink := w.Shrinks(p)
	for n := 0; n < 5000; n++ {
		v, ok := shrink()
		if !ok {
			break
		}
		c := v.(Params)
		if !w.Valid(c) {
			t.Fatalf("shrink left the ranges: %+v", c)
		}
		fewerTasks = fewerTasks || len(c.Tasks) < len(p.Tasks)
		fewerDispatchers = fewerDispatchers || c.Dispatchers < p.Dispatchers
		zeroDelay = zeroDelay || len(c.Tasks) == len(p.Tasks) && c.Tasks[0].DelayMs == 0
	}
	if !fewerTasks || !fewerDispatchers || !zeroDelay {
		t.Fatalf("shrinks of %s: fewer tasks %v, fewer dispatchers %v, zero delay %v", p.Key(), fewerTasks, fewerDispatchers, zeroDelay)
	}
}

// TestFuzzableLeavesOutControls: positive controls fail on every variant by
// design; a campaign over all scenarios must not count them.
func TestFuzzableLeavesOutControls(t *testing.T) {
	for _, sc := range Fuzzable() {
		if sc.Control() {
			t.Errorf("%s is a control", sc.Name)
		}
	}
	if len(Fuzzable()) == len(All()) {
		t.Error("no scenario is a positive control")
	}
	if !mustLookup(t, "fault-delete-sidecars").Control() {
		t.Error("fault-delete-sidecars fails on every variant by design")
	}
}

func TestSwarmCapsPhases(t *testing.T) {
	w := mustLookup(t, "issue-30896").Swarm().WithMaxPhases(800, 300)
	for seed := uint64(1); seed <= 20; seed++ {
		s := w.Schedule(w.Draw(seed), seed, "")
		if s.DurationMs > 800 || s.QuietMs > 300 || s.DurationMs < 1 {
			t.Fatalf("seed %d: %d ms + %d ms, want ≤ 800 + 300", seed, s.DurationMs, s.QuietMs)
		}
	}
}

func mustLookup(t *testing.T, name string) Scenario {
	t.Helper()
	sc, err := Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

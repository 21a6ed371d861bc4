package scenarios

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/schedule"
)

func encode(t *testing.T, s schedule.Schedule) string {
	t.Helper()
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func tick(s schedule.Schedule) int {
	if s.TickMs > 0 {
		return s.TickMs
	}
	return int(60000 * s.TimeScale)
}

func checkOffsets(t *testing.T, s schedule.Schedule) {
	t.Helper()
	if len(s.DispatcherOffsetsMs) != s.Dispatchers {
		t.Fatalf("%s seed %d: %d offsets for %d dispatchers", s.Scenario, s.Seed, len(s.DispatcherOffsetsMs), s.Dispatchers)
	}
	if s.Dispatchers > 0 && s.DispatcherOffsetsMs[0] != 0 {
		t.Errorf("%s seed %d: the first dispatcher starts at +%dms, want 0", s.Scenario, s.Seed, s.DispatcherOffsetsMs[0])
	}
	for i, o := range s.DispatcherOffsetsMs {
		if o < 0 || o >= max(tick(s), 1) {
			t.Errorf("%s seed %d: offset[%d] = %d, want within one tick [0, %d)", s.Scenario, s.Seed, i, o, tick(s))
		}
	}
}

func TestAllBuildValidSchedules(t *testing.T) {
	all := All()
	if len(all) == 0 {
		t.Fatal("no scenarios")
	}
	for _, sc := range all {
		if sc.Name == "" || sc.Issue == "" || sc.Summary == "" || sc.Variant == "" {
			t.Errorf("scenario %+v lacks a name, issue, summary or default variant", sc)
		}
		for seed := uint64(1); seed <= 50; seed++ {
			for _, variant := range []string{"", "fixed", "pr30973"} {
				s := sc.Build(seed, variant)
				if err := s.Validate(); err != nil {
					t.Errorf("%s seed %d variant %q: %v", sc.Name, seed, variant, err)
					continue
				}
				want := variant
				if want == "" {
					want = sc.Variant
				}
				if s.Variant != want || s.Scenario != sc.Name || s.Seed != seed {
					t.Errorf("%s seed %d variant %q: schedule says scenario %q seed %d variant %q", sc.Name, seed, variant, s.Scenario, s.Seed, s.Variant)
				}
				checkOffsets(t, s)
				for _, task := range s.Tasks {
					p, ok := s.Profile(task.Assignee)
					// exit-75-cooldown's and stolen-exit-status' workers are
					// rate limited, unbounded by design.
					if !ok || !p.Worker.Bounded() && sc.Name != "exit-75-cooldown" && sc.Name != "stolen-exit-status" {
						t.Errorf("%s seed %d: task %s's worker %+v is not a bounded failure", sc.Name, seed, task.ID, p.Worker)
					}
				}
			}
		}
	}
}

func TestBuildIsDeterministic(t *testing.T) {
	for _, sc := range All() {
		for seed := uint64(1); seed <= 50; seed++ {
			a, b := encode(t, sc.Build(seed, "")), encode(t, sc.Build(seed, ""))
			if a != b {
				t.Errorf("%s seed %d builds differently twice:\n%s\n%s", sc.Name, seed, a, b)
			}
		}
	}
}

// What the seed decides: dispatcher offsets, worker delays and task ids.
func seedChoices(s schedule.Schedule) string {
	var delays []int
	for _, p := range s.Profiles {
		delays = append(delays, p.Worker.DelayMs)
	}
	var ids []string
	for _, t := range s.Tasks {
		ids = append(ids, t.ID)
	}
	return fmt.Sprint(s.DispatcherOffsetsMs, delays, ids)
}

func TestSeedsVary(t *testing.T) {
	for _, sc := range All() {
		timing := map[string]bool{} // offsets and delays only
		choices := map[string]bool{}
		for seed := uint64(1); seed <= 50; seed++ {
			s := sc.Build(seed, "")
			var delays []int
			for _, p := range s.Profiles {
				delays = append(delays, p.Worker.DelayMs)
			}
			timing[fmt.Sprint(s.DispatcherOffsetsMs, delays)] = true
			choices[seedChoices(s)] = true
		}
		if len(timing) < 2 {
			t.Errorf("%s: seeds 1..50 all give the same offsets and delays", sc.Name)
		}
		if len(choices) < 40 {
			t.Errorf("%s: only %d distinct schedules from 50 seeds", sc.Name, len(choices))
		}
	}
}

func TestMultiDispatcherOffsetsVary(t *testing.T) {
	sc, err := Lookup("issue-30896")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for seed := uint64(1); seed <= 50; seed++ {
		s := sc.Build(seed, "")
		if s.Dispatchers < 2 {
			t.Fatalf("issue-30896 has %d dispatchers, want several", s.Dispatchers)
		}
		seen[fmt.Sprint(s.DispatcherOffsetsMs)] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct offset sets over 50 seeds", len(seen))
	}
}

func TestVariantDoesNotChangeTheRest(t *testing.T) {
	for _, sc := range All() {
		a, b := sc.Build(7, ""), sc.Build(7, "fixed")
		b.Variant = a.Variant
		if encode(t, a) != encode(t, b) {
			t.Errorf("%s: the variant changed more than the variant field", sc.Name)
		}
	}
}

func TestLookup(t *testing.T) {
	for _, name := range Names() {
		sc, err := Lookup(name)
		if err != nil || sc.Name != name {
			t.Errorf("Lookup(%q) = %q, %v", name, sc.Name, err)
		}
	}
	_, err := Lookup("issue-00000")
	if err == nil {
		t.Fatal("Lookup of an unknown name succeeded")
	}
	for _, want := range append([]string{`"issue-00000"`}, Names()...) {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %s", err, want)
		}
	}
}

func TestNamesInOrder(t *testing.T) {
	names := Names()
	if len(names) != len(All()) || !slices.IsSorted(names) {
		t.Errorf("Names() = %q, want every scenario in name order", names)
	}
	if !slices.Contains(names, "issue-30417") || !slices.Contains(names, "issue-30896") {
		t.Errorf("Names() = %q, want the #30417 and #30896 scenarios", names)
	}
	if len(slices.Compact(slices.Clone(names))) != len(names) {
		t.Errorf("Names() = %q has duplicates", names)
	}
}

func TestRespread(t *testing.T) {
	for _, sc := range All() {
		for seed := uint64(1); seed <= 20; seed++ {
			s := sc.Build(seed, "")
			orig := slices.Clone(s.DispatcherOffsetsMs)
			Respread(&s)
			if !slices.Equal(s.DispatcherOffsetsMs, orig) {
				t.Errorf("%s seed %d: Respread without changes gave %v, Build %v", sc.Name, seed, s.DispatcherOffsetsMs, orig)
			}
			for _, n := range []int{1, 2, 5, 64} {
				s.Dispatchers = n
				Respread(&s)
				checkOffsets(t, s)
				if err := s.Validate(); err != nil {
					t.Errorf("%s seed %d with %d dispatchers: %v", sc.Name, seed, n, err)
				}
			}
			// A new tick bounds the offsets anew.
			s.Dispatchers, s.TickMs = 8, 3
			Respread(&s)
			checkOffsets(t, s)
			s.TickMs, s.TimeScale = 0, 0.0001 // 6 ms scaled tick
			Respread(&s)
			checkOffsets(t, s)
		}
	}
}

// Respread runs before Validate in `kanbanchaos run` (cmd/kanbanchaos/run.go),
// so an out-of-range --dispatchers must not crash it.
func TestRespreadNegativeDispatchers(t *testing.T) {
	s := All()[0].Build(1, "")
	s.Dispatchers = -1
	Respread(&s)
	if err := s.Validate(); err == nil {
		t.Error("Validate accepted -1 dispatchers")
	}
}

package subject

import (
	"strconv"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/internal/runtest"
	"github.com/kanbanchaos/kanbanchaos/sandbox"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// TestHermesGetsWholeSeconds: a hermes: run never hands Hermes a setting
// it would parse with int() and silently replace by its default.
func TestHermesGetsWholeSeconds(t *testing.T) {
	s := runtest.Build(t, "issue-30896", "", 1) // 30 ms grace, 0.9 s TTL, 0.3 s cooldown
	st := For(schedule.Subject{Hermes: "0.14.0"}).Settings(s, dispatcher.HermesTiming(s.TimeScale))
	for name, v := range map[string]float64{"crash grace": st.CrashGraceS, "claim TTL": st.ClaimTTLS, "cooldown": st.CooldownS} {
		if v != float64(int(v)) {
			t.Errorf("%s %gs is not a whole number of seconds", name, v)
		}
	}
	if st.ClaimTTLS != 1 || st.CooldownS != 2 || st.CrashGraceS != 0 {
		t.Errorf("settings %+v: want grace 0, TTL 1, cooldown 2", st)
	}
	if len(st.Notes) < 3 || !strings.Contains(strings.Join(st.Notes, "\n"), "whole seconds") {
		t.Errorf("the roundings are not said: %q", st.Notes)
	}
	env, err := subjectEnv(sandbox.Dir{Root: t.TempDir()}, dispatcher.HermesTiming(s.TimeScale), false)
	if err == nil {
		for _, kv := range env {
			if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "HERMES_KANBAN_") && strings.HasSuffix(k, "_SECONDS") {
				if _, err := strconv.Atoi(v); err != nil {
					t.Errorf("%s: not whole seconds", kv)
				}
			}
		}
	}
}

// TestHermesKnobs: a hermes: run refuses knobs of the reference dispatcher
// it does not run, and takes the workers' and lose_pid.
func TestHermesKnobs(t *testing.T) {
	if err := CheckHermesKnobs("hermes-0.14", map[string]string{"journal_mode": "DELETE", "lose_pid": "true"}); err != nil {
		t.Errorf("worker knobs refused: %v", err)
	}
	err := CheckHermesKnobs("hermes-0.14", map[string]string{"atomic_failure": "true"})
	if err == nil || !strings.Contains(err.Error(), "atomic_failure") {
		t.Errorf("a dispatcher knob must be refused, naming it: %v", err)
	}
}

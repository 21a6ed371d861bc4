package harness

import (
	"testing"

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

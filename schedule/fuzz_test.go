package schedule_test

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// FuzzScheduleJSON: whatever bytes a schedule.json holds, Validate rejects
// them or accepts a schedule every time of which fits a time.Duration and
// is what it says: no panic, no overflow into 0 s phases, negative delays
// or endless write loops. The seed corpus is every scenario's schedule
// (and testdata/fuzz/FuzzScheduleJSON).
func FuzzScheduleJSON(f *testing.F) {
	for _, sc := range scenarios.All() {
		data, err := json.Marshal(sc.Build(1, ""))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	// The crafted inputs of issue 12: huge phases, ticks, offsets, delays,
	// write counts and exit codes on an otherwise valid schedule.
	base := `{"scenario":"x","seed":1,"variant":"fixed","dispatchers":1,"time_scale":0.001,"duration_ms":1000,` +
		`"profiles":[{"name":"p","worker":{"mode":"%s","exit":%s,"delay_ms":%s,"writes":%s}}],"tasks":[{"id":"t_00000001","assignee":"p","max_retries":%s}]%s}`
	for _, c := range [][6]string{
		{"exit-now", "1", "4611686018427387904", "0", "0", ""},
		{"exit-now", "1", "-5", "0", "0", ""},
		{"write-complete", "0", "0", "4611686018427387904", "0", ""},
		{"write-exit", "0", "0", "-1", "0", ""},
		{"exit-now", "300", "0", "0", "0", ""},
		{"exit-now", "-1", "0", "0", "0", ""},
		{"exit-now", "1", "0", "0", "4611686018427387904", ""},
		{"exit-now", "1", "0", "0", "0", `,"max_spawn":4611686018427387904,"failure_limit":4611686018427387904`},
		{"exit-now", "1", "0", "0", "0", `,"tick_ms":4611686018427387904`},
		{"exit-now", "1", "0", "0", "0", `,"dispatcher_offsets_ms":[1000000000]`},
	} {
		f.Add([]byte(fmt.Sprintf(base, c[0], c[1], c[2], c[3], c[4], c[5])))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s schedule.Schedule
		if json.Unmarshal(data, &s) != nil {
			return
		}
		if s.Validate() != nil {
			return
		}
		ms := func(what string, v int, hi int) time.Duration {
			if v < 0 || v > hi {
				t.Fatalf("Validate accepted %s = %d (want 0..%d): %s", what, v, hi, data)
			}
			return time.Duration(v) * time.Millisecond
		}
		const day = 24 * 3600 * 1000
		total := ms("duration_ms", s.DurationMs, day) + ms("quiet_ms", s.QuietMs, day)
		if s.DurationMs == 0 || total <= 0 {
			t.Fatalf("Validate accepted a run of %v: %s", total, data)
		}
		ms("tick_ms", s.TickMs, day)
		if math.IsNaN(s.TimeScale) || s.TimeScale <= 0 || s.TimeScale > 1 {
			t.Fatalf("Validate accepted time_scale %g", s.TimeScale)
		}
		if tick := time.Duration(float64(time.Minute) * s.TimeScale); tick < 0 {
			t.Fatalf("the scaled tick overflows: %v", tick)
		}
		for _, o := range s.DispatcherOffsetsMs {
			ms("a dispatcher offset", o, day)
		}
		if s.CrashGraceMs != nil {
			ms("crash_grace_ms", *s.CrashGraceMs, day)
		}
		if s.CooldownMs != nil {
			ms("rate_limit_cooldown_ms", *s.CooldownMs, day)
		}
		for _, p := range s.Profiles {
			ms("a worker's delay_ms", p.Worker.DelayMs, day)
			if p.Worker.Writes < 0 || p.Worker.Writes > 1_000_000 {
				t.Fatalf("Validate accepted writes = %d: %s", p.Worker.Writes, data)
			}
			if p.Worker.Exit < 0 || p.Worker.Exit > 255 {
				t.Fatalf("Validate accepted exit code %d (a process exits 0..255): %s", p.Worker.Exit, data)
			}
		}
		for _, task := range s.Tasks {
			if limit, _ := s.EffectiveLimit(task); limit < 1 || limit > 1_000_000 {
				t.Fatalf("Validate accepted a failure limit of %d: %s", limit, data)
			}
		}
		if s.MaxSpawn < 0 || s.MaxSpawn > 1_000_000 {
			t.Fatalf("Validate accepted max_spawn %d", s.MaxSpawn)
		}
		// What was accepted is written and read back as the same thing.
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var back schedule.Schedule
		if err := json.Unmarshal(again, &back); err != nil || back.Validate() != nil {
			t.Fatalf("a valid schedule does not survive its JSON: %v / %v\n%s", err, back.Validate(), again)
		}
	})
}

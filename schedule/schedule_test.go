package schedule_test

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// spellings maps every entry of schedule.Modes to concrete spellings and what
// they parse to.
var spellings = map[string][]struct {
	in   string
	want schedule.Behaviour
}{
	"exit-now:N": {
		{"exit-now:0", schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 0}},
		{"exit-now:1", schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 1}},
		{"exit-now:75", schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 75}},
		{"exit-now:255", schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 255}},
	},
	"open-board-then-exit:N": {
		{"open-board-then-exit:0", schedule.Behaviour{Mode: schedule.ModeOpenBoardExit, Exit: 0}},
		{"open-board-then-exit:3", schedule.Behaviour{Mode: schedule.ModeOpenBoardExit, Exit: 3}},
	},
	"heartbeat-then-crash[:N]": {
		{"heartbeat-then-crash", schedule.Behaviour{Mode: schedule.ModeHeartbeatCrash, Exit: 1}},
		{"heartbeat-then-crash:0", schedule.Behaviour{Mode: schedule.ModeHeartbeatCrash, Exit: 0}},
		{"heartbeat-then-crash:9", schedule.Behaviour{Mode: schedule.ModeHeartbeatCrash, Exit: 9}},
	},
	"complete": {{"complete", schedule.Behaviour{Mode: schedule.ModeComplete}}},
	"exit-75":  {{"exit-75", schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 75}}},
	"exit-0-without-completing": {
		{"exit-0-without-completing", schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 0}},
	},
	"hang": {{"hang", schedule.Behaviour{Mode: schedule.ModeHang}}},
	"write-complete:K": {
		{"write-complete:0", schedule.Behaviour{Mode: schedule.ModeWriteComplete}},
		{"write-complete:40", schedule.Behaviour{Mode: schedule.ModeWriteComplete, Writes: 40}},
	},
	"write-exit:N": {
		{"write-exit:1", schedule.Behaviour{Mode: schedule.ModeWriteExit, Exit: 1, Writes: 20}},
		{"write-exit:75", schedule.Behaviour{Mode: schedule.ModeWriteExit, Exit: 75, Writes: 20}},
	},
	"kill-in-txn": {{"kill-in-txn", schedule.Behaviour{Mode: schedule.ModeKillInTxn, Writes: 10}}},
	"create-on-board:SLUG": {
		{"create-on-board:other", schedule.Behaviour{Mode: schedule.ModeCreateOnBoard, Board: "other"}},
		{"create-on-board:Other", schedule.Behaviour{Mode: schedule.ModeCreateOnBoard, Board: "other"}},
	},
}

func TestParseBehaviourEveryMode(t *testing.T) {
	if len(schedule.Modes) != len(spellings) {
		t.Errorf("schedule.Modes has %d entries, the test knows %d", len(schedule.Modes), len(spellings))
	}
	for _, m := range schedule.Modes {
		cases, ok := spellings[m.Name]
		if !ok {
			t.Errorf("mode %q has no test spellings", m.Name)
			continue
		}
		if m.Doc == "" {
			t.Errorf("mode %q has no doc", m.Name)
		}
		for _, c := range cases {
			got, err := schedule.ParseBehaviour(c.in)
			if err != nil {
				t.Errorf("ParseBehaviour(%q): %v", c.in, err)
				continue
			}
			if got != c.want {
				t.Errorf("ParseBehaviour(%q) = %+v, want %+v", c.in, got, c.want)
			}
			// String round-trips.
			again, err := schedule.ParseBehaviour(got.String())
			if err != nil || again != got {
				t.Errorf("ParseBehaviour(%q.String() = %q) = %+v, %v; want %+v", c.in, got.String(), again, err, got)
			}
		}
	}
}

func TestBehaviourString(t *testing.T) {
	for _, tc := range []struct {
		b    schedule.Behaviour
		want string
	}{
		{schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 75}, "exit-now:75"},
		{schedule.Behaviour{Mode: schedule.ModeExitNow}, "exit-now:0"},
		{schedule.Behaviour{Mode: schedule.ModeHeartbeatCrash, Exit: 1}, "heartbeat-then-crash:1"},
		{schedule.Behaviour{Mode: schedule.ModeOpenBoardExit, Exit: 2}, "open-board-then-exit:2"},
		{schedule.Behaviour{Mode: schedule.ModeComplete}, "complete"},
		{schedule.Behaviour{Mode: schedule.ModeHang}, "hang"},
	} {
		if got := tc.b.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.b, got, tc.want)
		}
	}
}

func TestParseBehaviourErrors(t *testing.T) {
	for _, tc := range []struct{ in, says string }{
		{"", "unknown worker mode"},
		{"explode", "unknown worker mode"},
		{"EXIT-NOW:1", "unknown worker mode"},
		{"exit-now", "needs an exit code"},
		{"open-board-then-exit", "needs an exit code"},
		{"exit-now:", "0..255"},
		{"exit-now:-1", "0..255"},
		{"exit-now:256", "0..255"},
		{"exit-now:x", "0..255"},
		{"exit-now:1.5", "0..255"},
		{"open-board-then-exit:300", "0..255"},
		{"heartbeat-then-crash:abc", "0..255"},
		{"heartbeat-then-crash:-2", "0..255"},
		{"complete:0", "takes no argument"},
		{"hang:1", "takes no argument"},
	} {
		b, err := schedule.ParseBehaviour(tc.in)
		if err == nil {
			t.Errorf("ParseBehaviour(%q) = %+v, want an error", tc.in, b)
			continue
		}
		if !strings.Contains(err.Error(), tc.says) {
			t.Errorf("ParseBehaviour(%q) error %q does not say %q", tc.in, err, tc.says)
		}
	}
	_, err := schedule.ParseBehaviour("explode")
	for _, m := range schedule.Modes {
		if !strings.Contains(err.Error(), m.Name) {
			t.Errorf("unknown-mode error %q does not list %q", err, m.Name)
		}
	}
	if names := schedule.ModeNames(); !strings.Contains(err.Error(), names) {
		t.Errorf("unknown-mode error %q does not list ModeNames() %q", err, names)
	}
}

func TestBounded(t *testing.T) {
	for in, want := range map[string]bool{
		"exit-75":                   false,
		"exit-now:75":               false,
		"exit-now:0":                true,
		"exit-now:1":                true,
		"exit-now:74":               true,
		"exit-now:76":               true,
		"exit-0-without-completing": true,
		"open-board-then-exit:1":    true,
		"heartbeat-then-crash":      true,
		"complete":                  true,
		"hang":                      true,
	} {
		b, err := schedule.ParseBehaviour(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.Bounded(); got != want {
			t.Errorf("%s: Bounded() = %v, want %v", in, got, want)
		}
	}
}

// Every mode that exits 75 is classified rate_limited by the dispatcher and
// never counts toward the breaker, so none of them is bounded.
func TestBoundedEveryRateLimitedExit(t *testing.T) {
	for _, in := range []string{"open-board-then-exit:75", "heartbeat-then-crash:75"} {
		b, err := schedule.ParseBehaviour(in)
		if err != nil {
			t.Fatal(err)
		}
		if b.Bounded() {
			t.Errorf("%s: Bounded() = true, but its exit 75 never counts toward the breaker", in)
		}
	}
}

func validSchedule() schedule.Schedule {
	return schedule.Schedule{
		Scenario:            "unit",
		Seed:                42,
		Variant:             "fixed",
		Knobs:               map[string]string{"atomic_failure": "true"},
		Dispatchers:         2,
		DispatcherOffsetsMs: []int{0, 250},
		TimeScale:           0.01,
		TickMs:              100,
		DurationMs:          5000,
		QuietMs:             1000,
		FailureLimit:        3,
		MaxSpawn:            4,
		Profiles: []schedule.Profile{
			{Name: "crasher", Worker: schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 1, DelayMs: 50}},
			{Name: "done_1", Worker: schedule.Behaviour{Mode: schedule.ModeComplete}},
			{Name: "ghost", Worker: schedule.Behaviour{Mode: schedule.ModeHang}, Unregistered: true},
		},
		Tasks: []schedule.Task{
			{ID: "t_0000abcd", Title: "a", Assignee: "crasher", Priority: 2, MaxRetries: 5},
			{ID: "t_deadbeef", Title: "b", Assignee: "done_1"},
			{ID: "t_01234567", Title: "c", Assignee: "ghost"},
		},
	}
}

func TestValidate(t *testing.T) {
	if err := validSchedule().Validate(); err != nil {
		t.Fatalf("valid schedule: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(s *schedule.Schedule)
		ok     bool
		says   string
	}{
		{"no offsets", func(s *schedule.Schedule) { s.DispatcherOffsetsMs = nil }, true, ""},
		{"time_scale 1", func(s *schedule.Schedule) { s.TimeScale = 1 }, true, ""},
		{"64 dispatchers", func(s *schedule.Schedule) { s.Dispatchers, s.DispatcherOffsetsMs = 64, nil }, true, ""},
		{"no profiles used by nobody", func(s *schedule.Schedule) {
			s.Profiles = s.Profiles[:2]
			s.Tasks = s.Tasks[:2]
		}, true, ""},

		{"dispatchers 0", func(s *schedule.Schedule) { s.Dispatchers, s.DispatcherOffsetsMs = 0, nil }, false, "dispatchers"},
		{"dispatchers 65", func(s *schedule.Schedule) { s.Dispatchers, s.DispatcherOffsetsMs = 65, nil }, false, "dispatchers"},
		{"offsets too short", func(s *schedule.Schedule) { s.DispatcherOffsetsMs = []int{0} }, false, "offsets"},
		{"offsets too long", func(s *schedule.Schedule) { s.DispatcherOffsetsMs = []int{0, 1, 2} }, false, "offsets"},
		{"time_scale 0", func(s *schedule.Schedule) { s.TimeScale = 0 }, false, "time_scale"},
		{"time_scale negative", func(s *schedule.Schedule) { s.TimeScale = -0.5 }, false, "time_scale"},
		{"time_scale > 1", func(s *schedule.Schedule) { s.TimeScale = 1.01 }, false, "time_scale"},
		{"tick_ms negative", func(s *schedule.Schedule) { s.TickMs = -1 }, false, "tick_ms"},
		{"duration 0", func(s *schedule.Schedule) { s.DurationMs = 0 }, false, "duration_ms"},
		{"quiet negative", func(s *schedule.Schedule) { s.QuietMs = -1 }, false, "quiet_ms"},
		{"failure_limit negative", func(s *schedule.Schedule) { s.FailureLimit = -1 }, false, "failure_limit"},
		{"max_spawn negative", func(s *schedule.Schedule) { s.MaxSpawn = -1 }, false, "max_spawn"},
		{"no tasks", func(s *schedule.Schedule) { s.Tasks = nil }, false, "no tasks"},
		{"bad profile name", func(s *schedule.Schedule) { s.Profiles[0].Name = "Crasher!" }, false, "profile name"},
		{"bad worker mode", func(s *schedule.Schedule) { s.Profiles[1].Worker = schedule.Behaviour{Mode: "explode"} }, false, "done_1"},
		{"bad worker exit", func(s *schedule.Schedule) { s.Profiles[0].Worker.Exit = 256 }, false, "crasher"},
		{"bad task id", func(s *schedule.Schedule) { s.Tasks[0].ID = "t_123" }, false, "task id"},
		{"uppercase task id", func(s *schedule.Schedule) { s.Tasks[0].ID = "t_DEADBEEF" }, false, "task id"},
		{"non-hex task id", func(s *schedule.Schedule) { s.Tasks[0].ID = "t_0000abcg" }, false, "task id"},
		{"duplicate task id", func(s *schedule.Schedule) { s.Tasks[2].ID = s.Tasks[0].ID }, false, "twice"},
		{"assignee without profile", func(s *schedule.Schedule) { s.Tasks[1].Assignee = "nobody" }, false, "nobody"},
		{"negative max_retries", func(s *schedule.Schedule) { s.Tasks[0].MaxRetries = -1 }, false, "max_retries"},
		{"max_runtime_s 1800", func(s *schedule.Schedule) { s.Tasks[0].MaxRuntimeS = 1800 }, true, ""},
		{"negative max_runtime_s", func(s *schedule.Schedule) { s.Tasks[0].MaxRuntimeS = -1 }, false, "max_runtime_s"},
		{"max_runtime_s 2^62", func(s *schedule.Schedule) { s.Tasks[0].MaxRuntimeS = 1 << 62 }, false, "max_runtime_s"},
		// Crafted times that overflowed into 0 s phases or busy loops.
		{"time_scale NaN", func(s *schedule.Schedule) { s.TimeScale = math.NaN() }, false, "time_scale"},
		{"duration 2^62", func(s *schedule.Schedule) { s.DurationMs = 1 << 62 }, false, "duration_ms"},
		{"quiet 2^62", func(s *schedule.Schedule) { s.QuietMs = 1 << 62 }, false, "quiet_ms"},
		{"tick 2^62", func(s *schedule.Schedule) { s.TickMs = 1 << 62 }, false, "tick_ms"},
		{"offset 1e9 ms", func(s *schedule.Schedule) { s.DispatcherOffsetsMs[1] = 1e9 }, false, "offsets"},
		{"a day's run", func(s *schedule.Schedule) { s.DurationMs = 24 * 3600 * 1000 }, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := validSchedule()
			tc.mutate(&s)
			err := s.Validate()
			switch {
			case tc.ok && err != nil:
				t.Errorf("Validate: %v", err)
			case !tc.ok && err == nil:
				t.Errorf("Validate accepted %+v", s)
			case !tc.ok && !strings.Contains(err.Error(), tc.says):
				t.Errorf("Validate error %q does not mention %q", err, tc.says)
			}
		})
	}
}

func TestWriteReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	for name, s := range map[string]schedule.Schedule{
		"full": validSchedule(),
		"minimal": func() schedule.Schedule {
			s := validSchedule()
			s.Knobs, s.DispatcherOffsetsMs, s.TickMs, s.FailureLimit, s.MaxSpawn = nil, nil, 0, 0, 0
			return s
		}(),
	} {
		path := filepath.Join(dir, name+".json")
		if err := s.Write(path); err != nil {
			t.Fatal(err)
		}
		got, err := schedule.Read(path)
		if err != nil {
			t.Fatalf("%s: Read: %v", name, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Errorf("%s: round trip\n got %+v\nwant %+v", name, got, s)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(string(data), "}\n") || !strings.Contains(string(data), "\n  \"dispatchers\": ") {
			t.Errorf("%s: not indented JSON with a final newline:\n%s", name, data)
		}
	}
}

func TestReadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := schedule.Read(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("Read of a missing file succeeded")
	}
	garbage := filepath.Join(dir, "garbage.json")
	if err := os.WriteFile(garbage, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := schedule.Read(garbage); err == nil || !strings.Contains(err.Error(), "is not a schedule") {
		t.Errorf("Read(garbage) = %v", err)
	}
	// A well-formed but invalid schedule is rejected by Validate.
	bad := validSchedule()
	bad.Dispatchers = 0
	data, err := json.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	invalid := filepath.Join(dir, "invalid.json")
	if err := os.WriteFile(invalid, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := schedule.Read(invalid); err == nil || !strings.Contains(err.Error(), "dispatchers") {
		t.Errorf("Read(invalid) = %v, want the Validate error", err)
	}
}

func TestEffectiveLimit(t *testing.T) {
	for _, tc := range []struct {
		maxRetries, configured int
		limit                  int
		source                 string
	}{
		{4, 3, 4, "task max_retries"},
		{1, 0, 1, "task max_retries"},
		{0, 3, 3, "configured failure_limit"},
		{0, 0, schedule.DefaultFailureLimit, "default"},
	} {
		s := schedule.Schedule{FailureLimit: tc.configured}
		limit, source := s.EffectiveLimit(schedule.Task{MaxRetries: tc.maxRetries})
		if limit != tc.limit || source != tc.source {
			t.Errorf("EffectiveLimit(max_retries %d, configured %d) = %d, %q; want %d, %q",
				tc.maxRetries, tc.configured, limit, source, tc.limit, tc.source)
		}
	}
	if schedule.DefaultFailureLimit != 2 {
		t.Errorf("DefaultFailureLimit = %d, want Hermes' 2", schedule.DefaultFailureLimit)
	}
}

// The oracle's limit and the board's limit must agree.
func TestEffectiveLimitMatchesBoard(t *testing.T) {
	if schedule.DefaultFailureLimit != kanban.DefaultFailureLimit {
		t.Fatalf("schedule.DefaultFailureLimit %d != kanban.DefaultFailureLimit %d", schedule.DefaultFailureLimit, kanban.DefaultFailureLimit)
	}
	for maxRetries := range 4 {
		for configured := range 4 {
			s := schedule.Schedule{FailureLimit: configured}
			got, _ := s.EffectiveLimit(schedule.Task{MaxRetries: maxRetries})
			if want := kanban.EffectiveLimit(maxRetries, configured); got != want {
				t.Errorf("max_retries %d, configured %d: schedule %d, kanban %d", maxRetries, configured, got, want)
			}
		}
	}
}

func TestProfileLookup(t *testing.T) {
	s := validSchedule()
	p, ok := s.Profile("done_1")
	if !ok || p.Name != "done_1" || p.Worker.Mode != schedule.ModeComplete {
		t.Errorf("Profile(done_1) = %+v, %v", p, ok)
	}
	if p, ok := s.Profile("nobody"); ok {
		t.Errorf("Profile(nobody) = %+v, true", p)
	}
}

func TestFixedCodeModesRejectArgument(t *testing.T) {
	for _, in := range []string{"exit-75:3", "exit-0-without-completing:1"} {
		if b, err := schedule.ParseBehaviour(in); err == nil {
			t.Errorf("ParseBehaviour(%q) = %+v, want a 'takes no argument' error", in, b)
		}
	}
}

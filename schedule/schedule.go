// Package schedule defines the one value that describes a run completely:
// dispatchers, tick timing, tasks with the behaviour of their workers, limits,
// variant and knobs. Scenarios produce schedules, the harness executes them,
// and a schedule written as JSON replays the run.
package schedule

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
)

// Profile is a Hermes profile (an assignee) and what its workers do.
type Profile struct {
	Name   string    `json:"name"`
	Worker Behaviour `json:"worker"`
	// Unregistered profiles get no <home>/profiles/<name> directory, so the
	// dispatcher's profile_exists check fails for them.
	Unregistered bool `json:"unregistered,omitempty"`
}

// Task is one card seeded on the board before dispatch starts.
type Task struct {
	ID         string `json:"id"`
	Title      string `json:"title"`
	Assignee   string `json:"assignee"`
	Priority   int    `json:"priority,omitempty"`
	MaxRetries int    `json:"max_retries,omitempty"` // 0 = unset (NULL)
	// MaxRuntimeS is Hermes' per-task max_runtime_seconds before time
	// scaling (0 = none): enforce_max_runtime times the worker out after it.
	MaxRuntimeS int `json:"max_runtime_s,omitempty"`
}

// Schedule is everything one run needs.
type Schedule struct {
	Scenario    string            `json:"scenario"`
	Seed        uint64            `json:"seed"`
	Variant     string            `json:"variant"`
	Knobs       map[string]string `json:"knobs,omitempty"`
	Dispatchers int               `json:"dispatchers"`
	// DispatcherOffsetsMs delays the first tick of dispatcher i, so several
	// dispatchers do not tick in lock step (one per dispatcher).
	DispatcherOffsetsMs []int `json:"dispatcher_offsets_ms"`
	// TimeScale multiplies every Hermes interval (60 s tick, 30 s crash
	// grace, 900 s claim TTL, backoff …).
	TimeScale float64 `json:"time_scale"`
	// TickMs overrides the scaled 60 s tick when > 0.
	TickMs int `json:"tick_ms,omitempty"`
	// CrashGraceMs and CooldownMs, when set, replace the scaled 30 s crash
	// grace and 300 s rate-limit cooldown; 0 is a value (no grace, no
	// cooldown), as in Hermes' own tests (spec §8).
	CrashGraceMs *int      `json:"crash_grace_ms,omitempty"`
	CooldownMs   *int      `json:"rate_limit_cooldown_ms,omitempty"`
	DurationMs   int       `json:"duration_ms"`             // dispatch phase
	QuietMs      int       `json:"quiet_ms"`                // settle phase: dispatchers still tick, the system must hold still
	FailureLimit int       `json:"failure_limit,omitempty"` // configured kanban.failure_limit; 0 = unset
	MaxSpawn     int       `json:"max_spawn,omitempty"`     // 0 = no cap (Hermes' default config)
	Profiles     []Profile `json:"profiles"`
	Tasks        []Task    `json:"tasks"`
	// Faults are injected by the harness at their times, from outside every
	// SQLite connection (unlink, truncate, rename by path; copies by a
	// separate process), as an operator, a cleanup script or a backup job
	// would.
	Faults []Fault `json:"faults,omitempty"`
	// Engine is the SQLite the dispatchers and workers run on: "3.54"
	// (modernc.org/sqlite v1.62.0, the default) or "3.50" (v1.39.1, the
	// SQLite 3.50.4 Hermes' bundled Python ships). "" means "3.54".
	Engine string `json:"engine,omitempty"`
	// Expect names invariants the run opts into beyond those every run is
	// checked against (oracle names, e.g. "one-writer-per-tick").
	Expect []string `json:"expect,omitempty"`
	// Subject is the dispatcher under test; the zero value is the
	// reference dispatcher of Variant and Knobs. Kept here so a replay of
	// the schedule tests what the run tested.
	Subject Subject `json:"subject,omitzero"`
}

// Subject names the dispatcher a run tests.
type Subject struct {
	// Hermes, when set, is a real Hermes Agent release (a version installed
	// by `kanbanchaos hermes install`) or a source checkout's path: its own
	// dispatch loop runs in one long-running process per schedule
	// dispatcher, as a gateway's does, through the driver in hermes/.
	Hermes string `json:"hermes,omitempty"`
	// Exec, when set, is a shell command that dispatches the prepared board
	// (e.g. `kanbanchaos dispatch --variant fixed`). It runs with
	// HERMES_KANBAN_HOME, HERMES_BIN and the ledger/config variables set,
	// once per schedule dispatcher.
	Exec string `json:"exec,omitempty"`
	// OneShot says Exec dispatches once and exits (`dispatch --once`,
	// `hermes kanban dispatch`): it is then re-run every tick. Otherwise it
	// is long-running, started once and stopped at the end.
	OneShot bool `json:"one_shot,omitempty"`
	// Workers is what HERMES_BIN starts: "" or "go" (our Go fake worker),
	// or "hermes" (a worker that plays the same behaviour through the
	// Hermes release's own kanban tools; needs Hermes).
	Workers string `json:"workers,omitempty"`
	// PythonSQLite is the libsqlite3 the Hermes side's Python loads: ""
	// (the system's) or a SQLite version built into the cache; needs Hermes.
	PythonSQLite string `json:"python_sqlite,omitempty"`
}

// Validate checks that the subject's parts fit together.
func (s Subject) Validate() error {
	switch {
	case s.Workers != "" && s.Workers != "go" && s.Workers != "hermes":
		return fmt.Errorf("workers %q: want go or hermes", s.Workers)
	case s.Workers == "hermes" && s.Hermes == "":
		return fmt.Errorf("--workers hermes needs a hermes: subject: the workers run the release's own kanban code, " +
			"in its install (the reference dispatcher and an exec: subject have no Hermes to take it from)")
	case s.PythonSQLite != "" && s.PythonSQLite != "system" && s.Hermes == "":
		return fmt.Errorf("--python-sqlite %s needs a hermes: subject: only a Hermes release's Python loads libsqlite3 "+
			"(the reference dispatcher and the Go workers use --sqlite)", s.PythonSQLite)
	}
	return nil
}

// String is how a subject is named in output and on the command line:
// "hermes:VERSION", "exec:CMD" or "reference" (the in-process variant).
func (s Subject) String() string {
	switch {
	case s.Hermes != "":
		return "hermes:" + s.Hermes
	case s.Exec != "":
		return "exec:" + s.Exec
	}
	return "reference"
}

// External reports whether the subject runs in processes of its own (with
// its own SQLite), not in the harness's process.
func (s Subject) External() bool { return s.Hermes != "" || s.Exec != "" }

// Fault kinds the harness can inject.
const (
	FaultDeleteWAL      = "delete-wal"         // unlink kanban.db-wal
	FaultDeleteSHM      = "delete-shm"         // unlink kanban.db-shm
	FaultDeleteSidecars = "delete-sidecars"    // unlink both: "clean stale files" on restart
	FaultTruncateWAL    = "truncate-wal"       // truncate kanban.db-wal to 0: "reset a huge WAL" by hand
	FaultDeleteJournal  = "delete-hot-journal" // unlink kanban.db-journal (rollback mode) after a crash
	FaultNaiveCopy      = "naive-copy"         // cp kanban.db then -wal to a backup while writers run
	FaultSwap           = "swap"               // rename the board and its sidecars aside, create an empty file in its place
	// FaultPowerLoss freezes the disk as a power cut would: the board lives
	// on a loop-mounted ext4 image, and the image is copied without syncing
	// (root and loop devices only).
	FaultPowerLoss = "powerloss"
)

// FaultKinds lists the fault kinds with what each does.
var FaultKinds = []struct{ Name, Doc string }{
	{FaultDeleteWAL, "unlink kanban.db-wal while connections are open"},
	{FaultDeleteSHM, "unlink kanban.db-shm while connections are open"},
	{FaultDeleteSidecars, "unlink -wal and -shm (a 'clean stale files' step on restart)"},
	{FaultTruncateWAL, "truncate -wal to 0 bytes (resetting a huge WAL by hand)"},
	{FaultDeleteJournal, "unlink a hot rollback journal (a cleanup step after a crash)"},
	{FaultNaiveCopy, "copy kanban.db, then its -wal, with cp while writers run (a naive backup)"},
	{FaultSwap, "rename the board and sidecars aside and put an empty file in its place (an operator swap)"},
	{FaultPowerLoss, "cut the power: copy the loop-mounted ext4 image under the board without syncing, check the copy (root + loop only)"},
}

// Fault is one injection at a time after the run's start.
type Fault struct {
	AtMs int    `json:"at_ms"`
	Kind string `json:"kind"`
}

// Engines are the SQLite engines a schedule can name, with the exact
// SQLite version each one links.
var Engines = map[string]string{"3.54": "3.54.1", "3.50": "3.50.4"}

// EngineOrDefault is s.Engine with "" read as "3.54".
func (s Schedule) EngineOrDefault() string {
	if s.Engine == "" {
		return "3.54"
	}
	return s.Engine
}

// DefaultFailureLimit is Hermes' DEFAULT_FAILURE_LIMIT.
const DefaultFailureLimit = 2

// EffectiveLimit is the breaker limit Hermes' _record_task_failure applies to
// a task: max_retries, else the configured failure_limit, else 2. It is the
// limit the user asked for, which is what the oracle holds every variant to.
func (s Schedule) EffectiveLimit(t Task) (limit int, source string) {
	switch {
	case t.MaxRetries > 0:
		return t.MaxRetries, "task max_retries"
	case s.FailureLimit > 0:
		return s.FailureLimit, "configured failure_limit"
	default:
		return DefaultFailureLimit, "default"
	}
}

// Profile returns the named profile.
func (s Schedule) Profile(name string) (Profile, bool) {
	i := slices.IndexFunc(s.Profiles, func(p Profile) bool { return p.Name == name })
	if i < 0 {
		return Profile{}, false
	}
	return s.Profiles[i], true
}

var (
	taskID      = regexp.MustCompile(`^t_[0-9a-f]{8}$`)
	profileName = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)
)

// Bounds on a schedule's times: far beyond any real run, and far below
// what would overflow a time.Duration in milliseconds (2^63 ns ≈ 292 years).
const (
	maxPhaseMs = 24 * 3600 * 1000 // a day
	maxTickMs  = 3600 * 1000      // an hour
	// maxCount bounds limits, retries, spawn caps and a worker's writes:
	// far beyond any real board, far below a loop that never ends.
	maxCount = 1_000_000
)

// Validate reports the first thing that makes s impossible to run.
func (s Schedule) Validate() error {
	switch {
	case s.Dispatchers < 1 || s.Dispatchers > 64:
		return fmt.Errorf("schedule: dispatchers = %d, want 1..64", s.Dispatchers)
	case len(s.DispatcherOffsetsMs) != 0 && len(s.DispatcherOffsetsMs) != s.Dispatchers:
		return fmt.Errorf("schedule: %d dispatcher offsets for %d dispatchers", len(s.DispatcherOffsetsMs), s.Dispatchers)
	case !(s.TimeScale > 0 && s.TimeScale <= 1): // NaN fails both comparisons
		return fmt.Errorf("schedule: time_scale = %g, want 0 < x <= 1", s.TimeScale)
	case s.TickMs < 0 || s.TickMs > maxTickMs:
		return fmt.Errorf("schedule: tick_ms = %d, want 0..%d", s.TickMs, maxTickMs)
	case s.DurationMs > maxPhaseMs || s.QuietMs > maxPhaseMs:
		return fmt.Errorf("schedule: duration_ms %d and quiet_ms %d must each be at most %d (a day)", s.DurationMs, s.QuietMs, maxPhaseMs)
	case slices.ContainsFunc(s.DispatcherOffsetsMs, func(o int) bool { return o < 0 || o > maxTickMs }):
		return fmt.Errorf("schedule: dispatcher offsets %v must each be 0..%d ms", s.DispatcherOffsetsMs, maxTickMs)
	case s.CrashGraceMs != nil && *s.CrashGraceMs > maxPhaseMs, s.CooldownMs != nil && *s.CooldownMs > maxPhaseMs:
		return fmt.Errorf("schedule: crash_grace_ms and rate_limit_cooldown_ms must be at most %d (a day)", maxPhaseMs)
	case s.CrashGraceMs != nil && *s.CrashGraceMs < 0, s.CooldownMs != nil && *s.CooldownMs < 0:
		return fmt.Errorf("schedule: crash_grace_ms and rate_limit_cooldown_ms must not be negative")
	case s.DurationMs <= 0:
		return fmt.Errorf("schedule: duration_ms = %d, want > 0", s.DurationMs)
	case s.QuietMs < 0:
		return fmt.Errorf("schedule: quiet_ms = %d, want >= 0", s.QuietMs)
	case s.FailureLimit < 0 || s.MaxSpawn < 0:
		return fmt.Errorf("schedule: failure_limit and max_spawn must be >= 0")
	case s.FailureLimit > maxCount || s.MaxSpawn > maxCount:
		return fmt.Errorf("schedule: failure_limit %d and max_spawn %d must each be at most %d", s.FailureLimit, s.MaxSpawn, maxCount)
	case len(s.Tasks) == 0:
		return fmt.Errorf("schedule: no tasks")
	}
	if err := s.Subject.Validate(); err != nil {
		return fmt.Errorf("schedule: %w", err)
	}
	for _, f := range s.Faults {
		if !slices.ContainsFunc(FaultKinds, func(k struct{ Name, Doc string }) bool { return k.Name == f.Kind }) {
			return fmt.Errorf("schedule: unknown fault %q", f.Kind)
		}
		if f.AtMs < 0 || f.AtMs > s.DurationMs {
			return fmt.Errorf("schedule: fault %s at %d ms is outside the dispatch phase (0..%d ms)", f.Kind, f.AtMs, s.DurationMs)
		}
	}
	if _, ok := Engines[s.EngineOrDefault()]; !ok {
		return fmt.Errorf("schedule: engine %q is not one of 3.54, 3.50", s.Engine)
	}
	seen := map[string]bool{}
	for _, p := range s.Profiles {
		if !profileName.MatchString(p.Name) {
			return fmt.Errorf("schedule: profile name %q is not a valid Hermes profile name", p.Name)
		}
		if _, err := ParseBehaviour(p.Worker.String()); err != nil {
			return fmt.Errorf("schedule: profile %s: %w", p.Name, err)
		}
		if p.Worker.DelayMs < 0 || p.Worker.DelayMs > maxPhaseMs {
			return fmt.Errorf("schedule: profile %s: delay_ms %d, want 0..%d", p.Name, p.Worker.DelayMs, maxPhaseMs)
		}
		if p.Worker.Writes < 0 || p.Worker.Writes > maxCount {
			return fmt.Errorf("schedule: profile %s: writes %d, want 0..%d", p.Name, p.Worker.Writes, maxCount)
		}
	}
	for _, t := range s.Tasks {
		if !taskID.MatchString(t.ID) {
			return fmt.Errorf("schedule: task id %q is not of the form t_ + 8 hex digits", t.ID)
		}
		if seen[t.ID] {
			return fmt.Errorf("schedule: task id %s appears twice", t.ID)
		}
		seen[t.ID] = true
		if _, ok := s.Profile(t.Assignee); !ok {
			return fmt.Errorf("schedule: task %s: assignee %q has no profile in the schedule", t.ID, t.Assignee)
		}
		if t.MaxRetries < 0 || t.MaxRetries > maxCount {
			return fmt.Errorf("schedule: task %s: max_retries %d, want 0..%d", t.ID, t.MaxRetries, maxCount)
		}
		if t.MaxRuntimeS < 0 || t.MaxRuntimeS > maxPhaseMs/1000 {
			return fmt.Errorf("schedule: task %s: max_runtime_s %d is not 0..%d", t.ID, t.MaxRuntimeS, maxPhaseMs/1000)
		}
	}
	return nil
}

// Write stores s as indented JSON.
func (s Schedule) Write(path string) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("schedule: encode: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("schedule: write %s: %w", path, err)
	}
	return nil
}

// Read loads and validates a schedule written by Write.
func Read(path string) (Schedule, error) {
	var s Schedule
	data, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("schedule: %w", err)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, fmt.Errorf("schedule: %s is not a schedule: %w", path, err)
	}
	return s, s.Validate()
}

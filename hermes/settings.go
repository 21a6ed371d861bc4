package hermes

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

//go:embed driver.py
var driverSource []byte

// recordSource is the recording module driver.py and worker.py share; it
// is written beside them as kanbanchaos_record.py.
//
//go:embed record.py
var recordSource []byte

const recordModule = "kanbanchaos_record.py"

// Seconds are Hermes' time settings as the release can take them: its
// HERMES_KANBAN_*_SECONDS variables are read with int(), and a value int()
// refuses ("0.03") silently becomes the default (30 s, 900 s, 300 s). So a
// run never hands it a fraction: each setting is rounded to whole seconds,
// and every rounding is said in Notes.
type Seconds struct {
	CrashGrace int `json:"crash_grace_s"`
	ClaimTTL   int `json:"claim_ttl_s"`
	Cooldown   int `json:"rate_limit_cooldown_s"`
	// Notes say what was rounded, and why, for the run's header.
	Notes []string `json:"notes,omitempty"`
}

// WholeSeconds rounds the scaled timings to what Hermes accepts: crash
// grace to the nearest second (0 is allowed: no grace), the claim TTL to at
// least 1 s (0 would expire every claim at once), the cooldown to the
// nearest second but never from a positive value below 2 s (0 means no
// cooldown at all, a different dispatcher; 1 s is below the resolution of
// Hermes' whole-second clock).
func WholeSeconds(grace, ttl, cooldown time.Duration) Seconds {
	var s Seconds
	round := func(name string, d time.Duration, min int) int {
		n := int(math.Round(d.Seconds()))
		if (d > 0 || name == "claim TTL") && n < min {
			n = min
		}
		if time.Duration(n)*time.Second != d {
			s.Notes = append(s.Notes, fmt.Sprintf("%s %v → %d s", name, d, n))
		}
		return n
	}
	s.CrashGrace = round("crash grace", grace, 0)
	s.ClaimTTL = round("claim TTL", ttl, 1)
	// Hermes stamps times in whole seconds, so a 1 s cooldown can end a few
	// ms after it began: a positive cooldown is at least 2 s, long enough
	// for a respawn inside it to be told from one after it.
	s.Cooldown = round("rate-limit cooldown", cooldown, 2)
	return s
}

// Env is the HERMES_KANBAN_* variables for these settings: names every
// release that has them reads (older ones ignore them; the driver reports
// what the release resolved).
func (s Seconds) Env() []string {
	return []string{
		"HERMES_KANBAN_CRASH_GRACE_SECONDS=" + strconv.Itoa(s.CrashGrace),
		"HERMES_KANBAN_CLAIM_TTL_SECONDS=" + strconv.Itoa(s.ClaimTTL),
		"HERMES_KANBAN_RATE_LIMIT_COOLDOWN_SECONDS=" + strconv.Itoa(s.Cooldown),
	}
}

// Gateway is what a gateway reads from the profile's config.yaml for its
// embedded dispatcher (the kanban: section).
type Gateway struct {
	FailureLimit int // kanban.failure_limit; 0 = unset (Hermes' default, 2)
	MaxSpawn     int // kanban.max_spawn; 0 = unset (no cap)
	Tick         time.Duration
}

// WriteConfig writes home/config.yaml with the kanban section a gateway
// reads. dispatch_interval_seconds is what a gateway would use (it floors
// the interval at 1 s); the driver ticks at g.Tick itself.
func WriteConfig(home string, g Gateway) error {
	var b strings.Builder
	b.WriteString("# Written by kanbanchaos for one run: what a Hermes gateway reads.\nkanban:\n  dispatch_in_gateway: true\n")
	fmt.Fprintf(&b, "  dispatch_interval_seconds: %d\n", max(1, int(math.Ceil(g.Tick.Seconds()))))
	if g.FailureLimit > 0 {
		fmt.Fprintf(&b, "  failure_limit: %d\n", g.FailureLimit)
	}
	if g.MaxSpawn > 0 {
		fmt.Fprintf(&b, "  max_spawn: %d\n", g.MaxSpawn)
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		return fmt.Errorf("hermes: config: %w", err)
	}
	return os.WriteFile(filepath.Join(home, "config.yaml"), []byte(b.String()), 0o644)
}

// Driver is what one driver process is told (its SETTINGS.json).
type Driver struct {
	Name   string  `json:"name"`   // the dispatcher's name in the ledger ("d1")
	Ledger string  `json:"ledger"` // the run's ledger
	TickS  float64 `json:"tick_s"` // the driver's own tick
	// TTL, when > 0, is passed as dispatch_once(ttl_seconds=) to releases
	// that take it: the only way to give a release without
	// HERMES_KANBAN_CLAIM_TTL_SECONDS a claim TTL.
	TTL int `json:"ttl_seconds,omitempty"`
	// LosePID spawns through the release's own _default_spawn but returns
	// no pid (knob lose_pid, #35202).
	LosePID bool `json:"lose_pid,omitempty"`
	// Go, when set, is a file the driver waits for after importing the
	// release and reporting its settings, before its first tick: the
	// harness creates it once every driver is up, so a run's clock starts
	// when the release can tick, not while Python is still importing it
	// (seconds on a loaded machine).
	Go string `json:"go,omitempty"`
	// OffsetS delays the first tick after Go appears (the dispatcher's
	// offset: several gateways never tick in lock step).
	OffsetS float64 `json:"offset_s,omitempty"`
	// Resolvers: for each effective setting, the release functions that
	// resolve it (the first that exists is asked; names moved between
	// releases).
	Resolvers map[string][]string `json:"resolvers"`
}

// Resolvers are the functions releases resolve their env settings with.
var Resolvers = map[string][]string{
	"crash_grace_s":         {"_crash_grace_seconds", "_resolve_crash_grace_seconds"},
	"claim_ttl_s":           {"_claim_ttl_seconds", "_resolve_claim_ttl_seconds"},
	"rate_limit_cooldown_s": {"_rate_limit_cooldown_seconds", "_resolve_rate_limit_cooldown_seconds"},
	"busy_timeout_ms":       {"_busy_timeout_ms", "_resolve_busy_timeout_ms"},
}

// WriteDriver writes driver.py and the driver's settings into dir and
// returns the two paths.
func WriteDriver(dir string, d Driver) (script, settings string, err error) {
	script = filepath.Join(dir, "hermes_driver.py")
	if err := writeAtomic(script, driverSource); err != nil {
		return "", "", fmt.Errorf("hermes: driver: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, recordModule), recordSource); err != nil {
		return "", "", fmt.Errorf("hermes: driver: %w", err)
	}
	if d.Resolvers == nil {
		d.Resolvers = Resolvers
	}
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return "", "", fmt.Errorf("hermes: driver settings: %w", err)
	}
	settings = filepath.Join(dir, "hermes-"+d.Name+".json")
	if err := os.WriteFile(settings, data, 0o644); err != nil {
		return "", "", fmt.Errorf("hermes: driver settings: %w", err)
	}
	return script, settings, nil
}

// Reported is what a driver wrote in its settings ledger entry: what the
// release resolved its settings to.
type Reported struct {
	Release      string   `json:"release"`
	Python       string   `json:"python"`
	SQLite       string   `json:"sqlite"`
	FailureLimit int      `json:"failure_limit"`
	MaxSpawn     *int     `json:"max_spawn"`
	TickS        float64  `json:"tick_s"`
	Params       []string `json:"dispatch_once_params"`
	// Kwargs are the arguments every tick passes to dispatch_once: what
	// this release's gateway would pass, from config.yaml.
	Kwargs   map[string]any     `json:"dispatch_once_kwargs"`
	Env      map[string]string  `json:"env"`
	Resolved map[string]float64 `json:"resolved"`
	// ReadsEnv are the HERMES_KANBAN_* variables the release's kanban
	// modules mention at all: one it never mentions is a setting it lacks.
	ReadsEnv []string `json:"reads_env"`
	// ClaimTTLVia says how a release without the env setting got its
	// claim TTL ("dispatch_once(ttl_seconds=)"), if it did.
	ClaimTTLVia string `json:"claim_ttl_via,omitempty"`
}

// ParseReported reads a settings entry's message.
func ParseReported(msg string) (Reported, error) {
	var r Reported
	if err := json.Unmarshal([]byte(msg), &r); err != nil {
		return r, fmt.Errorf("hermes: driver settings entry: %w", err)
	}
	return r, nil
}

// writeAtomic replaces path with data by a rename: each driver instance
// writes the shared scripts again while the instances started before it
// are reading them, and a truncate-and-write let one read an empty
// driver.py — a Python that ran nothing and exited 0 (20 of 695 runs of
// the corruption bench had a driver that "never started the release").
func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}

package subject

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Settings are what the dispatcher under test ran with: the schedule's
// timing as the subject can take it (an external subject gets whole
// seconds), the gateway settings, and what a real Hermes reported it
// resolved them to. They go on the run's header and into verdict.json, and
// the oracle judges the cooldown by them.
type Settings struct {
	Subject      string  `json:"subject"`
	TickMs       float64 `json:"tick_ms"`
	CrashGraceS  float64 `json:"crash_grace_s"`
	ClaimTTLS    float64 `json:"claim_ttl_s"`
	CooldownS    float64 `json:"rate_limit_cooldown_s"`
	FailureLimit int     `json:"failure_limit"`       // the effective configured limit (Hermes' default 2 when unset)
	MaxSpawn     int     `json:"max_spawn,omitempty"` // 0: no cap
	// Notes say what was rounded or is absent in the subject, and why.
	Notes []string `json:"notes,omitempty"`
	// Reported is each Hermes driver's own report (the settings ledger
	// entry): the release, its Python and SQLite, what it resolved.
	Reported []hermes.Reported `json:"reported,omitempty"`
	// Workers is what HERMES_BIN started: "go" (our Go fake worker) or
	// "hermes" (the release's own kanban tools, worker.py).
	Workers string `json:"workers,omitempty"`
	// WorkerSQLite are the SQLite versions the Hermes workers' Python
	// loaded (from their start lines).
	WorkerSQLite []string `json:"worker_sqlite,omitempty"`
}

// baseSettings are the schedule's settings as they are: what the
// reference dispatcher takes, to the millisecond.
func baseSettings(sub schedule.Subject, s schedule.Schedule, timing dispatcher.Timing) Settings {
	st := Settings{Subject: sub.String(), TickMs: ms(timing.Tick), FailureLimit: s.FailureLimit, MaxSpawn: s.MaxSpawn,
		CrashGraceS: timing.CrashGrace.Seconds(), ClaimTTLS: timing.ClaimTTL.Seconds(), CooldownS: timing.RateLimitCooldown.Seconds()}
	if st.FailureLimit == 0 {
		st.FailureLimit = schedule.DefaultFailureLimit
	}
	return st
}

// externalSettings are the settings as an external subject gets them: the
// times in whole seconds, each rounding noted.
func externalSettings(sub schedule.Subject, s schedule.Schedule, timing dispatcher.Timing) Settings {
	st := baseSettings(sub, s, timing)
	secs := wholeSeconds(timing)
	st.CrashGraceS, st.ClaimTTLS, st.CooldownS = float64(secs.CrashGrace), float64(secs.ClaimTTL), float64(secs.Cooldown)
	for _, n := range secs.Notes {
		st.Notes = append(st.Notes, n+" (Hermes reads whole seconds; a fraction would silently become its default)")
	}
	return st
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// Line is the settings as one header line.
func (st Settings) Line() string {
	spawn := "no max_spawn"
	if st.MaxSpawn > 0 {
		spawn = fmt.Sprintf("max_spawn %d", st.MaxSpawn)
	}
	return fmt.Sprintf("tick %gms, crash grace %gs, claim TTL %gs, rate-limit cooldown %gs, failure_limit %d, %s",
		st.TickMs, round3(st.CrashGraceS), round3(st.ClaimTTLS), round3(st.CooldownS), st.FailureLimit, spawn)
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// hermesSettingKeys maps the driver's resolved settings to ours.
var hermesSettingKeys = []struct {
	key, env, what string
	want           func(Settings) float64
}{
	{"crash_grace_s", "HERMES_KANBAN_CRASH_GRACE_SECONDS", "crash grace", func(st Settings) float64 { return st.CrashGraceS }},
	{"claim_ttl_s", "HERMES_KANBAN_CLAIM_TTL_SECONDS", "claim TTL", func(st Settings) float64 { return st.ClaimTTLS }},
	{"rate_limit_cooldown_s", "HERMES_KANBAN_RATE_LIMIT_COOLDOWN_SECONDS", "rate-limit cooldown", func(st Settings) float64 { return st.CooldownS }},
}

// verifyHermes reads what each driver reported and returns the reasons the
// run did not test what it says (settings that did not take effect, a
// driver that never started the release), and notes on settings the
// release does not have at all.
func verifyHermes(st *Settings, h ledger.History, dispatchers int) (unknowns []string) {
	seen := map[string]bool{}
	for _, e := range h.Entries {
		if e.Kind != ledger.Settings || seen[e.Who] {
			continue
		}
		seen[e.Who] = true
		r, err := hermes.ParseReported(e.Message)
		if err != nil {
			unknowns = append(unknowns, fmt.Sprintf("driver %s: %v", e.Who, err))
			continue
		}
		st.Reported = append(st.Reported, r)
		if r.FailureLimit != st.FailureLimit {
			unknowns = append(unknowns, fmt.Sprintf("driver %s: the release runs with failure_limit %d, the run asked for %d (config.yaml kanban.failure_limit)",
				e.Who, r.FailureLimit, st.FailureLimit))
		}
		for _, k := range hermesSettingKeys {
			got, ok := r.Resolved[k.key]
			if !ok {
				continue
			}
			if want := k.want(*st); got != want {
				unknowns = append(unknowns, fmt.Sprintf("driver %s: %s did not take effect: the run set %gs, hermes:%s resolved %gs",
					e.Who, k.what, want, r.Release, got))
			}
		}
	}
	if len(st.Reported) > 0 {
		r := st.Reported[0]
		if r.ClaimTTLVia != "" {
			st.Notes = append(st.Notes, fmt.Sprintf("hermes %s reads no HERMES_KANBAN_CLAIM_TTL_SECONDS: the claim TTL was passed as %s", r.Release, r.ClaimTTLVia))
		}
		for _, k := range hermesSettingKeys {
			if _, ok := r.Resolved[k.key]; !ok && !slices.Contains(r.ReadsEnv, k.env) {
				st.Notes = append(st.Notes, fmt.Sprintf("hermes %s reads no %s: it has no %s setting", r.Release, k.env, k.what))
			}
		}
	}
	for i := 1; i <= dispatchers; i++ {
		if name := fmt.Sprintf("d%d", i); !seen[name] {
			unknowns = append(unknowns, fmt.Sprintf("driver %s never started the release (see subject.log)", name))
		}
	}
	return unknowns
}

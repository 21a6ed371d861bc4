package dispatcher

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// Knobs are the independent behaviours a variant is made of. Each can be set
// alone (`--knob name=value`), so a violation can be pinned to one knob.
type Knobs struct {
	Connect kanban.Options `json:"connect"`
	// AtomicFailure commits counter += 1 (and the block at the limit) in the
	// same transaction as the crash reclaim, before any next spawn. Off: the
	// failure is recorded in a separate transaction afterwards (v0.14).
	AtomicFailure bool `json:"atomic_failure"`
	// PromoteBlocked lets recompute_ready promote blocked tasks at all
	// (v0.15+). Off: it promotes todo tasks only, so a breaker block holds
	// (v0.14.0).
	PromoteBlocked bool `json:"promote_blocked"`
	// RepromoteTripped lets recompute_ready promote breaker-tripped tasks
	// whatever their counter (v0.15.x, #30417). Off: only tasks below
	// max_retries ?? failure_limit (v0.16+, #35072). Needs PromoteBlocked.
	RepromoteTripped bool `json:"repromote_tripped"`
	// RepromoteResets resets consecutive_failures to 0 whenever
	// recompute_ready promotes a blocked task (v0.15.x): with
	// RepromoteTripped the breaker trips at 2 forever and never holds.
	RepromoteResets bool `json:"repromote_resets"`
	// CrashLimit is the limit the crash path passes: "default" (None → 2,
	// 1 for a protocol violation; every release, #63070) or "configured".
	CrashLimit string `json:"crash_limit"`
	// SystemicLimit trips at once (limit 1) every crash of a sweep in which
	// ≥3 crashes share an error (v0.15+).
	SystemicLimit bool `json:"systemic_limit"`
	// CrashGrace skips the crash check while the task's first-ever claim
	// is younger than Timing.CrashGrace (v0.15+). Off: no grace (v0.14.0).
	CrashGrace bool `json:"crash_grace"`
	// RateLimitExit books exit 75 rate_limited, requeued without counting
	// (v0.16+). Off: exit 75 is an ordinary crash that counts (v0.14, v0.15).
	RateLimitExit bool `json:"rate_limit_exit"`
	// ProtocolStreak > 0 requeues a protocol violation (exit 0 without
	// completing) uncounted until that many trailing runs (max_retries, if
	// set) were violations, then forces a trip that adds 1 to the counter
	// (v0.19: 3). 0: each violation counts at limit 1 (v0.14–v0.18).
	ProtocolStreak int `json:"protocol_streak"`
	// Backoff waits 1 s → 4 s → 16 s (scaled) after each consecutive failure
	// before the next spawn of a task.
	Backoff bool `json:"backoff"`
	// ValidateAssignee blocks a task whose assignee is not a profile, with a
	// clear last_failure_error, instead of skipping it silently forever.
	ValidateAssignee bool `json:"validate_assignee"`
	// DispatchLock takes a non-blocking per-board flock around each tick;
	// the loser skips the tick and writes nothing (#35240).
	DispatchLock bool `json:"dispatch_lock"`
	// PinBeatsBoard: HERMES_KANBAN_DB beats an explicit board= (#30678).
	PinBeatsBoard bool `json:"pin_beats_board"`
	// CountReclaims counts a stale-claim reclaim as a failure (#111446), so
	// a worker that never recorded a pid still uses up the budget (#35202).
	CountReclaims bool `json:"count_reclaims"`
	// RateLimitCooldown waits the scaled 300 s cooldown before respawning a
	// task whose last run exited 75.
	RateLimitCooldown bool `json:"rate_limit_cooldown"`
	// OwnWorkers leaves the exit of a worker another live gateway started
	// to that gateway: only a worker's parent can read its exit code, and
	// to every other gateway its zombie looks dead (spec §3 step 4), so an
	// exit 75 would be booked a counted crash; and a worker whose exit
	// status is in is booked by it, never reclaimed as a stale claim first.
	// Hermes has no such rule.
	OwnWorkers bool `json:"own_workers"`
	// RespawnGuarded writes a respawn_guarded event (its own transaction)
	// for every task the cooldown holds back, on every tick (v0.16+).
	RespawnGuarded bool `json:"respawn_guarded"`
	// CorruptLatch is what a gateway does with a board it found corrupt
	// (gateway.go): "none" retries it every tick, "fingerprint" disables it
	// until the file's (mtime, size) changes (#28439), "verified" resumes
	// only once the file passes integrity_check and holds tasks (#30687).
	CorruptLatch string `json:"corrupt_latch"`
	// LosePID is a fault, not a build: the spawn returns no pid, as when
	// the dispatcher dies between claim and _set_worker_pid (#35202). The
	// run then has no pid and no spawned event.
	LosePID bool `json:"lose_pid"`
}

// knob is one settable field of Knobs.
type knob struct {
	name, doc string
	set       func(k *Knobs, v string) error
	get       func(k Knobs) string
}

func boolKnob(name, doc string, field func(k *Knobs) *bool) knob {
	return knob{name: name, doc: doc,
		set: func(k *Knobs, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("knob %s: %q is not true/false", name, v)
			}
			*field(k) = b
			return nil
		},
		get: func(k Knobs) string { return strconv.FormatBool(*field(&k)) },
	}
}

func intKnob(name, doc string, field func(k *Knobs) *int) knob {
	return knob{name: name, doc: doc,
		set: func(k *Knobs, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return fmt.Errorf("knob %s: %q is not a non-negative integer", name, v)
			}
			*field(k) = n
			return nil
		},
		get: func(k Knobs) string { return strconv.Itoa(*field(&k)) },
	}
}

func choiceKnob(name, doc string, choices []string, field func(k *Knobs) *string) knob {
	return knob{name: name, doc: doc + " (" + strings.Join(choices, "|") + ")",
		set: func(k *Knobs, v string) error {
			for _, c := range choices {
				if strings.EqualFold(c, v) {
					*field(k) = c
					return nil
				}
			}
			return fmt.Errorf("knob %s: %q is not one of %s", name, v, strings.Join(choices, ", "))
		},
		get: func(k Knobs) string { return *field(&k) },
	}
}

var knobTable = []knob{
	choiceKnob("journal_mode", "PRAGMA journal_mode on connect", []string{"WAL", "DELETE", "TRUNCATE", "PERSIST"},
		func(k *Knobs) *string { return &k.Connect.JournalMode }),
	choiceKnob("synchronous", "PRAGMA synchronous", []string{"OFF", "NORMAL", "FULL"},
		func(k *Knobs) *string { return &k.Connect.Synchronous }),
	intKnob("busy_timeout", "PRAGMA busy_timeout in ms", func(k *Knobs) *int { return &k.Connect.BusyTimeoutMs }),
	intKnob("wal_autocheckpoint", "PRAGMA wal_autocheckpoint in pages (0 = SQLite's 1000)", func(k *Knobs) *int { return &k.Connect.WALAutocheckpoint }),
	boolKnob("wal_every_connect", "re-issue the mutating journal_mode pragma on every connect", func(k *Knobs) *bool { return &k.Connect.WALEveryConnect }),
	boolKnob("eio_fallback", "switch a live WAL file to DELETE when WAL setup fails with disk I/O error (M2)", func(k *Knobs) *bool { return &k.Connect.EIOFallback }),
	boolKnob("raw_header_read", "plain open/read/close of the DB header on every connect (M1a)", func(k *Knobs) *bool { return &k.Connect.RawHeaderRead }),
	boolKnob("post_commit_probe", "plain open/read/close of the header after every COMMIT (M1b)", func(k *Knobs) *bool { return &k.Connect.PostCommitProbe }),
	boolKnob("guard_raw_reads", "skip raw reads while this process holds a connection (the M1 fix)", func(k *Knobs) *bool { return &k.Connect.GuardRawReads }),
	boolKnob("inode_guard", "refuse writes once the board path names another file (M6)", func(k *Knobs) *bool { return &k.Connect.InodeGuard }),
	boolKnob("fail_closed", "never give a schema to an existing empty board file (#30687)", func(k *Knobs) *bool { return &k.Connect.FailClosed }),
	boolKnob("ofd_locking", "modernc OFD locks on the main DB file (process-wide)", func(k *Knobs) *bool { return &k.Connect.OFDLocking }),
	boolKnob("atomic_failure", "count the failure in the crash-reclaim transaction", func(k *Knobs) *bool { return &k.AtomicFailure }),
	boolKnob("promote_blocked", "recompute_ready promotes blocked tasks too (v0.15+); off: todo only, a breaker block holds (v0.14.0)", func(k *Knobs) *bool { return &k.PromoteBlocked }),
	boolKnob("repromote_tripped", "recompute_ready promotes breaker-tripped tasks whatever their counter (v0.15, #30417); off: only below the limit (v0.16+, #35072)", func(k *Knobs) *bool { return &k.RepromoteTripped }),
	boolKnob("repromote_resets", "promoting a blocked task resets consecutive_failures to 0 (v0.15: an unbounded loop)", func(k *Knobs) *bool { return &k.RepromoteResets }),
	choiceKnob("crash_limit", "limit the crash path applies", []string{"default", "configured"}, func(k *Knobs) *string { return &k.CrashLimit }),
	boolKnob("systemic_limit", "≥3 crashes with one error in a sweep trip at limit 1 (v0.15+)", func(k *Knobs) *bool { return &k.SystemicLimit }),
	boolKnob("crash_grace", "no crash check until the first-ever claim is crash-grace old (v0.15+); off: none (v0.14.0)", func(k *Knobs) *bool { return &k.CrashGrace }),
	boolKnob("rate_limit_exit", "exit 75 is booked rate_limited and never counted (v0.16+); off: a crash that counts (v0.14, v0.15)", func(k *Knobs) *bool { return &k.RateLimitExit }),
	intKnob("protocol_streak", "exit 0 requeued uncounted until N trailing violations, then a forced trip (v0.19: 3); 0: counts at limit 1", func(k *Knobs) *int { return &k.ProtocolStreak }),
	boolKnob("backoff", "per-task exponential backoff 1s/4s/16s (scaled)", func(k *Knobs) *bool { return &k.Backoff }),
	boolKnob("validate_assignee", "auto-block tasks whose assignee is not a profile", func(k *Knobs) *bool { return &k.ValidateAssignee }),
	boolKnob("dispatch_lock", "per-board non-blocking dispatch lock", func(k *Knobs) *bool { return &k.DispatchLock }),
	boolKnob("pin_beats_board", "HERMES_KANBAN_DB beats an explicit board=", func(k *Knobs) *bool { return &k.PinBeatsBoard }),
	boolKnob("count_reclaims", "a stale-claim reclaim counts as a failure", func(k *Knobs) *bool { return &k.CountReclaims }),
	boolKnob("rate_limit_cooldown", "wait the cooldown before respawning after exit 75", func(k *Knobs) *bool { return &k.RateLimitCooldown }),
	boolKnob("own_workers", "a worker of another live gateway is classified by that gateway only (its parent reads its exit code)", func(k *Knobs) *bool { return &k.OwnWorkers }),
	boolKnob("respawn_guarded", "a respawn_guarded event per cooled-down task per tick (v0.16+)", func(k *Knobs) *bool { return &k.RespawnGuarded }),
	boolKnob("corrupt_guard", "integrity_check at the first connect per process; back up and refuse a corrupt board (#30862)", func(k *Knobs) *bool { return &k.Connect.CorruptGuard }),
	choiceKnob("backup_mode", "how the guard backs up a corrupt board", kanban.BackupModes, func(k *Knobs) *string { return &k.Connect.BackupMode }),
	boolKnob("refuse_recreate", "never create a missing DB for a board that exists per board.json (#30687)", func(k *Knobs) *bool { return &k.Connect.RefuseRecreate }),
	choiceKnob("corrupt_latch", "gateway handling of a corrupt board", CorruptLatches, func(k *Knobs) *string { return &k.CorruptLatch }),
	boolKnob("lose_pid", "fault: the spawn returns no pid, no spawned event (#35202)", func(k *Knobs) *bool { return &k.LosePID }),
}

// KnobNames lists every knob name.
func KnobNames() []string {
	var names []string
	for _, k := range knobTable {
		names = append(names, k.name)
	}
	return names
}

// KnobDocs returns "name: doc" lines for help texts.
func KnobDocs() []string {
	var out []string
	for _, k := range knobTable {
		out = append(out, fmt.Sprintf("%-20s %s", k.name, k.doc))
	}
	return out
}

// Set applies one knob by name.
func (k *Knobs) Set(name, value string) error {
	i := slices.IndexFunc(knobTable, func(kn knob) bool { return kn.name == name })
	if i < 0 {
		return fmt.Errorf("unknown knob %q (valid: %s)", name, strings.Join(KnobNames(), ", "))
	}
	return knobTable[i].set(k, value)
}

// Values returns every knob's current value by name.
func (k Knobs) Values() map[string]string {
	out := map[string]string{}
	for _, kn := range knobTable {
		out[kn.name] = kn.get(k)
	}
	return out
}

// Variant is a named set of knobs modelling one dispatcher build.
type Variant struct {
	Name, Doc string
	Knobs     Knobs
}

// hermes014 is Hermes v0.14.0 as released (hermes-agent 0.14.0 on PyPI,
// /tmp/hermes-releases.md): recompute_ready promotes todo tasks only, so the
// breaker holds at the default 2 (1 for exit 0); exit 75 is a plain crash;
// no crash grace; busy timeout 30 s (sqlite3 timeout=30).
func hermes014() Knobs {
	k := Knobs{
		Connect:       kanban.DefaultOptions(),
		CrashLimit:    "default",
		PinBeatsBoard: true,
		CorruptLatch:  LatchNone,
	}
	k.Connect.BusyTimeoutMs = 30000
	// The integrity guard of #30862 with shutil.copy2 backups (#32593).
	k.Connect.CorruptGuard, k.Connect.BackupMode = true, kanban.BackupCopyTS
	return k
}

// Variants are the named dispatcher builds, in the order help lists them.
func Variants() []Variant {
	pr := hermes014()
	pr.Connect.Synchronous, pr.Connect.WALAutocheckpoint = "FULL", 100
	// v0.15.0 shipped #33482 (FULL, autocheckpoint 100, no EIO downgrade,
	// WAL pragma skipped when already WAL, the post-commit probe) on top of
	// the per-connect header read of #30862 — and the re-promotion loop:
	// recompute_ready promotes breaker-blocked tasks with no limit check and
	// resets their counter. It has the 30 s crash grace and the systemic
	// rule; exit 75 is still a plain crash.
	v015 := pr
	v015.Connect.BusyTimeoutMs = 120000
	v015.Connect.EIOFallback = false
	v015.Connect.WALEveryConnect = false
	v015.Connect.RawHeaderRead = true
	v015.Connect.PostCommitProbe = true
	v015.CorruptLatch = LatchFingerprint // #28439: disabled until the file changes
	v015.PromoteBlocked, v015.RepromoteTripped, v015.RepromoteResets = true, true, true
	v015.CrashGrace, v015.SystemicLimit = true, true
	// v0.19.0 (the newest release): v0.16's #35072 (no re-promotion at the
	// limit, no counter reset; the crash path still trips at 2), v0.16's
	// exit 75 handling (rate_limited, 300 s cooldown, respawn_guarded every
	// tick), v0.18's dispatch lock (#35240) and header checks only at the
	// first connect per path and process (#36644), and v0.19's streak of 3
	// protocol violations before a trip.
	v019 := v015
	v019.RepromoteTripped, v019.RepromoteResets = false, false
	v019.RateLimitExit, v019.RateLimitCooldown, v019.RespawnGuarded = true, true, true
	v019.DispatchLock = true
	v019.ProtocolStreak = 3
	v019.Connect.RawHeaderRead = false
	v019.Connect.BackupMode = kanban.BackupCopySHA
	return []Variant{
		{"hermes-0.14", "Hermes v0.14.0 as released: non-atomic failure count, the breaker holds (recompute_ready promotes todo only) at the default limit 2 (1 for exit 0; failure_limit ignored), exit 75 a counted crash, no crash grace, busy timeout 30 s, no dispatch lock", hermes014()},
		{"pr30973", "v0.14 + PR #30973: synchronous=FULL, wal_autocheckpoint=100 (durability only; closed unmerged — its settings shipped in v0.15.0)", pr},
		{"hermes-0.15", "Hermes v0.15.0: pr30973 + busy_timeout 120000, no EIO downgrade, WAL pragma skipped when WAL, raw header read on every connect (M1a) and after every COMMIT (M1b); recompute_ready re-promotes breaker-blocked tasks and resets their counter (#30417: unbounded), exit 75 a counted crash, 30 s crash grace, systemic limit 1", v015},
		{"hermes-0.19", "Hermes v0.19.0: hermes-0.15 with #35072 (re-promotion only below max_retries ?? failure_limit, no reset; crash path still trips at 2), exit 75 rate-limited with a 300 s cooldown and respawn_guarded every tick, the per-board dispatch lock (#35240), header checks at the first connect only, and exit 0 tripping after a streak of 3", v019},
		{"fixed", "the structural fix: atomic count+block, no re-promotion of tripped tasks, configured limit everywhere, backoff, assignee validation, dispatch lock, each gateway classifying its own workers' exits, header checks that never raw-read a file the process has open, corrupt or missing boards fail closed with one SQLite-made backup per content", Knobs{
			Connect: kanban.Options{JournalMode: "WAL", Synchronous: "FULL", BusyTimeoutMs: 120000, WALAutocheckpoint: 100,
				RawHeaderRead: true, PostCommitProbe: true, GuardRawReads: true, InodeGuard: true, FailClosed: true,
				Guard: kanban.Guard{CorruptGuard: true, BackupMode: kanban.BackupSQLite, RefuseRecreate: true}},
			AtomicFailure:     true,
			PromoteBlocked:    true,
			CrashLimit:        "configured",
			CrashGrace:        true,
			RateLimitExit:     true,
			Backoff:           true,
			ValidateAssignee:  true,
			DispatchLock:      true,
			CountReclaims:     true,
			RateLimitCooldown: true,
			OwnWorkers:        true,
			CorruptLatch:      LatchVerified,
		}},
	}
}

// VariantNames lists the variant names.
func VariantNames() []string {
	var names []string
	for _, v := range Variants() {
		names = append(names, v.Name)
	}
	return names
}

// Resolve builds the knobs of variant with overrides ("name" → "value")
// applied in name order, so the result does not depend on map order.
func Resolve(variant string, overrides map[string]string) (Knobs, error) {
	i := slices.IndexFunc(Variants(), func(v Variant) bool { return v.Name == variant })
	if i < 0 {
		return Knobs{}, fmt.Errorf("unknown variant %q (valid: %s)", variant, strings.Join(VariantNames(), ", "))
	}
	k := Variants()[i].Knobs
	names := make([]string, 0, len(overrides))
	for n := range overrides {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := k.Set(n, overrides[n]); err != nil {
			return Knobs{}, err
		}
	}
	return k, nil
}

// workerKnobs are the knobs the fake workers use too: their connection
// settings (Config.Connect) and the board-resolution precedence they
// create cards with. The rest shape only the reference dispatcher.
var workerKnobs = []string{"journal_mode", "synchronous", "busy_timeout", "wal_autocheckpoint", "wal_every_connect", "eio_fallback",
	"raw_header_read", "post_commit_probe", "guard_raw_reads", "inode_guard", "fail_closed", "ofd_locking", "corrupt_guard",
	"backup_mode", "refuse_recreate", "pin_beats_board"}

// IsWorkerKnob reports whether knob name reaches the fake workers (so it
// still means something when the dispatcher under test is not ours).
func IsWorkerKnob(name string) bool { return slices.Contains(workerKnobs, name) }

package scenarios

import (
	"fmt"
	"math/rand/v2"

	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// huntScenarios aim at states of the newest release's state machine that
// the pinned regressions do not reach (issue 16: read from the installed
// 0.19.0's hermes_cli/kanban_db.py, never copied): each names the code path
// it drives and what a correct dispatcher must do there.
func huntScenarios() []Scenario {
	return []Scenario{
		{
			Name: "systemic-crash",
			Issue: "Hermes 0.15–0.19: the systemic-failure breaker (≥ 3 crashes with one error in a sweep trip at limit 1) " +
				"is undone in the same tick (open PRs #83067, #104077)",
			Summary: "Six cards whose workers all exit 1 at once, one dispatcher, crash grace 0: detect_crashed_workers finds " +
				"them dead in one sweep, sees one error fingerprint ('pid N exited with code 1' or 'pid N not alive') at least " +
				"three times and trips those cards at limit 1 (gave_up, consecutive_failures 1). recompute_ready runs next in the same tick with " +
				"the dispatcher's failure_limit (default 2), sees 1 < 2 and promotes every card again: a gave_up → promoted " +
				"pair per card, and a second start the fast trip was meant to save. Must hold: after gave_up no promoted or " +
				"claimed without a reset (breaker-holds), and starts ≤ the limit.",
			Variant: "hermes-0.19",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				s.Dispatchers = 1
				s.TimeScale = 0.002 // 120 ms ticks
				s.CrashGraceMs = new(int)
				s.DurationMs, s.QuietMs = 2500, 1000
				s.Profiles = []schedule.Profile{{Name: "fleet", Worker: schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 1, DelayMs: rng.IntN(5)}}}
				// Six, not three: a real release books some of the deaths "pid
				// N not alive" and the others "exited with code 1" (see
				// stolen-exit-status), two fingerprints; six put three in one.
				for i := 0; i < 6; i++ {
					s.Tasks = append(s.Tasks, schedule.Task{ID: taskID(rng), Title: fmt.Sprintf("card %d of a provider outage", i+1), Assignee: "fleet"})
				}
			},
		},
		{
			Name: "stolen-exit-status",
			Issue: "Hermes 0.16–0.19: a worker's exit status is reaped by Python's subprocess module before the dispatcher's " +
				"reap_worker_zombies sees it; exit 75 (rate limited) and exit 0 are booked crashed 'pid N not alive' (open PR #61836)",
			Summary: "One dispatcher (no other process can reap its workers), twelve cards whose workers heartbeat, then exit 75 " +
				"(rate limited) within ms. _default_spawn drops its Popen handle; CPython's Popen.__del__ keeps a running child in " +
				"subprocess._active, and every later Popen (the next spawn) runs subprocess._cleanup(), which waitpid()s the " +
				"children that exited meanwhile and keeps their status to itself. The tick's waitpid(-1, WNOHANG) never sees " +
				"them, _classify_worker_exit answers 'unknown' and detect_crashed_workers books a crash 'pid N not alive' that " +
				"counts toward the breaker (three in one sweep trip it at limit 1) and skips the rate-limit cooldown. Must hold: " +
				"exit 75 is never booked as a failure, and the task waits the cooldown (rate-limit).",
			Variant: "hermes-0.19",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				s.Dispatchers = 1
				s.TimeScale = 0.001 // 900 ms claim TTL, 300 ms cooldown (2 s on a real release)
				s.TickMs = 20
				// A real release's first tick spawns all twelve one after the
				// other: seconds on a loaded machine.
				s.DurationMs, s.QuietMs = 6000, 1000
				s.Profiles = []schedule.Profile{{Name: "quota", Worker: schedule.Behaviour{Mode: schedule.ModeHeartbeatCrash,
					Exit: schedule.RateLimitedExitCode, DelayMs: rng.IntN(5)}}}
				for i := 0; i < 12; i++ {
					s.Tasks = append(s.Tasks, schedule.Task{ID: taskID(rng), Title: fmt.Sprintf("card %d behind a quota wall", i+1), Assignee: "quota"})
				}
			},
		},
		{
			Name: "max-runtime",
			Issue: "Hermes 0.16–0.19: a max_runtime_seconds timeout is counted at the default limit 2 whatever " +
				"kanban.failure_limit says, and recompute_ready promotes the card back (PR #63070 names the timeout path)",
			Summary: "Two cards with max_runtime_seconds (1 s on a real release) whose workers hang until killed, failure_limit 4, " +
				"one dispatcher. enforce_max_runtime SIGTERMs each worker once its run is older than the limit, books " +
				"timed_out and calls _record_task_failure without the configured limit: the breaker trips at the default 2 " +
				"(gave_up), and recompute_ready, which does get 4, promotes the card again in the same tick. Must hold: the " +
				"configured 4 starts at most, and no promoted/claimed after a gave_up without a reset (breaker-holds).",
			Variant: "hermes-0.19",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				s.Dispatchers = 1
				s.TimeScale = 0.001 // a 1000 s runtime limit is 1 s
				s.TickMs = 100
				s.CrashGraceMs = new(int)
				s.DurationMs, s.QuietMs = 9000, 1500 // four timeouts of ≥ 1 s each, in whole seconds
				s.FailureLimit = 4
				s.Profiles = []schedule.Profile{{Name: "slowpoke", Worker: schedule.Behaviour{Mode: schedule.ModeHang, DelayMs: rng.IntN(5)}}}
				for i := 0; i < 2; i++ {
					s.Tasks = append(s.Tasks, schedule.Task{ID: taskID(rng), Title: fmt.Sprintf("a run that never ends %d", i+1),
						Assignee: "slowpoke", MaxRuntimeS: 1000})
				}
			},
		},
		{
			Name: "torn-extend-checkpoint",
			Issue: "Hermes 0.19: the post-commit file-length check (_check_file_length_invariant) reads the file's size, then " +
				"its header, with no lock: a checkpoint that grows the file in between is a 'torn-extend' on a healthy board, " +
				"raised after a durable COMMIT (issue #60510, open PRs #57592, #62122; WAL exemption on main)",
			Summary: "One gateway, sixteen cards whose workers each write forty progress comments (the board grows; every " +
				"connection of 0.19.0 checkpoints at 100 WAL pages), then exit 1; max_retries 3. A checkpoint writes page 1, " +
				"with the new page count, before the pages that extend the file: a write_txn that commits meanwhile reads " +
				"'header claims N pages, file has N-1' and raises DatabaseError after its COMMIT. When that write is " +
				"detect_crashed_workers', the crash is booked (the task is ready again) but _record_task_failure never runs: " +
				"the failure is not counted and the card gets a start beyond its budget; in claim_task or _set_worker_pid it " +
				"leaves a claim with no worker. Run it with --python-sqlite 3.53.4 (SQLite ≥ 3.51): on the Python side's 3.40.1 " +
				"the post-commit lock drop damages the board first (post-commit-lock-drop). Must hold: no process is told " +
				"the intact board is corrupt (no-false-alarm), starts ≤ max_retries (spawns), the breaker holds, " +
				"integrity_check ok, every acknowledged commit kept.",
			Variant: "hermes-0.19",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				s.Dispatchers = 1
				s.Expect = []string{oracle.NoFalseAlarm}
				s.TimeScale = 0.01 // a 9 s claim TTL: no stale-claim reclaim (#35202) within the run
				s.TickMs = 20
				// 48 runs of ~1–2 s each on a real release, 8 at a time (its
				// max_in_progress on this much memory); a card whose crash went
				// uncounted needs a 4th start, with seconds to spare.
				s.DurationMs, s.QuietMs = 14000, 1000
				s.Profiles = []schedule.Profile{{Name: "churn", Worker: schedule.Behaviour{Mode: schedule.ModeWriteExit, Exit: 1,
					Writes: 40, DelayMs: rng.IntN(5)}}}
				for i := 0; i < 16; i++ {
					s.Tasks = append(s.Tasks, schedule.Task{ID: taskID(rng), Title: fmt.Sprintf("a card that writes and fails %d", i+1),
						Assignee: "churn", MaxRetries: 3})
				}
			},
		},
		{
			Name: "shared-board-gateways",
			Issue: "Hermes 0.15–0.19: the post-commit file-length check (_check_file_length_invariant) opens and closes kanban.db " +
				"after every COMMIT, dropping the gateway's POSIX locks; another gateway's close then resets the WAL under it " +
				"(spec M1b; fixed on main by #71724, after 0.19.0)",
			Summary: "Four gateways (one per profile, each with its embedded dispatcher, as Hermes runs them by default) on one " +
				"board, 20 ms ticks, forty cards whose workers complete. From 0.18 the dispatch lock lets one gateway tick at a " +
				"time; the others connect, get skipped_locked and close. After each COMMIT the ticking gateway opens, reads and " +
				"closes the board file, which drops every POSIX lock its process holds on it; a skipped gateway's close (Python's " +
				"SQLite < 3.51) then believes it is the last connection, checkpoints and deletes the -wal, and the ticking gateway " +
				"goes on committing into the deleted file. Must hold: every acknowledged commit is in the board (no-lost-writes), " +
				"integrity_check ok, no SQLITE_CORRUPT/IOERR.",
			Variant: "hermes-0.19",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				s.Dispatchers = 4
				s.TimeScale = 0.001
				s.TickMs = 20
				s.DurationMs, s.QuietMs = 6000, 500 // a real release's four Pythons take 1–2 s to start
				s.MaxSpawn = 4
				s.Profiles = []schedule.Profile{{Name: "finisher", Worker: schedule.Behaviour{Mode: schedule.ModeComplete, DelayMs: rng.IntN(5)}}}
				for i := 0; i < 40; i++ {
					s.Tasks = append(s.Tasks, schedule.Task{ID: taskID(rng), Title: fmt.Sprintf("card %d", i+1), Assignee: "finisher"})
				}
			},
		},
	}
}

package scenarios

import (
	"fmt"
	"math/rand/v2"

	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// writerBoard seeds n tasks for one profile whose workers write like Hermes
// workers, and runs the dispatchers fast: the shape of every corruption
// recipe in spec/corruption.md §2 — long-lived gateway connections, many
// short-lived worker connections, a steady stream of commits.
func writerBoard(rng *rand.Rand, s *schedule.Schedule, dispatchers, tasks, maxSpawn int, worker schedule.Behaviour, maxRetries int) {
	s.Dispatchers = dispatchers
	s.TimeScale = 0.001 // 30 ms crash grace, 900 ms claim TTL, 1 ms → 4 ms → 16 ms backoff
	s.TickMs = 20
	s.DurationMs, s.QuietMs = 5000, 500
	s.MaxSpawn = maxSpawn
	s.Profiles = []schedule.Profile{{Name: "writer", Worker: worker}}
	for i := 0; i < tasks; i++ {
		s.Tasks = append(s.Tasks, schedule.Task{ID: taskID(rng), Title: fmt.Sprintf("card %d", i+1), Assignee: "writer", MaxRetries: maxRetries})
	}
}

func corruptionScenarios() []Scenario {
	writes := func(n int) schedule.Behaviour { return schedule.Behaviour{Mode: schedule.ModeWriteComplete, Writes: n} }
	return []Scenario{
		{
			Name:  "m1-header-probe",
			Issue: "spec M1a / recipe R1: Hermes' connect() reads the DB header with a plain open/read/close while the gateway holds connections",
			Summary: "Two gateways keep a notifier connection open and open a fresh connection per tick; every connect raw-reads the " +
				"header, which drops the gateway's POSIX locks. A worker that closes normally then believes it is the last " +
				"connection, checkpoints and unlinks -wal/-shm under the gateway: split WAL, lost writes, corruption. " +
				"Reproduces in WAL mode only on SQLite < 3.51 (run with --sqlite 3.50). Must hold: no lost writes, integrity, " +
				"no corruption errors, no deleted sidecars held open.",
			Variant: "hermes-0.15",
			Engine:  "3.50",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				writerBoard(rng, s, 2, 200, 1, writes(20), 0)
			},
		},
		{
			Name:  "m1-post-commit-probe",
			Issue: "spec M1b / recipe R2: the post-commit page-count probe (v0.15) raw-reads the DB after every COMMIT",
			Summary: "DELETE journal mode. Four gateways in one process write concurrently; one gateway's probe after its COMMIT " +
				"drops the RESERVED lock another gateway connection holds, so a worker process gets in as a second writer. " +
				"Must hold: integrity, no lost writes, no corruption errors. A real release's connect() switches the seeded " +
				"board to WAL (0.14.0–0.19.0 all do), so against a hermes: subject this runs in WAL mode (README).",
			Variant: "hermes-0.15",
			Knobs:   map[string]string{"journal_mode": "DELETE"},
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				writerBoard(rng, s, 4, 200, 3, writes(20), 0)
			},
		},
		{
			Name:  "m2-eio-downgrade",
			Issue: "spec M2 / recipe R3: v0.14 switches a live WAL board to DELETE when WAL setup reports disk I/O error",
			Summary: "hermes-0.14 with the M1a header read: once lock cancellation has poisoned a process, its next WAL setup " +
				"fails with disk I/O error and the EIO fallback downgrades the live file to DELETE; peers still in WAL lose " +
				"their un-checkpointed commits. Must hold: no lost writes, integrity. No release has both halves: 0.14.0 " +
				"has the EIO downgrade but never raw-reads its board, 0.15.0 raw-reads it but no longer downgrades on EIO " +
				"(the knob pair is main between 05-23 and 05-27); the real 0.14.0 with its own workers stays clean (README).",
			Variant: "hermes-0.14",
			Engine:  "3.50",
			Knobs:   map[string]string{"raw_header_read": "true"},
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				writerBoard(rng, s, 2, 200, 1, writes(20), 0)
			},
		},
		{
			Name:  "m3-wal-pragma-control",
			Issue: "spec M3 / recipe R4 (control): the redundant `PRAGMA journal_mode=WAL` on every connect, named as root cause in #33334, is harmless",
			Summary: "Every connect of gateways and workers re-issues the mutating WAL pragma, with no raw reads. This must stay " +
				"clean on every variant and engine: it pins the wrong root cause so nobody re-derives it. Must hold: identical " +
				"sidecar inodes, no deleted fds, no lost writes, integrity. A real release that probes the file after every " +
				"COMMIT (0.15.0+, M1b) is no control here on SQLite < 3.51: its own probe drops the locks (README).",
			Variant: "hermes-0.14",
			Knobs:   map[string]string{"wal_every_connect": "true", "raw_header_read": "false", "post_commit_probe": "false"},
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				writerBoard(rng, s, 2, 200, 1, writes(20), 0)
			},
		},
		{
			Name:  "m6-swap-while-open",
			Issue: "spec M6 / recipe R8: the board file is replaced while the gateway has it open (an operator swapping in a rebuilt DB, boards rm racing connect)",
			Summary: "At 1.5 s the board and its sidecars are renamed aside and an empty file takes their place. Old " +
				"connections keep writing into the orphaned inode; new workers find an empty file and (v0.14/v0.15) give it " +
				"a fresh schema. Must hold: no process silently recreates the board, and no write acknowledged after the " +
				"swap is lost. The fixed variant refuses writes once the path names another file and never initializes an " +
				"existing empty file.",
			Variant: "hermes-0.15",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				writerBoard(rng, s, 2, 200, 1, writes(20), 0)
				s.Faults = []schedule.Fault{{AtMs: 1500, Kind: schedule.FaultSwap}}
			},
		},
		{
			Name:  "fault-delete-sidecars",
			Issue: "measured fault #4: -wal and -shm deleted while writers run (a 'clean stale files' step on restart)",
			Summary: "A positive control for the oracle: at 1 s the harness unlinks kanban.db-wal and kanban.db-shm under " +
				"live connections, as a cleanup script would. No dispatcher can prevent it; every variant must be caught " +
				"with lost writes, corruption errors or replaced sidecars.",
			Variant: "fixed",
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				writerBoard(rng, s, 2, 200, 1, writes(20), 0)
				s.Faults = []schedule.Fault{{AtMs: 1000, Kind: schedule.FaultDeleteSidecars}}
			},
		},
		{
			Name:  "r5-crash-loop",
			Issue: "recipe R5: a spawn-crash loop where half the workers SIGKILL themselves inside BEGIN IMMEDIATE, half exit normally",
			Summary: "synchronous=FULL, wal_autocheckpoint=100 (the fixed variant), raw reads off: crashes alone must never " +
				"corrupt the board. With --knob raw_header_read=true --knob post_commit_probe=true --knob guard_raw_reads=false " +
				"the same loop corrupts it. Must hold: integrity, no lost writes, no corruption errors, spawns ≤ max_retries.",
			Variant: "fixed",
			Engine:  "3.50",
			Knobs:   map[string]string{"raw_header_read": "false", "post_commit_probe": "false"},
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				writerBoard(rng, s, 2, 80, 2, schedule.Behaviour{Mode: schedule.ModeKillInTxn, Writes: 10}, 50)
				// The other half write and exit normally: their close is the
				// "last closer" cleanup that broken locks turn into damage.
				s.Profiles = append(s.Profiles, schedule.Profile{Name: "finisher", Worker: writes(20)})
				for i := range s.Tasks {
					if i%2 == 1 {
						s.Tasks[i].Assignee = "finisher"
					}
				}
			},
		},
		{
			Name:  "powerloss-sync-off",
			Issue: "measured fault #15 (spec sqlite-faults.md §2.5): synchronous=OFF and a power cut (an OS crash or VM kill, not a process crash)",
			Summary: "The board's home is on a loop-mounted ext4 image (commit=1); a helper writes back random ranges of the " +
				"board and its -wal/-journal every ~150 ms, as the kernel's unordered writeback would. At 1.5 s the workers " +
				"are SIGKILLed and the image is copied without a sync; the oracle checks the board in the mounted copy. " +
				"Spec measured WAL/OFF corrupt 7/8, DELETE/OFF 8/8, NORMAL and FULL 0/8; this scenario: WAL/OFF 25/32 " +
				"(\"Rowid … out of order\", wrong # of entries in index), DELETE/OFF 6/8, NORMAL 0/8, FULL 0/8. Must hold: " +
				"integrity always; lost acknowledged commits count only when they were durable — synchronous=FULL with a " +
				"WAL, TRUNCATE or PERSIST journal (with DELETE, FULL does not sync the journal's unlink, so the last commit " +
				"may roll back). --knob synchronous=FULL (and NORMAL) must pass. Needs root and loop devices; elsewhere " +
				"the verdict is unknown (skipped).",
			Variant: "fixed", // no raw reads: any damage is the power cut's
			Knobs:   map[string]string{"synchronous": "OFF"},
			build: func(rng *rand.Rand, s *schedule.Schedule) {
				writerBoard(rng, s, 2, 200, 1, writes(20), 0)
				s.DurationMs = 2000
				s.Faults = []schedule.Fault{{AtMs: 1500, Kind: schedule.FaultPowerLoss}}
			},
		},
	}
}

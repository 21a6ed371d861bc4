package kanban

// schema mirrors Hermes' hermes_cli/kanban_db.py tables (spec/hermes-kanban.md
// §2) closely enough that a real Hermes board and ours read the same way.
// Times are Unix seconds stored as REAL: scaled runs need sub-second times,
// and SQLite's dynamic typing lets the same queries read Hermes' integers.
const schema = `
CREATE TABLE IF NOT EXISTS tasks (
	id TEXT PRIMARY KEY,
	title TEXT NOT NULL DEFAULT '',
	body TEXT,
	assignee TEXT,
	status TEXT NOT NULL DEFAULT 'ready',
	priority INTEGER NOT NULL DEFAULT 0,
	created_by TEXT,
	created_at REAL NOT NULL,
	started_at REAL,
	completed_at REAL,
	workspace_kind TEXT DEFAULT 'scratch',
	workspace_path TEXT,
	branch_name TEXT,
	project_id TEXT,
	claim_lock TEXT,
	claim_expires REAL,
	tenant TEXT,
	result TEXT,
	idempotency_key TEXT,
	consecutive_failures INTEGER NOT NULL DEFAULT 0,
	last_failure_error TEXT,
	worker_pid INTEGER,
	max_runtime_seconds REAL,
	last_heartbeat_at REAL,
	current_run_id INTEGER,
	workflow_template_id TEXT,
	current_step_key TEXT,
	skills TEXT,
	model_override TEXT,
	max_retries INTEGER,
	goal_mode INTEGER NOT NULL DEFAULT 0,
	goal_max_turns INTEGER,
	session_id TEXT,
	block_kind TEXT,
	block_recurrences INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS task_runs (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	task_id TEXT NOT NULL,
	profile TEXT,
	step_key TEXT,
	status TEXT NOT NULL,
	claim_lock TEXT,
	claim_expires REAL,
	worker_pid INTEGER,
	max_runtime_seconds REAL,
	last_heartbeat_at REAL,
	started_at REAL NOT NULL,
	ended_at REAL,
	outcome TEXT,
	summary TEXT,
	metadata TEXT,
	error TEXT
);
CREATE TABLE IF NOT EXISTS task_events (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	task_id TEXT NOT NULL,
	run_id INTEGER,
	kind TEXT NOT NULL,
	payload TEXT,
	created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS task_links (
	parent_id TEXT NOT NULL,
	child_id TEXT NOT NULL,
	PRIMARY KEY (parent_id, child_id)
);
CREATE TABLE IF NOT EXISTS task_comments (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	task_id TEXT NOT NULL,
	author TEXT,
	body TEXT NOT NULL,
	created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kanban_notify_subs (
	task_id TEXT NOT NULL,
	platform TEXT NOT NULL,
	chat_id TEXT NOT NULL,
	thread_id TEXT NOT NULL DEFAULT '',
	last_event_id INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (task_id, platform, chat_id, thread_id)
);
CREATE INDEX IF NOT EXISTS idx_tasks_assignee_status ON tasks(assignee, status);
CREATE INDEX IF NOT EXISTS idx_tasks_status ON tasks(status);
CREATE INDEX IF NOT EXISTS idx_events_task ON task_events(task_id, created_at);
CREATE INDEX IF NOT EXISTS idx_events_run ON task_events(run_id, id);
CREATE INDEX IF NOT EXISTS idx_runs_task ON task_runs(task_id, started_at);
CREATE INDEX IF NOT EXISTS idx_runs_status ON task_runs(status);
CREATE INDEX IF NOT EXISTS idx_links_child ON task_links(child_id);
CREATE INDEX IF NOT EXISTS idx_links_parent ON task_links(parent_id);
`

// Task statuses (Hermes vocabulary).
const (
	StatusTriage    = "triage"
	StatusTodo      = "todo"
	StatusScheduled = "scheduled"
	StatusReady     = "ready"
	StatusRunning   = "running"
	StatusBlocked   = "blocked"
	StatusReview    = "review"
	StatusDone      = "done"
	StatusArchived  = "archived"
)

// Event kinds the dispatcher and workers emit (Hermes vocabulary).
const (
	EventCreated           = "created"
	EventClaimed           = "claimed"
	EventClaimRejected     = "claim_rejected"
	EventClaimExtended     = "claim_extended"
	EventReclaimed         = "reclaimed"
	EventSpawned           = "spawned"
	EventHeartbeat         = "heartbeat"
	EventCrashed           = "crashed"
	EventProtocolViolation = "protocol_violation"
	EventRateLimited       = "rate_limited"
	EventTimedOut          = "timed_out"
	EventSpawnFailed       = "spawn_failed"
	EventGaveUp            = "gave_up"
	EventPromoted          = "promoted"
	EventBlocked           = "blocked"
	EventUnblocked         = "unblocked"
	EventCompleted         = "completed"
	EventCommented         = "commented"
	// EventRespawnGuarded is written on every tick a ready task is held back
	// by check_respawn_guard (v0.16+: the rate-limit cooldown).
	EventRespawnGuarded = "respawn_guarded"
)

// Run outcomes (Hermes vocabulary).
const (
	OutcomeCompleted   = "completed"
	OutcomeBlocked     = "blocked"
	OutcomeCrashed     = "crashed"
	OutcomeTimedOut    = "timed_out"
	OutcomeSpawnFailed = "spawn_failed"
	OutcomeGaveUp      = "gave_up"
	OutcomeReclaimed   = "reclaimed"
	OutcomeStale       = "stale"
	OutcomeRateLimited = "rate_limited"
	OutcomeProtocol    = "protocol_violation"
)

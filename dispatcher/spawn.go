package dispatcher

// The spawn steps of a tick: recompute ready, then the spawn phase — which
// ready task may start (its profile, backoff and the cooldown, max_spawn),
// its claim and the worker it starts.

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

func (d *Dispatcher) recomputeReady(ctx context.Context, tick *Tick) error {
	promoted, err := d.board.RecomputeReady(ctx, kanban.RecomputePolicy{
		RepromoteTripped: d.cfg.Knobs.RepromoteTripped,
		FailureLimit:     d.cfg.FailureLimit,
		TodoOnly:         !d.cfg.Knobs.PromoteBlocked,
		ResetCounter:     d.cfg.Knobs.RepromoteResets,
	})
	tick.Promoted += len(promoted)
	return err
}

// profileExists is Hermes' profile_exists: `default`, or <home>/profiles/<name>.
func (d *Dispatcher) profileExists(name string) bool {
	if name == "default" {
		return true
	}
	st, err := os.Stat(filepath.Join(d.cfg.Home, "profiles", name))
	return err == nil && st.IsDir()
}

// backoffUntil is when a task with n consecutive failures may spawn again:
// base × 4^(n−1) after its last run ended.
func (d *Dispatcher) backoffUntil(c kanban.Candidate) float64 {
	if c.ConsecutiveFailures <= 0 || c.LastRunEnded == 0 {
		return 0
	}
	wait := seconds(d.cfg.Timing.BackoffBase) * math.Pow(4, float64(min(c.ConsecutiveFailures, 8)-1))
	return c.LastRunEnded + wait
}

// spawnPhase claims ready tasks and starts their workers, up to max_spawn
// running tasks.
func (d *Dispatcher) spawnPhase(ctx context.Context, tick *Tick) error {
	cands, err := d.board.SpawnCandidates(ctx)
	if err != nil {
		return err
	}
	running := 0
	if d.cfg.MaxSpawn > 0 {
		if running, err = d.board.CountRunning(ctx); err != nil {
			return err
		}
	}
	now := d.board.Now()
	for _, c := range cands {
		if d.cfg.MaxSpawn > 0 && running+tick.Spawned >= d.cfg.MaxSpawn {
			break
		}
		if c.Assignee == "" {
			continue
		}
		if !d.profileExists(c.Assignee) {
			if d.cfg.Knobs.ValidateAssignee {
				reason := fmt.Sprintf("assignee %q is not a known profile (no directory %s): fix the assignee or create the profile, then unblock",
					c.Assignee, filepath.Join(d.cfg.Home, "profiles", c.Assignee))
				if err := d.board.AutoBlock(ctx, c.ID, reason); err != nil {
					return err
				}
				tick.AutoBlocked++
			}
			continue // v0.14: skipped silently, forever
		}
		if d.cfg.Knobs.Backoff && now < d.backoffUntil(c) {
			tick.Deferred++
			continue
		}
		if d.cfg.Knobs.RateLimitCooldown && c.LastRunOutcome == kanban.OutcomeRateLimited &&
			now < c.LastRunEnded+seconds(d.cfg.Timing.RateLimitCooldown) {
			tick.Deferred++
			if d.cfg.Knobs.RespawnGuarded {
				if err := d.board.RespawnGuarded(ctx, c.ID, "rate_limit_cooldown"); err != nil {
					return err
				}
			}
			continue
		}
		if err := d.claimAndSpawn(ctx, c, tick); err != nil {
			return err
		}
	}
	return nil
}

func (d *Dispatcher) claimAndSpawn(ctx context.Context, c kanban.Candidate, tick *Tick) error {
	run, ok, err := d.board.Claim(ctx, c.ID, d.cfg.ClaimLock, seconds(d.cfg.Timing.ClaimTTL))
	if err != nil || !ok {
		return err
	}
	workspaces := filepath.Join(d.cfg.Home, "kanban", "workspaces")
	ws := filepath.Join(workspaces, c.ID)
	if err := os.MkdirAll(ws, 0o755); err != nil {
		return d.spawnFailed(ctx, c, run, fmt.Errorf("workspace: %w", err), tick)
	}
	if err := d.board.SetWorkspacePath(ctx, c.ID, ws); err != nil {
		return err
	}
	spec := d.spec(c, run, ws, workspaces)
	began := time.Now()
	pid, err := d.cfg.Children.Start(d.cfg.Name, spec)
	tick.StartMs += float64(time.Since(began).Microseconds()) / 1000
	if err != nil {
		return d.spawnFailed(ctx, c, run, err, tick)
	}
	tick.Spawned++
	if d.cfg.OnStart != nil {
		d.cfg.OnStart()
	}
	if d.cfg.Knobs.LosePID {
		return nil // the pid never reaches the board: no worker_pid, no spawned event
	}
	return d.board.SetWorkerPID(ctx, c.ID, run, pid)
}

func (d *Dispatcher) spawnFailed(ctx context.Context, c kanban.Candidate, run int64, cause error, tick *Tick) error {
	tick.SpawnFailed++
	f, err := d.board.RecordSpawnFailure(ctx, c.ID, run, "spawn failed: "+cause.Error(), d.cfg.FailureLimit)
	if err == nil && f.Tripped {
		tick.GaveUp++
	}
	return err
}

// spec is the worker command line and environment, as Hermes' _default_spawn.
func (d *Dispatcher) spec(c kanban.Candidate, run int64, ws, workspaces string) Spec {
	argv := []string{d.cfg.HermesBin, "-p", c.Assignee, "--accept-hooks", "chat", "-q", "work kanban task " + c.ID}
	env := map[string]string{}
	var order []string
	for _, kv := range d.cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := env[k]; !dup {
			order = append(order, k)
		}
		env[k] = v
	}
	set := func(k, v string) {
		if _, dup := env[k]; !dup {
			order = append(order, k)
		}
		env[k] = v
	}
	set("HERMES_KANBAN_TASK", c.ID)
	set("HERMES_KANBAN_RUN_ID", strconv.FormatInt(run, 10))
	set("HERMES_KANBAN_CLAIM_LOCK", d.cfg.ClaimLock)
	set("HERMES_KANBAN_DB", d.cfg.DBPath)
	set("HERMES_KANBAN_BOARD", d.cfg.Board)
	set("HERMES_KANBAN_WORKSPACES_ROOT", workspaces)
	set("HERMES_KANBAN_WORKSPACE", ws)
	set("TERMINAL_CWD", ws)
	set("HERMES_PROFILE", c.Assignee)
	if p := filepath.Join(d.cfg.Home, "profiles", c.Assignee); d.profileExists(c.Assignee) && c.Assignee != "default" {
		set("HERMES_HOME", p)
	}
	envList := make([]string, 0, len(order))
	for _, k := range order {
		envList = append(envList, k+"="+env[k])
	}
	logs := filepath.Join(d.cfg.Home, "kanban", "logs")
	os.MkdirAll(logs, 0o755)
	return Spec{Argv: argv, Env: envList, Dir: ws, Log: filepath.Join(logs, c.ID+".log")}
}

package gate

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Case is one row of spec §8: what the June 2026 Hermes dispatcher did,
// ticking every 0.2 s, against a fake worker — the observed table a subject
// is held up to, side by side, difference by difference.
type Case struct {
	Name   string `json:"name"`
	Setup  string `json:"setup"`
	Worker string `json:"worker"` // a fake-worker mode (schedule.ParseBehaviour)
	// FailureLimit (config) and MaxRetries (task) as in the row; 0: unset.
	FailureLimit, MaxRetries int
	// CrashGraceMs and CooldownMs as the row set them (nil: Hermes' defaults).
	CrashGraceMs, CooldownMs *int
	Unregistered             bool // the assignee has no profile
	// What the June release did: worker starts ("" figures: see Note),
	// final status, consecutive_failures, and its event sequence (a
	// trailing "…" means it went on the same way).
	Starts, Status string
	Failures       int
	Events         string
	Note           string `json:"note,omitempty"` // a surprise this row pins
}

func ms(n int) *int { return &n }

// Cases are spec §8's rows. Every row but the crash-grace one runs with
// crash grace 0, as the observation did.
func Cases() []Case {
	zero := ms(0)
	return []Case{
		{Name: "default-limit", Setup: "default limit (2), exit 1", Worker: "exit-now:1", CrashGraceMs: zero,
			Starts: "2", Status: "blocked", Failures: 2, Events: "created claimed spawned crashed claimed spawned crashed gave_up"},
		{Name: "failure-limit-3", Setup: "failure_limit 3 (config)", Worker: "exit-now:1", FailureLimit: 3, CrashGraceMs: zero,
			Starts: "3", Status: "blocked", Failures: 3,
			Events: "created claimed spawned crashed claimed spawned crashed gave_up promoted claimed spawned crashed gave_up",
			Note:   "the crash path trips at the default 2; recompute_ready re-promotes with the configured 3 (#63070)"},
		{Name: "failure-limit-1", Setup: "failure_limit 1 (config)", Worker: "exit-now:1", FailureLimit: 1, CrashGraceMs: zero,
			Starts: "2", Status: "blocked", Failures: 2, Events: "created claimed spawned crashed claimed spawned crashed gave_up",
			Note: "the configured limit is ignored for crashes (#63070)"},
		{Name: "max-retries-4", Setup: "task max_retries 4", Worker: "exit-now:1", MaxRetries: 4, CrashGraceMs: zero,
			Starts: "4", Status: "blocked", Failures: 4,
			Events: "created claimed spawned crashed claimed spawned crashed claimed spawned crashed claimed spawned crashed gave_up"},
		{Name: "crash-grace-default", Setup: "crash grace at its default 30 s", Worker: "exit-now:1",
			Starts: "1", Status: "running", Failures: 0, Events: "created claimed spawned",
			Note: "the worker is long dead, the task stays running for the first 30 s"},
		{Name: "exit-0", Setup: "exit 0 (protocol violation)", Worker: "exit-0-without-completing", CrashGraceMs: zero,
			Starts: "2", Status: "blocked", Failures: 2,
			Events: "created claimed spawned protocol_violation gave_up promoted claimed spawned protocol_violation gave_up"},
		{Name: "exit-75-cooldown-300", Setup: "exit 75, cooldown 300 s", Worker: "exit-75", CrashGraceMs: zero,
			Starts: "1", Status: "ready", Failures: 0, Events: "created claimed spawned rate_limited respawn_guarded …",
			Note: "respawn_guarded written on every tick: task_events grows without bound for an idle task"},
		{Name: "exit-75-cooldown-0", Setup: "exit 75, cooldown 0", Worker: "exit-75", CrashGraceMs: zero, CooldownMs: zero,
			Starts: "unbounded", Status: "running", Failures: 0, Events: "created claimed spawned rate_limited claimed spawned rate_limited …",
			Note: "47 starts in 10 s, never blocks"},
		{Name: "unregistered-assignee", Setup: "assignee is not a profile", Worker: "exit-now:1", CrashGraceMs: zero, Unregistered: true,
			Starts: "0", Status: "ready", Failures: 0, Events: "created",
			Note: "nothing tells anyone, forever"},
	}
}

// Observed is what a subject did in one case.
type Observed struct {
	Case     string   `json:"case"`
	Starts   int      `json:"starts"`
	Status   string   `json:"status"`
	Failures int      `json:"failures"`
	Events   []string `json:"events"`
	// Differs lists how it differs from the June row ("" fields match).
	Differs []string `json:"differs,omitempty"`
	Replay  string   `json:"replay,omitempty"`
	Error   string   `json:"error,omitempty"` // the run could not be read
}

// conformanceDurationMs is each case's dispatch phase: long enough for four
// crash-and-respawn rounds at 0.2 s ticks, and for respawn_guarded to show
// it repeats.
const conformanceDurationMs = 4000

// Schedule is the case as a run: one task, one dispatcher, 0.2 s ticks.
func (c Case) Schedule() (schedule.Schedule, error) {
	b, err := schedule.ParseBehaviour(c.Worker)
	if err != nil {
		return schedule.Schedule{}, err
	}
	s := schedule.Schedule{Scenario: "conformance-" + c.Name, Seed: 1, Variant: "hermes-0.19", Dispatchers: 1,
		TimeScale: 1, TickMs: 200, DurationMs: conformanceDurationMs, QuietMs: 0, FailureLimit: c.FailureLimit,
		CrashGraceMs: c.CrashGraceMs, CooldownMs: c.CooldownMs,
		Profiles: []schedule.Profile{{Name: "ghost", Worker: b, Unregistered: c.Unregistered}},
		Tasks:    []schedule.Task{{ID: "t_0000c0de", Title: "conformance: " + c.Setup, Assignee: "ghost", MaxRetries: c.MaxRetries}}}
	return s, s.Validate()
}

// Conform runs every case against the subject (variant for the reference
// dispatcher) and reads what it did from the board it left.
func Conform(ctx context.Context, subject schedule.Subject, variant string, parallel int, replay func(Case) string) ([]Observed, error) {
	cases := Cases()
	out := make([]Observed, len(cases))
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(parallel, 1))
	for i, c := range cases {
		g.Go(func() error {
			s, err := c.Schedule()
			if err != nil {
				return err
			}
			if variant != "" {
				s.Variant = variant
			}
			o := Observed{Case: c.Name}
			if replay != nil {
				o.Replay = replay(c)
			}
			res, err := harness.Run(gctx, s, harness.Options{Subject: subject, Keep: true, FullDuration: true})
			if err != nil {
				return fmt.Errorf("conformance %s: %w", c.Name, err)
			}
			defer os.RemoveAll(res.Artifacts)
			o.Starts = res.Verdict.Spawns[s.Tasks[0].ID]
			if err := readBoard(gctx, filepath.Join(res.Artifacts, "home"), s.Tasks[0].ID, &o); err != nil {
				o.Error = err.Error()
			}
			o.Differs = differences(c, o)
			mu.Lock()
			out[i] = o
			mu.Unlock()
			return nil
		})
	}
	return out, g.Wait()
}

func readBoard(ctx context.Context, home, task string, o *Observed) error {
	db, err := openBoard(home)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.QueryRowContext(ctx, `SELECT status, consecutive_failures FROM tasks WHERE id = ?`, task).Scan(&o.Status, &o.Failures); err != nil {
		return fmt.Errorf("read task: %w", err)
	}
	rows, err := db.QueryContext(ctx, `SELECT kind FROM task_events WHERE task_id = ? ORDER BY id`, task)
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			return err
		}
		o.Events = append(o.Events, k)
	}
	return rows.Err()
}

// housekeeping are events a release writes that say nothing about the
// breaker (a one-time tip about scratch workspaces).
var housekeeping = []string{"tip_scratch_workspace"}

// differences compares a subject's run with the June row.
func differences(c Case, o Observed) []string {
	if o.Error != "" {
		return []string{"could not read the board: " + o.Error}
	}
	var d []string
	switch c.Starts {
	case "unbounded":
		if o.Starts < 8 {
			d = append(d, fmt.Sprintf("starts %d, the June release's were unbounded", o.Starts))
		}
	default:
		if fmt.Sprint(o.Starts) != c.Starts {
			d = append(d, fmt.Sprintf("starts %d, not %s", o.Starts, c.Starts))
		}
	}
	if o.Status != c.Status && !(c.Starts == "unbounded" && o.Status == "ready") {
		// A row whose starts are unbounded cycles ready → running →
		// rate_limited → ready: the run stops wherever the cycle is (a
		// late tick leaves it ready), so ready matches as well as the
		// status the June observation happened to stop on.
		d = append(d, fmt.Sprintf("status %s, not %s", o.Status, c.Status))
	}
	if o.Failures != c.Failures {
		d = append(d, fmt.Sprintf("consecutive_failures %d, not %d", o.Failures, c.Failures))
	}
	got := slices.DeleteFunc(slices.Clone(o.Events), func(k string) bool { return slices.Contains(housekeeping, k) })
	want := strings.Fields(strings.TrimSuffix(c.Events, " …"))
	if strings.HasSuffix(c.Events, "…") {
		if len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
			d = append(d, "events begin "+short(got, len(want)+2)+", not "+c.Events)
		}
	} else if !slices.Equal(got, want) {
		d = append(d, "events "+short(got, 16)+", not "+c.Events)
	}
	return d
}

func short(events []string, n int) string {
	if len(events) <= n {
		return strings.Join(events, " ")
	}
	return strings.Join(events[:n], " ") + fmt.Sprintf(" … (%d in all)", len(events))
}

// Surprise is one of the June release's surprises, as an entry of its own:
// does it still stand in the subject?
type Surprise struct {
	Name   string `json:"name"`
	Stands bool   `json:"stands"`
	Detail string `json:"detail"`
}

// Surprises judges the June release's two silent surprises from the
// conformance runs: respawn_guarded written on every tick while a
// rate-limited task waits (task_events grows without bound), and a task
// whose assignee is not a profile sitting in ready with nothing said.
func Surprises(obs []Observed) []Surprise {
	byCase := map[string]Observed{}
	for _, o := range obs {
		byCase[o.Case] = o
	}
	ticks := conformanceDurationMs / 200
	guarded := 0
	for _, k := range byCase["exit-75-cooldown-300"].Events {
		if k == "respawn_guarded" {
			guarded++
		}
	}
	u := byCase["unregistered-assignee"]
	silent := u.Status == "ready" && len(slices.DeleteFunc(slices.Clone(u.Events), func(k string) bool { return k == "created" })) == 0
	return []Surprise{
		{Name: "respawn-guarded-growth", Stands: guarded >= ticks/2,
			Detail: fmt.Sprintf("%d respawn_guarded events in %d ticks while one rate-limited task waited its cooldown", guarded, ticks)},
		{Name: "silent-unregistered-assignee", Stands: silent,
			Detail: fmt.Sprintf("the task ends %s with events %q", u.Status, strings.Join(u.Events, " "))},
	}
}

package dispatcher

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// TestMain lets the test binary act as HERMES_BIN: started through a
// symlink named "hermes", it is the fake worker.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == fakeworker.InvokedAs {
		os.Exit(fakeworker.Main(os.Args[1:], os.Getenv, os.Stderr))
	}
	// The tables tick a board every 25 ms and sleep between ticks (a case
	// takes ~0.1 s of CPU in 1–2.5 s, measured): twice as many cases as
	// there are CPUs run at once (as in cli), unless -test.parallel says
	// otherwise.
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given {
		flag.Set("test.parallel", strconv.Itoa(2*runtime.GOMAXPROCS(0)))
	}
	os.Exit(m.Run())
}

// bench is one board, one dispatcher and its fake workers.
type bench struct {
	t        *testing.T
	home     string
	ledger   string
	d        *Dispatcher
	children *Children
	task     string
}

type setup struct {
	knobs        Knobs
	worker       string // fake worker mode, e.g. "exit-now:1"
	unregistered bool   // the assignee has no profile directory
	failureLimit int
	maxRetries   int
	timing       Timing
}

func newBench(t *testing.T, s setup) *bench {
	t.Helper()
	ctx := context.Background()
	root := t.TempDir()
	home := filepath.Join(root, "home")
	b := &bench{t: t, home: home, ledger: filepath.Join(root, "ledger.jsonl"), children: NewChildren()}
	t.Cleanup(func() {
		if left := b.children.KillAll(5 * time.Second); len(left) > 0 {
			t.Errorf("processes %v survived KillAll", left)
		}
	})
	behaviour, err := schedule.ParseBehaviour(s.worker)
	if err != nil {
		t.Fatal(err)
	}
	if !s.unregistered {
		os.MkdirAll(filepath.Join(home, "profiles", "ghost"), 0o755)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin", fakeworker.InvokedAs)
	os.MkdirAll(filepath.Dir(bin), 0o755)
	if err := os.Symlink(exe, bin); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(root, "worker.json")
	if err := fakeworker.WriteConfig(cfgPath, fakeworker.Config{Connect: s.knobs.Connect, ClaimTTLMs: 1000, PinBeatsBoard: s.knobs.PinBeatsBoard,
		Profiles: map[string]schedule.Behaviour{"ghost": behaviour}}); err != nil {
		t.Fatal(err)
	}
	dbPath := kanban.BoardPath(home, "default")
	board, err := kanban.Connect(ctx, dbPath, s.knobs.Connect)
	if err != nil {
		t.Fatal(err)
	}
	b.task, err = board.CreateTask(ctx, kanban.NewTask{Title: "ghost card", Assignee: "ghost", MaxRetries: s.maxRetries})
	board.Close()
	if err != nil {
		t.Fatal(err)
	}
	b.d, err = New(ctx, Config{
		Name: "d1", Home: home, Board: "default", DBPath: dbPath, HermesBin: bin,
		Env:   append(os.Environ(), fakeworker.EnvLedger+"="+b.ledger, fakeworker.EnvConfig+"="+cfgPath),
		Knobs: s.knobs, FailureLimit: s.failureLimit, Timing: s.timing, Children: b.children,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.d.Close() })
	return b
}

// tick runs n dispatch_once calls, gap apart (§8 ran them every 0.2 s).
func (b *bench) tick(n int, gap time.Duration) {
	b.t.Helper()
	for i := 0; i < n; i++ {
		if tk, err := b.d.DispatchOnce(context.Background()); err != nil {
			b.t.Fatalf("tick %d: %v (%+v)", i, err, tk)
		}
		time.Sleep(gap)
	}
}

func (b *bench) starts() int {
	h, err := ledger.Read(b.ledger)
	if err != nil {
		b.t.Fatal(err)
	}
	return len(h.Starts()[b.task])
}

func (b *bench) state() (status string, failures int, lastError string, events []string) {
	b.t.Helper()
	db := b.d.watch.DB()
	var le *string
	if err := db.QueryRow(`SELECT status, consecutive_failures, last_failure_error FROM tasks WHERE id=?`, b.task).Scan(&status, &failures, &le); err != nil {
		b.t.Fatal(err)
	}
	if le != nil {
		lastError = *le
	}
	rows, err := db.Query(`SELECT kind FROM task_events WHERE task_id=? AND kind != 'heartbeat' ORDER BY id`, b.task)
	if err != nil {
		b.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		rows.Scan(&k)
		events = append(events, k)
	}
	return
}

func knobsOf(t *testing.T, variant string, overrides map[string]string) Knobs {
	t.Helper()
	k, err := Resolve(variant, overrides)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// fastTiming is Hermes' timing scaled down, with the crash grace off, as the
// §8 runs used HERMES_KANBAN_CRASH_GRACE_SECONDS=0.
func fastTiming() Timing {
	tm := HermesTiming(0.001)
	tm.CrashGrace = 0
	return tm
}

// june is how the knobs express Hermes' dispatcher at commit b405c398 (June
// 2026), the build spec/hermes-kanban.md §8 ran: v0.18.x, i.e. hermes-0.19
// without v0.19's protocol-violation streak.
var june = map[string]string{"protocol_streak": "0"}

// matrixCase is one row of a measured table: one task assigned to ghost,
// dispatch_once every 25 ms (§8 used 0.2 s), crash grace 0 unless the row
// says otherwise.
type matrixCase struct {
	name       string
	s          setup
	wantStarts int // -1: at least 5 (unbounded)
	wantStatus string
	wantFails  int    // -1: not compared
	wantEvents string // "" = not compared
}

func runMatrix(t *testing.T, variant string, overrides map[string]string, cases []matrixCase) {
	t.Helper()
	t.Parallel() // a board of its own per case, like every table
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.s.knobs = knobsOf(t, variant, overrides)
			if c.s.timing.Tick == 0 {
				c.s.timing = fastTiming()
			}
			b := newBench(t, c.s)
			b.tick(30, 25*time.Millisecond)
			status, fails, _, events := b.state()
			starts := b.starts()
			if c.wantStarts >= 0 && starts != c.wantStarts {
				t.Errorf("worker starts = %d, want %d (events %v)", starts, c.wantStarts, events)
			}
			if c.wantStarts < 0 && starts < 5 {
				t.Errorf("worker starts = %d, want an unbounded loop (≥5); events %v", starts, events)
			}
			if c.wantStatus != "" && status != c.wantStatus {
				t.Errorf("status = %s, want %s", status, c.wantStatus)
			}
			if c.wantFails >= 0 && fails != c.wantFails {
				t.Errorf("consecutive_failures = %d, want %d", fails, c.wantFails)
			}
			if c.wantEvents != "" && !eventsMatch(events, c.wantEvents) {
				t.Errorf("events:\n got %s\nwant %s", strings.Join(events, " "), c.wantEvents)
			}
		})
	}
}

// eventsMatch compares event kinds with want; a last word ending in "+"
// stands for that kind on every later tick (at least 20 times in 30 ticks).
func eventsMatch(events []string, want string) bool {
	w := strings.Fields(want)
	last := w[len(w)-1]
	if !strings.HasSuffix(last, "+") {
		return slices.Equal(events, w)
	}
	head, kind := w[:len(w)-1], strings.TrimSuffix(last, "+")
	if len(events) < len(head)+20 || !slices.Equal(events[:len(head)], head) {
		return false
	}
	return !slices.ContainsFunc(events[len(head):], func(e string) bool { return e != kind })
}

// Timings the measured rows need besides fastTiming.
func graceDefault() Timing {
	tm := fastTiming()
	tm.CrashGrace = 30 * time.Second
	// The dead worker's claim must not expire during the test either (0.9 s
	// scaled), or a slow machine reclaims it and respawns: a different row.
	tm.ClaimTTL = time.Minute
	return tm
}

func cooldown(d time.Duration) Timing {
	tm := fastTiming()
	tm.RateLimitCooldown = d
	return tm
}

const (
	evTwoCrashes = "created claimed spawned crashed claimed spawned crashed gave_up"
	evLimit3     = "created claimed spawned crashed claimed spawned crashed gave_up promoted claimed spawned crashed gave_up"
)

// TestGroundTruthJune2026 replays spec/hermes-kanban.md §8: what Hermes'
// dispatcher (commit b405c398, June 2026 ≈ v0.18.x) did against a fake
// worker. Every row must match.
func TestGroundTruthJune2026(t *testing.T) {
	runMatrix(t, "hermes-0.19", june, []matrixCase{
		{"default limit, exit 1", setup{worker: "exit-now:1"}, 2, "blocked", 2, evTwoCrashes},
		{"failure_limit=3", setup{worker: "exit-now:1", failureLimit: 3}, 3, "blocked", 3, evLimit3},
		{"failure_limit=1 is ignored by the crash path", setup{worker: "exit-now:1", failureLimit: 1}, 2, "blocked", 2, evTwoCrashes},
		{"max_retries=4", setup{worker: "exit-now:1", maxRetries: 4}, 4, "blocked", 4,
			"created" + strings.Repeat(" claimed spawned crashed", 4) + " gave_up"},
		{"crash grace 30s", setup{worker: "exit-now:1", timing: graceDefault()}, 1, "running", 0, "created claimed spawned"},
		{"exit 0 is a protocol violation", setup{worker: "exit-0-without-completing"}, 2, "blocked", 2,
			"created claimed spawned protocol_violation gave_up promoted claimed spawned protocol_violation gave_up"},
		{"exit 75, cooldown 300 s: respawn_guarded every tick", setup{worker: "exit-75", timing: cooldown(time.Minute)}, 1, "ready", 0,
			"created claimed spawned rate_limited respawn_guarded+"},
		{"exit 75 with cooldown 0 is unbounded", setup{worker: "exit-75", timing: cooldown(0)}, -1, "", 0, ""},
		{"assignee is not a profile", setup{worker: "exit-now:1", unregistered: true}, 0, "ready", 0, "created"},
	})
}

// TestRelease014 replays the 0.14.0 column of the measured matrix
// (/tmp/hermes-releases.md, hermes-agent 0.14.0 from PyPI): recompute_ready
// promotes todo only, so every trip holds; exit 75 is a counted crash; no
// crash grace.
func TestRelease014(t *testing.T) {
	runMatrix(t, "hermes-0.14", nil, []matrixCase{
		{"A exit 1, default", setup{worker: "exit-now:1"}, 2, "blocked", 2, evTwoCrashes},
		{"B failure_limit=3", setup{worker: "exit-now:1", failureLimit: 3}, 2, "blocked", 2, evTwoCrashes},
		{"C failure_limit=1", setup{worker: "exit-now:1", failureLimit: 1}, 2, "blocked", 2, evTwoCrashes},
		{"L failure_limit=4", setup{worker: "exit-now:1", failureLimit: 4}, 2, "blocked", 2, evTwoCrashes},
		{"D max_retries=4", setup{worker: "exit-now:1", maxRetries: 4}, 4, "blocked", 4,
			"created" + strings.Repeat(" claimed spawned crashed", 4) + " gave_up"},
		{"E no crash grace", setup{worker: "exit-now:1", timing: graceDefault()}, 2, "blocked", 2, evTwoCrashes},
		{"F exit 0", setup{worker: "exit-0-without-completing"}, 1, "blocked", 1, "created claimed spawned protocol_violation gave_up"},
		{"G exit 75 is a counted crash", setup{worker: "exit-75", timing: cooldown(time.Minute)}, 2, "blocked", 2, evTwoCrashes},
		{"H exit 75, cooldown 0", setup{worker: "exit-75", timing: cooldown(0)}, 2, "blocked", 2, evTwoCrashes},
		{"I assignee is not a profile", setup{worker: "exit-now:1", unregistered: true}, 0, "ready", 0, "created"},
	})
}

// TestRelease015 replays the 0.15.0 column: recompute_ready re-promotes the
// breaker-blocked task and resets its counter, so every failing row loops
// without bound (38 starts in 8 s measured); the crash grace holds the first
// dead worker running.
func TestRelease015(t *testing.T) {
	runMatrix(t, "hermes-0.15", nil, []matrixCase{
		{"A exit 1, default", setup{worker: "exit-now:1"}, -1, "", -1, ""},
		{"B failure_limit=3", setup{worker: "exit-now:1", failureLimit: 3}, -1, "", -1, ""},
		{"C failure_limit=1", setup{worker: "exit-now:1", failureLimit: 1}, -1, "", -1, ""},
		{"L failure_limit=4", setup{worker: "exit-now:1", failureLimit: 4}, -1, "", -1, ""},
		{"D max_retries=4", setup{worker: "exit-now:1", maxRetries: 4}, -1, "", -1, ""},
		{"E crash grace 30s", setup{worker: "exit-now:1", timing: graceDefault()}, 1, "running", 0, "created claimed spawned"},
		{"F exit 0", setup{worker: "exit-0-without-completing"}, -1, "", -1, ""},
		{"G exit 75 is a crash, and loops", setup{worker: "exit-75", timing: cooldown(time.Minute)}, -1, "", -1, ""},
		{"I assignee is not a profile", setup{worker: "exit-now:1", unregistered: true}, 0, "ready", 0, "created"},
	})
}

// TestRelease019 replays the 0.19.0 column: as the June build, except that
// exit 0 trips only after a streak of 3 violations (4 starts).
func TestRelease019(t *testing.T) {
	runMatrix(t, "hermes-0.19", nil, []matrixCase{
		{"A exit 1, default", setup{worker: "exit-now:1"}, 2, "blocked", 2, evTwoCrashes},
		{"B failure_limit=3", setup{worker: "exit-now:1", failureLimit: 3}, 3, "blocked", 3, evLimit3},
		{"C failure_limit=1", setup{worker: "exit-now:1", failureLimit: 1}, 2, "blocked", 2, evTwoCrashes},
		{"L failure_limit=4", setup{worker: "exit-now:1", failureLimit: 4}, 4, "blocked", 4,
			"created claimed spawned crashed claimed spawned crashed gave_up promoted claimed spawned crashed gave_up promoted claimed spawned crashed gave_up"},
		{"D max_retries=4", setup{worker: "exit-now:1", maxRetries: 4}, 4, "blocked", 4,
			"created" + strings.Repeat(" claimed spawned crashed", 4) + " gave_up"},
		{"E crash grace 30s", setup{worker: "exit-now:1", timing: graceDefault()}, 1, "running", 0, "created claimed spawned"},
		{"F exit 0: a streak of 3, then trips", setup{worker: "exit-0-without-completing"}, 4, "blocked", 2,
			"created" + strings.Repeat(" claimed spawned protocol_violation", 3) + " gave_up promoted claimed spawned protocol_violation gave_up"},
		{"G exit 75, cooldown 300 s", setup{worker: "exit-75", timing: cooldown(time.Minute)}, 1, "ready", 0,
			"created claimed spawned rate_limited respawn_guarded+"},
		{"H exit 75, cooldown 0", setup{worker: "exit-75", timing: cooldown(0)}, -1, "", 0, ""},
		{"I assignee is not a profile", setup{worker: "exit-now:1", unregistered: true}, 0, "ready", 0, "created"},
	})
}

// TestHermes015Repromotes is #30417 on v0.15.0: the tripped task is
// re-promoted in the same tick with its counter reset, so a crash-at-once
// worker is respawned without end and the counter never passes the limit.
func TestHermes015Repromotes(t *testing.T) {
	b := newBench(t, setup{knobs: knobsOf(t, "hermes-0.15", nil), worker: "exit-now:1", timing: fastTiming()})
	b.tick(30, 25*time.Millisecond)
	_, fails, _, events := b.state()
	if starts := b.starts(); starts <= 4 {
		t.Fatalf("hermes-0.15 started the worker %d times; the re-promotion loop should exceed the limit of 2 many times over", starts)
	}
	i := slices.Index(events, "gave_up")
	if i < 0 || i+1 >= len(events) || events[i+1] != "promoted" {
		t.Fatalf("want gave_up immediately followed by promoted (same tick), got %v", events)
	}
	if fails > 2 {
		t.Fatalf("consecutive_failures = %d: the re-promotion should reset it", fails)
	}
}

// TestFixed holds the fixed variant to the limit the user configured.
func TestFixed(t *testing.T) {
	t.Parallel()
	longCooldown := fastTiming()
	longCooldown.RateLimitCooldown = time.Minute
	cases := []struct {
		name       string
		s          setup
		wantStarts int
		wantStatus string
	}{
		{"default limit", setup{worker: "exit-now:1"}, 2, "blocked"},
		{"configured limit 4 (#63070)", setup{worker: "exit-now:1", failureLimit: 4}, 4, "blocked"},
		{"configured limit 1", setup{worker: "exit-now:1", failureLimit: 1}, 1, "blocked"},
		{"heartbeat then crash", setup{worker: "heartbeat-then-crash"}, 2, "blocked"},
		{"open board then exit", setup{worker: "open-board-then-exit:3"}, 2, "blocked"},
		{"exit 0", setup{worker: "exit-0-without-completing"}, 2, "blocked"},
		{"complete", setup{worker: "complete"}, 1, "done"},
		{"exit 75 waits for the cooldown", setup{worker: "exit-75", timing: longCooldown}, 1, "ready"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.s.knobs = knobsOf(t, "fixed", nil)
			if c.s.timing.Tick == 0 {
				c.s.timing = fastTiming()
			}
			c.s.timing.BackoffBase = time.Millisecond
			b := newBench(t, c.s)
			b.tick(40, 25*time.Millisecond)
			status, _, _, events := b.state()
			if starts := b.starts(); starts != c.wantStarts {
				t.Errorf("worker starts = %d, want %d (events %v)", starts, c.wantStarts, events)
			}
			if status != c.wantStatus {
				t.Errorf("status = %s, want %s (events %v)", status, c.wantStatus, events)
			}
			if slices.Contains(events, "promoted") {
				t.Errorf("fixed promoted a tripped task: %v", events)
			}
		})
	}
}

// TestFixedAutoBlocksUnknownAssignee: instead of skipping forever in
// silence, fixed blocks the task once with an error that says what to do.
func TestFixedAutoBlocksUnknownAssignee(t *testing.T) {
	b := newBench(t, setup{knobs: knobsOf(t, "fixed", nil), worker: "exit-now:1", unregistered: true, timing: fastTiming()})
	b.tick(5, 10*time.Millisecond)
	status, _, lastErr, events := b.state()
	if status != "blocked" || !strings.Contains(lastErr, `assignee "ghost" is not a known profile`) {
		t.Fatalf("status=%s last_failure_error=%q", status, lastErr)
	}
	if strings.Join(events, " ") != "created blocked" || b.starts() != 0 {
		t.Fatalf("events %v, starts %d; want one sticky blocked event and no spawn", events, b.starts())
	}
}

// TestWorkerArgvAndEnv checks the worker receives Hermes' exact command line
// and environment (§8 "What a worker receives").
func TestWorkerArgvAndEnv(t *testing.T) {
	b := newBench(t, setup{knobs: knobsOf(t, "hermes-0.14", nil), worker: "hang", timing: fastTiming()})
	cands, err := b.d.watch.SpawnCandidates(context.Background())
	if err != nil || len(cands) != 1 {
		t.Fatalf("candidates %v %v", cands, err)
	}
	spec := b.d.spec(cands[0], 7, "/ws/"+b.task, "/ws")
	want := []string{b.d.cfg.HermesBin, "-p", "ghost", "--accept-hooks", "chat", "-q", "work kanban task " + b.task}
	if !slices.Equal(spec.Argv, want) {
		t.Fatalf("argv %q, want %q", spec.Argv, want)
	}
	env := strings.Join(spec.Env, "\n")
	for _, kv := range []string{"HERMES_KANBAN_TASK=" + b.task, "HERMES_KANBAN_RUN_ID=7", "HERMES_KANBAN_CLAIM_LOCK=" + b.d.cfg.ClaimLock,
		"HERMES_KANBAN_DB=" + b.d.cfg.DBPath, "HERMES_KANBAN_BOARD=default", "HERMES_KANBAN_WORKSPACES_ROOT=/ws",
		"HERMES_KANBAN_WORKSPACE=/ws/" + b.task, "TERMINAL_CWD=/ws/" + b.task, "HERMES_PROFILE=ghost",
		"HERMES_HOME=" + filepath.Join(b.home, "profiles", "ghost")} {
		if !strings.Contains("\n"+env+"\n", "\n"+kv+"\n") {
			t.Errorf("worker env lacks %s", kv)
		}
	}
	if spec.Dir != "/ws/"+b.task {
		t.Errorf("cwd %s", spec.Dir)
	}
}

// TestDispatchLock: with the lock, a second dispatcher's tick during the
// first one's is skipped and writes nothing (#35240).
func TestDispatchLock(t *testing.T) {
	b := newBench(t, setup{knobs: knobsOf(t, "fixed", nil), worker: "hang", timing: fastTiming()})
	unlock, ok, err := tryLock(b.d.cfg.DBPath + ".dispatch.lock")
	if err != nil || !ok {
		t.Fatalf("take lock: %v %v", ok, err)
	}
	tk, err := b.d.DispatchOnce(context.Background())
	unlock()
	if err != nil || !tk.SkippedLocked || tk.Spawned != 0 {
		t.Fatalf("tick under a held lock: %+v %v", tk, err)
	}
	if tk, _ = b.d.DispatchOnce(context.Background()); tk.Spawned != 1 {
		t.Fatalf("tick after unlock: %+v", tk)
	}
}

func TestKnobsAndVariants(t *testing.T) {
	if _, err := Resolve("hermes-9", nil); err == nil || !strings.Contains(err.Error(), "hermes-0.14, pr30973, hermes-0.15, hermes-0.19, fixed") {
		t.Fatalf("unknown variant error must list the valid ones: %v", err)
	}
	if _, err := Resolve("fixed", map[string]string{"nope": "1"}); err == nil || !strings.Contains(err.Error(), "atomic_failure") {
		t.Fatalf("unknown knob error must list the valid ones: %v", err)
	}
	if _, err := Resolve("fixed", map[string]string{"backoff": "maybe"}); err == nil {
		t.Fatal("a non-boolean value for a bool knob must fail")
	}
	k := knobsOf(t, "hermes-0.14", map[string]string{"atomic_failure": "true", "synchronous": "full", "crash_limit": "configured"})
	if !k.AtomicFailure || k.Connect.Synchronous != "FULL" || k.CrashLimit != "configured" || k.PromoteBlocked || k.Connect.BusyTimeoutMs != 30000 {
		t.Fatalf("overrides not applied alone: %+v", k)
	}
	pr := knobsOf(t, "pr30973", nil)
	want := knobsOf(t, "hermes-0.14", map[string]string{"synchronous": "FULL", "wal_autocheckpoint": "100"})
	if !reflect.DeepEqual(pr, want) {
		t.Fatalf("pr30973 must be hermes-0.14 + FULL + autocheckpoint 100:\n%+v\n%+v", pr, want)
	}
	for _, v := range Variants() {
		vals := v.Knobs.Values()
		var back Knobs
		for n, val := range vals {
			if err := back.Set(n, val); err != nil {
				t.Fatalf("%s: knob %s=%s does not round-trip: %v", v.Name, n, val, err)
			}
		}
		if !reflect.DeepEqual(back, v.Knobs) {
			t.Fatalf("%s: Values/Set round trip lost something:\n%+v\n%+v", v.Name, back, v.Knobs)
		}
	}
}

// TestCreateOnBoardRouting is #30678 seen from a worker: a worker pinned by
// HERMES_KANBAN_DB calls kanban_create(board=other). With the pin first
// (hermes-0.14) the card lands in the worker's own board; with the explicit
// board first (fixed) it lands in the other board's file.
func TestCreateOnBoardRouting(t *testing.T) {
	for _, c := range []struct {
		variant         string
		ownBoardTasks   int
		otherBoardTasks int
	}{{"hermes-0.14", 2, 0}, {"fixed", 1, 1}} {
		t.Run(c.variant, func(t *testing.T) {
			k := knobsOf(t, c.variant, nil)
			b := newBench(t, setup{knobs: k, worker: "create-on-board:other", timing: fastTiming()})
			// The worker resolves boards from the home the dispatcher gives it.
			b.d.cfg.Env = append(b.d.cfg.Env, "HERMES_KANBAN_HOME="+b.home)
			b.tick(1, 0)
			deadline := time.Now().Add(5 * time.Second)
			for b.starts() == 0 || func() bool { s, _, _, _ := b.state(); return s == "running" }() {
				if time.Now().After(deadline) {
					t.Fatal("the worker did not finish")
				}
				time.Sleep(10 * time.Millisecond)
			}
			var own int
			b.d.watch.DB().QueryRow(`SELECT count(*) FROM tasks`).Scan(&own)
			other := 0
			otherPath := kanban.BoardPath(b.home, "other")
			if _, err := os.Stat(otherPath); err == nil {
				ob, err := kanban.Connect(context.Background(), otherPath, k.Connect)
				if err != nil {
					t.Fatal(err)
				}
				ob.DB().QueryRow(`SELECT count(*) FROM tasks`).Scan(&other)
				ob.Close()
			}
			if own != c.ownBoardTasks || other != c.otherBoardTasks {
				t.Fatalf("own board has %d tasks, other board %d; want %d and %d", own, other, c.ownBoardTasks, c.otherBoardTasks)
			}
		})
	}
}

// TestOnStartPerWorker: OnStart is called once per worker a tick started,
// inside the tick — the harness counts it as progress, so a first tick that
// spawns a whole board one worker after another is not a stall.
func TestOnStartPerWorker(t *testing.T) {
	b := newBench(t, setup{knobs: knobsOf(t, "fixed", nil), worker: "hang", timing: fastTiming()})
	starts := 0
	b.d.cfg.OnStart = func() { starts++ }
	tk, err := b.d.DispatchOnce(context.Background())
	if err != nil || tk.Spawned != 1 || starts != tk.Spawned {
		t.Fatalf("tick %+v (%v): OnStart called %d times, want once per worker started", tk, err, starts)
	}
}

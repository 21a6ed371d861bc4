package subject

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// hermesSubject is a real Hermes Agent release (hermes:VERSION) or source
// checkout (hermes:PATH): one driver process of ours per schedule
// dispatcher runs the release's own dispatch_once loop, as a gateway does
// — the workers' parent, a fresh connect() per tick — with the settings a
// gateway reads written to config.yaml and the time settings in the whole
// seconds Hermes parses. The drivers record the release's ticks, commits
// and SQLite errors in the ledger and report the settings it resolved.
type hermesSubject struct{ base }

// Check refuses knobs the release would silently ignore, a release that is
// not installed, and worker behaviours its kanban tools cannot play.
func (h hermesSubject) Check(ctx context.Context, s schedule.Schedule) error {
	if err := CheckHermesKnobs(s.Variant, s.Knobs); err != nil {
		return err
	}
	if _, err := hermesInstall(h.sub); err != nil {
		return err
	}
	return CheckWorkers(ctx, s)
}

func (h hermesSubject) Settings(s schedule.Schedule, timing dispatcher.Timing) Settings {
	st := externalSettings(h.sub, s, timing)
	st.Notes = append(st.Notes, fmt.Sprintf("tick %v: the driver's own loop (a gateway ticks every dispatch_interval_seconds ≥ 1 s)", timing.Tick))
	st.Workers = workerKind(h.sub)
	st.Notes = append(st.Notes, hermesWorkerNotes(h.sub, s.Knobs)...)
	return st
}

// Verify reads each driver's settings report: settings that did not take
// effect, a driver that never started the release, a libsqlite3 other
// than the run asked for.
func (h hermesSubject) Verify(st *Settings, hist ledger.History, s schedule.Schedule) []string {
	return append(verifyHermes(st, hist, s.Dispatchers), verifyPythonSQLite(st, hist, h.sub)...)
}

// Observability: the drivers record the release's ticks, commits and
// errors; the release's file descriptors are in another process.
func (h hermesSubject) Observability(ledger.History) oracle.Observability {
	return oracle.Observability{Name: h.Name(), Ticks: true, Commits: true, Errors: true, Alarms: true}
}

// ClockResolution: Hermes stamps times in whole seconds.
func (hermesSubject) ClockResolution() float64 { return 1 }

// Dispatch starts the drivers; the run's clock starts once every one has
// imported the release (its settings record), and the go file tells them
// to begin.
func (h hermesSubject) Dispatch(ctx context.Context, r Run) (Phases, error) {
	s, sb, timing := r.Schedule, r.Sandbox, r.Timing
	in, err := hermesInstall(h.sub)
	if err != nil {
		return Phases{}, err
	}
	if err := hermes.WriteConfig(sb.Home(), hermes.Gateway{FailureLimit: s.FailureLimit, MaxSpawn: s.MaxSpawn, Tick: timing.Tick}); err != nil {
		return Phases{}, err
	}
	env, err := subjectEnv(sb, timing, r.Knobs.Connect.OFDLocking)
	if err != nil {
		return Phases{}, err
	}
	env = in.Env(env)
	if h.sub.Workers == hermes.WorkersHermes {
		// bin/hermes becomes the Hermes worker: HERMES_BIN names it, and
		// releases that find their worker as `hermes` on PATH (0.14.0) find it.
		if err := hermes.WriteWorker(sb.Root, sb.HermesBin(), in); err != nil {
			return Phases{}, err
		}
	}
	secs := wholeSeconds(timing)
	r.Logf("dispatching with hermes:%s (%s; %d driver process(es), tick %v; %s workers; Python's SQLite: %s)", h.sub.Hermes, in.Python,
		s.Dispatchers, timing.Tick, workerKind(h.sub), pythonSQLite(h.sub))
	return dispatchExternal(ctx, r, func(name string, offset time.Duration) (instance, error) {
		script, settings, err := hermes.WriteDriver(sb.Root, hermes.Driver{
			Name: name, Ledger: sb.Ledger(), TickS: timing.Tick.Seconds(), TTL: secs.ClaimTTL, LosePID: r.Knobs.LosePID,
			Go: sb.GoFile(), OffsetS: offset.Seconds(),
		})
		if err != nil {
			return instance{}, err
		}
		return instance{
			command:   func() *exec.Cmd { return exec.Command(in.Python, "-u", script, settings) },
			env:       slices.Concat(env, []string{"KANBANCHAOS_DISPATCHER=" + name}),
			ownOffset: true,
			ready:     func() bool { return reportedSettings(sb.Ledger(), name) },
		}, nil
	})
}

// CheckHermesKnobs refuses knobs a hermes: run cannot honour. It takes the
// Go workers' connection knobs and the lose_pid fault, which the driver
// plays by spawning through the release's own _default_spawn and returning
// no pid. Every other knob shapes our reference dispatcher, which does not
// run: setting one would be a setting the subject silently ignores.
func CheckHermesKnobs(variant string, overrides map[string]string) error {
	base, err := dispatcher.Resolve(variant, nil)
	if err != nil {
		return err
	}
	for name := range overrides {
		if dispatcher.IsWorkerKnob(name) || name == "lose_pid" {
			continue
		}
		k := base
		if err := k.Set(name, overrides[name]); err != nil {
			return err
		}
		if k.Values()[name] == base.Values()[name] {
			continue // set to what the variant has anyway: changes nothing
		}
		return fmt.Errorf("knob %s changes the reference dispatcher, which a hermes: run does not use; "+
			"a hermes: run takes only the workers' connection knobs and lose_pid", name)
	}
	return nil
}

// hermesInstall is the subject's release, on the libsqlite3 it asks for.
func hermesInstall(sub schedule.Subject) (hermes.Install, error) {
	in, err := hermes.Locate(sub.Hermes)
	if err != nil {
		return in, err
	}
	return in.WithSQLite(sub.PythonSQLite)
}

func workerKind(sub schedule.Subject) string {
	if sub.Workers == "" {
		return hermes.WorkersGo
	}
	return sub.Workers
}

func pythonSQLite(sub schedule.Subject) string {
	if sub.PythonSQLite == "" {
		return hermes.PythonSQLiteSystem
	}
	return sub.PythonSQLite
}

// CheckWorkers refuses a schedule whose Hermes workers would have to play
// a behaviour the release's own kanban tools cannot express (the release
// is asked: worker.py --modes): such a behaviour is never faked. Go
// workers play every behaviour.
func CheckWorkers(ctx context.Context, s schedule.Schedule) error {
	if err := s.Subject.Validate(); err != nil {
		return err
	}
	if s.Subject.Workers != hermes.WorkersHermes {
		return nil
	}
	in, err := hermesInstall(s.Subject)
	if err != nil {
		return err
	}
	m, err := hermes.ProbeWorkerModes(ctx, in, os.Environ())
	if err != nil {
		return err
	}
	for _, p := range s.Profiles {
		if slices.Contains(m.Modes, p.Worker.Mode) {
			continue
		}
		why := m.Cannot[p.Worker.Mode]
		if why == "" {
			why = "worker.py has no such mode"
		}
		return fmt.Errorf("--workers hermes: profile %s's worker mode %s cannot be played through hermes:%s's kanban tools: %s",
			p.Name, p.Worker.Mode, s.Subject.Hermes, why)
	}
	return nil
}

// hermesWorkerNotes say which of the schedule's worker knobs Hermes
// workers do not take: their connections are the release's own connect().
// The knobs still shape the seeded board (its journal mode).
func hermesWorkerNotes(sub schedule.Subject, knobs map[string]string) []string {
	if sub.Workers != hermes.WorkersHermes {
		return nil
	}
	var names []string
	for name := range knobs {
		if dispatcher.IsWorkerKnob(name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	slices.Sort(names)
	return []string{fmt.Sprintf("worker knobs %v are not used by the Hermes workers (they connect through the release's own connect()); "+
		"they still shape the board the harness seeds", names)}
}

// verifyPythonSQLite returns why a run did not test the SQLite it says:
// a driver or a Hermes worker that loaded another libsqlite3 than the run
// asked for (or than the drivers did).
func verifyPythonSQLite(st *Settings, h ledger.History, sub schedule.Subject) (unknowns []string) {
	want := sub.PythonSQLite
	if want == hermes.PythonSQLiteSystem {
		want = ""
	}
	for _, r := range st.Reported {
		if want != "" && r.SQLite != want {
			unknowns = append(unknowns, fmt.Sprintf("the driver's Python loaded SQLite %s, the run asked for --python-sqlite %s", r.SQLite, want))
		}
		if want == "" {
			want = r.SQLite
		}
	}
	workers := map[string]int{}
	for _, e := range h.Entries {
		if v, ok := strings.CutPrefix(e.Message, "hermes worker sqlite "); ok && e.Kind == ledger.Start {
			workers[v]++
			if want != "" && v != want {
				unknowns = append(unknowns, fmt.Sprintf("a Hermes worker (pid %d) loaded SQLite %s, the drivers %s", e.PID, v, want))
				break
			}
		}
	}
	for v := range workers {
		st.WorkerSQLite = append(st.WorkerSQLite, v)
	}
	slices.Sort(st.WorkerSQLite)
	return unknowns
}

// reportedSettings reports whether dispatcher name's driver has written its
// settings record: it has imported the release and waits to tick.
func reportedSettings(ledgerPath, name string) bool {
	h, err := ledger.Read(ledgerPath)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(h.Entries, func(e ledger.Entry) bool { return e.Kind == ledger.Settings && e.Who == name })
}

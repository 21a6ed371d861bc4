package scenarios

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"reflect"
	"slices"

	"github.com/leanovate/gopter"
	"github.com/leanovate/gopter/gen"

	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// A swarm varies a scenario's parameters around its fixed parts (TigerBeetle's
// swarm testing, FoundationDB's random knobs): every run of a campaign draws
// dispatchers, tick, tasks with their workers' behaviour and crash delays,
// limits, max_spawn and fault times from gopter generators, while the
// scenario's variant, knobs, engine, time scale and fault kinds stay as they
// are. The drawn value is a flat Params built with gen.Struct and
// gen.SliceOf, so gopter can shrink every field and drop tasks; Schedule maps
// it to a schedule.Schedule deterministically.

// Params is one draw of a swarm: the varied parts of a schedule.
//
// Field order is shrink order: gopter's struct shrinker tries the fields one
// after another, and fewer tasks and dispatchers shorten every later re-run.
type Params struct {
	Tasks        []TaskParams `json:"tasks"`
	Dispatchers  int          `json:"dispatchers"`
	DurationMs   int          `json:"duration_ms"`
	QuietMs      int          `json:"quiet_ms"`
	TickMs       int          `json:"tick_ms"`
	FailureLimit int          `json:"failure_limit"` // 0 = unset (Hermes' default 2)
	MaxSpawn     int          `json:"max_spawn"`     // 0 = no cap
	// FaultPermille moves the scenario's faults to this fraction of the
	// dispatch phase (250–1000 ‰; 0 when the scenario has no faults).
	FaultPermille int `json:"fault_permille"`
}

// TaskParams is one task and the behaviour of its assignee's workers.
type TaskParams struct {
	// Worker indexes the swarm's worker menu; 0 is the scenario's own worker.
	Worker     int `json:"worker"`
	Exit       int `json:"exit"`        // indexes exitCodes, for modes that exit with a code
	DelayMs    int `json:"delay_ms"`    // 0–200 ms before the worker acts (its crash delay)
	MaxRetries int `json:"max_retries"` // 0 = unset
	Writes     int `json:"writes"`      // writer modes: progress comments
}

// exitCodes are the crash exit codes a swarm draws from; 1 is the usual.
var exitCodes = []int{1, 2, 3, 127}

// Ranges bound a swarm's draws. Each range shrinks toward its low end.
type Ranges struct {
	Tasks, Dispatchers, DurationMs, QuietMs, TickMs, FailureLimit, MaxSpawn, DelayMs, MaxRetries, Writes [2]int
}

// Swarm draws schedules of one scenario.
type Swarm struct {
	sc     Scenario
	base   schedule.Schedule // the scenario's fixed parts (seed 1, its own variant)
	menu   []schedule.Behaviour
	ranges Ranges
	// capMs caps the dispatch and quiet phases (WithMaxPhases; 0: none),
	// above the room a draw needs: a capped campaign asked for short runs.
	capMs [2]int
}

// Swarm returns the scenario's swarm. Scenarios whose workers write like
// Hermes workers (the corruption family) vary writers, crash-in-transaction
// workers and fault times; the others (the breaker family) vary
// crash-at-once workers, limits and dispatchers.
func (sc Scenario) Swarm() Swarm {
	base := sc.Build(1, "")
	w := Swarm{sc: sc, base: base}
	// The menu holds each behaviour once; the delay is drawn per task.
	add := func(bs ...schedule.Behaviour) {
		for _, b := range bs {
			b.DelayMs = 0
			if !slices.Contains(w.menu, b) {
				w.menu = append(w.menu, b)
			}
		}
	}
	for _, p := range base.Profiles {
		add(p.Worker)
	}
	writer := slices.ContainsFunc(w.menu, func(b schedule.Behaviour) bool {
		return b.Mode == schedule.ModeWriteComplete || b.Mode == schedule.ModeWriteExit || b.Mode == schedule.ModeKillInTxn
	})
	if writer {
		add(
			schedule.Behaviour{Mode: schedule.ModeWriteComplete, Writes: 20},
			schedule.Behaviour{Mode: schedule.ModeWriteExit, Exit: 1, Writes: 20},
			schedule.Behaviour{Mode: schedule.ModeKillInTxn, Writes: 10},
			schedule.Behaviour{Mode: schedule.ModeHeartbeatCrash, Exit: 1},
			schedule.Behaviour{Mode: schedule.ModeComplete},
		)
		w.ranges = Ranges{Tasks: [2]int{1, 50}, Dispatchers: [2]int{1, 8}, DurationMs: [2]int{1000, 4000}, QuietMs: [2]int{300, 800},
			TickMs: [2]int{10, 100}, FailureLimit: [2]int{0, 5}, MaxSpawn: [2]int{1, 4}, DelayMs: [2]int{0, 200},
			MaxRetries: [2]int{0, 5}, Writes: [2]int{1, 40}}
	} else {
		add(
			schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 1},
			schedule.Behaviour{Mode: schedule.ModeOpenBoardExit, Exit: 1},
			schedule.Behaviour{Mode: schedule.ModeHeartbeatCrash, Exit: 1},
			schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: schedule.RateLimitedExitCode},
			schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 0}, // exit 0 without completing
			schedule.Behaviour{Mode: schedule.ModeComplete},
		)
		w.ranges = Ranges{Tasks: [2]int{1, 10}, Dispatchers: [2]int{1, 8}, DurationMs: [2]int{800, 3000}, QuietMs: [2]int{300, 1000},
			TickMs: [2]int{10, 200}, FailureLimit: [2]int{0, 5}, MaxSpawn: [2]int{0, 4}, DelayMs: [2]int{0, 200},
			MaxRetries: [2]int{0, 5}, Writes: [2]int{0, 0}}
	}
	return w
}

// Scenario is the swarm's scenario.
func (w Swarm) Scenario() Scenario { return w.sc }

// Ranges are the swarm's bounds.
func (w Swarm) Ranges() Ranges { return w.ranges }

// WithMaxPhases caps the dispatch and quiet phases (0 leaves one as it is),
// for short campaigns: a CI smoke run, a unit test.
func (w Swarm) WithMaxPhases(durationMs, quietMs int) Swarm {
	capRange := func(r *[2]int, hi int) {
		if hi > 0 {
			r[1] = max(min(r[1], hi), 1)
			r[0] = min(r[0], r[1])
		}
	}
	capRange(&w.ranges.DurationMs, durationMs)
	capRange(&w.ranges.QuietMs, quietMs)
	w.capMs = [2]int{max(durationMs, 0), max(quietMs, 0)}
	return w
}

func intRange(r [2]int) gopter.Gen { return gen.IntRange(r[0], r[1]) }

// Gen is the gopter generator of the swarm's Params.
func (w Swarm) Gen() gopter.Gen {
	r := w.ranges
	task := gen.Struct(reflect.TypeOf(TaskParams{}), map[string]gopter.Gen{
		"Worker":     gen.IntRange(0, len(w.menu)-1),
		"Exit":       gen.IntRange(0, len(exitCodes)-1),
		"DelayMs":    intRange(r.DelayMs),
		"MaxRetries": intRange(r.MaxRetries),
		"Writes":     intRange(r.Writes),
	})
	// SliceOf draws its length from the parameters' size range [MinSize,
	// MaxSize); the task range is the swarm's own, whatever the caller's.
	slice := gen.SliceOf(task)
	tasks := gopter.Gen(func(gp *gopter.GenParameters) *gopter.GenResult {
		sized := *gp
		sized.MinSize, sized.MaxSize = r.Tasks[0], r.Tasks[1]+1
		return slice(&sized)
	}).SuchThat(func(ts []TaskParams) bool { return len(ts) >= r.Tasks[0] && len(ts) <= r.Tasks[1] })
	// Without faults the fault time means nothing: a constant never costs a
	// shrink candidate. With faults, the first quarter of the dispatch
	// phase is left out: the dispatchers start within one tick, and a fault
	// before they hold their connections tests their start, not the fault.
	faultPermille := gen.IntRange(0, 0)
	if len(w.base.Faults) > 0 {
		faultPermille = gen.IntRange(250, 1000)
	}
	return gen.Struct(reflect.TypeOf(Params{}), map[string]gopter.Gen{
		"Tasks":         tasks,
		"Dispatchers":   intRange(r.Dispatchers),
		"DurationMs":    intRange(r.DurationMs),
		"QuietMs":       intRange(r.QuietMs),
		"TickMs":        intRange(r.TickMs),
		"FailureLimit":  intRange(r.FailureLimit),
		"MaxSpawn":      intRange(r.MaxSpawn),
		"FaultPermille": faultPermille,
	})
}

// Draw generates the Params of one run. The seed alone decides them: each
// run gets a fresh random source (gopter's seed otherwise drives a whole
// sequence), so any run of a campaign is drawn again from its seed alone.
func (w Swarm) Draw(seed uint64) Params {
	gp := gopter.DefaultGenParameters().CloneWithSeed(int64(seed & (1<<63 - 1)))
	res := w.Gen()(gp)
	p, ok := res.Retrieve()
	if !ok {
		// The generators above never miss; a miss is a bug in Ranges.
		panic(fmt.Sprintf("scenarios: swarm of %s drew nothing for seed %d", w.sc.Name, seed))
	}
	return p.(Params)
}

// Shrinks is gopter's shrink stream for p: smaller values of each field in
// turn, fewer tasks, each task's fields smaller, all within the ranges.
func (w Swarm) Shrinks(p Params) gopter.Shrink {
	res := w.Gen()(gopter.MinGenParameters())
	return res.Shrinker(p).Filter(res.Sieve)
}

// Valid reports whether p lies within the swarm's ranges.
func (w Swarm) Valid(p Params) bool {
	res := w.Gen()(gopter.MinGenParameters())
	return res.Sieve == nil || res.Sieve(p)
}

// Schedule maps p to the schedule of a run: the scenario's fixed parts
// (variant, knobs, engine, time scale, fault kinds) plus p. Task ids and
// dispatcher offsets come from seed; the same (p, seed, variant) always
// gives the same schedule. Its phases are p's, or the room its tasks need
// (Room) when that is longer, within the caps of WithMaxPhases.
func (w Swarm) Schedule(p Params, seed uint64, variant string) schedule.Schedule {
	s := w.sc.Build(seed, variant)
	s.Dispatchers = p.Dispatchers
	s.TickMs = p.TickMs
	s.FailureLimit, s.MaxSpawn = p.FailureLimit, p.MaxSpawn
	baseName := "worker"
	if len(w.base.Profiles) > 0 {
		baseName = w.base.Profiles[0].Name
	}
	rng := rand.New(rand.NewSource(int64(seed & (1<<63 - 1))))
	s.Profiles, s.Tasks = nil, nil
	ids := map[string]bool{}
	for i, tp := range p.Tasks {
		b := w.behaviour(tp)
		name := ""
		for _, prof := range s.Profiles {
			if prof.Worker == b {
				name = prof.Name
			}
		}
		if name == "" {
			// The scenario's own worker keeps its profile's name; others are
			// numbered in order of first use.
			name = fmt.Sprintf("%s-%d", baseName, len(s.Profiles)+1)
			if len(s.Profiles) == 0 {
				name = baseName
			}
			s.Profiles = append(s.Profiles, schedule.Profile{Name: name, Worker: b})
		}
		id := fmt.Sprintf("t_%08x", rng.Uint32())
		for ids[id] {
			id = fmt.Sprintf("t_%08x", rng.Uint32())
		}
		ids[id] = true
		s.Tasks = append(s.Tasks, schedule.Task{ID: id, Title: fmt.Sprintf("swarm card %d (%s)", i+1, b), Assignee: name, MaxRetries: tp.MaxRetries})
	}
	s.DurationMs, s.QuietMs = w.phases(p, s)
	for i := range s.Faults {
		s.Faults[i].AtMs = s.DurationMs * p.FaultPermille / 1000
	}
	Respread(&s)
	return s
}

// phases are the dispatch and quiet phases of p's schedule s: the drawn
// ones, lengthened to the room s needs, then capped.
func (w Swarm) phases(p Params, s schedule.Schedule) (durationMs, quietMs int) {
	roomD, roomQ := Room(s)
	durationMs, quietMs = max(p.DurationMs, roomD), max(p.QuietMs, roomQ)
	if len(s.Faults) > 0 && p.FaultPermille > 0 {
		// The fault comes at FaultPermille of the phase: after the first
		// completion could come, which a dispatcher that fails closed after
		// the fault (fixed after a swap) could not reach later.
		durationMs = max(durationMs, min(ceilDiv(CompletionRoom(s)*1000, p.FaultPermille), maxRoomMs))
	}
	if w.capMs[0] > 0 {
		durationMs = min(durationMs, w.capMs[0])
	}
	if w.capMs[1] > 0 {
		quietMs = min(quietMs, w.capMs[1])
	}
	return durationMs, quietMs
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// behaviour is the worker a task's parameters pick from the menu.
func (w Swarm) behaviour(tp TaskParams) schedule.Behaviour {
	b := w.menu[min(max(tp.Worker, 0), len(w.menu)-1)]
	b.DelayMs = tp.DelayMs
	switch b.Mode {
	case schedule.ModeExitNow, schedule.ModeOpenBoardExit, schedule.ModeHeartbeatCrash, schedule.ModeWriteExit:
		// 75 and 0 are modes of their own (rate limited, protocol
		// violation); a crash takes the drawn code.
		if b.Exit != schedule.RateLimitedExitCode && b.Exit != 0 && tp.Exit > 0 {
			b.Exit = exitCodes[min(tp.Exit, len(exitCodes)-1)]
		}
	}
	switch b.Mode {
	case schedule.ModeWriteComplete, schedule.ModeWriteExit, schedule.ModeKillInTxn:
		if tp.Writes > 0 {
			b.Writes = tp.Writes
		}
	}
	return b
}

// Key is a canonical encoding of p, for telling draws apart.
func (p Params) Key() string {
	data, _ := json.Marshal(p)
	return string(data)
}

// Controls are scenarios whose fault defeats every dispatcher by design:
// positive controls of the oracle. They fail on every variant, so a
// campaign over "all" scenarios leaves them out; fuzz them by name.
var controls = []string{"fault-delete-sidecars", "powerloss-sync-off"}

// Control reports whether sc is a positive control.
func (sc Scenario) Control() bool { return slices.Contains(controls, sc.Name) }

// Fuzzable returns every scenario but the positive controls, in name order.
func Fuzzable() []Scenario {
	var out []Scenario
	for _, sc := range All() {
		if !sc.Control() {
			out = append(out, sc)
		}
	}
	return out
}

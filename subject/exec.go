package subject

import (
	"context"
	"os/exec"
	"slices"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// execSubject is any dispatcher command (exec:CMD), run against the board
// the harness prepared — once per schedule dispatcher, long-running or
// re-run every tick — with Hermes' environment pointing it at the sandbox.
// It is given the schedule's times in the whole seconds Hermes reads, and
// it is seen doing only what it writes to the ledger itself.
// A command takes what it takes (Check: the knobs still shape the board
// and the workers) and reports nothing of itself to verify.
type execSubject struct{ base }

func (e execSubject) Settings(s schedule.Schedule, timing dispatcher.Timing) Settings {
	return externalSettings(e.sub, s, timing)
}

// Observability: whatever the command wrote to the ledger itself (a
// dispatcher that writes one record of a kind writes them all).
func (e execSubject) Observability(h ledger.History) oracle.Observability {
	records := slices.ContainsFunc(h.Entries, func(e ledger.Entry) bool {
		return e.Who != "" && e.Who != "worker" && (e.Kind == ledger.Commit || e.Kind == ledger.Tick)
	})
	return oracle.Observability{Name: e.Name(), Errors: records}
}

// ClockResolution: an external subject may be a Hermes, which stamps times
// in whole seconds.
func (execSubject) ClockResolution() float64 { return 1 }

// Dispatch runs the subject's command once per schedule dispatcher.
func (e execSubject) Dispatch(ctx context.Context, r Run) (Phases, error) {
	env, err := subjectEnv(r.Sandbox, r.Timing, r.Knobs.Connect.OFDLocking)
	if err != nil {
		return Phases{}, err
	}
	r.Logf("dispatching with exec:%s (%d instance(s), %s)", e.sub.Exec, r.Schedule.Dispatchers,
		map[bool]string{true: "re-run every tick", false: "long-running"}[e.sub.OneShot])
	return dispatchExternal(ctx, r, func(name string, _ time.Duration) (instance, error) {
		return instance{
			command: func() *exec.Cmd { return exec.Command("/bin/sh", "-c", e.sub.Exec) },
			env:     slices.Concat(env, []string{"KANBANCHAOS_DISPATCHER=" + name}),
			oneShot: e.sub.OneShot,
		}, nil
	})
}

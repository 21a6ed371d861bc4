package harness

import (
	"context"
	"fmt"
	"os/exec"
	"slices"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// dispatchHermes is the dispatch phase for a real Hermes release: one
// driver process per schedule dispatcher runs the release's own
// dispatch_once loop, as a gateway does — the workers' parent, a fresh
// connect() per tick — with the settings a gateway reads written to
// config.yaml and the time settings in the whole seconds Hermes parses.
func dispatchHermes(ctx context.Context, sb sandbox, s schedule.Schedule, knobs dispatcher.Knobs, timing dispatcher.Timing, opt Options,
	logf func(string, ...any)) (phases, error) {
	in, err := hermes.Locate(opt.Subject.Hermes)
	if err != nil {
		return phases{}, err
	}
	if err := hermes.WriteConfig(sb.home(), hermes.Gateway{FailureLimit: s.FailureLimit, MaxSpawn: s.MaxSpawn, Tick: timing.Tick}); err != nil {
		return phases{}, err
	}
	env, err := subjectEnv(sb, timing, knobs.Connect.OFDLocking)
	if err != nil {
		return phases{}, err
	}
	env = in.Env(env)
	secs := wholeSeconds(timing)
	logf("dispatching with hermes:%s (%s; %d driver process(es), tick %v)", opt.Subject.Hermes, in.Python, s.Dispatchers, timing.Tick)
	return dispatchExternal(ctx, sb, s, timing, opt, logf, func(name string, offset time.Duration) (instance, error) {
		script, settings, err := hermes.WriteDriver(sb.root, hermes.Driver{
			Name: name, Ledger: sb.ledger(), TickS: timing.Tick.Seconds(), TTL: secs.ClaimTTL, LosePID: knobs.LosePID,
			Go: sb.goFile(), OffsetS: offset.Seconds(),
		})
		if err != nil {
			return instance{}, err
		}
		return instance{
			command:   func() *exec.Cmd { return exec.Command(in.Python, "-u", script, settings) },
			env:       slices.Concat(env, []string{"KANBANCHAOS_DISPATCHER=" + name}),
			ownOffset: true,
			ready:     func() bool { return reportedSettings(sb.ledger(), name) },
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

// reportedSettings reports whether dispatcher name's driver has written its
// settings record: it has imported the release and waits to tick.
func reportedSettings(ledgerPath, name string) bool {
	h, err := ledger.Read(ledgerPath)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(h.Entries, func(e ledger.Entry) bool { return e.Kind == ledger.Settings && e.Who == name })
}

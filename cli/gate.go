package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/campaign"
	"github.com/kanbanchaos/kanbanchaos/campaign/gate"
	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/report"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
	"github.com/kanbanchaos/kanbanchaos/subject"
)

const gateHelp = `Usage: kanbanchaos gate --subject S [flags]

The regression gate: every known Hermes regression as an entry that says what a correct dispatcher must
do, run against subject S over seeds 1..N (the same seeds every time, so a CI system can track each entry).
Each entry is held (on every seed), violated (with the evidence and a replay command) or not checked (with
why). S is a reference variant (fixed, hermes-0.14 …), a real Hermes release or checkout (hermes:0.19.0,
hermes:/path/to/hermes-agent; see 'kanbanchaos hermes'), or any dispatcher command (exec:'CMD').

Exit: 0 every entry held on every seed · 1 a regression is present · 2 bad usage · 3 an entry was not checked
(unless --allow-unchecked names it) · 4 internal error.

Examples:
  kanbanchaos gate --subject fixed
  kanbanchaos gate --subject hermes:0.19.0 --seeds 5 --junit gate.xml
  kanbanchaos gate --subject hermes:. --shard 0/3 --json > shard0.json   # then: kanbanchaos merge shard*.json

Flags:
`

// gateRun is what a gate run (or a merge of shards) reports.
type gateRun struct {
	Type    string        `json:"type"` // "gate"
	Subject string        `json:"subject"`
	Seeds   int           `json:"seeds"`
	Shard   string        `json:"shard"`
	Entries []gate.Result `json:"entries"`
}

func cmdGate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		subjectArg, pins, junit, artifacts, shard string
		seeds, parallel                           int
		asJSON, conformance                       bool
		allow                                     = knobFlags{}
	)
	fs := newFlagSet("gate", gateHelp, stderr)
	fs.StringVar(&subjectArg, "subject", "", "dispatcher under test: a variant, hermes:VERSION|PATH or exec:'CMD' (required)")
	var workers workerFlags
	workers.register(fs)
	fs.StringVar(&pins, "pins", "all", "entries to run, comma-separated: "+strings.Join(gate.Names(), ", "))
	fs.IntVar(&seeds, "seeds", 3, "seeds per entry (1..N)")
	fs.IntVar(&parallel, "parallel", runtime.NumCPU(), "runs at once (default: the number of CPUs; a real Hermes driver is a busy Python process)")
	fs.StringVar(&junit, "junit", "", "write JUnit XML: one test case gate/<entry> per entry")
	fs.BoolVar(&asJSON, "json", false, "print the result as one JSON line (what 'kanbanchaos merge' combines)")
	fs.StringVar(&artifacts, "artifacts", "", "keep the runs of violated and unchecked seeds under DIR/<entry>/\n"+
		"(default: a new <time>-gate-<subject> in the artifact store "+defaultStore()+", made only when a run is kept)")
	fs.StringVar(&shard, "shard", "0/1", "run only part i of n of the (entry, seed) pairs")
	fs.Var(allowFlag(allow), "allow-unchecked", "an entry that may end not checked without failing the gate (repeatable)")
	fs.BoolVar(&conformance, "conformance", false, "instead of the gate: hold the subject up to spec §8's observed table (the June 2026\n"+
		"release against a fake worker) row by row — starts, final status, counter, events — and mark each difference")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	bad := usageError(stderr, "gate")
	if len(pos) > 0 {
		return bad("takes no arguments, got %q", pos)
	}
	if subjectArg == "" {
		return bad("want --subject: a variant (%s), hermes:VERSION or exec:'CMD'", strings.Join(dispatcher.VariantNames(), ", "))
	}
	if seeds < 1 || seeds > 1000 {
		return bad("--seeds %d: want 1..1000", seeds)
	}
	if parallel < 1 || parallel > 64 {
		return bad("--parallel %d: want 1..64", parallel)
	}
	entries, err := gate.Lookup(strings.Split(pins, ","))
	if err != nil {
		return bad("--pins: %v", err)
	}
	for name := range allow {
		if !slices.Contains(gate.Names(), name) {
			return bad("--allow-unchecked: unknown entry %q (valid: %s)", name, strings.Join(gate.Names(), ", "))
		}
	}
	sh, err := campaign.ParseShard(shard)
	if err != nil {
		return bad("--shard: %v", err)
	}
	if err := checkOutputs(map[string]string{"artifacts": artifacts}, map[string]string{"junit": junit}); err != nil {
		return bad("%v", err)
	}
	spec := gate.Spec{Entries: entries, Seeds: seeds, Shard: sh, Parallel: parallel, ArtifactsDir: artifacts}
	if slices.Contains(dispatcher.VariantNames(), subjectArg) {
		spec.Variant = subjectArg
		if _, err := workers.apply(schedule.Subject{}); err != nil {
			return bad("%v", err)
		}
	} else {
		if spec.Subject, err = parseSubject(subjectArg, false); err != nil {
			return bad("--subject: %v", err)
		}
		if spec.Subject, err = workers.apply(spec.Subject); err != nil {
			return bad("%v", err)
		}
		if spec.Subject.Hermes != "" {
			if _, err := hermes.Locate(spec.Subject.Hermes); err != nil {
				return bad("--subject: %v", err)
			}
		}
	}
	// An entry whose workers the release's own tools cannot play is refused
	// here, naming it, rather than failing the gate halfway.
	for _, e := range entries {
		sc, err := scenarios.Lookup(e.Scenario)
		if err != nil {
			return bad("entry %s: %v", e.Name, err)
		}
		s := sc.Build(1, spec.Variant)
		s.Subject = spec.Subject
		if err := subject.CheckWorkers(ctx, s); err != nil {
			return bad("entry %s: %v (leave it out with --pins)", e.Name, err)
		}
	}
	spec.Replay = func(e gate.Entry, seed uint64) string {
		parts := []string{progName(), "run", e.Scenario, "--seed", strconv.FormatUint(seed, 10)}
		if spec.Variant != "" {
			parts = append(parts, "--variant", spec.Variant)
		} else {
			parts = append(parts, "--subject", shellQuote(spec.Subject.String()))
			parts = append(parts, workers.args()...)
		}
		return strings.Join(parts, " ")
	}
	if conformance {
		return runConformance(ctx, spec, subjectArg, asJSON, stdout, stderr)
	}
	if spec.Subject.Hermes != "" && spec.Subject.Workers != hermes.WorkersHermes {
		// What a violation is made of: a damaged board may be the mixture's.
		fmt.Fprintf(stderr, "gate: the workers are Go fake workers modelling each scenario's own variant's connections "+
			"(hermes-0.19 for the findings' scenarios), not %s's; --workers hermes runs the release's own\n", subjectArg)
	}
	if !asJSON {
		fmt.Fprintf(stdout, "kanbanchaos gate  subject=%s  %d entr(ies) × seeds 1–%d  shard %s\n", subjectArg, len(entries), seeds, sh)
		spec.Progress = func(s gate.Seed) {
			fmt.Fprintf(stderr, "%-20s seed %d: %s %s\n", s.Entry, s.Seed, s.Status, firstLine(s.Why))
		}
	}
	inStore := spec.ArtifactsDir == ""
	if inStore {
		if spec.ArtifactsDir, err = harness.NewStoreDir(defaultStore(), "gate-"+subjectArg); err != nil {
			return bad("artifact store: %v", err)
		}
	}
	started := time.Now()
	results, err := gate.Run(ctx, spec)
	if err != nil {
		return errorExit(ctx, "gate", err, stderr)
	}
	if inStore && exists(spec.ArtifactsDir) {
		e := harness.StoreEntry{Kind: "gate", Subject: subjectArg}
		for _, r := range results {
			if r.Status == gate.Violated {
				e.Failed = append(e.Failed, r.Name)
			}
		}
		if err := harness.RecordInStore(defaultStore(), spec.ArtifactsDir, e); err != nil {
			fmt.Fprintln(stderr, "kanbanchaos gate: warning: the artifact store's index:", err)
		}
		fmt.Fprintf(stderr, "artifacts: %s (the kept runs, one directory per entry)\n", spec.ArtifactsDir)
	}
	out := gateRun{Type: "gate", Subject: subjectArg, Seeds: seeds, Shard: sh.String(), Entries: results}
	return reportGate(out, allow, asJSON, junit, time.Since(started), stdout, stderr)
}

// allowFlag collects --allow-unchecked names (comma-separated or repeated).
type allowFlag knobFlags

func (a allowFlag) String() string { return "" }

func (a allowFlag) Set(v string) error {
	for _, n := range strings.Split(v, ",") {
		if n = strings.TrimSpace(n); n != "" {
			a[n] = "1"
		}
	}
	return nil
}

// reportGate prints a gate's (or merged shards') result and returns its exit code.
// The verdict is printed first: a JUnit file that cannot be written
// afterwards never hides it.
func reportGate(g gateRun, allow map[string]string, asJSON bool, junit string, elapsed time.Duration, stdout, stderr io.Writer) int {
	code := printGate(g, allow, asJSON, stdout)
	if junit != "" {
		if err := writeGateJUnit(junit, g, elapsed); err != nil {
			return outputFailed("gate", "the JUnit file", err, code, stderr)
		}
	}
	return code
}

// printGate prints the gate's entries and verdict and returns its exit code.
func printGate(g gateRun, allow map[string]string, asJSON bool, stdout io.Writer) int {
	var violated, unchecked []string
	for _, r := range g.Entries {
		switch r.Status {
		case gate.Violated:
			violated = append(violated, r.Name)
		case gate.NotChecked:
			if allow[r.Name] == "" {
				unchecked = append(unchecked, r.Name)
			}
		}
	}
	if asJSON {
		writeDoc(stdout, "gate", g, false)
	} else {
		for _, r := range g.Entries {
			n := map[gate.Status]int{}
			for _, s := range r.Seeds {
				n[s.Status]++
			}
			fmt.Fprintf(stdout, "%-12s %-20s %-15s held %d, violated %d, not checked %d of %d seed(s)\n",
				strings.ToUpper(string(r.Status)), r.Name, r.Issues, n[gate.Held], n[gate.Violated], n[gate.NotChecked], len(r.Seeds))
			for _, s := range r.Seeds {
				if s.Status == gate.Held {
					continue
				}
				fmt.Fprintf(stdout, "    seed %d %s: %s\n      replay: %s\n", s.Seed, s.Status, firstLine(s.Why), s.Replay)
				if s.Artifacts != "" {
					fmt.Fprintf(stdout, "      artifacts: %s\n", s.Artifacts)
				}
			}
		}
	}
	switch {
	case len(violated) > 0:
		if !asJSON {
			fmt.Fprintf(stdout, "gate: FAIL — %d of %d regression(s) present: %s\n", len(violated), len(g.Entries), strings.Join(violated, ", "))
		}
		return exitFail
	case len(unchecked) > 0:
		if !asJSON {
			fmt.Fprintf(stdout, "gate: UNKNOWN — not checked: %s (pass --allow-unchecked NAME to accept)\n", strings.Join(unchecked, ", "))
		}
		return exitUnknown
	}
	if !asJSON {
		fmt.Fprintf(stdout, "gate: PASS — %d entr(ies) held on every seed\n", len(g.Entries))
	}
	return exitPass
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// writeGateJUnit writes one test case per entry, named gate/<entry>: the
// name is the same whatever the seeds, so CI tracks each regression.
func writeGateJUnit(path string, g gateRun, elapsed time.Duration) error {
	suite := report.Suite{Name: "kanbanchaos gate", Time: elapsed, Timestamp: time.Now(),
		Properties: [][2]string{{"subject", g.Subject}, {"seeds", strconv.Itoa(g.Seeds)}, {"shard", g.Shard}}}
	for _, r := range g.Entries {
		c := report.Case{Name: "gate/" + r.Name, Class: "kanbanchaos.gate", Status: "pass"}
		var lines []string
		for _, s := range r.Seeds {
			c.Time += time.Duration(s.ElapsedMs * float64(time.Millisecond))
			lines = append(lines, fmt.Sprintf("seed %d: %s %s", s.Seed, s.Status, s.Why))
			if s.Status != gate.Held && c.Replay == "" {
				c.Replay, c.Seed = s.Replay, s.Seed
			}
		}
		c.Evidence = strings.Join(lines, "\n")
		c.SystemOut = r.Issues + ": " + r.Rule
		switch r.Status {
		case gate.Violated:
			c.Status, c.Failed, c.Message = "fail", []string{r.Name}, r.Rule+" — violated"
		case gate.NotChecked:
			c.Status, c.Message = "unknown", "not checked: "+r.Rule
		}
		suite.Cases = append(suite.Cases, c)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := report.WriteJUnit(f, suite); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// runConformance prints the subject's run of each spec §8 case beside the
// June 2026 release's. A difference is a finding, not a failure: it may be
// a fix. Exit 0 unless the harness failed.
func runConformance(ctx context.Context, spec gate.Spec, subject string, asJSON bool, stdout, stderr io.Writer) int {
	replay := func(c gate.Case) string {
		return fmt.Sprintf("%s gate --conformance --subject %s", progName(), shellQuote(subject))
	}
	obs, err := gate.Conform(ctx, spec.Subject, spec.Variant, spec.Parallel, replay)
	if err != nil {
		return errorExit(ctx, "gate", err, stderr)
	}
	if asJSON {
		writeDoc(stdout, "conformance", struct {
			Type      string          `json:"type"`
			Subject   string          `json:"subject"`
			Cases     []gate.Case     `json:"cases"`
			Observed  []gate.Observed `json:"observed"`
			Surprises []gate.Surprise `json:"surprises"`
		}{"conformance", subject, gate.Cases(), obs, gate.Surprises(obs)}, true)
		return exitPass
	}
	fmt.Fprintf(stdout, "kanbanchaos gate --conformance  subject=%s  (spec §8: the June 2026 release, 0.2 s ticks, %d cases)\n\n", subject, len(obs))
	fmt.Fprintf(stdout, "%-22s %-30s %-22s %-22s %s\n", "case", "setup", "June: starts/status/cf", "subject", "")
	differ := 0
	for i, c := range gate.Cases() {
		o := obs[i]
		mark := "matches"
		if len(o.Differs) > 0 {
			mark, differ = "DIFFERS", differ+1
		}
		fmt.Fprintf(stdout, "%-22s %-30s %-22s %-22s %s\n", c.Name, c.Setup, fmt.Sprintf("%s / %s / %d", c.Starts, c.Status, c.Failures),
			fmt.Sprintf("%d / %s / %d", o.Starts, o.Status, o.Failures), mark)
		for _, d := range o.Differs {
			fmt.Fprintf(stdout, "    %s\n", d)
		}
		if c.Note != "" && len(o.Differs) == 0 {
			fmt.Fprintf(stdout, "    (the June surprise stands: %s)\n", c.Note)
		}
	}
	fmt.Fprintf(stdout, "\nthe June release's surprises:\n")
	for _, sp := range gate.Surprises(obs) {
		word := "gone"
		if sp.Stands {
			word = "STANDS"
		}
		fmt.Fprintf(stdout, "%-7s %-30s %s\n", word, sp.Name, sp.Detail)
	}
	fmt.Fprintf(stdout, "\nconformance: %d of %d cases match the June release, %d differ\n", len(obs)-differ, len(obs), differ)
	return exitPass
}

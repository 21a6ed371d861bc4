package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/schedule"
	"github.com/kanbanchaos/kanbanchaos/subject"
)

// cmdRun builds a schedule from a scenario; cmdReplay runs one that was
// written down: the schedule.json of an artifact directory, or one a user
// edited. It is also how a run on another SQLite engine is handed to the
// binary that links it (harness.runInEngine).
func cmdReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		asJSON, keep, full, harnessJSON bool
		artifacts, recorded, stopOn     string
	)
	fs := newFlagSet("replay", "Usage: kanbanchaos replay SCHEDULE.json|ARTIFACT_DIR [flags]\n\n"+
		"Runs a written schedule again — same scenario, subject, variant, knobs, seed, timings and SQLite engine —\n"+
		"and checks every invariant, like run. ARTIFACT_DIR is a directory a failing run left (its schedule.json).\n"+
		"Progress lines go to stderr, also with --json.\n\n"+
		"Example: kanbanchaos replay arts/issue-30417-3\n\nFlags:\n", stderr)
	fs.BoolVar(&asJSON, "json", false, "print the result as one JSON object")
	fs.StringVar(&artifacts, "artifacts", defaultStore(), storeFlagDoc)
	fs.BoolVar(&keep, "keep", false, "keep the sandbox of a passing run too")
	fs.BoolVar(&harnessJSON, "harness-json", false, "print the harness's own result (harness.Result, the units it keeps) instead of --json's document;\n"+
		"what a kanbanchaos that hands a run to its other SQLite engine reads back")
	fs.BoolVar(&full, "full-duration", false, "run the whole schedule even once a violation decided the verdict (default: stop there)")
	fs.StringVar(&stopOn, "stop-on", "", "stop early only for these invariants, comma-separated (default: any the ledger decides);\n"+
		"set by a kanbanchaos that hands a shrink candidate to its other SQLite engine")
	fs.StringVar(&recorded, "replay-command", "", "record CMD as the run's replay command (repro.sh) instead of this replay;\n"+
		"set by a kanbanchaos that hands a run to its other SQLite engine, whose schedule file is temporary")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(stderr, "replay")("want exactly one schedule file or artifact directory, got %d arguments", len(pos))
	}
	s, path, err := readSchedule(pos[0])
	if err == nil {
		err = checkOutputs(map[string]string{"artifacts": artifacts}, nil)
	}
	if err != nil {
		fmt.Fprintln(stderr, "kanbanchaos replay:", err)
		return exitUsage
	}
	// An absolute path keeps repro.sh working from any directory.
	replay := progName() + " replay " + path
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "replay-command" {
			replay = recorded
		}
	})
	if s.Subject.Hermes != "" {
		// The release must still be there: a replay never falls back to
		// another dispatcher.
		if _, err := hermes.Locate(s.Subject.Hermes); err != nil {
			fmt.Fprintln(stderr, "kanbanchaos replay:", err)
			return exitUsage
		}
		if err := subject.CheckWorkers(ctx, s); err != nil {
			fmt.Fprintln(stderr, "kanbanchaos replay:", err)
			return exitUsage
		}
	}
	if !asJSON && !harnessJSON {
		printHeader(stdout, "replay "+path+"  scenario="+s.Scenario, s, s.Subject)
	}
	// Progress goes to stderr with --json too, as for run: stdout holds
	// only the JSON, and a delegating harness forwards these lines.
	opt := harness.Options{ArtifactsDir: artifacts, Keep: keep, Replay: replay, Log: stderr, FullDuration: full}
	if stopOn != "" {
		opt.StopOn = strings.Split(stopOn, ",")
	}
	res, code := runSchedule(ctx, "replay", s, opt, stderr)
	if code >= 0 {
		return code
	}
	switch {
	case harnessJSON:
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			fmt.Fprintln(stderr, "kanbanchaos replay: internal error:", err)
			return exitInternal
		}
	case asJSON:
		printJSON(stdout, res, replay)
	default:
		printText(stdout, res, replay)
	}
	return exitFor(res.Verdict.Status)
}

// readSchedule loads the schedule at arg, a schedule file or a directory
// holding schedule.json, and returns it with its absolute path. Its errors
// say which of the three things is wrong: no such file, a file that is not a
// schedule, a schedule that cannot run.
func readSchedule(arg string) (schedule.Schedule, string, error) {
	var s schedule.Schedule
	path, err := filepath.Abs(arg)
	if err != nil {
		return s, "", err
	}
	fi, err := os.Stat(path)
	if err != nil {
		return s, "", fmt.Errorf("%s: no such schedule file or artifact directory", arg)
	}
	if fi.IsDir() {
		path = filepath.Join(path, "schedule.json")
		if _, err := os.Stat(path); err != nil {
			return s, "", fmt.Errorf("%s has no schedule.json: it is not an artifact directory of a kanbanchaos run", arg)
		}
	}
	data, err := readInput(path, maxScheduleBytes)
	if err != nil {
		return s, "", err
	}
	// A schedule is a JSON object with at least these keys; anything else
	// (verdict.json, a ledger, a worker config) is a different file.
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return s, "", fmt.Errorf("%s is not a schedule (not a JSON object: %v)", path, err)
	}
	var missing []string
	for _, k := range []string{"scenario", "seed", "variant", "dispatchers", "tasks"} {
		if _, ok := fields[k]; !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		hint := ""
		if _, ok := fields["schedule"]; ok {
			hint = "; it holds one under \"schedule\" (a verdict.json?): pass the artifact directory or its schedule.json"
		}
		return s, "", fmt.Errorf("%s is not a schedule (no %s)%s", path, strings.Join(missing, ", "), hint)
	}
	if err := json.Unmarshal(data, &s); err != nil {
		return s, "", fmt.Errorf("%s is not a schedule: %v", path, err)
	}
	if err := s.Validate(); err != nil {
		return s, "", fmt.Errorf("%s is an invalid schedule: %w", path, err)
	}
	// Its variant and knobs must exist and fit its engine: a schedule that
	// names another is bad input, found before anything runs.
	if err := harness.CheckKnobs(s); err != nil {
		return s, "", fmt.Errorf("%s is an invalid schedule: %w", path, err)
	}
	return s, path, nil
}

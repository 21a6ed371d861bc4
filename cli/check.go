package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
	"github.com/kanbanchaos/kanbanchaos/subject"
)

// checkTarget is what `check PATH` audits: a board DB and, for an artifact
// directory, the run that produced it.
type checkTarget struct {
	db  string
	run *oracle.Input
}

// inputError is bad input (exit 2), with a message that says what is wrong.
type inputError struct{ msg string }

func (e inputError) Error() string { return e.msg }

// cmdCheck audits an existing kanban.db — a real Hermes board, live or not,
// or the board of a stored run — without writing it (oracle/snapshot.go).
func cmdCheck(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		asJSON   bool
		limit    int
		cooldown time.Duration
	)
	fs := newFlagSet("check", "Usage: kanbanchaos check PATH [--json] [--failure-limit N] [--cooldown D]\n\n"+
		"Audits an existing Hermes kanban.db (e.g. ~/.hermes/kanban.db or ~/.hermes/kanban/boards/SLUG/kanban.db),\n"+
		"or the artifact directory of a kanbanchaos run, without writing it: the board is copied through SQLite's\n"+
		"online backup API from a read-only connection, and every check runs on that copy. Safe on a live board.\n\n"+
		"Reports integrity_check and quick_check; spawned runs per task between counter resets against the\n"+
		"effective failure limit; promoted/claimed after gave_up; open-run bookkeeping and running tasks without\n"+
		"a claim; runs whose worker was never recorded; exit-75 runs that counted or were respawned within the\n"+
		"cooldown; protocol violations past their budget; the -wal/-shm/-journal and backups beside the board.\n"+
		"For an artifact directory, also the run's ledger-based invariants.\n\n"+
		"Exit codes: 0 pass · 1 an invariant failed · 2 bad usage or input (missing, empty, not SQLite, not a board) ·\n"+
		"3 unknown · 4 internal error.\n\nFlags:\n", stderr)
	fs.BoolVar(&asJSON, "json", false, "print the report as one JSON object")
	fs.IntVar(&limit, "failure-limit", 0, "the board's configured kanban.failure_limit (default: Hermes' 2; a task's max_retries wins)")
	fs.DurationVar(&cooldown, "cooldown", 0, "the rate-limit cooldown after an exit 75 (default: Hermes' 5m)")
	pos, code, ok := parseFlags(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 {
		return usageError(stderr, "check")("want exactly one kanban.db or artifact directory, got %d arguments", len(pos))
	}
	if limit < 0 || cooldown < 0 {
		fmt.Fprintln(stderr, "kanbanchaos check: --failure-limit and --cooldown must not be negative")
		return exitUsage
	}
	target, err := checkTargetOf(pos[0])
	if err != nil {
		fmt.Fprintln(stderr, "kanbanchaos check:", err)
		var bad inputError
		if errors.As(err, &bad) {
			return exitUsage
		}
		return exitInternal
	}
	rep, code := audit(ctx, target, oracle.AuditOptions{FailureLimit: limit, Cooldown: cooldown, Run: target.run}, stderr)
	if code >= 0 {
		return code
	}
	if asJSON {
		writeDoc(stdout, "check", rep, true)
	} else {
		rep.print(stdout)
	}
	return exitFor(rep.Verdict.Status)
}

// checkTargetOf tells a board file from an artifact directory, and both
// from everything that is neither; only stat is used.
func checkTargetOf(arg string) (checkTarget, error) {
	path, err := filepath.Abs(arg)
	if err != nil {
		return checkTarget{}, err
	}
	// What lies beside the board (its -wal, -shm, -journal) lies beside the
	// real file, as SQLite itself resolves the name: never beside a link.
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return checkTarget{}, inputError{fmt.Sprintf("%s: no such file or directory", arg)}
	case err != nil:
		return checkTarget{}, inputError{fmt.Sprintf("%s: %v", arg, err)}
	case st.IsDir():
		return artifactTarget(arg, path)
	case !st.Mode().IsRegular():
		return checkTarget{}, inputError{fmt.Sprintf("%s is not a regular file (%s)", arg, st.Mode().Type())}
	case st.Size() == 0:
		return checkTarget{}, inputError{fmt.Sprintf("%s is empty (0 bytes): there is no board in it to audit "+
			"(a Hermes connect() would give it a fresh, empty schema)", arg)}
	}
	return checkTarget{db: path}, nil
}

// artifactTarget is the board, ledger and schedule a kanbanchaos run left:
// a run's artifact directory, a fuzz campaign's runs/…, or a shrunk
// failure's directory (its reproducing run is in run/).
func artifactTarget(arg, dir string) (checkTarget, error) {
	if _, err := os.Stat(filepath.Join(dir, "home")); err != nil {
		if _, err := os.Stat(filepath.Join(dir, "run", "home")); err == nil {
			dir = filepath.Join(dir, "run")
		}
	}
	db := kanban.BoardPath(filepath.Join(dir, "home"), "default")
	if _, err := os.Stat(db); err != nil {
		hint := ""
		if _, err := os.Stat(filepath.Join(dir, "kanban.db")); err == nil {
			hint = fmt.Sprintf("; to audit the board in it, pass %s", filepath.Join(arg, "kanban.db"))
		}
		return checkTarget{}, inputError{fmt.Sprintf("%s is a directory, not a kanban.db, and not the artifact directory of a run "+
			"(it has no home/kanban.db)%s", arg, hint)}
	}
	s, _, err := readSchedule(dir)
	if err != nil {
		return checkTarget{}, inputError{err.Error()}
	}
	hist, err := ledger.Read(filepath.Join(dir, "ledger.jsonl"))
	if err != nil {
		return checkTarget{}, err
	}
	in := &oracle.Input{Ledger: hist, Schedule: s}
	// The run's start, when verdict.json recorded it, puts the evidence on
	// the run's own time axis again; without it times are absolute. What
	// the run's subject could be observed doing, and the ticks the harness
	// saw, make the recheck check what the run checked.
	// The cooldown the subject ran with and its clock's resolution judge
	// rate-limit as the run did (a Hermes run's cooldown is whole seconds,
	// not the schedule's scaled one).
	in.ClockResolution = subject.For(s.Subject).ClockResolution()
	var run struct {
		Mono     int64   `json:"start_mono_ns"`
		Stop     int64   `json:"stop_mono_ns"`
		Wall     float64 `json:"start_wall"`
		Ticks    int     `json:"ticks"`
		Settings struct {
			CooldownS float64 `json:"rate_limit_cooldown_s"`
		} `json:"settings"`
		Verdict struct {
			Subject oracle.Observability `json:"subject"`
		} `json:"verdict"`
	}
	if data, err := os.ReadFile(filepath.Join(dir, "verdict.json")); err == nil && json.Unmarshal(data, &run) == nil {
		in.Subject, in.Ticks, in.Cooldown = run.Verdict.Subject, run.Ticks, run.Settings.CooldownS
		if run.Wall > 0 {
			in.RunStartMono, in.RunStartWall, in.RunStopMono = run.Mono, run.Wall, run.Stop
			in.QuietStartWall = run.Wall + float64(s.DurationMs)/1000
		}
	}
	return checkTarget{db: db, run: in}, nil
}

// checkReport is what check prints.
type checkReport struct {
	Path     string              `json:"path"`
	Run      *schedule.Schedule  `json:"run,omitempty"` // the stored run re-checked, for an artifact directory
	Read     oracle.SnapshotInfo `json:"read"`
	Board    oracle.BoardSummary `json:"board"`
	Files    oracle.BoardFiles   `json:"files"`
	Verdict  oracle.Verdict      `json:"verdict"`
	Duration time.Duration       `json:"elapsed_ns"`
}

// audit snapshots and audits the target; code ≥ 0 is an exit code that
// ends the command (the message already printed).
func audit(ctx context.Context, t checkTarget, o oracle.AuditOptions, stderr io.Writer) (checkReport, int) {
	start := time.Now()
	rep := checkReport{Path: t.db}
	if t.run != nil {
		rep.Run = &t.run.Schedule
	}
	dir, err := os.MkdirTemp("", "kanbanchaos-check-")
	if err != nil {
		fmt.Fprintln(stderr, "kanbanchaos check:", err)
		return rep, exitInternal
	}
	defer os.RemoveAll(dir)
	rep.Files = oracle.BoardFilesOf(t.db)
	rep.Read, err = oracle.Snapshot(ctx, t.db, dir)
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Fprintf(stderr, "kanbanchaos check: interrupted while reading %s (%v): undecided\n", t.db, ctx.Err())
		return rep, exitUnknown
	case errors.Is(err, oracle.ErrBoardBusy):
		fmt.Fprintf(stderr, "kanbanchaos check: %s: %v\n", t.db, err)
		return rep, exitUnknown
	case errors.Is(err, oracle.ErrUnreadable):
		fmt.Fprintf(stderr, "kanbanchaos check: %s: %v\n", t.db, err)
		return rep, exitUsage
	case errors.Is(err, oracle.ErrNotADatabase):
		fmt.Fprintf(stderr, "kanbanchaos check: %s is %v\n", t.db, err)
		return rep, exitUsage
	case kanban.IsCorrupt(err):
		// Not even its pages copy: that is the verdict.
		rep.Verdict = oracle.Verdict{Status: oracle.Fail, Checked: []string{oracle.Integrity}, Violations: []oracle.Violation{{
			Invariant: oracle.Integrity, Message: "the board cannot be read: " + err.Error()}}}
		rep.Duration = time.Since(start)
		return rep, -1
	case err != nil:
		if code, ok := kanban.Code(err); ok && code&0xff == 14 { // SQLITE_CANTOPEN: permissions, a missing directory …
			fmt.Fprintf(stderr, "kanbanchaos check: cannot open %s: %v\n", t.db, err)
			return rep, exitUsage
		}
		fmt.Fprintln(stderr, "kanbanchaos check:", err)
		return rep, exitInternal
	}
	rep.Verdict, rep.Board, err = oracle.Audit(ctx, rep.Read.Path, o)
	switch {
	case err != nil && ctx.Err() != nil:
		fmt.Fprintf(stderr, "kanbanchaos check: interrupted during the audit of %s (%v): undecided\n", t.db, ctx.Err())
		return rep, exitUnknown
	case errors.Is(err, oracle.ErrNotABoard):
		fmt.Fprintf(stderr, "kanbanchaos check: %s is an SQLite database but %v\n", t.db, err)
		return rep, exitUsage
	case err != nil:
		fmt.Fprintln(stderr, "kanbanchaos check: internal error:", err)
		return rep, exitInternal
	}
	rep.Duration = time.Since(start)
	return rep, -1
}

func (r checkReport) print(w io.Writer) {
	fmt.Fprintf(w, "kanbanchaos check %s\n", r.Path)
	if r.Run != nil {
		fmt.Fprintf(w, "  run: %s  variant=%s  seed=%d (its stored board, ledger and schedule)\n", r.Run.Scenario, r.Run.Variant, r.Run.Seed)
	}
	mode := "rollback journal"
	if r.Read.WALHeader {
		mode = "WAL"
	}
	fmt.Fprintf(w, "  read: %s — %d bytes in %s; journal mode %s\n", r.Read.Method, r.Read.Bytes, r.Read.Elapsed.Round(time.Millisecond), mode)
	var statuses []string
	for s, n := range r.Board.Status {
		statuses = append(statuses, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(statuses)
	if r.Board.Read {
		fmt.Fprintf(w, "  board: tasks=%d (%s), runs=%d, events=%d\n", r.Board.Tasks, strings.Join(statuses, ", "), r.Board.Runs, r.Board.Events)
	} else {
		fmt.Fprintf(w, "  board: tables not read (a board that fails integrity_check cannot be trusted)\n")
	}
	var files []string
	for _, f := range r.Files.Files {
		if f.Size >= 0 {
			files = append(files, fmt.Sprintf("%s %d bytes", f.Name, f.Size))
		}
	}
	if len(files) == 0 {
		files = append(files, "no -wal, -shm, -journal or lock files")
	}
	fmt.Fprintf(w, "  beside it: %s; %d corrupt-board backup(s)\n", strings.Join(files, ", "), r.Files.CorruptBackups)
	v := r.Verdict
	printFindings(w, v, 25, "--json lists them all")
	took := r.Duration.Round(time.Millisecond)
	switch v.Status {
	case oracle.Pass:
		fmt.Fprintf(w, "verdict: PASS — %s (%s)%s\n", heldText(v), took, notCheckedNote(v))
	case oracle.Fail:
		fmt.Fprintf(w, "verdict: FAIL — %s (%s)%s\n", strings.Join(v.Failed(), ", "), took, notCheckedNote(v))
	default:
		fmt.Fprintf(w, "verdict: UNKNOWN — the audit could not decide (%s)%s\n", took, notCheckedNote(v))
	}
	printInvariants(w, v)
}

// printFindings prints a verdict's violations, one FAIL line each (at most
// shown of them, then where the rest are), then its UNKNOWN reasons: the
// lines run and check share.
func printFindings(w io.Writer, v oracle.Verdict, shown int, rest string) {
	for i, x := range v.Violations {
		if shown > 0 && i == shown {
			fmt.Fprintf(w, "… and %d more violations (%s)\n", len(v.Violations)-shown, rest)
			break
		}
		task := ""
		if x.Task != "" {
			task = printable(x.Task) + ": "
		}
		// One line per violation: integrity_check puts newlines in its rows.
		fmt.Fprintf(w, "FAIL %-16s %s%s\n", x.Invariant, task, printable(strings.ReplaceAll(x.Message, "\n", " / ")))
	}
	for _, u := range v.Unknowns {
		fmt.Fprintf(w, "UNKNOWN %s\n", printable(u))
	}
}

// printable escapes control characters: a board's text (task ids, event
// payloads) reaches the terminal through messages, and an escape sequence
// in it must not drive the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '�'
		}
		return r
	}, s)
}

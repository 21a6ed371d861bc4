package cli

// What run and replay print: the header before a run, its verdict as text
// or as the JSON document.

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
	"github.com/kanbanchaos/kanbanchaos/subject"
)

// printHeader says what is about to run: the subject, the seed, and how
// the workers connect.
func printHeader(w io.Writer, what string, s schedule.Schedule, subject schedule.Subject) {
	if subject.External() {
		fmt.Fprintf(w, "kanbanchaos %s  subject=%s  seed=%d\n", what, subject, s.Seed)
		printWorkers(w, s, subject)
	} else {
		fmt.Fprintf(w, "kanbanchaos %s  variant=%s  seed=%d\n", what, s.Variant, s.Seed)
	}
	fmt.Fprintf(w, "  %d dispatcher(s), %v dispatch + %v quiet, time scale %g\n", s.Dispatchers,
		time.Duration(s.DurationMs)*time.Millisecond, time.Duration(s.QuietMs)*time.Millisecond, s.TimeScale)
}

// harnessSQLiteNote says whose the "sqlite" line's version is when the
// dispatcher under test brought its own SQLite (printed above it).
func harnessSQLiteNote(st *subject.Settings) string {
	switch {
	case st == nil || len(st.Reported) == 0:
		return ""
	case st.Workers == hermes.WorkersHermes:
		return " (this harness's: the oracle's reads)"
	}
	return " (this harness's: the oracle's reads and the Go workers)"
}

func printText(w io.Writer, res harness.Result, replay string) {
	v := res.Verdict
	if st := res.Settings; st != nil {
		fmt.Fprintf(w, "settings %s: %s\n", st.Subject, st.Line())
		for _, r := range st.Reported {
			fmt.Fprintf(w, "  hermes-agent %s on Python %s, SQLite %s\n", r.Release, r.Python, r.SQLite)
			break
		}
		if st.Workers == hermes.WorkersHermes {
			fmt.Fprintf(w, "  workers: the release's own kanban tools (worker.py), their Python's SQLite %s\n", orNone(strings.Join(st.WorkerSQLite, ", ")))
		} else if len(st.Reported) > 0 {
			fmt.Fprintf(w, "  workers: Go fake workers, SQLite %s\n", res.SQLite)
		}
		for _, n := range st.Notes {
			fmt.Fprintf(w, "  %s\n", n)
		}
	}
	fmt.Fprintf(w, "sqlite %s%s\n", res.SQLite, harnessSQLiteNote(res.Settings))
	printFindings(w, v, 10, "see verdict.json")
	summary := fmt.Sprintf("%d worker starts in %.1fs (%.1f/s), %d ticks", res.Spawns, res.Elapsed.Seconds(), res.SpawnRate, res.Ticks)
	if res.TickErrors > 0 {
		summary += fmt.Sprintf(", %d tick errors (trace.jsonl)", res.TickErrors)
	}
	first := ""
	if ms := v.FirstViolationMs(); ms >= 0 {
		first = fmt.Sprintf("; first violation at +%.0fms", ms)
	}
	switch v.Status {
	case oracle.Pass:
		fmt.Fprintf(w, "verdict: PASS — %s; %s%s\n", heldText(v), summary, notCheckedNote(v))
	case oracle.Fail:
		fmt.Fprintf(w, "verdict: FAIL — %s; %s%s%s\n", strings.Join(v.Failed(), ", "), summary, first, notCheckedNote(v))
	default:
		fmt.Fprintf(w, "verdict: UNKNOWN — the run could not decide; %s%s\n", summary, notCheckedNote(v))
	}
	printInvariants(w, v)
	if res.Artifacts != "" {
		fmt.Fprintf(w, "artifacts: %s\n", res.Artifacts)
	}
	fmt.Fprintf(w, "replay: %s\n", replay)
}

func printJSON(w io.Writer, res harness.Result, replay string) {
	out := struct {
		harness.Result
		Seed             uint64   `json:"seed"`
		Replay           string   `json:"replay"`
		FirstViolationMs *float64 `json:"first_violation_ms"` // null: nothing was violated
	}{Result: res, Seed: res.Schedule.Seed, Replay: replay}
	if ms := res.Verdict.FirstViolationMs(); ms >= 0 {
		out.FirstViolationMs = &ms
	}
	writeDoc(w, "run", out, true)
}

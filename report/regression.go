package report

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// Regression is a shrunk failure to pin as a testscript.
type Regression struct {
	// Invariant is the violated invariant the script asserts.
	Invariant string
	// Failing is the shrunk schedule on the variant that violates it.
	Failing schedule.Schedule
	// Fixed, if set, is the same schedule on a variant that holds: the
	// script asserts it passes.
	Fixed *schedule.Schedule
	// Origin says where the failure came from (the fuzz command, run, seed).
	Origin string
	// About describes the scenario (its issue).
	About string
	// Shrunk says what shrinking did ("7 tasks, 5 dispatchers → 1 task,
	// 1 dispatcher in 41 s; reproduced 3/3").
	Shrunk string
}

// Txtar is r as a testscript for testdata/script: it writes both schedules
// as files of the archive and replays them with the in-process `exitcode`
// command of cli's script tests — exit 1 and the invariant named on the
// verdict line for the failing variant, exit 0 for the fixed one.
func (r Regression) Txtar() ([]byte, error) {
	var comment strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&comment, format+"\n", args...) }
	line("# Found by kanbanchaos fuzz and shrunk: %s.", r.Origin)
	for _, l := range wrap("Scenario "+r.Failing.Scenario+": "+r.About, 100) {
		line("# %s", l)
	}
	line("# Violated invariant: %s. Shrinking: %s.", r.Invariant, r.Shrunk)
	line("# Minimal schedule: %d task(s), %d dispatcher(s), %d ms dispatch + %d ms quiet, tick %d ms.",
		len(r.Failing.Tasks), r.Failing.Dispatchers, r.Failing.DurationMs, r.Failing.QuietMs, r.Failing.TickMs)
	line("# Edit schedule.json to explore; `kanbanchaos replay schedule.json` runs it outside the test.")
	line("")
	line("# %s violates %s.", r.Failing.Variant, r.Invariant)
	line("exitcode 1 replay $WORK/schedule.json")
	line("grep '^verdict: FAIL — (.*, )?%s[,;]' exitcode.stdout", regexp.QuoteMeta(r.Invariant))
	files := []txtar.File{}
	data, err := encode(r.Failing)
	if err != nil {
		return nil, err
	}
	files = append(files, txtar.File{Name: "schedule.json", Data: data})
	if r.Fixed != nil {
		line("")
		line("# %s holds on the same schedule.", r.Fixed.Variant)
		line("exitcode 0 replay $WORK/schedule-%s.json", r.Fixed.Variant)
		line("grep '^verdict: PASS' exitcode.stdout")
		data, err := encode(*r.Fixed)
		if err != nil {
			return nil, err
		}
		files = append(files, txtar.File{Name: "schedule-" + r.Fixed.Variant + ".json", Data: data})
	}
	return txtar.Format(&txtar.Archive{Comment: []byte(comment.String()), Files: files}), nil
}

func encode(s schedule.Schedule) ([]byte, error) {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("report: encode schedule: %w", err)
	}
	return append(data, '\n'), nil
}

// wrap splits text into lines of at most width bytes at spaces.
func wrap(text string, width int) []string {
	var out []string
	cur := ""
	for _, w := range strings.Fields(text) {
		if cur != "" && len(cur)+1+len(w) > width {
			out = append(out, cur)
			cur = ""
		}
		cur = strings.TrimPrefix(cur+" "+w, " ")
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

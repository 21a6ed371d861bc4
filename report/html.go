package report

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"os"
	"path/filepath"
	"sync"

	"github.com/kanbanchaos/kanbanchaos/buildinfo"
)

// FileName is the report's name inside the directory it describes.
const FileName = "report.html"

// ErrBadInput marks errors caused by what the report was asked to read (no
// such directory, no verdict.json): a usage problem, not a failure of ours.
var ErrBadInput = errors.New("bad input")

// inputError is an ErrBadInput whose message is only the problem.
type inputError struct{ msg string }

func (e inputError) Error() string        { return e.msg }
func (e inputError) Is(target error) bool { return target == ErrBadInput }

func badInput(format string, args ...any) error { return inputError{fmt.Sprintf(format, args...)} }

// maxLanes bounds the per-task timelines of one page: a corruption run has
// hundreds of tasks that each start once and complete, and those are all in
// the board lane anyway.
const maxLanes = 24

// smallBoard is the number of tasks up to which every task gets a timeline.
const smallBoard = 8

//go:embed report.html.tmpl
var templates embed.FS

// page is parsed on first use, not at package init: every fake worker start
// runs this binary's package inits (a worker renders no report).
var page = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report.html.tmpl").Funcs(template.FuncMap{
		"ms": func(x float64) string { return fmt.Sprintf("+%.0fms", x) },
	}).ParseFS(templates, "report.html.tmpl"))
})

// Write renders the report of dir — a run's artifact directory (verdict.json),
// a comparison's (compare.json) or a fuzz campaign's (summary.json) — to out, or to dir/report.html when out
// is empty, and returns the path written. It reads only; nothing is run.
func Write(dir, out string) (string, error) {
	fi, err := os.Stat(dir)
	if errors.Is(err, os.ErrNotExist) {
		return "", badInput("%s does not exist (want a run's artifact directory, or a compare --artifacts directory)", dir)
	}
	if err != nil {
		return "", badInput("%v", err)
	}
	if !fi.IsDir() {
		return "", badInput("%s is not a directory (want a run's artifact directory, or a compare --artifacts directory)", dir)
	}
	if out == "" {
		out = filepath.Join(dir, FileName)
	}
	var buf bytes.Buffer
	if err := Render(context.Background(), &buf, dir); err != nil {
		return "", err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("report: %w", err)
	}
	return out, nil
}

// Render writes the HTML report of dir to w.
func Render(ctx context.Context, w *bytes.Buffer, dir string) error {
	if _, err := os.Stat(filepath.Join(dir, CampaignFile)); err == nil {
		p, err := campaignPage(dir)
		if err != nil {
			return err
		}
		p.ReportBy = buildinfo.Read().Short()
		return page().Execute(w, p)
	}
	if _, err := os.Stat(filepath.Join(dir, CompareFile)); err == nil {
		p, err := comparePage(dir)
		if err != nil {
			return err
		}
		p.ReportBy = buildinfo.Read().Short()
		return page().Execute(w, p)
	}
	d, err := loadRun(ctx, dir)
	if err != nil {
		return err
	}
	p := runPage(d)
	p.ReportBy = buildinfo.Read().Short()
	return page().Execute(w, p)
}

// CompareFile is where `kanbanchaos compare --artifacts DIR` leaves the
// comparison (a compare.Comparison as JSON).
const CompareFile = "compare.json"

// view is what the template renders: one of Run, Compare or Campaign.
type view struct {
	Title    string
	MaxLanes int
	Run      *runView
	Compare  *compareView
	Campaign *campaignView
	// ReportBy names the kanbanchaos that wrote the page (buildinfo).
	ReportBy string
}

type runView struct {
	Scenario, Variant, Knobs, SQLite string
	Seed                             uint64
	Status                           string
	Failed                           []string
	Summary                          string
	Replay                           string
	ClockNote, BoardNote             string
	Unknowns                         []string
	Invariants                       []invariantRow // violated, held, not checked (with why)
	Faults                           []faultMark
	Board                            template.HTML
	// Zoom is the window around the first timed violation of a task, at
	// about 17 px per ms; ZoomOf says which violation and task.
	Zoom   template.HTML
	ZoomOf violationView
	// Rates is the run's pace: starts per second and tick durations.
	Rates template.HTML
	// RunBy names the binary that ran the run (buildinfo); "" for runs
	// from before it was recorded.
	RunBy         string
	Lanes         []*lane
	Hidden        int // tasks that started but have no timeline of their own
	NeverStarted  int // tasks that never started, not drawn
	RunViolations []violationView
	Legend        template.HTML
}

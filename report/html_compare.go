package report

// The comparison page: compare.json as a table of seeds by subject.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/compare"
	"github.com/kanbanchaos/kanbanchaos/oracle"
)

type compareView struct {
	A, B      string
	Scenarios string
	Rows      []compare.Row
	Words     string
	Status    string
	Pairs     []pairView
}

type pairView struct {
	Scenario string
	Seed     uint64
	A, B     cellView
	Change   string
}

type cellView struct {
	Text, Class string
	Link        string // relative link to the run's report or directory
}

func comparePage(dir string) (view, error) {
	c, err := readJSON[compare.Comparison](filepath.Join(dir, CompareFile))
	if err != nil {
		return view{}, badInput("%s/%s is not a comparison: %v", dir, CompareFile, err)
	}
	cv := compareView{A: c.A.Name, B: c.B.Name, Scenarios: strings.Join(c.Scenarios, ", "), Rows: c.Table(),
		Words: c.Words, Status: string(c.Status())}
	cell := func(r compare.Run) cellView {
		cv := cellView{Text: string(r.Status), Class: string(r.Status)}
		if r.Status == oracle.Fail {
			cv.Text = "FAIL " + strings.Join(r.Failed, ", ")
		}
		if r.Artifacts != "" {
			if rel, err := filepath.Rel(dir, r.Artifacts); err == nil && !strings.HasPrefix(rel, "..") {
				cv.Link = filepath.ToSlash(rel) + "/"
				if _, err := os.Stat(filepath.Join(r.Artifacts, FileName)); err == nil {
					cv.Link += FileName
				}
			}
		}
		return cv
	}
	for _, p := range c.Pairs {
		cv.Pairs = append(cv.Pairs, pairView{Scenario: p.Scenario, Seed: p.Seed, A: cell(p.A), B: cell(p.B), Change: string(p.Change)})
	}
	return view{Title: fmt.Sprintf("compare %s vs %s — %s", c.A.Name, c.B.Name, cv.Words), Compare: &cv}, nil
}

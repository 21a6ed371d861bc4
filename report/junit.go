// Package report renders what runs and campaigns produced for people and
// CI systems — JUnit XML, regression testscripts, HTML — from values the
// harness hands it. It runs nothing.
package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/buildinfo"

	"github.com/kanbanchaos/kanbanchaos/oracle"
)

// Case is one run as a JUnit test case.
type Case struct {
	Name      string        // e.g. "run 12 seed=123456"
	Class     string        // e.g. "kanbanchaos.fuzz.issue-30896"
	Time      time.Duration // the run's duration
	Seed      uint64
	Status    string   // pass, fail, unknown, error
	Failed    []string // violated invariants
	Message   string   // one line: what failed or why it is undecided
	Evidence  string   // the violations with their evidence, one per line
	Replay    string   // the command that reruns it
	SystemOut string   // anything else worth keeping (probes, doublecheck)
	// Held lists the invariants that held (oracle.Verdict.Held), and
	// NotChecked those the run did not check, with why: both become
	// properties of the case, and the not-checked ones lines of its
	// system-out, so a green case shows what it does not stand on.
	Held       []string
	NotChecked []oracle.Skip
}

// Suite is a set of cases with the settings that produced them.
type Suite struct {
	Name       string
	Properties [][2]string // name, value (seed, variant, shard …)
	Cases      []Case
	Time       time.Duration
	Timestamp  time.Time
}

type xmlSuites struct {
	XMLName xml.Name   `xml:"testsuites"`
	Name    string     `xml:"name,attr"`
	Tests   int        `xml:"tests,attr"`
	Fails   int        `xml:"failures,attr"`
	Errors  int        `xml:"errors,attr"`
	Time    string     `xml:"time,attr"`
	Suites  []xmlSuite `xml:"testsuite"`
}

type xmlSuite struct {
	Name       string        `xml:"name,attr"`
	Tests      int           `xml:"tests,attr"`
	Fails      int           `xml:"failures,attr"`
	Errors     int           `xml:"errors,attr"`
	Skipped    int           `xml:"skipped,attr"`
	Time       string        `xml:"time,attr"`
	Timestamp  string        `xml:"timestamp,attr,omitempty"`
	Properties []xmlProperty `xml:"properties>property,omitempty"`
	Cases      []xmlCase     `xml:"testcase"`
}

type xmlProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// xmlCase is a test case as the strict JUnit schema (Jenkins'
// junit-10.xsd, what most CI systems read) allows it: no properties of its
// own, so a case's seed, replay command and invariants go in system-out.
type xmlCase struct {
	Name      string     `xml:"name,attr"`
	Class     string     `xml:"classname,attr"`
	Time      string     `xml:"time,attr"`
	Failure   *xmlResult `xml:"failure,omitempty"`
	Error     *xmlResult `xml:"error,omitempty"`
	Skipped   *xmlResult `xml:"skipped,omitempty"`
	SystemOut string     `xml:"system-out,omitempty"`
}

type xmlResult struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Body    string `xml:",chardata"`
}

func secs(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

// WriteJUnit writes s as JUnit XML: each run a test case; a failure names
// the violated invariants and the seed in its message and carries the
// evidence and the replay command in its body; an undecided run is an
// error of type undecided (never a skipped, green case); a harness error is
// an error of type harness.
func WriteJUnit(w io.Writer, s Suite) error {
	xs := xmlSuite{Name: s.Name, Tests: len(s.Cases), Time: secs(s.Time)}
	if !s.Timestamp.IsZero() {
		xs.Timestamp = s.Timestamp.UTC().Format("2006-01-02T15:04:05")
	}
	for _, p := range s.Properties {
		xs.Properties = append(xs.Properties, xmlProperty{p[0], p[1]})
	}
	// The binary that made the file, as in every JSON output and report.
	xs.Properties = append(xs.Properties, xmlProperty{"kanbanchaos", buildinfo.Read().Short()})
	for _, c := range s.Cases {
		xc := xmlCase{Name: c.Name, Class: c.Class, Time: secs(c.Time)}
		lines := []string{"seed: " + strconv.FormatUint(c.Seed, 10), "replay: " + c.Replay}
		if len(c.Held) > 0 {
			lines = append(lines, "held: "+strings.Join(c.Held, ", "))
		}
		for _, x := range c.NotChecked {
			lines = append(lines, fmt.Sprintf("not checked: %s — %s", x.Invariant, x.Why))
		}
		xc.SystemOut = strings.TrimSpace(strings.Join(lines, "\n") + "\n" + c.SystemOut)
		body := strings.TrimSpace(c.Evidence + "\nseed: " + strconv.FormatUint(c.Seed, 10) + "\nreplay: " + c.Replay)
		switch c.Status {
		case "pass":
		case "fail":
			xs.Fails++
			xc.Failure = &xmlResult{Message: fmt.Sprintf("%s (seed %d)", c.Message, c.Seed), Type: strings.Join(c.Failed, ","), Body: body}
		case "unknown":
			// Undecided is no pass: an error, never a skipped (green) case.
			xs.Errors++
			xc.Error = &xmlResult{Message: fmt.Sprintf("undecided (seed %d): %s", c.Seed, c.Message), Type: "undecided", Body: body}
		default:
			xs.Errors++
			xc.Error = &xmlResult{Message: fmt.Sprintf("harness error (seed %d): %s", c.Seed, c.Message), Type: "harness", Body: body}
		}
		xs.Cases = append(xs.Cases, xc)
	}
	doc := xmlSuites{Name: s.Name, Tests: xs.Tests, Fails: xs.Fails, Errors: xs.Errors, Time: xs.Time, Suites: []xmlSuite{xs}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return fmt.Errorf("report: junit: %w", err)
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return fmt.Errorf("report: junit: %w", err)
	}
	if _, err := io.WriteString(w, "\n"); err != nil {
		return fmt.Errorf("report: junit: %w", err)
	}
	return nil
}

package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/compare"
	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// TestMain lets the test binary be HERMES_BIN (invoked as "hermes"): the
// tests make real runs to draw.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == fakeworker.InvokedAs {
		os.Exit(fakeworker.Main(os.Args[1:], os.Getenv, os.Stderr))
	}
	os.Exit(m.Run())
}

// keptRun runs a short issue-30896 on variant and keeps its artifacts.
func keptRun(t *testing.T, variant string) harness.Result {
	t.Helper()
	sc, err := scenarios.Lookup("issue-30896")
	if err != nil {
		t.Fatal(err)
	}
	s := sc.Build(7, variant)
	s.DurationMs, s.QuietMs = 800, 300
	// The whole schedule: the storm is what the report must show, not
	// just the violation that decided the verdict.
	res, err := harness.Run(context.Background(), s, harness.Options{ArtifactsDir: t.TempDir(), Keep: true, FullDuration: true,
		Replay: "kanbanchaos run issue-30896 --variant " + variant + " --seed 7"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Artifacts == "" {
		t.Fatal("the run kept no artifacts")
	}
	return res
}

// svgMarks parses the report (as browsers do: void elements, HTML
// entities) and counts, for each task timeline (<svg data-task=ID>), the
// elements of each class.
func svgMarks(t *testing.T, page []byte) map[string]map[string]int {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(page))
	dec.Strict, dec.AutoClose, dec.Entity = false, xml.HTMLAutoClose, xml.HTMLEntity
	out := map[string]map[string]int{}
	task, depth := "", 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("report.html does not parse: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			attr := map[string]string{}
			for _, a := range el.Attr {
				attr[a.Name.Local] = a.Value
			}
			if el.Name.Local == "svg" && attr["data-task"] != "" {
				task, depth = attr["data-task"], 0
				out[task] = map[string]int{}
			}
			if task != "" {
				depth++
				for _, class := range strings.Fields(attr["class"]) {
					out[task][class]++
				}
			}
		case xml.EndElement:
			if task != "" {
				if depth--; depth == 0 {
					task = ""
				}
			}
		}
	}
}

// fingerprint hashes every file under dir with its size and mode, so a
// test can tell the report changed nothing (a -shm created by opening the
// board in place would show).
func fingerprint(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == FileName {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out[path] = sha256.Sum256(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRunReport: the report of a failing run draws one start marker per
// ledger start for the storm task, is self-contained, and leaves the
// artifacts as they were.
func TestRunReport(t *testing.T) {
	t.Parallel()
	// hermes-0.15 re-promotes a tripped task (v0.14.0's breaker holds).
	res := keptRun(t, "hermes-0.15")
	if res.Verdict.Status != oracle.Fail {
		t.Fatalf("hermes-0.15 on issue-30896 seed 7: %s, want fail", res.Verdict.Status)
	}
	before := fingerprint(t, res.Artifacts)
	path, err := Write(res.Artifacts, "")
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(res.Artifacts, FileName) {
		t.Errorf("written to %s", path)
	}
	if after := fingerprint(t, res.Artifacts); len(after) != len(before) {
		t.Errorf("the report added or removed files in the artifacts: %d → %d", len(before), len(after))
	} else {
		for p, h := range before {
			if after[p] != h {
				t.Errorf("the report changed %s", p)
			}
		}
	}
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ledger.Read(filepath.Join(res.Artifacts, "ledger.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	storm := res.Schedule.Tasks[0].ID
	starts := len(h.Starts()[storm])
	if starts <= 2 {
		t.Fatalf("no storm in the ledger: %d starts", starts)
	}
	marks := svgMarks(t, page)
	if marks[storm] == nil {
		t.Fatalf("no timeline for %s; timelines: %v", storm, marks)
	}
	if got := marks[storm]["start"]; got != starts {
		t.Errorf("timeline of %s has %d start markers, the ledger %d starts", storm, got, starts)
	}
	for _, class := range []string{"crashed", "gave_up", "promoted", "counter", "limit", "violation", "quiet"} {
		if marks[storm][class] == 0 {
			t.Errorf("timeline of %s has no %q element: %v", storm, class, marks[storm])
		}
	}
	text := string(page)
	for _, want := range []string{"spawns", "breaker-holds", "limit_source", "kanbanchaos run issue-30896 --variant hermes-0.15 --seed 7"} {
		if !strings.Contains(text, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// Offline: nothing to fetch, nothing to run. (The SVG namespace URI is
	// a name, never fetched.)
	for _, banned := range []string{"<script", " src=", "href=\"http", "@import", "url(", "<link"} {
		if strings.Contains(text, banned) {
			t.Errorf("report.html is not self-contained: it contains %q", banned)
		}
	}
}

// TestReportOfCorruptBoard: a board that cannot be read still gets its
// timeline from the ledger, with a note saying why events are missing.
func TestReportOfCorruptBoard(t *testing.T) {
	t.Parallel()
	res := keptRun(t, "fixed")
	db := filepath.Join(res.Artifacts, "home", "kanban.db")
	for _, suffix := range []string{"-wal", "-shm"} {
		os.Remove(db + suffix)
	}
	if err := os.WriteFile(db, bytes.Repeat([]byte("not a database "), 512), 0o644); err != nil {
		t.Fatal(err)
	}
	path, err := Write(res.Artifacts, filepath.Join(t.TempDir(), "r.html"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(path)
	if !strings.Contains(string(page), "board unreadable") {
		t.Error("no note that the board could not be read")
	}
	storm := res.Schedule.Tasks[0].ID
	if marks := svgMarks(t, page); marks[storm]["start"] != res.Verdict.Spawns[storm] || marks[storm]["start"] == 0 {
		t.Errorf("starts drawn %d, ledger %d", marks[storm]["start"], res.Verdict.Spawns[storm])
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	empty := t.TempDir()
	file := filepath.Join(empty, "f")
	os.WriteFile(file, nil, 0o644)
	garbled := t.TempDir()
	os.WriteFile(filepath.Join(garbled, "verdict.json"), []byte("{"), 0o644)
	for dir, want := range map[string]string{
		filepath.Join(empty, "nope"): "does not exist",
		empty:                        "has no verdict.json",
		file:                         "is not a directory",
		garbled:                      "is not a run result",
	} {
		_, err := Write(dir, "")
		if !errors.Is(err, ErrBadInput) || !strings.Contains(err.Error(), want) {
			t.Errorf("Write(%s) = %v, want ErrBadInput with %q", dir, err, want)
		}
	}
}

// TestCompareReport renders a comparison: the side-by-side table, the
// verdict in words, and a link to each kept run's own report.
func TestCompareReport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	runDir := filepath.Join(dir, "a", "issue-30896-1")
	os.MkdirAll(runDir, 0o755)
	os.WriteFile(filepath.Join(runDir, FileName), []byte("<html></html>"), 0o644)
	fail := oracle.Verdict{Status: oracle.Fail, Spawns: map[string]int{"t_00000001": 240},
		Violations: []oracle.Violation{{Invariant: oracle.Spawns, AtMs: 45}}}
	pass := oracle.Verdict{Status: oracle.Pass, Spawns: map[string]int{"t_00000001": 2}}
	c := compare.Summarize("hermes-0.14", "fixed", []compare.Pair{
		{Scenario: "issue-30896", Seed: 1, A: compare.RunOf(fail, "3.54.1", runDir), B: compare.RunOf(pass, "3.54.1", "")},
	})
	data, _ := json.Marshal(c)
	os.WriteFile(filepath.Join(dir, CompareFile), data, 0o644)
	path, err := Write(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(path)
	text := string(page)
	for _, want := range []string{
		"A: hermes-0.14", "B: fixed", "B fixes 1 of 1 failing seeds, breaks 0, unchanged 0",
		"spawns/task max", ">240<", ">2<", "corruption rate", `href="a/issue-30896-1/report.html"`, "FAIL spawns",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("compare report lacks %q", want)
		}
	}
}

// TestScreenshot opens the report of a spawn storm in headless Chromium,
// offline, and checks the storm is on the screen: worker starts are drawn
// in a colour used for nothing else, and a storm covers many columns of
// the first timeline where a run that holds its limit covers a few.
//
// Not parallel: the storm's starts in its 0.8 s must far outnumber the
// fixed run's, and the other tests' runs beside it would thin the storm.
func TestScreenshot(t *testing.T) {
	const chromium = "/usr/bin/chromium"
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("no %s (apt-get install chromium to run the screenshot check): %v", chromium, err)
	}
	storm := keptRun(t, "hermes-0.15")
	calm := keptRun(t, "fixed")
	columns := func(res harness.Result) int {
		path, err := Write(res.Artifacts, "")
		if err != nil {
			t.Fatal(err)
		}
		img := screenshot(t, chromium, path)
		if zoom := colourColumns(img, 0xfd, 0xf3, 0xdc); res.Verdict.Status == oracle.Fail && zoom < 500 {
			t.Errorf("the zoom on the first violation covers %d columns of the screenshot, want its whole width", zoom)
		} else if res.Verdict.Status == oracle.Pass && zoom != 0 {
			t.Errorf("a run without violation shows a zoom panel (%d columns)", zoom)
		}
		return colourColumns(img, 0x1f, 0x5f, 0xbf)
	}
	stormCols, calmCols := columns(storm), columns(calm)
	starts := storm.Verdict.Spawns[storm.Schedule.Tasks[0].ID]
	t.Logf("start-marker columns on screen: storm (%d starts) %d, fixed (%d starts) %d", starts, stormCols, calm.Spawns, calmCols)
	// How many starts the storm reaches in its 0.8 s depends on the
	// machine's load; every one must be on screen (a marker is 2 px wide,
	// starts within a millisecond share one), and far more of them than a
	// run that holds its limit shows.
	if stormCols < min(40, starts) || stormCols <= 2*calmCols {
		t.Errorf("the storm's %d starts cover only %d columns of the screenshot (the fixed run's 2 cover %d)", starts, stormCols, calmCols)
	}
	if calmCols >= 20 || calmCols == 0 {
		t.Errorf("a run with %d starts covers %d columns: the markers are not what is being counted", calm.Spawns, calmCols)
	}
}

func screenshot(t *testing.T, chromium, page string) image.Image {
	t.Helper()
	dir := t.TempDir()
	shot := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+filepath.Join(dir, "profile"), "--screenshot="+shot, "--window-size=1200,1600",
		"file://"+page)
	// Chromium starts helpers: on a timeout the whole group goes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// colourColumns counts the x positions at which some pixel has exactly
// this colour.
func colourColumns(img image.Image, r, g, b uint8) int {
	n := 0
	bounds := img.Bounds()
	for x := bounds.Min.X; x < bounds.Max.X; x++ {
		for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
			pr, pg, pb, _ := img.At(x, y).RGBA()
			if uint8(pr>>8) == r && uint8(pg>>8) == g && uint8(pb>>8) == b {
				n++
				break
			}
		}
	}
	return n
}

// TestLaneSelection: on a big board only the tasks worth a look get a
// timeline — the one a violation names first, then restarts — and the rest
// are counted, not silently dropped.
func TestLaneSelection(t *testing.T) {
	t.Parallel()
	d := runData{Result: result{StartMono: 1e9, StartWall: 1000}}
	d.Result.Schedule.DurationMs = 1000
	id := func(i int) string { return fmt.Sprintf("t_%08x", i) }
	for i := 0; i < 40; i++ {
		d.Result.Schedule.Tasks = append(d.Result.Schedule.Tasks, schedule.Task{ID: id(i), Assignee: "w"})
	}
	start := func(task string, ms int64) {
		d.Ledger.Entries = append(d.Ledger.Entries, ledger.Entry{Kind: ledger.Start, Task: task, Mono: 1e9 + ms*1e6})
	}
	for i := 0; i < 30; i++ { // 30 tasks start once and complete
		start(id(i), int64(10*i))
		d.Events = append(d.Events, event{Task: id(i), Kind: "completed", Wall: 1000 + float64(10*i+5)/1000})
	}
	for i := 0; i < 5; i++ { // task 3 restarts
		start(id(3), int64(400+10*i))
	}
	d.Result.Verdict = oracle.Verdict{Status: oracle.Fail, Violations: []oracle.Violation{{Invariant: oracle.NoLostWrites, Task: id(7), AtMs: 50}}}
	v := runPage(d).Run
	var got []string
	for _, l := range v.Lanes {
		got = append(got, l.ID)
	}
	if want := []string{id(7), id(3)}; !slices.Equal(got, want) {
		t.Errorf("lanes %v, want %v (the violated task first, then the restarted one)", got, want)
	}
	if v.Hidden != 28 || v.NeverStarted != 10 {
		t.Errorf("not drawn: %d started, %d never started; want 28 and 10", v.Hidden, v.NeverStarted)
	}
	if v.Lanes[1].StartMarks[5].Ms != 440 {
		t.Errorf("start #6 of %s at %v ms, want 440 (ledger mono − run start)", id(3), v.Lanes[1].StartMarks[5].Ms)
	}
}

// TestCampaignReport renders a fuzz campaign's summary: counts, failing runs
// per invariant, probe coverage with the never-reached ones flagged, and
// links to the kept runs.
func TestCampaignReport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "runs", "issue-30896-42"), 0o755)
	summary := `{"type":"summary","seed":5,"runs":3,"shard":"0/1","scenarios":["issue-30896"],"planned":[0,1,2],
		"done":3,"passed":2,"failed":1,"failures_by_invariant":{"spawns":1},
		"failures":[{"index":1,"seed":42,"scenario":"issue-30896","status":"fail","failed":["spawns"],"replay":"kanbanchaos fuzz --run-seed 42"}],
		"probes":[{"name":"breaker-trip","applicable":3,"reached":3},{"name":"busy-timeout","applicable":3,"reached":0},{"name":"kill-in-txn","applicable":0,"reached":0}],
		"never_reached":["busy-timeout"],"verdict":"fail"}`
	os.WriteFile(filepath.Join(dir, CampaignFile), []byte(summary), 0o644)
	path, err := Write(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := os.ReadFile(path)
	text := string(page)
	for _, want := range []string{
		"fuzz campaign", "2 / 1 / 0 / 0", "Probe coverage", "breaker-trip", "never reached: these runs say little about this state",
		"not reachable with these variants", `href="runs/issue-30896-42/"`, "FAIL spawns", "kanbanchaos fuzz --run-seed 42",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("campaign report lacks %q", want)
		}
	}
}

// TestZoomAndScales: a failing run's report zooms on its first violation —
// the task it names, ±30 ms, the trip and the re-promotion each drawn and
// named apart even a millisecond apart — gives the failure counter a
// labelled scale that holds every step, labels the last tick inside the
// drawing, and plots starts per second and tick durations.
func TestZoomAndScales(t *testing.T) {
	t.Parallel()
	storm := keptRun(t, "hermes-0.15")
	var page bytes.Buffer
	if err := Render(context.Background(), &page, storm.Artifacts); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	zoom := svgOf(t, html, `class="timeline zoom"`)
	first := storm.Verdict.Violations[0]
	for _, v := range storm.Verdict.Violations {
		if v.AtMs > 0 && v.AtMs < first.AtMs || first.AtMs <= 0 {
			first = v
		}
	}
	if !strings.Contains(zoom, `data-task="`+first.Task+`"`) {
		t.Errorf("the zoom is not on %s, the task of the first violation (%s at +%.0fms)", first.Task, first.Invariant, first.AtMs)
	}
	// Every marker in the zoom has a place of its own.
	at := regexp.MustCompile(`class="ev (\w+)" d="M(-?[\d.]+) (-?[\d.]+)`)
	seen := map[string]string{}
	kinds := map[string]bool{}
	for _, m := range at.FindAllStringSubmatch(zoom, -1) {
		kinds[m[1]] = true
		if other, ok := seen[m[2]+" "+m[3]]; ok {
			t.Errorf("%s and %s drawn on the same spot (%s, %s) of the zoom", other, m[1], m[2], m[3])
		}
		seen[m[2]+" "+m[3]] = m[1]
	}
	if !kinds["gave_up"] || !strings.Contains(zoom, `class="evlabel">gave_up +`) {
		t.Errorf("the zoom on %s does not show and name the breaker trip: %v", first.Invariant, kinds)
	}
	// 60 ms across 1000 px: more than 15 px per millisecond.
	ticks := regexp.MustCompile(`class="tick" text-anchor="(\w+)">([\d.]+)ms<`).FindAllStringSubmatch(zoom, -1)
	if len(ticks) < 3 {
		t.Fatalf("zoom axis: %v", ticks)
	}

	lane := svgOf(t, html, `class="timeline task" data-task="`+first.Task+`"`)
	if n := strings.Count(lane, `class="scale"`); n < 2 {
		t.Errorf("the failure counter has %d scale labels, want a labelled scale", n)
	}
	counter := regexp.MustCompile(`class="counter" d="([^"]*)"`).FindStringSubmatch(lane)
	for _, v := range regexp.MustCompile(`V([\d.]+)`).FindAllStringSubmatch(counter[1], -1) {
		if y, _ := strconv.ParseFloat(v[1], 64); y < 60 || y > 100 {
			t.Errorf("a counter step at y=%v leaves its axis (60..100)", y)
		}
	}
	labels := regexp.MustCompile(`x="([\d.]+)" y="[\d.]+" class="tick" text-anchor="(\w+)"`).FindAllStringSubmatch(lane, -1)
	if len(labels) == 0 {
		t.Fatal("no tick labels")
	}
	if x, _ := strconv.ParseFloat(labels[len(labels)-1][1], 64); x > plotLeft+plotWidth-24 && labels[len(labels)-1][2] != "end" {
		t.Errorf("the last tick label at x=%v is centred past the plot's edge", x)
	}

	rates := svgOf(t, html, `class="timeline rates"`)
	if strings.Count(rates, `class="rate"`) == 0 || strings.Count(rates, `class="tickdur"`) == 0 {
		t.Errorf("the pace plot lacks start-rate bars or tick durations")
	}

	calm := keptRun(t, "fixed")
	page.Reset()
	if err := Render(context.Background(), &page, calm.Artifacts); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(page.String(), "timeline zoom") {
		t.Errorf("a run without violation has a zoom panel")
	}
}

// svgOf returns the <svg> element whose start tag contains attr.
func svgOf(t *testing.T, html, attr string) string {
	t.Helper()
	i := strings.Index(html, attr)
	if i < 0 {
		t.Fatalf("no svg with %s", attr)
	}
	i = strings.LastIndex(html[:i], "<svg")
	return html[i : i+strings.Index(html[i:], "</svg>")]
}

// TestReportNamesItsBinaries: a run's report says which kanbanchaos ran
// the run and which wrote the report, as every JSON output and JUnit file
// names its binary.
func TestReportNamesItsBinaries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := scenarios.Lookup("issue-30417")
	if err != nil {
		t.Fatal(err)
	}
	sched := s.Build(3, "fixed")
	sched.DurationMs, sched.QuietMs = 600, 200
	res, err := harness.Run(context.Background(), sched, harness.Options{ArtifactsDir: dir, Keep: true})
	if err != nil {
		t.Fatal(err)
	}
	var page bytes.Buffer
	if err := Render(context.Background(), &page, res.Artifacts); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.String(), "run by kanbanchaos ") || !strings.Contains(page.String(), "report by kanbanchaos ") {
		t.Errorf("the report does not name the binaries that ran and wrote it")
	}
}

// TestReportNamesTheRealRelease: a real release's run is headed by the
// release, not by the variant that only shaped the Go workers, with the
// SQLite each side loaded and what its whole-second board clock means for
// the drawing.
func TestReportNamesTheRealRelease(t *testing.T) {
	t.Parallel()
	d := runData{Result: result{StartMono: 1e9, StartWall: 1000, SQLite: "3.54.1"}}
	d.Result.Schedule = schedule.Schedule{Scenario: "systemic-crash", Seed: 1, Variant: "hermes-0.19", DurationMs: 1000,
		Subject: schedule.Subject{Hermes: "0.19.0"}}
	d.Result.Settings.Reported = []reportedSide{{Release: "0.19.0", Python: "3.11.7", SQLite: "3.40.1"}}
	page := runPage(d)
	if !strings.Contains(page.Title, "on hermes:0.19.0") || page.Run.Variant != "hermes:0.19.0" {
		t.Errorf("title %q, heading %q: want the release, not the variant", page.Title, page.Run.Variant)
	}
	if want := "dispatcher 3.40.1 (hermes-agent 0.19.0, Python 3.11.7) · Go workers 3.54.1 (hermes-0.19's connections)"; page.Run.SQLite != want {
		t.Errorf("SQLite line %q, want %q", page.Run.SQLite, want)
	}
	if !strings.Contains(page.Run.ClockNote, "whole seconds") {
		t.Errorf("clock note %q does not say the board's times are whole seconds", page.Run.ClockNote)
	}

	d.Result.Settings.Workers, d.Result.Settings.WorkerSQLite = "hermes", []string{"3.40.1"}
	if got := runPage(d).Run.SQLite; !strings.HasSuffix(got, "· the release's own workers 3.40.1") {
		t.Errorf("SQLite line with Hermes workers %q", got)
	}

	// The reference dispatcher: the variant and the harness's SQLite.
	d.Result.Schedule.Subject = schedule.Subject{}
	page = runPage(d)
	if page.Run.Variant != "hermes-0.19" || page.Run.SQLite != "3.54.1" || page.Run.ClockNote != "" {
		t.Errorf("reference run: heading %q, SQLite %q, note %q", page.Run.Variant, page.Run.SQLite, page.Run.ClockNote)
	}
}

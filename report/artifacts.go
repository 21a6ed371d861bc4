package report

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/buildinfo"
	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/ledger"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// result is the part of a run's verdict.json (harness.Result) the report
// draws. It is read as JSON, not imported: the report sits beside the
// harness, not above it, and must read the artifacts of older runs too.
type result struct {
	Schedule   schedule.Schedule `json:"schedule"`
	SQLite     string            `json:"sqlite"`
	Verdict    oracle.Verdict    `json:"verdict"`
	Elapsed    time.Duration     `json:"elapsed_ns"`
	Spawns     int               `json:"spawns"`
	SpawnRate  float64           `json:"spawns_per_s"`
	Ticks      int               `json:"ticks"`
	TickErrors int               `json:"tick_errors"`
	Faults     []injection       `json:"faults"`
	// The run's start on both clocks; zero in runs from before they were
	// recorded (the start is then estimated, see clock).
	StartMono int64   `json:"start_mono_ns"`
	StartWall float64 `json:"start_wall"`
	// Binary is the kanbanchaos that ran it; nil in runs from before it
	// was recorded.
	Binary *buildinfo.Info `json:"binary"`
	// Settings is what the dispatcher under test ran with: for a Hermes
	// release, the SQLite its driver and workers reported loading.
	Settings runSettings `json:"settings"`
}

// runSettings is the part of the subject's settings (subject.Settings)
// the report shows.
type runSettings struct {
	Workers      string         `json:"workers"`
	WorkerSQLite []string       `json:"worker_sqlite"`
	Reported     []reportedSide `json:"reported"`
}

// reportedSide is what a Hermes driver reported loading (hermes.Reported).
type reportedSide struct {
	Release string `json:"release"`
	Python  string `json:"python"`
	SQLite  string `json:"sqlite"`
}

// injection is a carried-out fault (faults.Injection).
type injection struct {
	AtMs   int    `json:"at_ms"`
	Kind   string `json:"kind"`
	Mono   int64  `json:"mono_ns"`
	Result string `json:"result"`
}

// event is one task_events row.
type event struct {
	ID      int64
	Task    string
	Run     int64
	Kind    string
	Payload map[string]any
	Wall    float64
}

// taskRow is the final state of one task.
type taskRow struct {
	ID, Title, Assignee, Status string
	Failures                    int
}

// runData is everything a run's artifact directory holds that the report
// draws from.
type runData struct {
	Dir    string
	Result result
	Ledger ledger.History
	Ticks  []dispatcher.Tick
	Events []event
	Tasks  []taskRow
	// BoardNote says why the board's events are missing (a corrupt or
	// absent DB): the timeline then shows what the ledger and trace hold.
	BoardNote string
	Replay    string
}

// loadRun reads dir. Only verdict.json is required; every other file adds
// to the picture, and a missing or unreadable one is noted, not fatal — the
// runs worth a report are the ones whose board is damaged.
func loadRun(ctx context.Context, dir string) (runData, error) {
	d := runData{Dir: dir}
	data, err := os.ReadFile(filepath.Join(dir, "verdict.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return d, badInput("%s has no verdict.json: it is not a run's artifact directory (kept by a failing run, or with --keep) nor a compare --artifacts directory", dir)
		}
		return d, badInput("%v", err)
	}
	if err := json.Unmarshal(data, &d.Result); err != nil {
		return d, badInput("%s/verdict.json is not a run result: %v", dir, err)
	}
	if d.Result.Schedule.Scenario == "" {
		// An older verdict.json without its schedule: take schedule.json.
		if s, err := readJSON[schedule.Schedule](filepath.Join(dir, "schedule.json")); err == nil {
			d.Result.Schedule = s
		}
	}
	if d.Ledger, err = ledger.Read(filepath.Join(dir, "ledger.jsonl")); err != nil {
		return d, fmt.Errorf("report: %w", err)
	}
	if d.Ticks, err = readTrace(filepath.Join(dir, "trace.jsonl")); err != nil {
		return d, err
	}
	if script, err := os.ReadFile(filepath.Join(dir, "repro.sh")); err == nil {
		for _, line := range strings.Split(string(script), "\n") {
			if cmd, ok := strings.CutPrefix(line, "exec "); ok {
				d.Replay = cmd
			}
		}
	}
	d.Events, d.Tasks, err = readBoard(ctx, filepath.Join(dir, "home", "kanban.db"))
	if err != nil {
		d.BoardNote = err.Error()
	}
	return d, nil
}

func readJSON[T any](path string) (T, error) {
	var v T
	data, err := os.ReadFile(path)
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal(data, &v)
}

// readTrace reads the tick lines of trace.jsonl; fault lines are in
// verdict.json already (with their effect), and unknown lines are skipped.
func readTrace(path string) ([]dispatcher.Tick, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	defer f.Close()
	var ticks []dispatcher.Tick
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
	for sc.Scan() {
		var t dispatcher.Tick
		if json.Unmarshal(sc.Bytes(), &t) == nil && t.Dispatcher != "" {
			ticks = append(ticks, t)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("report: read %s: %w", path, err)
	}
	return ticks, nil
}

// readBoard reads the task events and final task rows from a copy of the
// board. The artifact's own files are never opened for writing: SQLite may
// have to recover a hot WAL or journal to read the board, and that recovery
// happens on the copy (as the oracle's check does), leaving the evidence as
// the run left it. The report runs after every process of the run is gone,
// so the plain reads that make the copy cannot drop anyone's locks.
func readBoard(ctx context.Context, path string) ([]event, []taskRow, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, nil, fmt.Errorf("no board to read events from: %v", err)
	}
	tmp, err := os.MkdirTemp("", "kanbanchaos-report-")
	if err != nil {
		return nil, nil, fmt.Errorf("report: %w", err)
	}
	defer os.RemoveAll(tmp)
	cp, err := oracle.CopyBoard(path, tmp)
	if err != nil {
		return nil, nil, fmt.Errorf("copy the board: %v", err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	db, err := sql.Open("sqlite", kanban.FileURI(cp)+"?"+q.Encode())
	if err != nil {
		return nil, nil, fmt.Errorf("open the board copy: %v", err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	var events []event
	rows, err := db.QueryContext(ctx, `SELECT id, task_id, COALESCE(run_id, 0), kind, COALESCE(payload, ''), created_at FROM task_events ORDER BY id`)
	if err != nil {
		return nil, nil, fmt.Errorf("board unreadable (%v): events are missing from the timeline", err)
	}
	for rows.Next() {
		var e event
		var payload string
		if err := rows.Scan(&e.ID, &e.Task, &e.Run, &e.Kind, &payload, &e.Wall); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("board unreadable (%v): events are missing from the timeline", err)
		}
		json.Unmarshal([]byte(payload), &e.Payload)
		events = append(events, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return events, nil, fmt.Errorf("board partly unreadable (%v): later events may be missing", err)
	}
	var tasks []taskRow
	rows, err = db.QueryContext(ctx, `SELECT id, title, COALESCE(assignee, ''), status, consecutive_failures FROM tasks ORDER BY id`)
	if err != nil {
		return events, nil, fmt.Errorf("tasks unreadable: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t taskRow
		if err := rows.Scan(&t.ID, &t.Title, &t.Assignee, &t.Status, &t.Failures); err != nil {
			return events, tasks, fmt.Errorf("tasks unreadable: %v", err)
		}
		tasks = append(tasks, t)
	}
	return events, tasks, rows.Err()
}

// clock puts every time of a run on one axis: milliseconds since the run's
// start, as the oracle's evidence is. The ledger and the fault injections
// carry CLOCK_MONOTONIC times, the trace and the board wall times; the
// ledger's entries carry both, which lines the two clocks up when the run's
// start was not recorded on both.
type clock struct {
	startMono int64
	offset    float64 // wall − mono, in seconds
	// Estimated is set when the start was not recorded and was taken from
	// the earliest thing the run left.
	Estimated bool
}

func newClock(r result, h ledger.History, ticks []dispatcher.Tick) clock {
	c := clock{startMono: r.StartMono}
	switch {
	case r.StartMono != 0 && r.StartWall != 0:
		c.offset = r.StartWall - float64(r.StartMono)/1e9
		return c
	case len(h.Entries) > 0:
		var offs []float64
		for _, e := range h.Entries {
			if e.Mono != 0 && e.Wall != 0 {
				offs = append(offs, e.Wall-float64(e.Mono)/1e9)
			}
		}
		sort.Float64s(offs)
		if len(offs) > 0 {
			c.offset = offs[len(offs)/2]
		}
	}
	if c.startMono != 0 {
		return c
	}
	// No recorded start: the first dispatcher's first tick (it has no
	// offset) or the first ledger line, whichever is earlier.
	c.Estimated = true
	var first int64
	for _, e := range h.Entries {
		if e.Mono != 0 && (first == 0 || e.Mono < first) {
			first = e.Mono
		}
	}
	for _, t := range ticks {
		if m := int64((t.At - c.offset) * 1e9); c.offset != 0 && (first == 0 || m < first) {
			first = m
		}
	}
	c.startMono = first
	return c
}

func (c clock) monoMs(mono int64) float64 { return float64(mono-c.startMono) / 1e6 }

func (c clock) wallMs(wall float64) float64 {
	return (wall - c.offset - float64(c.startMono)/1e9) * 1000
}

// tasksByActivity orders task ids: those named in a violation first, then by
// worker starts, most first.
func tasksByActivity(ids []string, starts map[string]int, violated map[string]bool) []string {
	ids = slices.Clone(ids)
	sort.SliceStable(ids, func(i, j int) bool {
		a, b := ids[i], ids[j]
		if violated[a] != violated[b] {
			return violated[a]
		}
		if starts[a] != starts[b] {
			return starts[a] > starts[b]
		}
		return a < b
	})
	return ids
}

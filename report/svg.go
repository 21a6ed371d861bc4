package report

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"strings"
)

// Geometry of every timeline: a label column, then the plot. All timelines
// of a page share one x scale, so a spawn storm in one task lines up with a
// fault or a corruption error on the board lane.
const (
	plotLeft  = 84.0
	plotWidth = 1000.0
	svgWidth  = plotLeft + plotWidth + 16
)

// Colours are part of the contract with the screenshot test: a worker start
// is drawn in startColour and nothing else is, so its pixels can be counted.
const (
	startColour   = "#1f5fbf"
	quietColour   = "#efefef"
	faultColour   = "#ff9f1c"
	violColour    = "#c8102e"
	counterColour = "#7b3fa0"
	// zoomColour is the zoom panel's background, used nowhere else: the
	// screenshot test finds the panel by it.
	zoomColour = "#fdf3dc"
)

// svg builds one timeline. Text goes through esc; numbers are formatted.
type svg struct {
	b      strings.Builder
	height float64
}

func esc(s string) string { return html.EscapeString(s) }

func newSVG(class, task string, height float64) *svg {
	s := &svg{height: height}
	attr := ""
	if task != "" {
		attr = fmt.Sprintf(` data-task="%s"`, esc(task))
	}
	fmt.Fprintf(&s.b, `<svg xmlns="http://www.w3.org/2000/svg" class="%s"%s width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img">`,
		class, attr, svgWidth, height, svgWidth, height)
	return s
}

func (s *svg) add(format string, args ...any) { fmt.Fprintf(&s.b, format, args...) }

func (s *svg) html() template.HTML {
	s.b.WriteString("</svg>")
	return template.HTML(s.b.String()) // every text inside went through esc
}

// bands shades the quiet phase and each injected fault over [top, bottom].
func (s *svg) bands(ax axis, quietFrom, quietTo float64, faults []faultMark, top, bottom float64) {
	if quietTo > quietFrom {
		x0, x1 := ax.x(quietFrom), ax.x(quietTo)
		s.add(`<rect class="quiet" x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="%s"><title>quiet phase: dispatchers keep ticking, the breaker must hold</title></rect>`,
			x0, top, x1-x0, bottom-top, quietColour)
	}
	for _, f := range faults {
		x := ax.x(f.Ms)
		s.add(`<rect class="fault" x="%.1f" y="%.0f" width="6" height="%.0f" fill="%s" fill-opacity="0.55"><title>fault %s at +%.0fms: %s</title></rect>`,
			x-1, top, bottom-top, faultColour, esc(f.Kind), f.Ms, esc(f.Result))
	}
}

// axisLine draws the time axis at y. Labels are centred on their tick,
// but the last one ends at its tick, so none is cut off at the edge.
func (s *svg) axisLine(ax axis, y float64) {
	s.add(`<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="#888"/>`, plotLeft, y, plotLeft+plotWidth, y)
	for _, t := range ax.ticks() {
		x := ax.x(t)
		anchor := "middle"
		if x > plotLeft+plotWidth-24 {
			anchor = "end"
		}
		s.add(`<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#888"/><text x="%.1f" y="%.0f" class="tick" text-anchor="%s">%s</text>`,
			x, y, x, y+4, x, y+15, anchor, msLabel(t))
	}
}

// yScale draws a labelled vertical scale at the plot's left edge for
// values 0..top mapped onto [bottom, topY]: a line, ticks and numbers
// right-aligned in the label column, and the unit under the lane label.
func (s *svg) yScale(top, topY, bottom float64, unit string) {
	s.add(`<line class="yaxis" x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#888"/>`, plotLeft, topY, plotLeft, bottom)
	// One label per 12 px at most, so they never touch.
	step := niceStep(math.Max(top, 1), max(1, int((bottom-topY)/12)))
	if step < 1 && unit == "" {
		step = 1 // counts are whole
	}
	for v := 0.0; v <= top+1e-9; v += step {
		y := bottom - v/math.Max(top, 1e-9)*(bottom-topY)
		s.add(`<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#888"/><text x="%.0f" y="%.1f" class="scale">%s</text>`,
			plotLeft-3, y, plotLeft, y, plotLeft-5, y+3.5, strconvG(v))
	}
	if unit != "" {
		s.add(`<text x="4" y="%.1f" class="unit">%s</text>`, topY+22, esc(unit))
	}
}

func strconvG(v float64) string { return fmt.Sprintf("%g", math.Round(v*100)/100) }

// violations draws a dashed line at each timed violation.
func (s *svg) violations(ax axis, vs []violationView, top, bottom float64) {
	for _, v := range vs {
		if v.AtMs <= 0 {
			continue
		}
		x := ax.x(v.AtMs)
		s.add(`<line class="violation" x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="%s" stroke-width="1.5" stroke-dasharray="4 3"><title>%s at +%.0fms: %s</title></line>`,
			x, top, x, bottom, violColour, esc(v.Invariant), v.AtMs, esc(v.Message))
	}
}

func (s *svg) label(y float64, text string) {
	s.add(`<text x="4" y="%.0f" class="lane">%s</text>`, y, esc(text))
}

// marker draws one task event in the events lane, centred on (x, y).
func (s *svg) marker(x, y float64, kind, title string) {
	t := fmt.Sprintf("<title>%s</title>", esc(title))
	switch kind {
	case "crashed", "timed_out", "protocol_violation", "spawn_failed":
		colour := map[string]string{"crashed": "#d62728", "timed_out": "#e67e00", "protocol_violation": "#8c564b", "spawn_failed": "#9467bd"}[kind]
		s.add(`<path class="ev %s" d="M%.1f %.1fl8 8m0 -8l-8 8" stroke="%s" stroke-width="2" fill="none">%s</path>`, kind, x-4, y-4, colour, t)
	case "gave_up":
		s.add(`<path class="ev gave_up" d="M%.1f %.1fl6 6l-6 6l-6 -6z" fill="#111">%s</path>`, x, y-6, t)
	case "promoted":
		s.add(`<path class="ev promoted" d="M%.1f %.1fl5 9h-10z" fill="#2a9d3a">%s</path>`, x, y-5, t)
	case "completed":
		s.add(`<circle class="ev completed" cx="%.1f" cy="%.1f" r="5" fill="#2a9d3a">%s</circle>`, x, y, t)
	case "blocked":
		s.add(`<rect class="ev blocked" x="%.1f" y="%.1f" width="9" height="9" fill="#777">%s</rect>`, x-4.5, y-4.5, t)
	case "rate_limited":
		s.add(`<circle class="ev rate_limited" cx="%.1f" cy="%.1f" r="4" fill="none" stroke="#17becf" stroke-width="2">%s</circle>`, x, y, t)
	default: // reclaimed, unblocked …: small and quiet
		s.add(`<circle class="ev %s" cx="%.1f" cy="%.1f" r="2.5" fill="#999">%s</circle>`, esc(kind), x, y, t)
	}
}

// drawnEvents are the task event kinds the events lane shows. claimed and
// spawned are left out: every worker start is already drawn from the
// ledger, which is the count the spawns invariant holds.
var drawnEvents = map[string]bool{"crashed": true, "timed_out": true, "protocol_violation": true, "spawn_failed": true,
	"gave_up": true, "promoted": true, "completed": true, "blocked": true, "rate_limited": true, "reclaimed": true, "unblocked": true}

// taskTimeline draws one task: its worker starts (ledger), its events
// (board), its failure counter as a step line against its limit, the quiet
// phase and faults as bands, and its violations.
func taskTimeline(ax axis, l *lane, quietFrom, quietTo float64, faults []faultMark) template.HTML {
	const (
		startTop, startBottom = 6.0, 28.0
		eventY                = 44.0
		ctrTop, ctrBottom     = 60.0, 100.0
		axisY                 = 106.0
	)
	s := newSVG("timeline task", l.ID, 126)
	s.bands(ax, quietFrom, quietTo, faults, 0, axisY)
	s.label(21, "starts")
	s.label(48, "events")
	s.label(84, "failures")
	for i, st := range l.StartMarks {
		x := ax.x(st.Ms)
		s.add(`<line class="start" x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="%s" stroke-width="2" shape-rendering="crispEdges"><title>worker start #%d at +%.1fms (pid %d, run %d)</title></line>`,
			x, startTop, x, startBottom, startColour, i+1, st.Ms, st.PID, st.Run)
	}
	for _, e := range l.EventMarks {
		s.marker(ax.x(e.Ms), eventY, e.Kind, e.Title)
	}
	top := counterTop(l)
	y := func(v int) float64 { return ctrBottom - float64(v)/top*(ctrBottom-ctrTop) }
	s.yScale(top, ctrTop, ctrBottom, "")
	if l.Limit > 0 {
		s.add(`<line class="limit" x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="%s" stroke-dasharray="6 4"/><text x="%.0f" y="%.1f" class="limitlabel">limit %d</text>`,
			plotLeft, y(l.Limit), plotLeft+plotWidth, y(l.Limit), violColour, plotLeft+plotWidth-44, y(l.Limit)-3, l.Limit)
	}
	// The step line: flat until each change, then a vertical step.
	var d strings.Builder
	fmt.Fprintf(&d, "M%.1f %.1f", plotLeft, y(0))
	for _, st := range l.Counter {
		x := ax.x(st.Ms)
		fmt.Fprintf(&d, "H%.1fV%.1f", x, y(st.Value))
	}
	fmt.Fprintf(&d, "H%.1f", plotLeft+plotWidth)
	s.add(`<path class="counter" d="%s" fill="none" stroke="%s" stroke-width="2"><title>consecutive_failures: %s</title></path>`,
		d.String(), counterColour, esc(l.CounterText()))
	s.violations(ax, l.Violations, 0, axisY)
	s.axisLine(ax, axisY)
	return s.html()
}

// boardTimeline is the run-wide lane: every worker start of every task, the
// SQLite errors processes logged, failed dispatcher ticks, faults and every
// timed violation.
func boardTimeline(ax axis, b boardLane, quietFrom, quietTo float64, faults []faultMark, vs []violationView) template.HTML {
	const axisY = 90.0
	s := newSVG("timeline board", "", 110)
	s.bands(ax, quietFrom, quietTo, faults, 0, axisY)
	s.label(21, "all starts")
	s.label(50, "SQLite errors")
	s.label(76, "failed ticks")
	for _, ms := range b.Starts {
		x := ax.x(ms)
		s.add(`<line class="any-start" x1="%.1f" y1="6" x2="%.1f" y2="28" stroke="#7f9cc9" stroke-width="1"/>`, x, x)
	}
	for _, e := range b.Errors {
		x, y, colour := ax.x(e.Ms), 42.0, "#d62728"
		if e.Class == "tick-error" {
			y, colour = 68, "#e67e00"
		}
		s.add(`<path class="%s" d="M%.1f %.0fl8 8m0 -8l-8 8" stroke="%s" stroke-width="2" fill="none"><title>%s</title></path>`,
			e.Class, x-4, y, colour, esc(e.Title))
	}
	s.violations(ax, vs, 0, axisY)
	s.axisLine(ax, axisY)
	return s.html()
}

// legend draws each marker once, with what it means.
func legend() template.HTML {
	items := []struct{ kind, text string }{
		{"start", "worker start (ledger)"},
		{"crashed", "crashed / timed out"},
		{"gave_up", "gave_up: breaker trip"},
		{"promoted", "promoted"},
		{"completed", "completed"},
		{"blocked", "blocked"},
		{"counter", "failure counter"},
		{"fault", "injected fault"},
		{"quiet", "quiet phase"},
		{"violation", "violation"},
	}
	var b strings.Builder
	for _, it := range items {
		b.WriteString(`<span class="key"><svg xmlns="http://www.w3.org/2000/svg" width="18" height="16" viewBox="0 0 18 16">`)
		switch it.kind {
		case "start":
			fmt.Fprintf(&b, `<line x1="9" y1="1" x2="9" y2="15" stroke="%s" stroke-width="2"/>`, startColour)
		case "counter":
			fmt.Fprintf(&b, `<path d="M1 13H7V5H17" fill="none" stroke="%s" stroke-width="2"/>`, counterColour)
		case "fault":
			fmt.Fprintf(&b, `<rect x="6" y="0" width="6" height="16" fill="%s" fill-opacity="0.55"/>`, faultColour)
		case "quiet":
			fmt.Fprintf(&b, `<rect x="0" y="0" width="18" height="16" fill="%s" stroke="#ccc"/>`, quietColour)
		case "violation":
			fmt.Fprintf(&b, `<line x1="9" y1="0" x2="9" y2="16" stroke="%s" stroke-width="1.5" stroke-dasharray="4 3"/>`, violColour)
		default:
			s := &svg{}
			s.marker(9, 8, it.kind, it.text)
			b.WriteString(s.b.String())
		}
		fmt.Fprintf(&b, `</svg> %s</span>`, esc(it.text))
	}
	return template.HTML(b.String())
}

// counterTop is the failure counter's scale: its largest value or the
// limit, whichever is higher — every step of the line stays on the axis.
func counterTop(l *lane) float64 {
	top := math.Max(float64(l.Limit), 1)
	for _, c := range l.Counter {
		top = math.Max(top, float64(c.Value))
	}
	return top
}

// zoomHalfMs is half the zoom's window: 60 ms across the plot's 1000 px,
// about 17 px per millisecond, so events a millisecond apart stand apart.
const zoomHalfMs = 30.0

// zoomTimeline draws task l in the window around atMs (its first
// violation): worker starts, every event — those in the same millisecond
// stacked in rows, in the order the board recorded them, each named — and
// the failure counter on its scale.
func zoomTimeline(l *lane, atMs float64, faults []faultMark, first violationView) template.HTML {
	ax := newZoomAxis(atMs-zoomHalfMs, atMs+zoomHalfMs)
	const (
		startTop, startBottom = 6.0, 26.0
		rowY, rowGap, rows    = 40.0, 15.0, 4
		ctrTop, ctrBottom     = 104.0, 136.0
		axisY                 = 142.0
	)
	s := newSVG("timeline zoom", l.ID, 162)
	s.add(`<rect class="zoombg" x="%.0f" y="0" width="%.0f" height="%.0f" fill="%s"/>`, plotLeft, plotWidth, axisY, zoomColour)
	var inWindow []faultMark
	for _, f := range faults {
		if ax.in(f.Ms) {
			inWindow = append(inWindow, f)
		}
	}
	s.bands(ax, math.Inf(1), math.Inf(1), inWindow, 0, axisY)
	s.label(19, "starts")
	s.label(rowY+4, "events")
	s.label(ctrTop+14, "failures")
	for i, st := range l.StartMarks {
		if !ax.in(st.Ms) {
			continue
		}
		x := ax.x(st.Ms)
		s.add(`<line class="start" x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="%s" stroke-width="2" shape-rendering="crispEdges"><title>worker start #%d at +%.2fms (pid %d, run %d)</title></line>`,
			x, startTop, x, startBottom, startColour, i+1, st.Ms, st.PID, st.Run)
	}
	// Each event goes in the first row whose last label it does not
	// overlap: two events in one millisecond sit one above the other.
	var rowEnd [rows]float64
	for r := range rowEnd {
		rowEnd[r] = math.Inf(-1)
	}
	for _, e := range l.EventMarks {
		if !ax.in(e.Ms) {
			continue
		}
		x := ax.x(e.Ms)
		row := 0
		for row < rows-1 && x < rowEnd[row] {
			row++
		}
		text := fmt.Sprintf("%s +%.1f", e.Kind, e.Ms)
		rowEnd[row] = x + 10 + 5.2*float64(len(text))
		y := rowY + float64(row)*rowGap
		s.marker(x, y, e.Kind, e.Title)
		s.add(`<text x="%.1f" y="%.1f" class="evlabel">%s</text>`, x+8, y+3.5, esc(text))
	}
	top := counterTop(l)
	y := func(v int) float64 { return ctrBottom - float64(v)/top*(ctrBottom-ctrTop) }
	s.yScale(top, ctrTop, ctrBottom, "")
	value := 0
	for _, st := range l.Counter {
		if st.Ms < ax.from {
			value = st.Value
		}
	}
	var d strings.Builder
	fmt.Fprintf(&d, "M%.1f %.1f", plotLeft, y(value))
	for _, st := range l.Counter {
		if ax.in(st.Ms) {
			fmt.Fprintf(&d, "H%.1fV%.1f", ax.x(st.Ms), y(st.Value))
		}
	}
	fmt.Fprintf(&d, "H%.1f", plotLeft+plotWidth)
	s.add(`<path class="counter" d="%s" fill="none" stroke="%s" stroke-width="2"/>`, d.String(), counterColour)
	s.violations(ax, []violationView{first}, 0, axisY)
	s.axisLine(ax, axisY)
	return s.html()
}

// tickMark is one dispatcher tick: when it began and how long it took.
type tickMark struct {
	Ms, DurationMs float64
	Dispatcher     string
}

// ratesTimeline draws the run's pace: worker starts per second in
// buckets (from the ledger), and every dispatcher tick's duration (from
// trace.jsonl) — a storm and the ticks that made it, on the run's axis.
func ratesTimeline(ax axis, starts []float64, ticks []tickMark, quietFrom, quietTo float64) template.HTML {
	const (
		rateTop, rateBottom = 8.0, 60.0
		durTop, durBottom   = 80.0, 132.0
		axisY               = 138.0
	)
	s := newSVG("timeline rates", "", 158)
	s.bands(ax, quietFrom, quietTo, nil, 0, axisY)
	s.label(rateTop+10, "starts/s")
	s.label(durTop+10, "tick ms")
	bucket := niceStep(ax.span, 60)
	counts := map[int]int{}
	for _, ms := range starts {
		counts[int(math.Floor(ms/bucket))]++
	}
	maxRate := 1.0
	for _, n := range counts {
		maxRate = math.Max(maxRate, float64(n)/(bucket/1000))
	}
	s.yScale(maxRate, rateTop, rateBottom, fmt.Sprintf("per %s", msLabel(bucket)))
	for b, n := range counts {
		rate := float64(n) / (bucket / 1000)
		x0, x1 := ax.x(float64(b)*bucket), ax.x(float64(b+1)*bucket)
		h := rate / maxRate * (rateBottom - rateTop)
		s.add(`<rect class="rate" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#7f9cc9"><title>%d start(s) in %s from +%s: %.0f/s</title></rect>`,
			x0, rateBottom-h, math.Max(x1-x0-1, 1), h, n, msLabel(bucket), msLabel(float64(b)*bucket), rate)
	}
	maxDur := 0.0
	for _, t := range ticks {
		maxDur = math.Max(maxDur, t.DurationMs)
	}
	if maxDur == 0 {
		s.add(`<text x="%.0f" y="%.0f" class="lane">no tick durations recorded (the dispatcher under test reports none, or the run predates them)</text>`, plotLeft+8, durTop+26)
	} else {
		s.yScale(maxDur, durTop, durBottom, "")
		for _, t := range ticks {
			y := durBottom - t.DurationMs/maxDur*(durBottom-durTop)
			s.add(`<circle class="tickdur" cx="%.1f" cy="%.1f" r="1.6" fill="#e67e00"><title>%s tick at +%.0fms took %.1fms</title></circle>`,
				ax.x(t.Ms), y, esc(t.Dispatcher), t.Ms, t.DurationMs)
		}
	}
	s.axisLine(ax, axisY)
	return s.html()
}

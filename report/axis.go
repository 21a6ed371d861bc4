package report

// The time axis of the timelines: ms after the run start to x, the ticks
// and their labels.

import (
	"fmt"
	"math"
)

// axis maps milliseconds since the run's start to x: the whole run, or
// (a zoom) the window from..from+span.
type axis struct{ from, span float64 }

func newAxis(maxMs float64) axis {
	return axis{span: math.Max(maxMs, 1)}
}

// newZoomAxis shows the window [from, to] across the whole plot width.
func newZoomAxis(from, to float64) axis {
	return axis{from: from, span: math.Max(to-from, 1)}
}

func (a axis) x(ms float64) float64 {
	ms = math.Min(math.Max(ms-a.from, 0), a.span)
	return plotLeft + ms/a.span*plotWidth
}

// in reports whether ms lies in the axis's window.
func (a axis) in(ms float64) bool { return ms >= a.from && ms <= a.from+a.span }

// ticks returns round tick positions (1, 2 or 5 × a power of ten apart),
// at most ten of them, inside the window.
func (a axis) ticks() []float64 {
	step := niceStep(a.span, 10)
	var out []float64
	for t := math.Ceil(a.from/step-1e-9) * step; t <= a.from+a.span+1e-9; t += step {
		out = append(out, t)
	}
	return out
}

// niceStep is the smallest of 1, 2 or 5 × a power of ten that divides span
// into at most n steps.
func niceStep(span float64, n int) float64 {
	base := math.Pow(10, math.Floor(math.Log10(span/float64(n))))
	for _, f := range []float64{1, 2, 5, 10} {
		if span/(f*base) <= float64(n) {
			return f * base
		}
	}
	return 10 * base
}

func msLabel(ms float64) string {
	ms = math.Round(ms*1000)/1000 + 0 // never "-0ms"
	if ms == 0 {
		return "0ms"
	}
	if ms >= 1000 && math.Mod(ms, 1000) == 0 {
		return fmt.Sprintf("%gs", ms/1000)
	}
	return fmt.Sprintf("%gms", ms)
}

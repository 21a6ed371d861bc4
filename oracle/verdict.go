package oracle

// The verdict: pass, fail or unknown, with every invariant held, violated
// (with its evidence) or not checked (with why).

import "slices"

// Status is a verdict's outcome.
type Status string

const (
	Pass    Status = "pass"
	Fail    Status = "fail"
	Unknown Status = "unknown"
)

// Violation is one broken invariant with its evidence.
type Violation struct {
	Invariant string         `json:"invariant"`
	Task      string         `json:"task,omitempty"`
	Message   string         `json:"message"`
	AtMs      float64        `json:"at_ms,omitempty"` // when it first became true, ms after the run start (0: not timed)
	Evidence  map[string]any `json:"evidence,omitempty"`
}

// Skip is an invariant the oracle did not check, and why: the subject
// cannot be observed doing what it is about ("the subject records no
// ticks"), or the run never gave it anything to hold ("no worker exited
// 75").
type Skip struct {
	Invariant string `json:"invariant"`
	Why       string `json:"why"`
}

// Verdict is the oracle's answer for one run.
//
// How to read it. Every invariant the oracle knows for the run is in
// exactly one of three states:
//   - violated: it has Violations, with evidence (and is in Checked);
//   - held: it is in Checked and has none (Held);
//   - not checked: it is in NotChecked, with why. Not checked is never
//     counted as held, and an invariant is never both in Checked and in
//     NotChecked.
//
// Status is Fail when anything is violated; else Unknown when the run could
// not be decided (Unknowns says why: a deadline, an unreadable board, a
// target state the run never reached — no worker ever started, no crash
// was classified, no breaker decision was made); else Pass. So a PASS means
// the dispatcher under test went through the danger and held, and it claims
// no more than Held: it always comes with what was not checked and why.
// Not-checked invariants alone never make a run unknown — whether they must
// be checked is for whoever reads the verdict (a CI gate) to decide.
type Verdict struct {
	Status     Status      `json:"status"`
	Violations []Violation `json:"violations,omitempty"`
	Unknowns   []string    `json:"unknowns,omitempty"` // why the run could not be decided
	Checked    []string    `json:"checked"`            // held or violated
	NotChecked []Skip      `json:"not_checked,omitempty"`
	// Subject is what the dispatcher under test could be observed doing
	// (Input.Subject), kept so that the verdict's not-checked list can be
	// understood, and rechecked alike, later.
	Subject Observability  `json:"subject"`
	Spawns  map[string]int `json:"spawns"` // worker starts per task, from the ledger
}

// AddUnknown records a reason the run is undecided (kept only if nothing failed).
func (v *Verdict) AddUnknown(reason string) {
	v.Unknowns = append(v.Unknowns, reason)
	v.settle()
}

// check records that invariants were decided (held, unless a violation
// says otherwise).
func (v *Verdict) check(invariants ...string) {
	for _, inv := range invariants {
		if !slices.Contains(v.Checked, inv) {
			v.Checked = append(v.Checked, inv)
		}
	}
}

// skip records that an invariant was not checked, and why (the first
// reason given wins). A violation found anyway still makes it violated.
func (v *Verdict) skip(invariant, why string) {
	if !slices.ContainsFunc(v.NotChecked, func(s Skip) bool { return s.Invariant == invariant }) {
		v.NotChecked = append(v.NotChecked, Skip{Invariant: invariant, Why: why})
	}
}

// undecided marks every one of invariants that is neither checked, not
// checked nor violated as not checked, for why (a check that stopped early).
func (v *Verdict) undecided(invariants []string, why string) {
	if why == "" {
		why = "the oracle did not get to it"
	}
	failed := v.Failed()
	for _, inv := range invariants {
		if !slices.Contains(v.Checked, inv) && !slices.Contains(failed, inv) {
			v.skip(inv, why)
		}
	}
}

// settle makes the three states exclusive — violated beats not checked,
// not checked beats held — and sets the status.
func (v *Verdict) settle() {
	failed := v.Failed()
	v.check(failed...)
	v.NotChecked = slices.DeleteFunc(v.NotChecked, func(s Skip) bool { return slices.Contains(failed, s.Invariant) })
	v.Checked = slices.DeleteFunc(v.Checked, func(inv string) bool {
		return slices.ContainsFunc(v.NotChecked, func(s Skip) bool { return s.Invariant == inv })
	})
	slices.SortStableFunc(v.Checked, func(a, b string) int { return rank(a) - rank(b) })
	slices.SortStableFunc(v.NotChecked, func(a, b Skip) int { return rank(a.Invariant) - rank(b.Invariant) })
	switch {
	case len(v.Violations) > 0:
		v.Status = Fail
	case len(v.Unknowns) > 0:
		v.Status = Unknown
	default:
		v.Status = Pass
	}
}

// Failed lists the distinct violated invariants in the order found.
func (v Verdict) Failed() []string {
	var out []string
	for _, x := range v.Violations {
		if !slices.Contains(out, x.Invariant) {
			out = append(out, x.Invariant)
		}
	}
	return out
}

// Held lists the invariants that were checked and held: Checked without the
// violated ones, in Checked's order.
func (v Verdict) Held() []string {
	failed := v.Failed()
	var out []string
	for _, inv := range v.Checked {
		if !slices.Contains(failed, inv) && !slices.Contains(out, inv) {
			out = append(out, inv)
		}
	}
	return out
}

// FirstViolationMs is the earliest timed violation, or -1.
func (v Verdict) FirstViolationMs() float64 {
	first := -1.0
	for _, x := range v.Violations {
		if x.AtMs > 0 && (first < 0 || x.AtMs < first) {
			first = x.AtMs
		}
	}
	return first
}

// Package report turns what runs left behind into something to read: the
// offline HTML report of a run's artifact directory (per-task timelines of
// worker starts, crashes, the failure counter, breaker trips and injected
// faults, with every violation and its evidence) or of an A/B comparison
// (the side-by-side table), and the machine formats for CI. It reads
// artifacts only; it never runs anything and never writes to a board.
package report

package oracle

// Decided returns the violations the ledger alone establishes for good: a
// task's worker started more often than its effective limit (spawns), a
// process saw a corruption error code (sqlite-errors). They are exactly
// what Check reports for those invariants on the same ledger, and no later
// ledger line can undo them — start counts only grow, an error seen stays
// seen — so a run may stop once one is found: Check, run on everything the
// run left, reports it the same way. Only in.Ledger, in.Schedule and
// in.RunStartMono are used; the board is never read (a plain read by a
// process whose dispatchers hold connections drops their locks, M1).
func Decided(in Input) []Violation {
	var v Verdict
	checkSpawns(&v, in, in.Ledger.Starts())
	checkSQLiteErrors(&v, in, observed{})
	return v.Violations
}

// Decidable lists the invariants Decided can establish while a run goes on.
func Decidable() []string { return []string{Spawns, SQLiteErrors} }

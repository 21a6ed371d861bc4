package oracle

// Damage lists the invariants about the board's data — its integrity, its
// acknowledged writes, the SQLite errors that report corruption, its
// identity and its sidecars — in the order a shrink prefers them: a run
// that corrupted the board and also overspent its spawn budget is shrunk
// for the corruption, the rarer and worse of the two.
func Damage() []string {
	return []string{Integrity, NoLostWrites, SQLiteErrors, NoSilentRecreation, Sidecars}
}

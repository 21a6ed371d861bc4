module github.com/kanbanchaos/kanbanchaos/engines/sqlite3504

go 1.26.0

require github.com/kanbanchaos/kanbanchaos v0.0.0

require (
	github.com/dustin/go-humanize v1.1.0 // indirect
	github.com/google/uuid v1.6.0 // indirect
	github.com/leanovate/gopter v0.2.11 // indirect
	github.com/mattn/go-isatty v0.0.24 // indirect
	github.com/ncruces/go-strftime v1.1.0 // indirect
	github.com/remyoudompheng/bigfft v0.0.0-20230129092748-24d4a6f8daec // indirect
	github.com/rogpeppe/go-internal v1.16.0 // indirect
	golang.org/x/exp v0.0.0-20250620022241-b7579e27df2b // indirect
	golang.org/x/sync v0.25.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
	golang.org/x/term v0.48.0 // indirect
	golang.org/x/tools v0.52.0 // indirect
	modernc.org/libc v1.80.1 // indirect
	modernc.org/mathutil v1.7.1 // indirect
	modernc.org/memory v1.12.1 // indirect
	modernc.org/sqlite v1.62.0 // indirect
)

replace github.com/kanbanchaos/kanbanchaos => ../..

// SQLite 3.50.4: WAL-mode lock-cancellation corruption only reproduces on
// SQLite < 3.51, and 3.50.4 is what Hermes' bundled Python ships.
replace modernc.org/sqlite => modernc.org/sqlite v1.39.1

// The libc modernc.org/sqlite v1.39.1 requires; the generated code is tied
// to it, so the newer libc the parent selects must not win.
replace modernc.org/libc => modernc.org/libc v1.66.10

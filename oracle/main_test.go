package oracle

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is still running when
// they end: the oracle opens SQLite connections, and a *sql.DB left open
// keeps its connection opener goroutine (and the connection) alive.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

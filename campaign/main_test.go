package campaign

import (
	"testing"

	"github.com/kanbanchaos/kanbanchaos/internal/runtest"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

func TestMain(m *testing.M) { runtest.Main(m, "campaign") }

func build(t testing.TB, scenario, variant string, seed uint64) schedule.Schedule {
	t.Helper()
	return runtest.Build(t, scenario, variant, seed)
}

package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// BenchmarkIssue30896 measures the reproducer against the machine's limit:
// seeds 1–10 of issue-30896 on hermes-0.15 (spawns/s reached, median time
// to the first violation), then a raw exec loop of the same worker binary in
// the same behaviour, as many loops as dispatchers, for as long as one run.
//
//	go test ./harness -run '^$' -bench Issue30896 -benchtime 1x
func BenchmarkIssue30896(b *testing.B) {
	for i := 0; i < b.N; i++ {
		var rates, firsts []float64
		var s schedule.Schedule
		for seed := uint64(1); seed <= 10; seed++ {
			// hermes-0.15 reproduces on every seed (hermes-0.14 mostly holds);
			// the whole schedule, for a spawn rate over it.
			s = build(b, "issue-30896", "hermes-0.15", seed)
			res, err := Run(context.Background(), s, Options{FullDuration: true})
			if err != nil {
				b.Fatal(err)
			}
			if res.Verdict.Status != oracle.Fail {
				b.Fatalf("seed %d did not reproduce: %s", seed, res.Verdict.Status)
			}
			os.RemoveAll(res.Artifacts)
			rates = append(rates, res.SpawnRate)
			firsts = append(firsts, res.Verdict.FirstViolationMs())
		}
		raw := rawExecLoop(b, s, time.Duration(s.DurationMs+s.QuietMs)*time.Millisecond)
		rate := median(rates)
		b.ReportMetric(rate, "spawns/s")
		b.ReportMetric(raw, "raw-spawns/s")
		b.ReportMetric(rate/raw, "ratio")
		b.ReportMetric(median(firsts), "first-violation-ms")
	}
}

// rawExecLoop starts the worker exactly as a dispatcher would (the hermes
// symlink, Hermes' argv, the run's env, a new session) in one loop per
// dispatcher, each waiting for its child, and returns starts per second.
func rawExecLoop(b *testing.B, s schedule.Schedule, d time.Duration) float64 {
	dir := b.TempDir()
	exe, _ := os.Executable()
	bin := filepath.Join(dir, fakeworker.InvokedAs)
	if err := os.Symlink(exe, bin); err != nil {
		b.Fatal(err)
	}
	cfg := filepath.Join(dir, "worker.json")
	fakeworker.WriteConfig(cfg, fakeworker.Config{Connect: kanban.DefaultOptions(),
		Profiles: map[string]schedule.Behaviour{s.Profiles[0].Name: s.Profiles[0].Worker}})
	env := append(os.Environ(), fakeworker.EnvLedger+"="+filepath.Join(dir, "ledger.jsonl"), fakeworker.EnvConfig+"="+cfg,
		"HERMES_KANBAN_TASK="+s.Tasks[0].ID, "HERMES_KANBAN_RUN_ID=1")
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(d)
	for range s.Dispatchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				cmd := exec.Command(bin, "-p", s.Profiles[0].Name, "--accept-hooks", "chat", "-q", "work kanban task "+s.Tasks[0].ID)
				cmd.Env = env
				cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
				cmd.Run() // exits 1 by design
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / d.Seconds()
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	if len(xs) == 0 {
		return 0
	}
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

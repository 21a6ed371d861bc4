// Package bench measures kanbanchaos against the machine's limits, as
// ratios within one run where it can (absolute times on a shared machine
// are noise): the harness's own overhead against a raw exec loop of the
// same worker, the fake worker's start against a minimal Go binary, the
// #30896 reproducer end to end, M1 corruption on SQLite 3.50, fuzz
// throughput, check on generated boards of 10 MB to 1 GB, and the test
// suite's wall time. It holds no test: a benchmark is never a timed test.
//
//	go test ./bench -run '^$' -bench . -benchtime 1x | tee bench.txt   # benchstat bench.txt
//
// BENCH_BOARD_SIZES (default "10,100,1024", in MB) picks the check boards;
// they are generated once into $KANBANCHAOS_CACHE/bench (default
// ~/.cache/kanbanchaos/bench) and reused.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/fakeworker"
	"github.com/kanbanchaos/kanbanchaos/harness"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/oracle"
	"github.com/kanbanchaos/kanbanchaos/scenarios"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// bins are the binaries every benchmark runs, built once (a warm build
// cache makes this quick): the kanbanchaos command — also the fake worker,
// as in every real run — and the minimal worker.
var bins struct {
	once             sync.Once
	dir, kc, minimal string
	err              error
}

func build(b *testing.B) (kc, minimal string) {
	b.Helper()
	bins.once.Do(func() {
		bins.dir, bins.err = os.MkdirTemp("", "kanbanchaos-bench-")
		if bins.err != nil {
			return
		}
		bins.kc, bins.minimal = filepath.Join(bins.dir, "kanbanchaos"), filepath.Join(bins.dir, "minworker")
		for out, pkg := range map[string]string{bins.kc: "../cmd/kanbanchaos", bins.minimal: "./minworker"} {
			if msg, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
				bins.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, msg)
				return
			}
		}
	})
	if bins.err != nil {
		b.Fatal(bins.err)
	}
	return bins.kc, bins.minimal
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// loadavg is the 1-minute load average, reported beside every figure.
func loadavg() float64 {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	x, _ := strconv.ParseFloat(f[0], 64)
	return x
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// stormSchedule is a spawn storm with no tick wait: many tasks whose
// workers exit 1 at once, a tick of 1 ms, no crash grace, no spawn cap and
// a failure limit no run reaches, so the dispatchers start workers as fast
// as they can book them.
func stormSchedule(d time.Duration) schedule.Schedule {
	sc, _ := scenarios.Lookup("issue-30896")
	s := sc.Build(1, "hermes-0.14")
	s.Scenario = "bench-spawn-storm"
	s.Dispatchers, s.DispatcherOffsetsMs = 2, nil
	s.TickMs = 1
	zero := 0
	s.CrashGraceMs = &zero
	s.DurationMs, s.QuietMs = int(d.Milliseconds()), 0
	s.FailureLimit, s.MaxSpawn = 1_000_000, 0
	s.Profiles = []schedule.Profile{{Name: "ghost", Worker: schedule.Behaviour{Mode: schedule.ModeExitNow, Exit: 1}}}
	s.Tasks = nil
	for i := range 32 {
		s.Tasks = append(s.Tasks, schedule.Task{ID: fmt.Sprintf("t_%08x", i), Title: "storm", Assignee: "ghost", MaxRetries: 1_000_000})
	}
	return s
}

// rawLoop starts bin as a dispatcher starts a worker — the hermes name,
// Hermes' argv, the run's environment, a session of its own — from loops
// goroutines, each waiting for its child, for d.
func rawLoop(b *testing.B, bin string, loops int, d time.Duration, cfg fakeworker.Config) rawStats {
	dir := b.TempDir()
	link := filepath.Join(dir, fakeworker.InvokedAs)
	if err := os.Symlink(bin, link); err != nil {
		b.Fatal(err)
	}
	conf := filepath.Join(dir, "worker.json")
	if err := fakeworker.WriteConfig(conf, cfg); err != nil {
		b.Fatal(err)
	}
	env := append(os.Environ(), fakeworker.EnvLedger+"="+filepath.Join(dir, "ledger.jsonl"), fakeworker.EnvConfig+"="+conf,
		"HERMES_KANBAN_TASK=t_00000000", "HERMES_KANBAN_RUN_ID=1", "HERMES_KANBAN_HOME="+dir, "HERMES_BIN="+link)
	var n, forkNs atomic.Int64
	var wg sync.WaitGroup
	self0, cpu0 := selfCPU(), childrenCPU()
	stop := time.Now().Add(d)
	start := time.Now()
	for range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				cmd := exec.Command(link, "-p", "ghost", "--accept-hooks", "chat", "-q", "work kanban task t_00000000")
				cmd.Env = env
				cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGKILL}
				began := time.Now()
				if cmd.Start() == nil {
					forkNs.Add(int64(time.Since(began)))
					cmd.Wait() // exits 1 by design
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	starts := float64(n.Load())
	return rawStats{rate: starts / time.Since(start).Seconds(), forkMs: float64(forkNs.Load()) / 1e6 / starts,
		selfCPUMs: (selfCPU() - self0).Seconds() * 1e3 / starts, workerCPUMs: (childrenCPU() - cpu0).Seconds() * 1e3 / starts}
}

// rawStats is what a raw loop measured: starts/s, the mean wait from fork
// to the child's exec (what starting a process waits for), and the CPU
// time (user+sys) per start of this process and of the workers.
type rawStats struct{ rate, forkMs, selfCPUMs, workerCPUMs float64 }

// selfCPU and childrenCPU are the user+sys time of this process and of its
// reaped children.
func selfCPU() time.Duration     { return cpuTime(syscall.RUSAGE_SELF) }
func childrenCPU() time.Duration { return cpuTime(syscall.RUSAGE_CHILDREN) }

func cpuTime(who int) time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(who, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkHarnessOverhead: worker starts per second through the real
// harness in a spawn storm, against a raw exec loop of the same worker
// binary with as many loops as the storm has tasks (the harness keeps up to
// one worker per task in flight, so that is the concurrency the machine is
// asked for). The ratio is the share of the machine's start rate at that
// concurrency that the harness reaches. What bounds it is split out, per
// start: the dispatchers' wall time in ticks (both summed), the part of it
// spent from fork to the child's exec (a dispatcher starts its workers one
// after the other, as Hermes does), the raw loop's same fork-to-exec wait,
// the CPU time of this process per start on both sides (the harness's
// counts its whole run: setup and audit too), and the workers' (the same
// binary doing the same thing: these must match).
func BenchmarkHarnessOverhead(b *testing.B) {
	kc, _ := build(b)
	const d = 3 * time.Second
	for range b.N {
		load := loadavg()
		s := stormSchedule(d)
		var mu sync.Mutex
		var tickMs, forkMs float64
		onTick := func(t dispatcher.Tick) {
			mu.Lock()
			defer mu.Unlock()
			tickMs += t.DurationMs
			forkMs += t.StartMs
		}
		self0, cpu0 := selfCPU(), childrenCPU()
		res, err := harness.Run(context.Background(), s, harness.Options{WorkerBin: kc, FullDuration: true, OnTick: onTick})
		if err != nil {
			b.Fatal(err)
		}
		starts := float64(res.Spawns)
		harnessCPU := (selfCPU() - self0).Seconds() * 1e3 / starts
		workerCPU := (childrenCPU() - cpu0).Seconds() * 1e3 / starts
		os.RemoveAll(res.Artifacts)
		rate := starts / res.Elapsed.Seconds()
		raw := rawLoop(b, kc, len(s.Tasks), d, fakeworker.Config{Connect: kanban.DefaultOptions(),
			Profiles: map[string]schedule.Behaviour{"ghost": s.Profiles[0].Worker}})
		b.ReportMetric(rate, "harness-starts/s")
		b.ReportMetric(raw.rate, "raw-starts/s")
		b.ReportMetric(rate/raw.rate, "overhead-ratio")
		mu.Lock()
		b.ReportMetric(tickMs/starts, "dispatcher-ms/start")
		b.ReportMetric(forkMs/starts, "fork-exec-ms/start")
		mu.Unlock()
		b.ReportMetric(raw.forkMs, "raw-fork-exec-ms/start")
		b.ReportMetric(harnessCPU, "harness-cpu-ms/start")
		b.ReportMetric(raw.selfCPUMs, "raw-loop-cpu-ms/start")
		b.ReportMetric(workerCPU, "worker-cpu-ms/start")
		b.ReportMetric(raw.workerCPUMs, "raw-worker-cpu-ms/start")
		b.ReportMetric(load, "loadavg")
	}
}

// BenchmarkWorkerStart: the fake worker's start to exit (its ledger line
// appended) against a minimal Go binary doing only that append, each
// started and waited for one at a time.
func BenchmarkWorkerStart(b *testing.B) {
	kc, minimal := build(b)
	const d = 3 * time.Second
	cfg := fakeworker.Config{Connect: kanban.DefaultOptions(),
		Profiles: map[string]schedule.Behaviour{"ghost": {Mode: schedule.ModeExitNow, Exit: 1}}}
	for range b.N {
		load := loadavg()
		fake := rawLoop(b, kc, 1, d, cfg).rate
		floor := rawLoop(b, minimal, 1, d, cfg).rate
		b.ReportMetric(1e3/fake, "fake-worker-ms")
		b.ReportMetric(1e3/floor, "minimal-ms")
		b.ReportMetric(fake/floor, "start-ratio")
		b.ReportMetric(load, "loadavg")
	}
}

// runResult is what `run --json` prints that the benchmarks read.
type runResult struct {
	FirstViolationMs float64 `json:"first_violation_ms"`
	Verdict          struct {
		Status     string             `json:"status"`
		Violations []oracle.Violation `json:"violations"`
	} `json:"verdict"`
}

// BenchmarkIssue30896Run: the whole `kanbanchaos run issue-30896` command,
// start to exit, and its first violation, median over seeds 1–10; on
// hermes-0.14 (the issue's release, which mostly holds here and so runs
// its whole schedule) and hermes-0.15 (the scenario's default, which
// reproduces it every time).
func BenchmarkIssue30896Run(b *testing.B) {
	kc, _ := build(b)
	for _, variant := range []string{"hermes-0.14", "hermes-0.15"} {
		b.Run(variant, func(b *testing.B) {
			for range b.N {
				load := loadavg()
				var walls, firsts []float64
				failed := 0
				for seed := 1; seed <= 10; seed++ {
					dir := b.TempDir()
					cmd := exec.Command(kc, "run", "issue-30896", "--variant", variant, "--seed", strconv.Itoa(seed), "--json", "--artifacts", dir)
					var out bytes.Buffer
					cmd.Stdout = &out
					start := time.Now()
					err := cmd.Run()
					walls = append(walls, time.Since(start).Seconds()*1e3)
					var r runResult
					if jerr := json.Unmarshal(out.Bytes(), &r); jerr != nil {
						b.Fatalf("seed %d: %v (%v)", seed, jerr, err)
					}
					if r.Verdict.Status == "fail" {
						failed++
						firsts = append(firsts, r.FirstViolationMs)
					}
				}
				b.ReportMetric(median(walls), "wall-ms")
				if len(firsts) > 0 {
					b.ReportMetric(median(firsts), "first-violation-ms")
				}
				b.ReportMetric(float64(failed), "seeds-failed/10")
				b.ReportMetric(load, "loadavg")
			}
		})
	}
}

// BenchmarkM1Corruption: M1 on SQLite 3.50 (m1-header-probe on its
// hermes-0.15 default): the median time to the first corruption violation
// (integrity, lost writes, corruption error codes) over seeds 1–5, and the
// median wall time of the run.
func BenchmarkM1Corruption(b *testing.B) {
	kc, _ := build(b)
	corrupt := []string{oracle.Integrity, oracle.NoLostWrites, oracle.SQLiteErrors}
	for range b.N {
		load := loadavg()
		var firsts, walls []float64
		for seed := 1; seed <= 5; seed++ {
			cmd := exec.Command(kc, "run", "m1-header-probe", "--sqlite", "3.50", "--seed", strconv.Itoa(seed), "--json", "--artifacts", b.TempDir())
			var out bytes.Buffer
			cmd.Stdout = &out
			start := time.Now()
			cmd.Run()
			walls = append(walls, time.Since(start).Seconds()*1e3)
			var r runResult
			if err := json.Unmarshal(out.Bytes(), &r); err != nil {
				b.Fatalf("seed %d: %v", seed, err)
			}
			first := -1.0
			for _, v := range r.Verdict.Violations {
				if slices.Contains(corrupt, v.Invariant) && v.AtMs > 0 && (first < 0 || v.AtMs < first) {
					first = v.AtMs
				}
			}
			if first >= 0 {
				firsts = append(firsts, first)
			}
		}
		if len(firsts) > 0 {
			b.ReportMetric(median(firsts), "first-corruption-ms")
		}
		b.ReportMetric(float64(len(firsts)), "seeds-corrupted/5")
		b.ReportMetric(median(walls), "wall-ms")
		b.ReportMetric(load, "loadavg")
	}
}

// BenchmarkFuzzThroughput: runs per minute of `kanbanchaos fuzz` on fixed,
// for #30896 alone (the issue's target), the breaker scenarios and the
// corruption scenarios, with the default --parallel.
func BenchmarkFuzzThroughput(b *testing.B) {
	kc, _ := build(b)
	for _, c := range []struct {
		name      string
		scenarios []string
		runs      int
	}{
		{"issue-30896", []string{"issue-30896"}, 30},
		{"breaker", []string{"issue-30896", "issue-30417", "issue-35202", "issue-28712", "exit-75-cooldown"}, 4},
		{"corruption", []string{"m1-header-probe", "m1-post-commit-probe", "m2-eio-downgrade", "m3-wal-pragma-control", "r5-crash-loop"}, 3},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				load := loadavg()
				runs := 0
				start := time.Now()
				for _, sc := range c.scenarios {
					cmd := exec.Command(kc, "fuzz", "--variant", "fixed", "--scenario", sc, "--runs", strconv.Itoa(c.runs),
						"--seed", "1", "--keep-going", "--shrink-time", "0", "--json", "--artifacts", b.TempDir())
					var out bytes.Buffer
					cmd.Stdout = &out
					cmd.Run() // a failing run is a result, not a benchmark error
					lines := bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n"))
					var sum struct {
						Type string `json:"type"`
						Done int    `json:"done"`
					}
					if err := json.Unmarshal(lines[len(lines)-1], &sum); err != nil || sum.Type != "summary" {
						b.Fatalf("%s: no summary line: %v\n%s", sc, err, out.Bytes())
					}
					runs += sum.Done
				}
				b.ReportMetric(float64(runs)/time.Since(start).Minutes(), "runs/min")
				b.ReportMetric(load, "loadavg")
			}
		})
	}
}

// BenchmarkCheck: `kanbanchaos check` on generated Hermes boards (board.go)
// of growing size: wall time and the peak RSS of the process.
func BenchmarkCheck(b *testing.B) {
	kc, _ := build(b)
	sizes := []int{10, 100, 1024}
	if env := os.Getenv("BENCH_BOARD_SIZES"); env != "" {
		sizes = nil
		for _, f := range strings.Split(env, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("BENCH_BOARD_SIZES: %q is not a size in MB", f)
			}
			sizes = append(sizes, n)
		}
	}
	for _, mb := range sizes {
		b.Run(fmt.Sprintf("%dMB", mb), func(b *testing.B) {
			path, err := cachedBoard(mb)
			if err != nil {
				b.Fatal(err)
			}
			st, _ := os.Stat(path)
			for range b.N {
				load := loadavg()
				cmd := exec.Command(kc, "check", path, "--json")
				start := time.Now()
				out, err := cmd.Output()
				wall := time.Since(start)
				if cmd.ProcessState == nil {
					b.Fatalf("check did not run: %v", err)
				}
				if code := cmd.ProcessState.ExitCode(); code > 1 {
					b.Fatalf("check exited %d: %s", code, out)
				}
				ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
				b.ReportMetric(wall.Seconds(), "wall-s")
				b.ReportMetric(float64(ru.Maxrss)/1024, "peak-rss-MB")
				b.ReportMetric(float64(st.Size())/(1<<20), "board-MB")
				b.ReportMetric(float64(st.Size())/(1<<20)/wall.Seconds(), "MB/s")
				b.ReportMetric(load, "loadavg")
			}
		})
	}
}

// BenchmarkTestSuite: the wall time of `go test -count=1 ./...` (the
// README's test command, uncached).
func BenchmarkTestSuite(b *testing.B) {
	for range b.N {
		load := loadavg()
		cmd := exec.Command("go", "test", "-count=1", "./...")
		cmd.Dir = ".."
		start := time.Now()
		out, err := cmd.CombinedOutput()
		wall := time.Since(start)
		if err != nil {
			b.Logf("go test ./... failed (%v); its time still counts:\n%s", err, tail(out, 3000))
		}
		b.ReportMetric(wall.Seconds(), "wall-s")
		b.ReportMetric(load, "loadavg")
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

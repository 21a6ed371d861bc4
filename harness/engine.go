package harness

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// A schedule names the SQLite its dispatchers and workers run on, but one Go
// module links exactly one modernc.org/sqlite. An engine other than this
// binary's is therefore a separate binary — the same CLI built from a nested
// module that pins the other SQLite — and a run on it is delegated to that
// binary as a whole: dispatchers and fake workers must share one engine.

// engineModules maps an engine that is not the main module's to its nested
// module, relative to the repository root.
var engineModules = map[string]string{
	"3.50": filepath.Join("engines", "sqlite3504"),
}

// engineBuilds is the process-wide build-once cache: the binary path of each
// engine already checked or built by this process, so a process hashes
// the sources and runs `go build` for an engine at most once however many runs ask for it. lock (a
// one-slot semaphore, so a waiting caller can still give up on its context)
// serialises the checks and builds. It is the package's only global mutable
// state; an entry is dropped only when its binary was removed.
var engineBuilds = struct {
	lock  chan struct{}
	built map[string]string
}{lock: make(chan struct{}, 1), built: map[string]string{}}

// EngineBinary returns a kanbanchaos binary that links the SQLite of engine
// ("3.54", "3.50"; see schedule.Engines). For this binary's own engine that
// is os.Executable(). Another engine is its installed command
// (EngineCommands) next to this executable or on PATH, when it was built
// from the same code (installedEngine); else it is built from its nested
// module in the repository checkout this package was compiled from (or the
// one around the working directory) into the cache (hermes.CacheRoot),
// keyed by the hash of the sources. When neither works the error is an
// *EngineUnavailableError, which says the command that fixes it. Progress
// ("building …") goes to log, which may be nil.
func EngineBinary(ctx context.Context, engine string, log io.Writer) (string, error) {
	version, ok := schedule.Engines[engine]
	if !ok {
		return "", fmt.Errorf("harness: engine %q is not one of %s", engine, engineNames())
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("harness: find own executable: %w", err)
	}
	own := kanban.SQLiteVersion()
	if version == own {
		return exe, nil
	}
	select {
	case engineBuilds.lock <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("harness: waiting for the SQLite %s engine build: %w", version, ctx.Err())
	}
	defer func() { <-engineBuilds.lock }()
	if bin, ok := engineBuilds.built[engine]; ok {
		if stillThere(bin) {
			return bin, nil
		}
		// Removed since this process found it: another checkout's new build
		// pruned it (pruneEngines), or the cache was cleaned. Every later run
		// of a long campaign would fail on it; find or build it again.
		delete(engineBuilds.built, engine)
	}
	bin, mismatch := installedEngine(ctx, engine, version)
	if bin == "" {
		var err error
		if bin, err = buildEngine(ctx, engine, version, log); err != nil {
			return "", unavailable(engine, version, mismatch, err)
		}
	}
	// The built binary must not be this one: a mis-pinned engine module would
	// make every run delegate to itself, forever.
	if same(bin, exe) {
		return "", fmt.Errorf("harness: engine %s should link SQLite %s, but %s links %s: check the replace directives in %s/go.mod",
			engine, version, exe, own, engineModules[engine])
	}
	engineBuilds.built[engine] = bin
	return bin, nil
}

func same(a, b string) bool {
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

func engineNames() string {
	var names []string
	for _, e := range []string{"3.54", "3.50"} {
		if _, ok := schedule.Engines[e]; ok {
			names = append(names, e)
		}
	}
	return strings.Join(names, ", ")
}

// buildEngine returns the cached binary of engine built from exactly the
// sources of this checkout, running `go build` if there is none. The cache
// is keyed by a hash of the sources' paths and contents, not by dates or by
// checkout: two checkouts with the same sources share one binary, two with
// different sources each get their own, and a binary once in place is never
// replaced, so no run can launch a binary another checkout is rebuilding.
// go build is incremental, so a build after a small edit recompiles only
// what changed.
func buildEngine(ctx context.Context, engine, version string, log io.Writer) (string, error) {
	rel, ok := engineModules[engine]
	if !ok {
		return "", fmt.Errorf("harness: engine %s (SQLite %s) is the main module's: run it with the kanbanchaos binary built from ./cmd/kanbanchaos", engine, version)
	}
	root, err := repoRoot(rel)
	if err != nil {
		return "", err
	}
	cache, err := hermes.CacheRoot()
	if err != nil {
		return "", fmt.Errorf("harness: no cache directory for the SQLite %s engine: %w", version, err)
	}
	sum, err := sourceHash(root)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "engines", "sqlite-"+version, sum)
	bin := filepath.Join(dir, "kanbanchaos")
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		// Dated on every use, so pruning keeps the builds in use.
		now := time.Now()
		os.Chtimes(dir, now, now)
		return bin, nil
	}
	if log != nil {
		fmt.Fprintf(log, "building the SQLite %s engine for these sources (once per source change)…\n", version)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("harness: building the SQLite %s engine needs the go command on PATH: %w", version, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("harness: engine cache: %w", err)
	}
	// Build into a directory of our own next to the binary, then rename: a
	// concurrent process sees no binary or the whole one, never half of one.
	// Two processes building the same sources at once both produce the same
	// program; the second rename replaces it with an equal one.
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", fmt.Errorf("harness: engine cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "kanbanchaos")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", out, "./cmd/"+EngineCommands[engine])
	cmd.Dir = filepath.Join(root, rel)
	// The nested module is complete on its own; a go.work around the
	// checkout must not pull it into another build list.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	output, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("harness: go build of the SQLite %s engine in %s: %w\n%s", version, cmd.Dir, err, tail(output, 4000))
	}
	if err := os.WriteFile(filepath.Join(dir, "source"), []byte(root+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("harness: engine cache: %w", err)
	}
	if err := os.Rename(out, bin); err != nil {
		return "", fmt.Errorf("harness: engine cache: %w", err)
	}
	pruneEngines(filepath.Dir(dir), sum, engineIdle, engineKeep)
	return bin, nil
}

// stillThere reports whether an engine binary found before is still in
// place and, when it is a cached build, dates its directory as used: a
// campaign asks for its engine on every run, so its build stays among the
// most recently used that another checkout's pruning keeps (the soak of
// issue 12 lost its 3.50 build to it after 14 minutes: every later run on
// that engine was a harness error).
func stillThere(bin string) bool {
	fi, err := os.Stat(bin)
	if err != nil || !fi.Mode().IsRegular() {
		return false
	}
	dir := filepath.Dir(bin)
	if strings.HasPrefix(filepath.Base(filepath.Dir(dir)), "sqlite-") {
		now := time.Now()
		os.Chtimes(dir, now, now)
	}
	return true
}

// engineIdle is how long a cached engine build may go unused before a new
// build removes it, and engineKeep how many other builds a new one leaves
// (the most recently used): every source change makes a new build
// (~30 MB; five worktrees made 548 MB in a morning), and a checkout whose
// build was removed only builds it again.
const (
	engineIdle = 7 * 24 * time.Hour
	engineKeep = 4
)

// pruneEngines removes the builds in root, other than keep, that no run
// has used for idle or that are not among the most recently used others
// (a build's directory is dated on every use). Errors are ignored: a build
// left in place costs only disk.
func pruneEngines(root, keep string, idle time.Duration, others int) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	type build struct {
		name string
		used time.Time
	}
	var builds []build
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && e.IsDir() && e.Name() != keep {
			builds = append(builds, build{e.Name(), fi.ModTime()})
		}
	}
	slices.SortFunc(builds, func(a, b build) int { return b.used.Compare(a.used) })
	for i, b := range builds {
		if i >= others || time.Since(b.used) > idle {
			os.RemoveAll(filepath.Join(root, b.name))
		}
	}
}

// repoRoot finds the checkout that holds the nested module rel: first the
// one this file was compiled from, then any directory above the working
// directory.
func repoRoot(rel string) (string, error) {
	has := func(root string) bool {
		_, err := os.Stat(filepath.Join(root, rel, "go.mod"))
		return err == nil
	}
	// Absolute unless built with -trimpath.
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		if root := filepath.Dir(filepath.Dir(file)); has(root) {
			return root, nil
		}
	}
	if wd, err := os.Getwd(); err == nil {
		for dir := wd; ; dir = filepath.Dir(dir) {
			if has(dir) {
				return dir, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	return "", fmt.Errorf("harness: cannot find %s/go.mod, the module that builds the SQLite engine: "+
		"this binary was not built from a kanbanchaos checkout that is still there, and the working directory is not inside one; "+
		"run kanbanchaos from inside a checkout (git clone, then cd into it)", filepath.ToSlash(rel))
}

// sourceHash identifies the sources an engine build reads: the relative
// path and contents of every non-test .go file, go.mod and go.sum under
// root (hidden directories, _-prefixed ones and testdata skipped), as the
// first 16 hex digits of their SHA-256.
func sourceHash(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !(name == "go.mod" || name == "go.sum" || strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) {
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("harness: hash the sources in %s: %w", root, err)
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// CheckEngineKnobs rejects knobs an engine cannot honour: modernc v1.39.1
// (SQLite 3.50.4) has no OFD locking at all, so ofd_locking=true there would
// silently run with POSIX locks.
func CheckEngineKnobs(engine string, k dispatcher.Knobs) error {
	if k.Connect.OFDLocking && engine == "3.50" {
		return fmt.Errorf("knob ofd_locking=true needs the 3.54 engine: modernc.org/sqlite v1.39.1 (SQLite 3.50.4) has no OFD locking")
	}
	return nil
}

// Package hermes makes a real Hermes Agent release a dispatcher under test.
// It installs releases of the PyPI package `hermes-agent` the ordinary way
// (pip, into one cached virtualenv per version), finds a source checkout
// for `hermes:PATH`, converts a run's timing into the whole-second settings
// Hermes can take, writes the config.yaml the gateway would read, and holds
// the small Python driver (driver.py) that runs the release's own dispatch
// loop and records what it did into the run's ledger. No Hermes code lives
// here: it is installed, like any dependency. It never decides a verdict.
package hermes

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Package is the name Hermes Agent is published under on PyPI.
const Package = "hermes-agent"

// Releases the project measures against: the #30896 release, the first
// with PR #30973's settings (synchronous=FULL, wal_autocheckpoint=100,
// landed through #33482), and the newest PyPI served when last checked.
const (
	Release30896 = "0.14.0"
	ReleaseFULL  = "0.15.0"
	Newest       = "0.19.0"
)

// Defaults are the releases `kanbanchaos hermes install` installs when
// none is named, and the ones the tests drive.
var Defaults = []string{Release30896, ReleaseFULL, Newest}

// EnvCache overrides where releases are installed (default: the user cache
// dir, ~/.cache/kanbanchaos).
const EnvCache = "KANBANCHAOS_CACHE"

// EnvPython names the Python that creates the virtualenvs, or runs a
// source checkout (default: python3 on PATH; a checkout's own .venv first).
const EnvPython = "KANBANCHAOS_HERMES_PYTHON"

var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+(\.[0-9]+)?([abrc.]+[0-9]+|\.post[0-9]+|\.dev[0-9]+)*$`)

// Install is a release ready to run: the interpreter that imports it.
type Install struct {
	Spec       string `json:"spec"`                 // what the user named: a version or a path
	Version    string `json:"version"`              // the release's version ("source" for a checkout)
	Python     string `json:"python"`               // the interpreter to run the driver with
	PythonPath string `json:"pythonpath,omitempty"` // a checkout's root, put on PYTHONPATH
	// LibDir, when set, holds the libsqlite3.so.0 the Python side loads
	// instead of the system's (first on LD_LIBRARY_PATH; see WithSQLite).
	LibDir string `json:"lib_dir,omitempty"`
}

// IsVersion reports whether spec names a release (else it is a path).
func IsVersion(spec string) bool { return versionRE.MatchString(spec) }

// ParseSpec checks what follows "hermes:": a release version (0.14.0) or
// the path of a Hermes source checkout.
func ParseSpec(spec string) error {
	switch {
	case spec == "":
		return errors.New("hermes: want hermes:VERSION (an installed release, e.g. hermes:" + Release30896 + ") or hermes:PATH (a source checkout)")
	case IsVersion(spec):
		return nil
	case strings.ContainsRune(spec, '/') || strings.HasPrefix(spec, "."):
		return checkCheckout(spec)
	}
	return fmt.Errorf("hermes:%s is neither a release version (e.g. %s) nor a path to a checkout (start it with ./ or /)", spec, Release30896)
}

func checkCheckout(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "hermes_cli", "kanban_db.py")); err != nil {
		return fmt.Errorf("hermes:%s is not a Hermes Agent checkout: no hermes_cli/kanban_db.py in it", dir)
	}
	return nil
}

// CacheRoot is where releases are installed: $KANBANCHAOS_CACHE, else
// <user cache dir>/kanbanchaos.
func CacheRoot() (string, error) {
	if dir := os.Getenv(EnvCache); dir != "" {
		return filepath.Abs(dir)
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("hermes: no cache directory (set %s): %w", EnvCache, err)
	}
	return filepath.Join(dir, "kanbanchaos"), nil
}

func releaseDir(version string) (string, error) {
	root, err := CacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "hermes", version), nil
}

// marker is written last by Install: a release directory without it is an
// interrupted install and is redone.
type marker struct {
	Version     string    `json:"version"`
	Python      string    `json:"python"`
	SQLite      string    `json:"sqlite"`
	InstalledAt time.Time `json:"installed_at"`
}

const markerName = "installed.json"

// ErrNotInstalled is wrapped by Locate for a release not in the cache.
var ErrNotInstalled = errors.New("not installed")

// Locate finds an installed release or a checkout, without installing.
func Locate(spec string) (Install, error) {
	if err := ParseSpec(spec); err != nil {
		return Install{}, err
	}
	if !IsVersion(spec) {
		abs, err := filepath.Abs(spec)
		if err != nil {
			return Install{}, fmt.Errorf("hermes:%s: %w", spec, err)
		}
		return Install{Spec: spec, Version: "source", Python: checkoutPython(abs), PythonPath: abs}, nil
	}
	dir, err := releaseDir(spec)
	if err != nil {
		return Install{}, err
	}
	var m marker
	data, err := os.ReadFile(filepath.Join(dir, markerName))
	if err == nil {
		err = json.Unmarshal(data, &m)
	}
	if err != nil {
		return Install{}, fmt.Errorf("hermes-agent %s is %w in %s: run `kanbanchaos hermes install %s` (needs PyPI once)", spec, ErrNotInstalled, dir, spec)
	}
	return Install{Spec: spec, Version: m.Version, Python: filepath.Join(dir, "venv", "bin", "python")}, nil
}

func checkoutPython(dir string) string {
	if p := os.Getenv(EnvPython); p != "" {
		return p
	}
	for _, venv := range []string{".venv", "venv"} {
		p := filepath.Join(dir, venv, "bin", "python")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "python3"
}

// Install installs release version from PyPI into its cached virtualenv,
// unless it is there already: idempotent, and offline once cached.
// Concurrent installs (two test binaries) wait for each other.
func InstallRelease(ctx context.Context, version string, log io.Writer) (Install, error) {
	if !IsVersion(version) {
		return Install{}, fmt.Errorf("hermes install: %q is not a release version (e.g. %s)", version, Release30896)
	}
	if in, err := Locate(version); err == nil {
		return in, nil
	}
	dir, err := releaseDir(version)
	if err != nil {
		return Install{}, err
	}
	unlock, err := lockInstalls(filepath.Dir(dir))
	if err != nil {
		return Install{}, err
	}
	defer unlock()
	if in, err := Locate(version); err == nil {
		return in, nil // another process installed it while we waited
	}
	if err := os.RemoveAll(dir); err != nil {
		return Install{}, fmt.Errorf("hermes install %s: clear %s: %w", version, dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Install{}, fmt.Errorf("hermes install %s: %w", version, err)
	}
	fmt.Fprintf(log, "installing %s==%s into %s (pip; needs PyPI) …\n", Package, version, dir)
	started := time.Now()
	python := os.Getenv(EnvPython)
	if python == "" {
		python = "python3"
	}
	venv := filepath.Join(dir, "venv")
	if out, err := run(ctx, python, "-m", "venv", venv); err != nil {
		return Install{}, fmt.Errorf("hermes install %s: %s -m venv: %v\n%s", version, python, err, tail(out))
	}
	vpy := filepath.Join(venv, "bin", "python")
	if out, err := run(ctx, vpy, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q", Package+"=="+version); err != nil {
		return Install{}, fmt.Errorf("hermes install %s: pip could not install %s==%s: %v\n%s", version, Package, version, err, tail(out))
	}
	sqlite, err := probe(ctx, Install{Python: vpy})
	if err != nil {
		return Install{}, fmt.Errorf("hermes install %s: installed, but %w", version, err)
	}
	m, _ := json.MarshalIndent(marker{Version: version, Python: vpy, SQLite: sqlite, InstalledAt: time.Now().UTC()}, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, markerName), append(m, '\n'), 0o644); err != nil {
		return Install{}, fmt.Errorf("hermes install %s: %w", version, err)
	}
	fmt.Fprintf(log, "installed %s==%s in %s (Python's SQLite %s)\n", Package, version, time.Since(started).Round(time.Second), sqlite)
	return Locate(version)
}

// Probe imports the dispatcher module the driver needs and returns the
// SQLite version the release's Python links.
func Probe(ctx context.Context, in Install) (string, error) { return probe(ctx, in) }

func probe(ctx context.Context, in Install) (string, error) {
	home, err := os.MkdirTemp("", "kanbanchaos-hermes-probe-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(home)
	cmd := exec.CommandContext(ctx, in.Python, "-c", "import sqlite3, hermes_cli.kanban_db; print(sqlite3.sqlite_version)")
	cmd.Env = in.Env(append(os.Environ(), "HERMES_HOME="+home, "HERMES_KANBAN_HOME="+home))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s cannot import hermes_cli.kanban_db: %v\n%s", in.Python, err, tail(out))
	}
	return strings.TrimSpace(string(out)), nil
}

// Env adds what the interpreter needs to import the release to env: a
// checkout goes on PYTHONPATH, another libsqlite3 on LD_LIBRARY_PATH;
// nothing else of the caller's Python or library setup may leak in.
func (in Install) Env(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if strings.HasPrefix(kv, "PYTHONPATH=") || strings.HasPrefix(kv, "PYTHONHOME=") || strings.HasPrefix(kv, "VIRTUAL_ENV=") ||
			strings.HasPrefix(kv, "LD_LIBRARY_PATH=") {
			continue
		}
		out = append(out, kv)
	}
	if in.PythonPath != "" {
		out = append(out, "PYTHONPATH="+in.PythonPath)
	}
	if in.LibDir != "" {
		out = append(out, "LD_LIBRARY_PATH="+in.LibDir)
	}
	return out
}

func run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	return buf.Bytes(), err
}

// tail keeps the last lines of a tool's output for an error message.
func tail(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.Join(lines[max(0, len(lines)-8):], "\n")
}

// lockInstalls takes an exclusive flock on the cache's install lock.
func lockInstalls(dir string) (func(), error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("hermes install: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("hermes install: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("hermes install: lock %s: %w", f.Name(), err)
	}
	return func() { f.Close() }, nil
}

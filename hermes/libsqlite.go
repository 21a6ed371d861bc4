package hermes

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// PythonSQLiteSystem is the libsqlite3 the machine's Python links (Debian
// 12: 3.40.1): the default.
const PythonSQLiteSystem = "system"

// Another SQLite for the Python side, as Hermes users on newer
// distributions have it. Python's _sqlite3 links libsqlite3.so.0
// dynamically, so a run puts a directory holding another libsqlite3.so.0
// first on LD_LIBRARY_PATH of the driver (the workers inherit it) — the
// release, its Python and _sqlite3 stay as they are; only the library
// changes, and the driver reports sqlite3.sqlite_version, which the run
// verifies.
//
// The library is Debian's own: the sqlite3 source package of the version
// asked for (from the suites of the machine's Debian mirror, fetched with
// apt-get source into a private apt state in the cache, the system's apt
// setup untouched), built with the SQLITE_* options of that package's
// debian/rules. It is rebuilt rather than unpacked from Debian's binary
// .deb because those link glibc ≥ 2.38 and Debian 12 has 2.36.

// sqliteSuites are searched for sqlite3 source versions, newest first.
var sqliteSuites = []string{"sid", "forky", "trixie", "bookworm"}

var sqliteVersionRE = regexp.MustCompile(`^3\.[0-9]+\.[0-9]+$`)

// ParsePythonSQLite checks a --python-sqlite value: "system" or "" (the
// machine's), or a SQLite version such as 3.53.4.
func ParsePythonSQLite(v string) error {
	if v == "" || v == PythonSQLiteSystem || sqliteVersionRE.MatchString(v) {
		return nil
	}
	return fmt.Errorf("--python-sqlite %q: want %s or a SQLite version such as 3.53.4 (installed by `kanbanchaos hermes install-sqlite VERSION`)",
		v, PythonSQLiteSystem)
}

func sqliteDir(version string) (string, error) {
	root, err := CacheRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "sqlite", version), nil
}

// LocateSQLite returns the directory holding the libsqlite3.so.0 of
// version, built by InstallSQLite.
func LocateSQLite(version string) (string, error) {
	dir, err := sqliteDir(version)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, markerName)); err != nil {
		return "", fmt.Errorf("libsqlite3 %s is %w in %s: run `kanbanchaos hermes install-sqlite %s` (needs Debian's package mirror once)",
			version, ErrNotInstalled, dir, version)
	}
	return filepath.Join(dir, "lib"), nil
}

// WithSQLite returns in running on the libsqlite3 of version ("" or
// "system": the machine's, in unchanged).
func (in Install) WithSQLite(version string) (Install, error) {
	if version == "" || version == PythonSQLiteSystem {
		return in, nil
	}
	dir, err := LocateSQLite(version)
	if err != nil {
		return in, err
	}
	in.LibDir = dir
	return in, nil
}

// InstallSQLite fetches Debian's sqlite3 source package of version and
// builds its libsqlite3.so.0 into the cache; idempotent. python, if set,
// is asked to load it and must report version.
func InstallSQLite(ctx context.Context, version, python string, log io.Writer) (string, error) {
	if !sqliteVersionRE.MatchString(version) {
		return "", fmt.Errorf("install-sqlite: %q is not a SQLite version such as 3.53.4", version)
	}
	if dir, err := LocateSQLite(version); err == nil {
		return dir, nil
	}
	dir, err := sqliteDir(version)
	if err != nil {
		return "", err
	}
	unlock, err := lockInstalls(filepath.Dir(dir))
	if err != nil {
		return "", err
	}
	defer unlock()
	if lib, err := LocateSQLite(version); err == nil {
		return lib, nil
	}
	started := time.Now()
	os.RemoveAll(dir)
	build := filepath.Join(dir, "build")
	if err := os.MkdirAll(build, 0o755); err != nil {
		return "", fmt.Errorf("install-sqlite: %w", err)
	}
	apt, err := privateApt(ctx, filepath.Join(filepath.Dir(dir), "apt"), log)
	if err != nil {
		return "", err
	}
	debVersion, err := apt.sourceVersion(ctx, version)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(log, "fetching Debian's sqlite3 %s source package …\n", debVersion)
	if out, err := apt.run(ctx, build, "apt-get", "source", "--download-only", "sqlite3="+debVersion); err != nil {
		return "", fmt.Errorf("install-sqlite: apt-get source sqlite3=%s: %v\n%s", debVersion, err, tail(out))
	}
	lib := filepath.Join(dir, "lib")
	if err := buildLibSQLite(ctx, build, lib, log); err != nil {
		return "", err
	}
	if python != "" {
		got, err := probe(ctx, Install{Python: python, LibDir: lib})
		if err != nil || got != version {
			return "", fmt.Errorf("install-sqlite: %s with the built library reports SQLite %q (want %s): %v", python, got, version, err)
		}
	}
	m, _ := json.MarshalIndent(map[string]string{"version": version, "debian_source": "sqlite3 " + debVersion,
		"installed_at": time.Now().UTC().Format(time.RFC3339)}, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, markerName), append(m, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("install-sqlite: %w", err)
	}
	os.RemoveAll(build)
	fmt.Fprintf(log, "built libsqlite3 %s (Debian sqlite3 %s) in %s: %s\n", version, debVersion, time.Since(started).Round(time.Second), lib)
	return lib, nil
}

// aptState is apt-get with lists, caches and sources of its own: the
// system's apt configuration and state are read, never changed.
type aptState struct{ dir string }

func (a aptState) opts() []string {
	return []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(a.dir, "sources.list"),
		"-o", "Dir::Etc::SourceParts=" + filepath.Join(a.dir, "sources.list.d"),
		"-o", "Dir::State::Lists=" + filepath.Join(a.dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(a.dir, "cache"),
	}
}

func (a aptState) run(ctx context.Context, cwd, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, tool, append(a.opts(), args...)...)
	cmd.Dir = cwd
	return cmd.CombinedOutput()
}

// privateApt sets up source-package lists for sqliteSuites from the
// machine's own Debian mirror and refreshes them.
func privateApt(ctx context.Context, dir string, log io.Writer) (aptState, error) {
	a := aptState{dir: dir}
	for _, d := range []string{"sources.list.d", "lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return a, fmt.Errorf("install-sqlite: %w", err)
		}
	}
	mirror, err := debianMirror()
	if err != nil {
		return a, err
	}
	var b strings.Builder
	for _, suite := range sqliteSuites {
		fmt.Fprintf(&b, "deb-src %s %s main\n", mirror, suite)
	}
	if err := os.WriteFile(filepath.Join(dir, "sources.list"), []byte(b.String()), 0o644); err != nil {
		return a, fmt.Errorf("install-sqlite: %w", err)
	}
	fmt.Fprintf(log, "apt-get update (source lists of %s, private to %s) …\n", strings.Join(sqliteSuites, ", "), dir)
	if out, err := a.run(ctx, dir, "apt-get", "update"); err != nil {
		return a, fmt.Errorf("install-sqlite: apt-get update: %v\n%s", err, tail(out))
	}
	return a, nil
}

// debianMirror is the first Debian archive URI the machine's apt sources
// name (deb822 .sources or one-line .list files), security archives aside.
func debianMirror() (string, error) {
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	lists, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	files = append(append(files, "/etc/apt/sources.list"), lists...)
	for _, f := range files {
		for _, uri := range sourceURIs(f) {
			if strings.HasSuffix(strings.TrimRight(uri, "/"), "/debian") {
				return uri, nil
			}
		}
	}
	return "", errors.New("install-sqlite: no Debian archive in the machine's apt sources (/etc/apt/sources.list*)")
}

func sourceURIs(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if v, ok := strings.CutPrefix(line, "URIs:"); ok {
			out = append(out, strings.Fields(v)...)
		} else if fields := strings.Fields(line); len(fields) >= 2 && fields[0] == "deb" {
			out = append(out, fields[1])
		}
	}
	return out
}

// sourceVersion is the Debian version of the sqlite3 source package that
// packages upstream version.
func (a aptState) sourceVersion(ctx context.Context, version string) (string, error) {
	out, err := a.run(ctx, a.dir, "apt-cache", "showsrc", "sqlite3")
	if err != nil {
		return "", fmt.Errorf("install-sqlite: apt-cache showsrc sqlite3: %v\n%s", err, tail(out))
	}
	var seen []string
	for _, line := range strings.Split(string(out), "\n") {
		v, ok := strings.CutPrefix(line, "Version: ")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		if upstream, _, _ := strings.Cut(v, "-"); upstream == version {
			return v, nil
		}
		if !slices.Contains(seen, v) {
			seen = append(seen, v)
		}
	}
	return "", fmt.Errorf("install-sqlite: Debian (%s) has no sqlite3 %s source package; it has %s",
		strings.Join(sqliteSuites, ", "), version, strings.Join(seen, ", "))
}

var debianSQLiteOption = regexp.MustCompile(`-DSQLITE_[A-Z0-9_]+(=[0-9]+)?`)

// buildLibSQLite unpacks the fetched source package in build, makes the
// amalgamation and compiles libsqlite3.so.0 into lib with the SQLITE_*
// options of the package's debian/rules.
func buildLibSQLite(ctx context.Context, build, lib string, log io.Writer) error {
	sh := func(cwd, script string) error {
		cmd := exec.CommandContext(ctx, "/bin/sh", "-ec", script)
		cmd.Dir = cwd
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("install-sqlite: %s: %v\n%s", script, err, tail(out))
		}
		return nil
	}
	if err := sh(build, "mkdir -p src debian-dir && tar -xf *.orig.tar.* -C src --strip-components=1 && tar -xf *.debian.tar.* -C debian-dir"); err != nil {
		return err
	}
	rules, err := os.ReadFile(filepath.Join(build, "debian-dir", "debian", "rules"))
	if err != nil {
		return fmt.Errorf("install-sqlite: the source package has no debian/rules: %w", err)
	}
	opts := slices.Compact(slices.Sorted(slices.Values(debianSQLiteOption.FindAllString(string(rules), -1))))
	fmt.Fprintf(log, "building the amalgamation and libsqlite3.so.0 with Debian's options (%d) …\n", len(opts))
	if err := sh(filepath.Join(build, "src"), "./configure --disable-tcl >configure.log 2>&1 || ./configure >configure.log 2>&1; make sqlite3.c >make.log 2>&1"); err != nil {
		return err
	}
	if err := os.MkdirAll(lib, 0o755); err != nil {
		return fmt.Errorf("install-sqlite: %w", err)
	}
	cc := "gcc -O2 -fno-strict-aliasing -fPIC -shared -Wl,-soname,libsqlite3.so.0 " + strings.Join(opts, " ") +
		" sqlite3.c -o " + shellQuote(filepath.Join(lib, "libsqlite3.so.0")) + " -lm -lpthread -ldl"
	return sh(filepath.Join(build, "src"), cc)
}

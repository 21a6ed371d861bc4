package hermes

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestWholeSecondsNeverHandsHermesAFraction(t *testing.T) {
	for _, c := range []struct {
		grace, ttl, cooldown time.Duration
		want                 Seconds
		notes                int
	}{
		// issue-30896's scale 0.001: 30 ms grace is no grace, 0.9 s TTL is
		// 1 s, a 0.3 s cooldown stays a cooldown (0 would switch it off)
		// longer than the 1 s resolution of Hermes' clock.
		{30 * time.Millisecond, 900 * time.Millisecond, 300 * time.Millisecond, Seconds{CrashGrace: 0, ClaimTTL: 1, Cooldown: 2}, 3},
		{0, 0, 0, Seconds{CrashGrace: 0, ClaimTTL: 1, Cooldown: 0}, 1},
		{30 * time.Second, 900 * time.Second, 300 * time.Second, Seconds{CrashGrace: 30, ClaimTTL: 900, Cooldown: 300}, 0},
		{1600 * time.Millisecond, 2400 * time.Millisecond, 2500 * time.Millisecond, Seconds{CrashGrace: 2, ClaimTTL: 2, Cooldown: 3}, 3},
	} {
		got := WholeSeconds(c.grace, c.ttl, c.cooldown)
		if got.CrashGrace != c.want.CrashGrace || got.ClaimTTL != c.want.ClaimTTL || got.Cooldown != c.want.Cooldown {
			t.Errorf("WholeSeconds(%v, %v, %v) = %+v, want %+v", c.grace, c.ttl, c.cooldown, got, c.want)
		}
		if len(got.Notes) != c.notes {
			t.Errorf("WholeSeconds(%v, %v, %v) notes %q, want %d", c.grace, c.ttl, c.cooldown, got.Notes, c.notes)
		}
		for _, kv := range got.Env() {
			if _, err := strconv.Atoi(strings.SplitN(kv, "=", 2)[1]); err != nil {
				t.Errorf("env %s is not a whole number of seconds (Hermes' int() would refuse it)", kv)
			}
		}
	}
}

func TestParseSpec(t *testing.T) {
	checkout := t.TempDir()
	os.MkdirAll(filepath.Join(checkout, "hermes_cli"), 0o755)
	os.WriteFile(filepath.Join(checkout, "hermes_cli", "kanban_db.py"), nil, 0o644)
	for _, ok := range []string{"0.14.0", "0.19.0", "1.2", "0.15.0rc1", checkout} {
		if err := ParseSpec(ok); err != nil {
			t.Errorf("ParseSpec(%q): %v", ok, err)
		}
	}
	for spec, want := range map[string]string{
		"":               "want hermes:VERSION",
		"latest":         "neither a release version",
		t.TempDir():      "not a Hermes Agent checkout",
		"./no/such/repo": "not a Hermes Agent checkout",
	} {
		err := ParseSpec(spec)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSpec(%q) = %v, want an error saying %q", spec, err, want)
		}
	}
}

func TestLocateSaysHowToInstall(t *testing.T) {
	t.Setenv(EnvCache, t.TempDir())
	_, err := Locate("0.14.0")
	if err == nil || !strings.Contains(err.Error(), "kanbanchaos hermes install 0.14.0") {
		t.Fatalf("Locate of a release not in the cache: %v, want the install command", err)
	}
}

func TestWriteConfigIsWhatTheGatewayReads(t *testing.T) {
	home := t.TempDir()
	if err := WriteConfig(home, Gateway{FailureLimit: 4, MaxSpawn: 3, Tick: 20 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(home, "config.yaml"))
	for _, line := range []string{"kanban:", "  failure_limit: 4", "  max_spawn: 3", "  dispatch_interval_seconds: 1"} {
		if !slices.Contains(strings.Split(string(data), "\n"), line) {
			t.Errorf("config.yaml lacks %q:\n%s", line, data)
		}
	}
	WriteConfig(home, Gateway{Tick: time.Second})
	data, _ = os.ReadFile(filepath.Join(home, "config.yaml"))
	if strings.Contains(string(data), "failure_limit") || strings.Contains(string(data), "max_spawn") {
		t.Errorf("unset limits must stay unset (Hermes' own defaults apply):\n%s", data)
	}
}

func TestWriteDriver(t *testing.T) {
	dir := t.TempDir()
	script, settings, err := WriteDriver(dir, Driver{Name: "d2", Ledger: "/l", TickS: 0.02})
	if err != nil {
		t.Fatal(err)
	}
	src, _ := os.ReadFile(script)
	if !strings.Contains(string(src), "def main()") {
		t.Fatalf("%s is not the driver", script)
	}
	conf, _ := os.ReadFile(settings)
	if !strings.Contains(string(conf), `"name": "d2"`) || !strings.Contains(string(conf), "_resolve_crash_grace_seconds") {
		t.Fatalf("driver settings lack the name or the resolvers:\n%s", conf)
	}
}

// TestWriteDriverWhileADriverStarts: each dispatcher of a run writes the
// one driver script while the drivers started before it read it (issue 16's
// campaign: 39 of 254 hermes:0.19.0 runs had a driver exit 0 at once, having
// read a script truncated in place). A reader must always see it whole.
func TestWriteDriverWhileADriverStarts(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := WriteDriver(dir, Driver{Name: "d1"}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		for i := 0; i < 300; i++ {
			if _, _, err := WriteDriver(dir, Driver{Name: "d" + strconv.Itoa(i%8+2)}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for reads := 0; ; reads++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			if reads == 0 {
				t.Fatal("no read overlapped the writes")
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".hermes_driver.py*")); len(left) > 0 {
				t.Fatalf("temporary files left behind: %v", left)
			}
			return
		default:
		}
		src, err := os.ReadFile(filepath.Join(dir, "hermes_driver.py"))
		if err != nil {
			t.Fatal(err)
		}
		if len(src) != len(driverSource) {
			t.Fatalf("read %d bytes of the %d-byte driver while it was rewritten", len(src), len(driverSource))
		}
	}
}

func TestParsePythonSQLite(t *testing.T) {
	for _, ok := range []string{"", "system", "3.53.4", "3.46.1"} {
		if err := ParsePythonSQLite(ok); err != nil {
			t.Errorf("ParsePythonSQLite(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"3.53", "latest", "3.53.4;rm", "../x"} {
		if err := ParsePythonSQLite(bad); err == nil || !strings.Contains(err.Error(), "install-sqlite") {
			t.Errorf("ParsePythonSQLite(%q) = %v, want a refusal naming install-sqlite", bad, err)
		}
	}
}

// TestSourceURIs reads both apt formats: the mirror comes from the
// machine's own configuration, never from this repository.
func TestSourceURIs(t *testing.T) {
	dir := t.TempDir()
	deb822 := filepath.Join(dir, "debian.sources")
	os.WriteFile(deb822, []byte("Types: deb\n# comment\nURIs: http://mirror.example/debian\nSuites: bookworm\n\nTypes: deb\nURIs: http://mirror.example/debian-security\n"), 0o644)
	oneLine := filepath.Join(dir, "x.list")
	os.WriteFile(oneLine, []byte("# deb http://commented.example/debian x main\ndeb http://other.example/debian bookworm main\n"), 0o644)
	if got := sourceURIs(deb822); !slices.Equal(got, []string{"http://mirror.example/debian", "http://mirror.example/debian-security"}) {
		t.Errorf("deb822: %q", got)
	}
	if got := sourceURIs(oneLine); !slices.Equal(got, []string{"http://other.example/debian"}) {
		t.Errorf("one-line: %q", got)
	}
}

// TestWriteWorker: bin becomes an executable that runs worker.py under
// the release's interpreter, beside the recording module it imports,
// replacing what was there (the Go worker's symlink).
func TestWriteWorker(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin", "hermes")
	os.MkdirAll(filepath.Dir(bin), 0o755)
	os.Symlink("/nonexistent/go-worker", bin)
	if err := WriteWorker(dir, bin, Install{Python: "/venv/bin/python"}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(bin)
	if err != nil || st.Mode()&os.ModeSymlink != 0 || st.Mode()&0o111 == 0 {
		t.Fatalf("%s: %v %v, want an executable file", bin, st, err)
	}
	script, _ := os.ReadFile(bin)
	if !strings.Contains(string(script), "exec '/venv/bin/python' -u '"+filepath.Join(dir, workerScript)+"' \"$@\"") {
		t.Errorf("launcher:\n%s", script)
	}
	for _, f := range []string{workerScript, recordModule} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}

// TestInstallEnvLibDir: another libsqlite3 goes first on LD_LIBRARY_PATH,
// and the caller's own LD_LIBRARY_PATH never leaks into the release.
func TestInstallEnvLibDir(t *testing.T) {
	env := Install{LibDir: "/cache/sqlite/3.53.4/lib"}.Env([]string{"LD_LIBRARY_PATH=/elsewhere", "HOME=/h"})
	if !slices.Contains(env, "LD_LIBRARY_PATH=/cache/sqlite/3.53.4/lib") || slices.Contains(env, "LD_LIBRARY_PATH=/elsewhere") {
		t.Errorf("env %q", env)
	}
	if env := (Install{}).Env([]string{"LD_LIBRARY_PATH=/elsewhere"}); len(env) != 0 {
		t.Errorf("the system SQLite must be the system's: %q", env)
	}
}

package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/buildinfo"
	"github.com/kanbanchaos/kanbanchaos/hermes"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/kanbanchaos/kanbanchaos/schedule"
)

// EngineCommands names the command each other engine installs as, from its
// nested module (cd engines/sqlite3504 && go install ./cmd/NAME): a name of
// its own, so it can sit next to kanbanchaos in GOBIN and on PATH.
var EngineCommands = map[string]string{
	"3.50": "kanbanchaos-sqlite350",
}

// EngineUnavailableError says that an engine's binary could neither be
// found nor built here. It is a problem of the environment (an installed
// binary without its engine, no checkout, no go command), never of the
// harness: the CLI exits 2 with Fix, the command that makes it available.
type EngineUnavailableError struct {
	Engine, SQLite string
	Why            []string // what was tried and why each did not do
	Fix            string   // a shell command that installs the engine
}

func (e *EngineUnavailableError) Error() string {
	return fmt.Sprintf("the SQLite %s engine (--sqlite %s) is not available: %s; install it with:\n  %s",
		e.SQLite, e.Engine, strings.Join(e.Why, "; "), e.Fix)
}

// unavailable turns the failed ways of getting engine into the error that
// says how to install it.
func unavailable(engine, version, mismatch string, buildErr error) error {
	e := &EngineUnavailableError{Engine: engine, SQLite: version}
	if mismatch != "" {
		e.Why = append(e.Why, mismatch)
	}
	e.Why = append(e.Why, strings.TrimPrefix(buildErr.Error(), "harness: "))
	cmd := EngineCommands[engine]
	if root, err := repoRoot(engineModules[engine]); err == nil {
		e.Fix = fmt.Sprintf("cd %s && go install ./cmd/%s", shellPath(filepath.Join(root, engineModules[engine])), cmd)
		return e
	}
	ref := "main"
	info := buildinfo.Read()
	switch {
	case info.Revision != "":
		ref = info.Revision
	case strings.HasPrefix(info.Version, "v"):
		ref = info.Version
	}
	// Both from one clone: an engine is used only when it was built from
	// the same revision as kanbanchaos, which a binary from the module
	// proxy records no revision to prove.
	e.Fix = fmt.Sprintf("git clone https://%s kanbanchaos && cd kanbanchaos && git checkout %s && go install ./cmd/kanbanchaos && (cd %s && go install ./cmd/%s)",
		buildinfo.ModulePath, ref, filepath.ToSlash(engineModules[engine]), cmd)
	return e
}

func shellPath(p string) string {
	if strings.ContainsAny(p, " '\"$`\\") {
		return "'" + strings.ReplaceAll(p, "'", `'\''`) + "'"
	}
	return p
}

// installedEngine looks for engine's command next to this executable, then
// on PATH, and returns the first that links the engine's SQLite and was
// built from the same code as this binary (buildinfo.SameCode) — a run is
// handed to it whole, so older or newer code would judge with other rules.
// When one is found but does not do, mismatch says why.
func installedEngine(ctx context.Context, engine, version string) (bin, mismatch string) {
	name := EngineCommands[engine]
	if name == "" {
		return "", ""
	}
	var candidates []string
	if exe, err := os.Executable(); err == nil {
		candidates = append(candidates, filepath.Join(filepath.Dir(exe), name))
	}
	if p, err := exec.LookPath(name); err == nil {
		candidates = append(candidates, p)
	}
	own := buildinfo.Read()
	for _, c := range candidates {
		if fi, err := os.Stat(c); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		info, err := engineInfo(ctx, c)
		switch {
		case err != nil:
			mismatch = fmt.Sprintf("%s does not say its version: %v", c, err)
		case info.SQLite != version:
			mismatch = fmt.Sprintf("%s links SQLite %s, not %s", c, info.SQLite, version)
		case !own.SameCode(info):
			mismatch = fmt.Sprintf("%s was built from other code (%s %s) than this binary (%s %s)", c,
				info.Version, info.RevisionShort(), own.Version, own.RevisionShort())
		default:
			return c, ""
		}
	}
	return "", mismatch
}

// engineInfo runs bin version --json.
func engineInfo(ctx context.Context, bin string) (buildinfo.Info, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "version", "--json").Output()
	if err != nil {
		return buildinfo.Info{}, err
	}
	var v struct {
		Binary buildinfo.Info `json:"kanbanchaos"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return buildinfo.Info{}, err
	}
	if v.Binary.SQLite == "" {
		return buildinfo.Info{}, errors.New("no sqlite version in its version --json")
	}
	return v.Binary, nil
}

// EngineLocation says where a run on engine would get its binary, without
// building anything: this binary, an installed command, a cached or
// to-be-built binary from a checkout — or, in Err, why it cannot.
type EngineLocation struct {
	Engine string `json:"engine"`
	SQLite string `json:"sqlite"`
	// Binary is the binary a run would use; "" until built.
	Binary string `json:"binary,omitempty"`
	// How says where Binary comes from: "this binary", "installed",
	// "built from CHECKOUT" or "built on first use from CHECKOUT".
	How string `json:"how,omitempty"`
	// Err is why the engine is unavailable, with the command that fixes it.
	Err string `json:"error,omitempty"`
}

// LocateEngine is EngineBinary without the build: what `kanbanchaos
// version` reports.
func LocateEngine(ctx context.Context, engine string) EngineLocation {
	version := schedule.Engines[engine]
	loc := EngineLocation{Engine: engine, SQLite: version}
	if version == kanban.SQLiteVersion() {
		loc.Binary, _ = os.Executable()
		loc.How = "this binary"
		return loc
	}
	if _, ok := engineModules[engine]; !ok {
		loc.Err = fmt.Sprintf("SQLite %s is linked by kanbanchaos itself (go install ./cmd/kanbanchaos); this binary links %s", version, kanban.SQLiteVersion())
		return loc
	}
	bin, mismatch := installedEngine(ctx, engine, version)
	if bin != "" {
		loc.Binary, loc.How = bin, "installed"
		return loc
	}
	root, err := repoRoot(engineModules[engine])
	if err == nil {
		if _, err = exec.LookPath("go"); err == nil {
			loc.How = "built on first use from " + root
			if sum, herr := sourceHash(root); herr == nil {
				if cache, cerr := hermes.CacheRoot(); cerr == nil {
					cached := filepath.Join(cache, "engines", "sqlite-"+version, sum, "kanbanchaos")
					if _, serr := os.Stat(cached); serr == nil {
						loc.Binary, loc.How = cached, "built from "+root
					}
				}
			}
			return loc
		}
	}
	loc.Err = unavailable(engine, version, mismatch, err).Error()
	return loc
}

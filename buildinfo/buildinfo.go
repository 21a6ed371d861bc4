// Package buildinfo says what this kanbanchaos binary is: its module
// version, the VCS revision it was built from (and whether that tree had
// uncommitted changes), the Go toolchain and the SQLite it links. Every
// machine-readable output carries it, so a result can always be traced to
// the code that produced it. It reads the build information the Go linker
// embeds (runtime/debug) and never runs anything.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// ModulePath is the module every kanbanchaos binary is built from (the
// 3.50 engine's main module is a nested one that requires it).
const ModulePath = "github.com/kanbanchaos/kanbanchaos"

// Info identifies a binary. Zero values mean "not recorded": a binary
// built by `go run`/`go build` in a checkout has Version "(devel)" and the
// VCS fields; one built by `go test` has neither.
type Info struct {
	Module   string `json:"module"`             // the main module's path
	Version  string `json:"version"`            // the module version, "(devel)" when built from a checkout
	Revision string `json:"revision,omitempty"` // the VCS revision the build came from
	Time     string `json:"commit_time,omitempty"`
	Modified bool   `json:"modified,omitempty"` // the checkout had uncommitted changes
	Go       string `json:"go"`                 // the Go toolchain
	SQLite   string `json:"sqlite"`             // the SQLite this binary links
}

// Read returns this binary's Info.
func Read() Info {
	info := Info{Module: ModulePath, Version: "(unknown)", Go: runtime.Version(), SQLite: kanban.SQLiteVersion()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return info
	}
	info.Module = bi.Main.Path
	if bi.Main.Version != "" {
		info.Version = bi.Main.Version
	}
	// The 3.50 engine is the nested module; its kanbanchaos dependency is
	// a replace of the checkout around it, so the version worth naming is
	// still the revision.
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			info.Revision = s.Value
		case "vcs.time":
			info.Time = s.Value
		case "vcs.modified":
			info.Modified = s.Value == "true"
		}
	}
	return info
}

// Short is the one-line form every text output starts its provenance with:
// "kanbanchaos (devel) 1a2b3c4d5e6f+dirty, go1.26.8, SQLite 3.54.1".
func (i Info) Short() string {
	var b strings.Builder
	fmt.Fprintf(&b, "kanbanchaos %s", i.Version)
	if i.Revision != "" {
		fmt.Fprintf(&b, " %s", i.RevisionShort())
	}
	fmt.Fprintf(&b, ", %s, SQLite %s", i.Go, i.SQLite)
	return b.String()
}

// RevisionShort is the first 12 hex digits of the revision, "+dirty" when
// the tree was modified; "" when no revision was recorded.
func (i Info) RevisionShort() string {
	rev := i.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" && i.Modified {
		rev += "+dirty"
	}
	return rev
}

// SameCode reports whether a binary described by o was built from the same
// code as i, as far as the build information can tell: the same module
// version, and the same revision when both recorded one. Two modified
// trees of one revision cannot be told apart; that is said by Modified.
func (i Info) SameCode(o Info) bool {
	if i.Revision != "" || o.Revision != "" {
		return i.Revision == o.Revision && i.Modified == o.Modified
	}
	return i.Version == o.Version && i.Version != "(devel)" && i.Version != "(unknown)"
}

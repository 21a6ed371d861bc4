package buildinfo

import (
	"runtime"
	"testing"
)

func TestRead(t *testing.T) {
	i := Read()
	if i.Go != runtime.Version() || i.SQLite == "" || i.SQLite == "unknown" || i.Version == "" {
		t.Fatalf("Read() = %+v; want this toolchain, the linked SQLite and a version", i)
	}
}

// TestSameCode: builds are the same code only when the build information
// proves it — one revision and dirty flag, or one published version.
func TestSameCode(t *testing.T) {
	rev := Info{Version: "(devel)", Revision: "abc"}
	for _, c := range []struct {
		a, b Info
		want bool
	}{
		{rev, rev, true},
		{rev, Info{Version: "(devel)", Revision: "abd"}, false},
		{rev, Info{Version: "(devel)", Revision: "abc", Modified: true}, false},
		{rev, Info{Version: "(devel)"}, false},
		{Info{Version: "v1.2.0"}, Info{Version: "v1.2.0"}, true},
		{Info{Version: "v1.2.0"}, Info{Version: "v1.3.0"}, false},
		// Two builds that recorded nothing cannot be told apart: not the same.
		{Info{Version: "(devel)"}, Info{Version: "(devel)"}, false},
	} {
		if got := c.a.SameCode(c.b); got != c.want {
			t.Errorf("%+v.SameCode(%+v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
	if got := (Info{Revision: "0123456789abcdef", Modified: true}).RevisionShort(); got != "0123456789ab+dirty" {
		t.Errorf("RevisionShort = %q", got)
	}
}

package kanban_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kanbanchaos/kanbanchaos/kanban"
)

// mkBoard makes board slug exist under home through file (board.json or
// kanban.db).
func mkBoard(t *testing.T, home, slug, file string) {
	t.Helper()
	dir := filepath.Join(home, "kanban", "boards", slug)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if file != "" {
		if err := os.WriteFile(filepath.Join(dir, file), []byte("{}"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func setCurrent(t *testing.T, home, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(home, "kanban"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, "kanban", "current"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func boardDB(home, slug string) string {
	return filepath.Join(home, "kanban", "boards", slug, "kanban.db")
}

func TestResolvePinAndExplicit(t *testing.T) {
	home := t.TempDir()
	pin := filepath.Join(t.TempDir(), "pinned.db")
	mkBoard(t, home, "active", "board.json")
	env := kanban.Env{Home: home, Board: "active", DB: pin}
	for _, tc := range []struct {
		name     string
		env      kanban.Env
		explicit string
		pinWins  bool
		want     kanban.Resolution
	}{
		{"pin beats explicit", env, "alpha", true, kanban.Resolution{Slug: "alpha", Path: pin, Source: "pin"}},
		{"explicit beats pin", env, "alpha", false, kanban.Resolution{Slug: "alpha", Path: boardDB(home, "alpha"), Source: "explicit"}},
		{"explicit is lowercased", env, "Alpha", false, kanban.Resolution{Slug: "alpha", Path: boardDB(home, "alpha"), Source: "explicit"}},
		{"explicit default", env, "default", false, kanban.Resolution{Slug: "default", Path: filepath.Join(home, "kanban.db"), Source: "explicit"}},
		{"pin without explicit, pinWins", env, "", true, kanban.Resolution{Slug: "", Path: pin, Source: "pin"}},
		{"pin without explicit, explicit wins", env, "", false, kanban.Resolution{Slug: "", Path: pin, Source: "pin"}},
		{"no pin: active board", kanban.Env{Home: home, Board: "active"}, "", true, kanban.Resolution{Slug: "active", Path: boardDB(home, "active"), Source: "active"}},
		{"no pin: explicit", kanban.Env{Home: home, Board: "active"}, "alpha", true, kanban.Resolution{Slug: "alpha", Path: boardDB(home, "alpha"), Source: "explicit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := kanban.Resolve(tc.env, tc.explicit, tc.pinWins)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Resolve(%+v, %q, %v) = %+v, want %+v", tc.env, tc.explicit, tc.pinWins, got, tc.want)
			}
		})
	}
}

func TestResolveInvalidExplicit(t *testing.T) {
	home := t.TempDir()
	for _, explicit := range []string{"no/slash", "../up", "-leading-dash", "has space", strings.Repeat("a", 65), "ünïcode"} {
		for _, pinWins := range []bool{true, false} {
			got, err := kanban.Resolve(kanban.Env{Home: home, DB: "/pin.db"}, explicit, pinWins)
			if err == nil {
				t.Errorf("Resolve(explicit %q, pinWins=%v) = %+v, want an error", explicit, pinWins, got)
			} else if !strings.Contains(err.Error(), "not a valid slug") {
				t.Errorf("Resolve(explicit %q) error %q does not say why", explicit, err)
			}
		}
	}
}

func TestActiveBoard(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, home string)
		board   string // HERMES_KANBAN_BOARD
		current string // "" = no current file
		want    string
	}{
		{"env board with board.json", func(t *testing.T, h string) { mkBoard(t, h, "beta", "board.json") }, "beta", "", "beta"},
		{"env board with kanban.db", func(t *testing.T, h string) { mkBoard(t, h, "beta", "kanban.db") }, "beta", "", "beta"},
		{"env board uppercase", func(t *testing.T, h string) { mkBoard(t, h, "beta", "board.json") }, "BETA", "", "beta"},
		{"env board beats current", func(t *testing.T, h string) {
			mkBoard(t, h, "beta", "board.json")
			mkBoard(t, h, "gamma", "board.json")
		}, "beta", "gamma", "beta"},
		{"env board dir without files falls through to current", func(t *testing.T, h string) {
			mkBoard(t, h, "beta", "")
			mkBoard(t, h, "gamma", "kanban.db")
		}, "beta", "gamma\n", "gamma"},
		{"missing env board falls through to current", func(t *testing.T, h string) { mkBoard(t, h, "gamma", "board.json") }, "nope", "  Gamma \n", "gamma"},
		{"malformed env board falls through", func(t *testing.T, h string) {
			mkBoard(t, h, "gamma", "board.json")
		}, "../gamma", "gamma", "gamma"},
		{"missing current board: default", nil, "", "delta", "default"},
		{"malformed current: default", func(t *testing.T, h string) { mkBoard(t, h, "x", "board.json") }, "", "../x", "default"},
		{"nothing: default", nil, "", "", "default"},
		{"env default", func(t *testing.T, h string) { mkBoard(t, h, "gamma", "board.json") }, "default", "gamma", "default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			if tc.setup != nil {
				tc.setup(t, home)
			}
			if tc.current != "" {
				setCurrent(t, home, tc.current)
			}
			env := kanban.Env{Home: home, Board: tc.board}
			if got := kanban.ActiveBoard(env); got != tc.want {
				t.Errorf("ActiveBoard = %q, want %q", got, tc.want)
			}
			got, err := kanban.Resolve(env, "", true)
			if err != nil {
				t.Fatal(err)
			}
			want := kanban.Resolution{Slug: tc.want, Path: kanban.BoardPath(home, tc.want), Source: "active"}
			if got != want {
				t.Errorf("Resolve = %+v, want %+v", got, want)
			}
		})
	}
}

func TestBoardPath(t *testing.T) {
	home := "/h"
	for slug, want := range map[string]string{
		"":        filepath.Join(home, "kanban.db"),
		"default": filepath.Join(home, "kanban.db"),
		"DEFAULT": filepath.Join(home, "kanban.db"),
		"proj-1":  filepath.Join(home, "kanban", "boards", "proj-1", "kanban.db"),
		"Proj_2":  filepath.Join(home, "kanban", "boards", "proj_2", "kanban.db"),
	} {
		if got := kanban.BoardPath(home, slug); got != want {
			t.Errorf("BoardPath(%q) = %q, want %q", slug, got, want)
		}
	}
}

func TestBoardExists(t *testing.T) {
	home := t.TempDir()
	mkBoard(t, home, "empty", "")
	mkBoard(t, home, "withjson", "board.json")
	mkBoard(t, home, "withdb", "kanban.db")
	for slug, want := range map[string]bool{
		"default": true, "Default": true, "empty": false, "withjson": true, "withdb": true, "WithDB": true, "absent": false,
	} {
		if got := kanban.BoardExists(home, slug); got != want {
			t.Errorf("BoardExists(%q) = %v, want %v", slug, got, want)
		}
	}
}

func TestValidSlug(t *testing.T) {
	for s, want := range map[string]bool{
		"a": true, "0": true, "a-b_c": true, "ABC": true, strings.Repeat("a", 64): true,
		"": false, "-a": false, "_a": false, "a b": false, "a/b": false, "a.b": false, strings.Repeat("a", 65): false,
	} {
		if got := kanban.ValidSlug(s); got != want {
			t.Errorf("ValidSlug(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestEnvFrom(t *testing.T) {
	getenv := func(m map[string]string) func(string) string {
		return func(k string) string { return m[k] }
	}
	got := kanban.EnvFrom(getenv(map[string]string{
		"HERMES_KANBAN_HOME":  "/kanban-home",
		"HERMES_HOME":         "/hermes-home",
		"HERMES_KANBAN_BOARD": "proj",
		"HERMES_KANBAN_DB":    "/pin.db",
	}))
	if want := (kanban.Env{Home: "/kanban-home", Board: "proj", DB: "/pin.db"}); got != want {
		t.Errorf("EnvFrom(all) = %+v, want %+v", got, want)
	}
	got = kanban.EnvFrom(getenv(map[string]string{"HERMES_HOME": "/hermes-home"}))
	if want := (kanban.Env{Home: "/hermes-home"}); got != want {
		t.Errorf("EnvFrom(HERMES_HOME) = %+v, want %+v", got, want)
	}
	got = kanban.EnvFrom(getenv(map[string]string{"HERMES_KANBAN_HOME": "", "HERMES_HOME": "/hermes-home"}))
	if got.Home != "/hermes-home" {
		t.Errorf("empty HERMES_KANBAN_HOME: Home = %q, want /hermes-home", got.Home)
	}

	fakeHome := t.TempDir()
	t.Setenv("HOME", fakeHome)
	got = kanban.EnvFrom(getenv(nil))
	if want := (kanban.Env{Home: filepath.Join(fakeHome, ".hermes")}); got != want {
		t.Errorf("EnvFrom(empty) = %+v, want %+v", got, want)
	}
}

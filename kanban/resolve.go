package kanban

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Env is the part of the environment that decides which board file a
// process uses (spec/hermes-kanban.md §1).
type Env struct {
	Home  string // HERMES_KANBAN_HOME, else HERMES_HOME, else ~/.hermes
	Board string // HERMES_KANBAN_BOARD
	DB    string // HERMES_KANBAN_DB: the pin the dispatcher gives every worker
}

// EnvFrom reads Env through getenv (os.Getenv, or a test's map).
func EnvFrom(getenv func(string) string) Env {
	home := getenv("HERMES_KANBAN_HOME")
	if home == "" {
		home = getenv("HERMES_HOME")
	}
	if home == "" {
		if h, err := os.UserHomeDir(); err == nil {
			home = filepath.Join(h, ".hermes")
		}
	}
	return Env{Home: home, Board: getenv("HERMES_KANBAN_BOARD"), DB: getenv("HERMES_KANBAN_DB")}
}

var slugPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9\-_]{0,63}$`)

// ValidSlug reports whether s (lowercased) is a valid board slug.
func ValidSlug(s string) bool { return slugPattern.MatchString(strings.ToLower(s)) }

// BoardPath is where board slug keeps its DB under home: the legacy
// <home>/kanban.db for `default`, <home>/kanban/boards/<slug>/kanban.db else.
func BoardPath(home, slug string) string {
	slug = strings.ToLower(slug)
	if slug == "" || slug == "default" {
		return filepath.Join(home, "kanban.db")
	}
	return filepath.Join(home, "kanban", "boards", slug, "kanban.db")
}

// BoardExists is Hermes' existence test: `default`, or a board dir holding
// board.json or kanban.db.
func BoardExists(home, slug string) bool {
	slug = strings.ToLower(slug)
	if slug == "default" {
		return true
	}
	dir := filepath.Join(home, "kanban", "boards", slug)
	for _, f := range []string{"board.json", "kanban.db"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// ActiveBoard is get_current_board: HERMES_KANBAN_BOARD if that board exists,
// else the `current` file's board if it exists, else default. Malformed slugs
// fall through.
func ActiveBoard(env Env) string {
	if s := strings.ToLower(env.Board); ValidSlug(s) && BoardExists(env.Home, s) {
		return s
	}
	if data, err := os.ReadFile(filepath.Join(env.Home, "kanban", "current")); err == nil {
		if s := strings.ToLower(strings.TrimSpace(string(data))); ValidSlug(s) && BoardExists(env.Home, s) {
			return s
		}
	}
	return "default"
}

// Resolution is where a connect(board=…) call lands, and why.
type Resolution struct {
	Slug   string // the board asked for ("" when the pin decided)
	Path   string
	Source string // "pin" (HERMES_KANBAN_DB), "explicit", "active"
}

// Resolve is kanban_db_path(board): which file a connect with an explicit
// board (may be "") opens. With pinWins, HERMES_KANBAN_DB beats everything,
// even an explicit board, as every Hermes release does (#30678). Without it
// the explicit board wins over the pin, which wins over the active board.
func Resolve(env Env, explicit string, pinWins bool) (Resolution, error) {
	if explicit != "" && !ValidSlug(explicit) {
		return Resolution{}, fmt.Errorf("kanban: board %q is not a valid slug (want %s)", explicit, slugPattern)
	}
	explicit = strings.ToLower(explicit)
	if env.DB != "" && (pinWins || explicit == "") {
		return Resolution{Slug: explicit, Path: env.DB, Source: "pin"}, nil
	}
	if explicit != "" {
		return Resolution{Slug: explicit, Path: BoardPath(env.Home, explicit), Source: "explicit"}, nil
	}
	slug := ActiveBoard(env)
	return Resolution{Slug: slug, Path: BoardPath(env.Home, slug), Source: "active"}, nil
}

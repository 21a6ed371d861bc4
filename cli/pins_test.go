package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kanbanchaos/kanbanchaos/dispatcher"
	"github.com/kanbanchaos/kanbanchaos/kanban"
	"github.com/rogpeppe/go-internal/testscript"
)

// The custom commands of the pins in testdata/script: they set up and
// damage boards, play the Hermes CLI and gateway against them, and compare
// files. Every one closes its SQLite connections before it returns, so the
// in-process hashing of `sha` never runs while this process holds a
// connection to the file (a plain open/close would drop its locks).

// cmdBoard prepares boards:
//
//	board seed HOME SLUG N     board SLUG with board.json and N unassigned ready cards
//	board corrupt DB [FILL]    damage an index page of a closed board (kanban.DamageIndex)
//	board touch DB             move the file's mtime an hour on: a new fingerprint, the same bytes
func cmdBoard(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: board seed HOME SLUG N | board corrupt DB [FILL] | board touch DB")
	}
	ctx := context.Background()
	switch args[0] {
	case "seed":
		if len(args) != 4 {
			ts.Fatalf("usage: board seed HOME SLUG N")
		}
		home, slug := ts.MkAbs(args[1]), args[2]
		n, err := strconv.Atoi(args[3])
		ts.Check(err)
		path := kanban.BoardPath(home, slug)
		meta := filepath.Join(home, "kanban", "boards", slug, "board.json")
		ts.Check(os.MkdirAll(filepath.Dir(meta), 0o755))
		ts.Check(os.WriteFile(meta, []byte(fmt.Sprintf("{\"slug\": %q, \"name\": %q}\n", slug, slug)), 0o644))
		b, err := kanban.Connect(ctx, path, kanban.DefaultOptions())
		ts.Check(err)
		for i := 0; i < n; i++ {
			if _, err := b.CreateTask(ctx, kanban.NewTask{Title: fmt.Sprintf("card %d", i+1), CreatedBy: "pin"}); err != nil {
				b.Close()
				ts.Fatalf("seed %s: %v", path, err)
			}
		}
		ts.Check(b.Close())
	case "corrupt":
		fill := byte(0x5a)
		if len(args) > 2 {
			v, err := strconv.ParseUint(args[2], 0, 8)
			ts.Check(err)
			fill = byte(v)
		}
		ts.Check(kanban.DamageIndex(ctx, ts.MkAbs(args[1]), fill))
	case "touch":
		later := time.Now().Add(time.Hour)
		ts.Check(os.Chtimes(ts.MkAbs(args[1]), later, later))
	default:
		ts.Fatalf("board: unknown subcommand %q", args[0])
	}
}

// cmdGateway runs one gateway process's loop over board SLUG of variant,
// step by step, and prints what each step did:
//
//	gateway VARIANT HOME SLUG STEP…
//	  tick      one gateway tick (dispatcher.Gateway)
//	  touch     a new mtime on the board file, the same bytes
//	  recreate  the board file moved to DB.moved and a fresh, empty schema put
//	            in its place by v0.14's connect() (what #30687's cron left)
func cmdGateway(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 4 {
		ts.Fatalf("usage: gateway VARIANT HOME SLUG STEP…")
	}
	ctx := context.Background()
	knobs, err := dispatcher.Resolve(args[0], nil)
	ts.Check(err)
	home, slug := ts.MkAbs(args[1]), args[2]
	path := kanban.BoardPath(home, slug)
	children := dispatcher.NewChildren()
	defer children.KillAll(time.Second)
	g, err := dispatcher.NewGateway(dispatcher.Config{Name: "gateway", Home: home, Board: slug, DBPath: path,
		HermesBin: "/bin/false", Knobs: knobs, Timing: dispatcher.HermesTiming(0.001), Children: children})
	ts.Check(err)
	defer g.Close()
	ticks := 0
	for _, step := range args[3:] {
		switch step {
		case "tick":
			ticks++
			fmt.Fprintf(ts.Stdout(), "tick %d: %s\n", ticks, g.Tick(ctx))
		case "touch":
			later := time.Now().Add(time.Hour)
			ts.Check(os.Chtimes(path, later, later))
			fmt.Fprintf(ts.Stdout(), "touch: %s has a new mtime, the same bytes\n", path)
		case "recreate":
			ts.Check(os.Rename(path, path+".moved"))
			b, err := kanban.Connect(ctx, path, kanban.DefaultOptions())
			ts.Check(err)
			ts.Check(b.Close())
			fmt.Fprintf(ts.Stdout(), "recreate: %s moved aside, a fresh empty schema in its place\n", path)
		default:
			ts.Fatalf("gateway: unknown step %q (tick, touch, recreate)", step)
		}
	}
}

// cmdHermesCLIScript (`hermescli`: `hermes` is the fake worker) plays the Hermes CLI
// of variant against a home:
//
//	hermescli VARIANT HOME [--pin DB] boards switch SLUG
//	hermescli VARIANT HOME [--pin DB] list [--board SLUG]
//
// --pin is HERMES_KANBAN_DB in the command's environment. A failing command
// prints its error on stderr; `! hermescli …` expects one.
func cmdHermesCLIScript(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) < 3 {
		ts.Fatalf("usage: hermescli VARIANT HOME [--pin DB] boards switch SLUG | list [--board SLUG]")
	}
	knobs, err := dispatcher.Resolve(args[0], nil)
	ts.Check(err)
	env := kanban.Env{Home: ts.MkAbs(args[1])}
	rest := args[2:]
	if rest[0] == "--pin" && len(rest) > 2 {
		env.DB, rest = ts.MkAbs(rest[1]), rest[2:]
	}
	out, err := hermesCLI(env, knobs, rest)
	if err != nil {
		fmt.Fprintf(ts.Stderr(), "hermes %s: %v\n", strings.Join(rest, " "), err)
		if !neg {
			ts.Fatalf("hermes %s failed: %v", strings.Join(rest, " "), err)
		}
		return
	}
	fmt.Fprintln(ts.Stdout(), out)
	if neg {
		ts.Fatalf("hermes %s succeeded: %s", strings.Join(rest, " "), out)
	}
}

func hermesCLI(env kanban.Env, knobs dispatcher.Knobs, args []string) (string, error) {
	ctx := context.Background()
	switch {
	case len(args) == 0:
	case len(args) == 3 && args[0] == "boards" && args[1] == "switch":
		if !kanban.ValidSlug(args[2]) || !kanban.BoardExists(env.Home, args[2]) {
			return "", fmt.Errorf("no board %q", args[2])
		}
		current := filepath.Join(env.Home, "kanban", "current")
		if err := os.MkdirAll(filepath.Dir(current), 0o755); err != nil {
			return "", err
		}
		return "current board: " + args[2], os.WriteFile(current, []byte(args[2]+"\n"), 0o644)
	case args[0] == "list" && (len(args) == 1 || len(args) == 3 && args[1] == "--board"):
		board := ""
		if len(args) == 3 {
			board = args[2]
		}
		res, err := kanban.Resolve(env, board, knobs.PinBeatsBoard)
		if err != nil {
			return "", err
		}
		b, err := kanban.Connect(ctx, res.Path, knobs.Connect)
		if err != nil {
			return "", err
		}
		defer b.Close()
		var n int
		if err := b.DB().QueryRowContext(ctx, `SELECT count(*) FROM tasks`).Scan(&n); err != nil {
			return "", err
		}
		return fmt.Sprintf("list: %s (from %s): %d tasks", res.Path, res.Source, n), nil
	}
	return "", fmt.Errorf("unknown command %q (boards switch SLUG, list [--board SLUG])", args)
}

// cmdSHA prints each file's sha256 (for `cp stdout` and `cmp stdout`).
func cmdSHA(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) == 0 {
		ts.Fatalf("usage: sha FILE…")
	}
	for _, a := range args {
		data, err := os.ReadFile(ts.MkAbs(a))
		ts.Check(err)
		sum := sha256.Sum256(data)
		fmt.Fprintln(ts.Stdout(), hex.EncodeToString(sum[:]))
	}
}

// cmdBackups checks how many corrupt-board backups of DB exist.
func cmdBackups(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: backups DB N")
	}
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	got, err := kanban.Backups(ts.MkAbs(args[0]))
	ts.Check(err)
	fmt.Fprintf(ts.Stdout(), "%d backups\n", len(got))
	if (len(got) == want) == neg {
		ts.Fatalf("%d backups of %s %v, want %s%d", len(got), args[0], got, map[bool]string{true: "not ", false: ""}[neg], want)
	}
}

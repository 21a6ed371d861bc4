package harness

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The artifact store is a directory (by default ./kanbanchaos-artifacts,
// chosen by the CLI) that receives every kept run, comparison and campaign
// as <time>-<name>/, links the newest as "latest", and lists each in
// index.jsonl — so a user finds the evidence without reading the output
// again, and runs never pile up unannounced in the temp directory.

// DefaultStore is where the CLI keeps artifacts when --artifacts is not given.
const DefaultStore = "kanbanchaos-artifacts"

// StoreIndex is the store's list of what it keeps, one JSON line each.
const StoreIndex = "index.jsonl"

// StoreEntry is one line of the store's index.
type StoreEntry struct {
	Time     string   `json:"time"` // RFC 3339, UTC, when it was kept
	Dir      string   `json:"dir"`  // relative to the store
	Kind     string   `json:"kind"` // run, compare, fuzz, gate
	Scenario string   `json:"scenario,omitempty"`
	Seed     uint64   `json:"seed,omitempty"`
	Subject  string   `json:"subject,omitempty"` // variant, hermes:…, exec:…
	Status   string   `json:"status,omitempty"`  // pass, fail, unknown
	Failed   []string `json:"failed,omitempty"`  // invariants or entries violated
	Replay   string   `json:"replay,omitempty"`
}

// NewStoreDir returns a new, not yet existing directory store/<time>-name
// (suffixed -2, -3 … if taken); the time sorts the store by age.
func NewStoreDir(store, name string) (string, error) {
	return UniqueDir(store, time.Now().UTC().Format("20060102-150405")+"-"+safeName(name))
}

// safeName keeps a store directory name to one path element of plain
// characters.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.", r) {
			return r
		}
		return '_'
	}, s)
}

// RecordInStore points store/latest at dir and appends e to the index.
// dir must be inside store.
func RecordInStore(store, dir string, e StoreEntry) error {
	rel, err := filepath.Rel(store, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("harness: %s is not inside the artifact store %s", dir, store)
	}
	e.Dir = rel
	if e.Time == "" {
		e.Time = time.Now().UTC().Format(time.RFC3339)
	}
	// Replace latest atomically: a new link beside it, renamed over it. The
	// link's name is this call's own: runs side by side in one process
	// record at once (a pid-named link was renamed away by the other run).
	tmp := filepath.Join(store, fmt.Sprintf(".latest-%d-%016x", os.Getpid(), rand.Uint64()))
	if err := os.Symlink(rel, tmp); err != nil {
		return fmt.Errorf("harness: artifact store: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(store, "latest")); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("harness: artifact store: %w", err)
	}
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("harness: artifact store index: %w", err)
	}
	// One O_APPEND write per line: concurrent runs never interleave.
	f, err := os.OpenFile(filepath.Join(store, StoreIndex), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("harness: artifact store index: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("harness: artifact store index: %w", err)
	}
	return f.Close()
}

// materializeBin replaces every symlink in dir/bin (HERMES_BIN's "hermes",
// an exec subject's "kanbanchaos"; both point at a binary that may live in
// Go's build cache) with the file itself — a hard link where the file
// system allows, else a copy — so a kept run stays whole when the cache is
// cleaned or the directory is copied elsewhere.
func materializeBin(dir string) error {
	bin := filepath.Join(dir, "bin")
	entries, err := os.ReadDir(bin)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("harness: keep %s: %w", bin, err)
	}
	for _, e := range entries {
		if e.Type()&os.ModeSymlink == 0 {
			continue
		}
		link := filepath.Join(bin, e.Name())
		target, err := filepath.EvalSymlinks(link)
		if err != nil {
			os.Remove(link) // dangling: nothing to keep
			continue
		}
		if err := os.Remove(link); err != nil {
			return fmt.Errorf("harness: keep %s: %w", link, err)
		}
		if os.Link(target, link) == nil {
			continue
		}
		if err := copyFile(target, link); err != nil {
			return fmt.Errorf("harness: keep %s: %w", link, err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// MoveSandbox moves a kept sandbox to parent/name (made unique). By now
// every process and connection of the run is gone, so copying its board
// files drops nobody's locks. The HERMES_BIN symlink is no artifact.
func MoveSandbox(src, parent, name string) (string, error) {
	if err := materializeBin(src); err != nil {
		return "", err
	}
	dest, err := UniqueDir(parent, name)
	if err != nil {
		return "", err
	}
	if err := os.Rename(src, dest); err == nil {
		return dest, nil
	}
	// Another file system: copy, then remove.
	if err := os.CopyFS(dest, os.DirFS(src)); err != nil {
		return "", fmt.Errorf("harness: keep %s: %w", src, err)
	}
	os.RemoveAll(src)
	return dest, nil
}

package kanban

// Backups of a board: the copies Hermes makes of a corrupt board before it
// is recreated (by file copy, by hash, through SQLite), listed and taken.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"modernc.org/sqlite"
)

// Backups lists the guard's backups of the board at path (the main files,
// not their -wal/-shm companions).
func Backups(path string) ([]string, error) {
	return filepath.Glob(escapeGlob(path) + ".corrupt.*.bak")
}

func escapeGlob(s string) string {
	return strings.NewReplacer(`\`, `\\`, "*", `\*`, "?", `\?`, "[", `\[`).Replace(s)
}

// backupCorrupt backs path up as mode says and returns the main backup file.
func backupCorrupt(ctx context.Context, path, mode string, proc *Process) (string, error) {
	switch mode {
	case "", BackupNone:
		return "", nil
	case BackupCopyTS:
		// Microseconds, so that detections in one second do not overwrite
		// each other: every detection is a new backup, as in #32593.
		name := path + ".corrupt." + time.Now().UTC().Format("20060102T150405.000000") + ".bak"
		return name, copySet(path, name)
	case BackupCopySHA:
		sum, err := fileSHA(path) // the raw whole-file read of #33804
		if err != nil {
			return "", err
		}
		name := path + ".corrupt." + sum[:16] + ".bak"
		if _, err := os.Stat(name); err == nil {
			return name, nil
		}
		return name, copySet(path, name)
	case BackupSQLite:
		return sqliteBackup(ctx, path, proc)
	}
	return "", fmt.Errorf("kanban: unknown backup mode %q (valid: %s)", mode, strings.Join(BackupModes, ", "))
}

// copySet copies the DB and whatever -wal/-shm exist with plain file reads,
// as shutil.copy2 does: the mechanism M1c.
func copySet(path, name string) error {
	for _, suffix := range []string{"", "-wal", "-shm"} {
		err := copyFile(path+suffix, name+suffix)
		if errors.Is(err, fs.ErrNotExist) && suffix != "" {
			continue
		}
		if err != nil {
			return fmt.Errorf("kanban: back up %s: %w", path, err)
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
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func fileSHA(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// backuper is the online-backup method of modernc's driver connection.
type backuper interface {
	NewBackup(dstURI string) (*sqlite.Backup, error)
}

// BackupTo copies the DB at src into the new file dst with SQLite's online
// backup API, from a read-only connection: all pages in one step, so the
// copy is one consistent snapshot (WAL content included) even while other
// processes write, and the source is never opened outside SQLite. Pages are
// copied without being interpreted, so a DB with a damaged B-tree still
// copies; one SQLite cannot read at all fails with its error (NOTADB …).
//
// immutable opens src with immutable=1 instead: no locks, no -wal or -shm
// created. That is only right for a file no process has open, and a caller
// must check afterwards that the file did not change while it was read.
func BackupTo(ctx context.Context, src, dst string, immutable bool) error {
	uri := readOnlyURI(src)
	if immutable {
		uri = FileURI(src) + "?immutable=1"
	}
	db, err := sql.Open("sqlite", uri)
	if err != nil {
		return err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		b, ok := dc.(backuper)
		if !ok {
			return fmt.Errorf("kanban: the SQLite driver has no online backup (%T)", dc)
		}
		bk, err := b.NewBackup(FileURI(dst))
		if err != nil {
			return err
		}
		for more := true; more; {
			if more, err = bk.Step(-1); err != nil {
				bk.Finish()
				return err
			}
		}
		return bk.Finish()
	})
}

// sqliteBackup is the fixed backup: through SQLite into a private temporary
// file, named by that copy's content, kept once per content.
func sqliteBackup(ctx context.Context, path string, proc *Process) (string, error) {
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := path + ".corrupt.tmp-" + hex.EncodeToString(rnd[:])
	defer os.Remove(tmp)
	defer os.Remove(tmp + "-journal")
	proc.add(path, 1)
	err := BackupTo(ctx, path, tmp, false)
	proc.add(path, -1)
	if err != nil {
		os.Remove(tmp)
		if code, ok := Code(err); !ok || code&0xff != 26 {
			return "", fmt.Errorf("kanban: back up %s through SQLite: %w", path, err)
		}
		// Not a database to SQLite: only the bytes themselves are left to
		// keep, and reading them is safe only while no connection of this
		// process can lose its locks by it (checked and copied under the
		// registry's lock).
		copied := false
		if err := proc.whileAlone(path, func() error { copied = true; return copyFile(path, tmp) }); err != nil {
			return "", fmt.Errorf("kanban: back up %s: %w", path, err)
		}
		if !copied {
			return "", fmt.Errorf("kanban: %s is not readable by SQLite and this process holds connections to it: no plain copy while they live", path)
		}
	}
	sum, err := fileSHA(tmp) // our own private copy: no one else has it open
	if err != nil {
		return "", fmt.Errorf("kanban: back up %s: %w", path, err)
	}
	name := path + ".corrupt." + sum[:16] + ".bak"
	if _, err := os.Stat(name); err == nil {
		return name, nil
	}
	if err := os.Rename(tmp, name); err != nil {
		return "", fmt.Errorf("kanban: back up %s: %w", path, err)
	}
	return name, nil
}

package oracle

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// boardSuffixes are the files a board is made of.
var boardSuffixes = []string{"", "-wal", "-shm", "-journal"}

// CopyBoard copies the board and whatever sidecars exist (-wal, -shm,
// -journal) into dir, returning the copy's path. Plain file reads: only for
// a board no connection of this process has open (M1). The files are read
// twice and copied only when both reads agree: a connection still open
// elsewhere may checkpoint and delete the -wal between the reads of the DB
// and of its -wal, and a DB read before that checkpoint without the -wal
// read after it is the board as of its last checkpoint — commits missing
// that are not lost (m2-eio-downgrade seed 1820973897 on fixed: 9 of 585
// commits "lost" that the stored board holds). Files that keep changing
// are ErrBoardBusy.
func CopyBoard(path, dir string) (string, error) { return copyBoard(path, dir, nil) }

// copyBoard is CopyBoard; between, if set, runs once after the first read
// of the DB file and before its sidecars are read (tests race a checkpoint
// there).
func copyBoard(path, dir string, between func()) (string, error) {
	dst := filepath.Join(dir, filepath.Base(path))
	for try := 0; try < 5; try++ {
		if try > 0 {
			time.Sleep(time.Duration(try) * 20 * time.Millisecond)
		}
		first, err := readBoardFiles(path, between)
		between = nil
		if err != nil {
			return "", err
		}
		again, err := readBoardFiles(path, nil)
		if err != nil {
			return "", err
		}
		if !sameFiles(first, again) {
			continue
		}
		for i, data := range first {
			if data == nil {
				continue
			}
			if err := os.WriteFile(dst+boardSuffixes[i], data, 0o644); err != nil {
				return "", fmt.Errorf("oracle: copy board: %w", err)
			}
		}
		return dst, nil
	}
	return "", fmt.Errorf("%w: its files changed under every copy (a connection still had it open)", ErrBoardBusy)
}

// readBoardFiles reads each of the board's files; nil for a sidecar that
// does not exist.
func readBoardFiles(path string, between func()) ([][]byte, error) {
	out := make([][]byte, len(boardSuffixes))
	for i, suffix := range boardSuffixes {
		data, err := os.ReadFile(path + suffix)
		switch {
		case errors.Is(err, os.ErrNotExist) && suffix != "":
		case err != nil:
			return nil, fmt.Errorf("oracle: copy board: %w", err)
		default:
			out[i] = data
		}
		if i == 0 && between != nil {
			between()
		}
	}
	return out, nil
}

func sameFiles(a, b [][]byte) bool {
	for i := range a {
		if (a[i] == nil) != (b[i] == nil) || !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

package cli

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Limits on what the input readers take: a schedule is a few KiB, a shard's
// output a few MiB; anything larger is not what the user meant to pass.
const (
	maxScheduleBytes = 16 << 20
	maxShardBytes    = 256 << 20
)

// errInput marks an input the user must fix (exit 2).
var errInput = errors.New("bad input")

// readInput reads a regular file of at most limit bytes. A FIFO, a device
// or a directory is refused before anything is read (a read could block
// forever or never end), and so is a file over the limit.
func readInput(path string, limit int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", errInput, path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is %s, not a regular file", errInput, path, fileKind(fi.Mode()))
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than the %d this input can be", errInput, path, fi.Size(), limit)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errInput, err)
	}
	defer f.Close()
	// The file may grow after the stat: never read past the limit.
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%w: %s grew past %d bytes while being read", errInput, path, limit)
	}
	return data, nil
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

// checkReportOut refuses a report path that would overwrite what is not a
// report: any existing file not ending in .html, and any file of the
// artifacts directory dir other than an .html one (its board, ledger and
// verdict are the evidence).
func checkReportOut(dir, out string) error {
	if out == "" {
		return nil
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("%w: --out %s: %v", errInput, out, err)
	}
	if !strings.HasSuffix(strings.ToLower(abs), ".html") {
		if _, err := os.Lstat(abs); err == nil {
			return fmt.Errorf("%w: --out %s exists and is not an .html file: it would be overwritten with the report", errInput, out)
		}
		if d, err := filepath.Abs(dir); err == nil && strings.HasPrefix(abs, d+string(filepath.Separator)) {
			return fmt.Errorf("%w: --out %s lies inside the artifacts %s: name it *.html", errInput, out, dir)
		}
	}
	return nil
}

// checkOutputs refuses, before anything runs, output paths that could not
// be written when the work is done: a campaign must never run for an hour
// to fail on its --junit path. flags maps a flag name to its value; an
// empty value is no output. Directories (dirs) must be, or be creatable in,
// a writable directory; files must not be directories and must be
// writable or creatable. Nothing is left behind here.
func checkOutputs(dirs, files map[string]string) error {
	for _, name := range slices.Sorted(maps.Keys(dirs)) {
		if err := checkWritable(name, dirs[name], true); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if err := checkWritable(name, files[name], false); err != nil {
			return err
		}
	}
	return nil
}

func checkWritable(flagName, path string, dir bool) error {
	if path == "" {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("%w: --%s %s: %v", errInput, flagName, path, err)
	}
	if fi, err := os.Stat(abs); err == nil {
		switch {
		case dir && !fi.IsDir():
			return fmt.Errorf("%w: --%s %s is %s, not a directory", errInput, flagName, path, fileKind(fi.Mode()))
		case !dir && fi.IsDir():
			return fmt.Errorf("%w: --%s %s is a directory, not a file", errInput, flagName, path)
		case !dir && !fi.Mode().IsRegular():
			return fmt.Errorf("%w: --%s %s is %s, not a regular file", errInput, flagName, path, fileKind(fi.Mode()))
		}
		if err := probeWrite(abs, fi.IsDir()); err != nil {
			return fmt.Errorf("%w: --%s %s is not writable: %v", errInput, flagName, path, err)
		}
		return nil
	}
	// Not there yet: it is created in its nearest existing ancestor, which
	// must be a directory this user may write.
	parent := filepath.Dir(abs)
	for {
		fi, err := os.Stat(parent)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("%w: --%s %s: %s is not a directory", errInput, flagName, path, parent)
			}
			if err := probeWrite(parent, true); err != nil {
				return fmt.Errorf("%w: --%s %s cannot be created: %s is not writable (%v)", errInput, flagName, path, parent, err)
			}
			if !dir && parent != filepath.Dir(abs) {
				return fmt.Errorf("%w: --%s %s: directory %s does not exist", errInput, flagName, path, filepath.Dir(abs))
			}
			return nil
		}
		if parent == filepath.Dir(parent) {
			return fmt.Errorf("%w: --%s %s: %v", errInput, flagName, path, err)
		}
		parent = filepath.Dir(parent)
	}
}

// probeWrite tries what the output will need: a file created (and removed
// at once) in a directory, or an existing file opened for writing without
// truncating it. Permission bits alone do not tell (root, /proc, a
// read-only mount).
func probeWrite(path string, dir bool) error {
	if dir {
		f, err := os.CreateTemp(path, ".kanbanchaos-probe-")
		if err != nil {
			return err
		}
		f.Close()
		return os.Remove(f.Name())
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

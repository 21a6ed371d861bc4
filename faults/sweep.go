package faults

// The start-up sweep: what power-loss runs killed outright left mounted.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ownerFile in <sandbox>/powerloss names the process that mounted there.
const ownerFile = "owner"

// processID is "pid starttime": unlike a bare pid, it is never reused.
func processID(pid int) string {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	// The fields after the parenthesised command name (which may hold
	// spaces); starttime is field 22 of the line, the 20th after it.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return strconv.Itoa(pid) + " " + f[19]
}

// sweepStale unmounts and detaches what power-loss runs left behind when
// their process was SIGKILLed (no deferred cleanup ran), in whatever temp
// directory they lay (a test binary's own TMPDIR, another user setting): a
// leaked mount or loop device would otherwise pile up and poison later
// runs. A sandbox counts as abandoned only if its owner file names a
// process that is gone; without an owner file it is left alone (a run just
// starting), unless its image was deleted, which no live run does before
// detaching. Best effort: what fails here is retried by the next run. It
// returns what it did, for the run to report.
func sweepStale(ctx context.Context) (swept []string) {
	abandoned := func(root string) bool {
		data, err := os.ReadFile(filepath.Join(root, "powerloss", ownerFile))
		if err != nil {
			return false
		}
		id := strings.TrimSpace(string(data))
		pid, _, _ := strings.Cut(id, " ")
		n, err := strconv.Atoi(pid)
		return err == nil && processID(n) != id
	}
	// A sandbox is a kanbanchaos-… directory; whose it is, its owner file
	// says.
	sandbox := func(root string) bool { return strings.HasPrefix(filepath.Base(root), "kanbanchaos-") }
	for _, mp := range MountPoints() {
		root := ""
		switch {
		case strings.HasSuffix(mp, "/home"):
			root = strings.TrimSuffix(mp, "/home")
		case strings.HasSuffix(mp, "/powerloss/crash"):
			root = strings.TrimSuffix(mp, "/powerloss/crash")
		}
		if root != "" && sandbox(root) && abandoned(root) {
			if _, err := command(ctx, "umount", "--lazy", mp); err == nil {
				swept = append(swept, "unmounted "+mp)
			} else {
				swept = append(swept, fmt.Sprintf("could not unmount %s: %v", mp, err))
			}
		}
	}
	out, err := command(ctx, "losetup", "--list", "--noheadings", "--output", "NAME,BACK-FILE")
	if err != nil {
		return swept
	}
	for _, line := range strings.Split(out, "\n") {
		dev, back, ok := strings.Cut(strings.TrimSpace(line), " ")
		back = strings.TrimSpace(back)
		if !ok {
			continue
		}
		deleted := strings.HasSuffix(back, " (deleted)")
		image := strings.TrimSuffix(back, " (deleted)")
		root := filepath.Dir(filepath.Dir(image))
		if filepath.Base(filepath.Dir(image)) != "powerloss" || !sandbox(root) {
			continue
		}
		if deleted || abandoned(root) {
			if _, err := command(ctx, "losetup", "--detach", dev); err == nil {
				swept = append(swept, "detached "+dev+" ("+back+")")
			} else {
				swept = append(swept, fmt.Sprintf("could not detach %s (%s): %v", dev, back, err))
			}
		}
	}
	return swept
}

package faults

// The loop disk under a power-loss run: an ext4 image file attached to a
// loop device and mounted, the system tools that do it, and what the
// machine must offer for it (root, CAP_SYS_ADMIN, loop devices).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PowerLossSupported probes, without side effects, for what the fault
// needs: root with CAP_SYS_ADMIN (mount, losetup), a loop-control device
// with a free loop device, and the tools.
func PowerLossSupported() (ok bool, why string) {
	if os.Geteuid() != 0 {
		return false, fmt.Sprintf("running as uid %d, not root", os.Geteuid())
	}
	if !hasCapSysAdmin() {
		return false, "no CAP_SYS_ADMIN (an unprivileged container?)"
	}
	for _, t := range []string{"mkfs.ext4", "losetup", "mount", "umount", "cp"} {
		if _, err := findTool(t); err != nil {
			return false, err.Error()
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return false, "no /dev/loop-control: " + err.Error()
	}
	losetup, _ := findTool("losetup")
	if out, err := exec.Command(losetup, "--find").CombinedOutput(); err != nil {
		return false, fmt.Sprintf("losetup --find: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return true, ""
}

// hasCapSysAdmin reads the effective capability set of this process.
func hasCapSysAdmin() bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			return err == nil && caps&(1<<unix.CAP_SYS_ADMIN) != 0
		}
	}
	return false
}

// findTool finds a system tool on PATH or, since root's tools live there and
// PATH under `go test` or sudo may lack them, in /usr/sbin and /sbin.
func findTool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (PATH, /usr/sbin, /sbin)", name)
}

// command runs a system tool in its own process group, killed with the
// group when ctx ends and with this process (Pdeathsig), and returns its
// stdout; the error carries stderr.
func command(ctx context.Context, name string, args ...string) (string, error) {
	path, err := findTool(name)
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, path, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// loopDisk is an ext4 file system in an image file, attached to a loop
// device and mounted at dir.
type loopDisk struct {
	image, dir string
}

// mountFresh creates a new sizeMB ext4 image (sparse) and mounts it at dir
// with commit=1: the journal commits every second, as in the measured setup.
func mountFresh(ctx context.Context, image, dir string, sizeMB int) (*loopDisk, error) {
	f, err := os.OpenFile(image, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("powerloss: create image: %w", err)
	}
	err = f.Truncate(int64(sizeMB) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("powerloss: size image: %w", err)
	}
	if _, err := command(ctx, "mkfs.ext4", "-q", "-F", image); err != nil {
		return nil, fmt.Errorf("powerloss: %w", err)
	}
	// noinit_itable: no background zeroing of inode tables writing to the
	// image while it is copied.
	return mountImage(ctx, image, dir, "commit=1,noinit_itable")
}

// mountImage attaches image to a free loop device and mounts it at dir
// (read-write, so ext4 replays its journal). On failure nothing stays
// attached or mounted.
func mountImage(ctx context.Context, image, dir, opts string) (d *loopDisk, err error) {
	d = &loopDisk{image: image, dir: dir}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return d, fmt.Errorf("powerloss: mountpoint: %w", err)
	}
	out, err := command(ctx, "losetup", "--find", "--show", image)
	if err != nil {
		return d, fmt.Errorf("powerloss: attach %s: %w", filepath.Base(image), err)
	}
	dev := strings.TrimSpace(out)
	args := []string{"-t", "ext4"}
	if opts != "" {
		args = append(args, "-o", opts)
	}
	if _, err := command(ctx, "mount", append(args, dev, dir)...); err != nil {
		return d, fmt.Errorf("powerloss: mount %s: %w", filepath.Base(image), err)
	}
	return d, nil
}

// Cut copies the backing image to dest as a power cut leaves the disk: no
// sync of the mounted file system first, so dirty pages that never reached
// the loop device are not in the copy. cp is a separate process and reads
// the image, which is no SQLite file, so it cannot touch any lock.
func (d *loopDisk) Cut(ctx context.Context, dest string) error {
	if _, err := command(ctx, "cp", "--sparse=always", d.image, dest); err != nil {
		return fmt.Errorf("powerloss: copy image: %w", err)
	}
	return nil
}

// Close unmounts the file system and detaches every loop device backed by
// the image. It is safe to call more than once and on a disk that was only
// partly set up; it runs on a context of its own, since it must also run
// after the run's deadline. A mount that stays busy is detached lazily, so
// no mount point is left behind.
func (d *loopDisk) Close() error {
	if d == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	var errs []error
	if isMounted(d.dir) {
		var err error
		for try := 0; try < 40; try++ {
			if _, err = command(ctx, "umount", d.dir); err == nil || !isMounted(d.dir) {
				err = nil
				break
			}
			time.Sleep(50 * time.Millisecond) // a just-killed process may still hold a file
		}
		if err != nil {
			if _, lerr := command(ctx, "umount", "--lazy", d.dir); lerr != nil {
				errs = append(errs, fmt.Errorf("powerloss: unmount %s: %w (lazy: %v)", d.dir, err, lerr))
			}
		}
	}
	devs, err := loopDevices(ctx, d.image)
	if err != nil {
		errs = append(errs, err)
	}
	for _, dev := range devs {
		// A device still in use (lazy unmount) is marked to detach itself
		// once its last user is gone.
		if _, err := command(ctx, "losetup", "--detach", dev); err != nil {
			errs = append(errs, fmt.Errorf("powerloss: detach: %w", err))
		}
	}
	return errors.Join(errs...)
}

// loopDevices lists the loop devices backed by image.
func loopDevices(ctx context.Context, image string) ([]string, error) {
	out, err := command(ctx, "losetup", "--associated", image)
	if err != nil {
		return nil, fmt.Errorf("powerloss: list loop devices of %s: %w", filepath.Base(image), err)
	}
	var devs []string
	for _, line := range strings.Split(out, "\n") {
		if dev, _, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(dev, "/dev/") {
			devs = append(devs, dev)
		}
	}
	return devs, nil
}

// isMounted reports whether dir is a mount point (per /proc/mounts).
func isMounted(dir string) bool {
	return slices.Contains(MountPoints(), dir)
}

// MountPoints lists the mount points in /proc/mounts, unescaped.
func MountPoints() []string {
	data, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 {
			out = append(out, unescapeMount(f[1]))
		}
	}
	return out
}

// unescapeMount undoes /proc/mounts' octal escapes (\040 for a space …).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

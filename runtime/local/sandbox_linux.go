//go:build linux

package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The sandbox child is ferry's own binary started again as
// argv[0] = sandboxArg0 with sandboxEnv=1 in an otherwise empty
// environment; it reads its sandboxSpec as JSON from file descriptor 3.
const (
	sandboxArg0 = "ferry-sandbox-init"
	sandboxEnv  = "FERRY_SANDBOX_INIT"
	sandboxFD   = 3
)

// sandboxSpec is what the sandbox child needs to become the replica.
type sandboxSpec struct {
	Rootfs string   `json:"rootfs"` // the unpacked image, shared by environments
	Data   string   `json:"data"`   // the environment's data directory, bound on Rootfs/data
	Dir    string   `json:"dir"`    // working directory inside the image
	UID    int      `json:"uid"`
	GID    int      `json:"gid"`
	Argv   []string `json:"argv"`
	Env    []string `json:"env"`
	Parent int      `json:"parent"` // ferry's pid, to notice its death
}

// MaybeSandboxInit turns the process into a sandboxed replica when ferry
// started it as one, and returns at once otherwise. cmd/ferry's main (and
// the TestMain of any test that runs sandboxed replicas) must call it
// first thing: a sandboxed replica is ferry's own binary started again in a
// private mount namespace, which binds the environment's data directory on
// /data inside the unpacked image, chroots into it, drops to uid/gid
// 65532 and executes the image's entrypoint. In a sandbox child it never
// returns: it becomes the app, or exits with status 127 after printing why
// it could not. As root, New refuses to run sandboxed replicas in a program
// that did not call it.
func MaybeSandboxInit() {
	sandboxInitCalled.Store(true)
	if len(os.Args) == 0 || os.Args[0] != sandboxArg0 || os.Getenv(sandboxEnv) != "1" {
		return
	}
	err := sandboxInit()
	fmt.Fprintf(os.Stderr, "ferry sandbox: %v\n", err)
	os.Exit(127)
}

// sandboxInitCalled records that the program calls MaybeSandboxInit, so
// that New refuses to sandbox replicas in a program that would not become
// them: started again, it would run its own main (or tests) instead.
var sandboxInitCalled atomic.Bool

// sandboxInit runs in the sandbox child; it returns only on failure.
func sandboxInit() error {
	f := os.NewFile(sandboxFD, "sandbox-spec")
	raw, err := io.ReadAll(io.LimitReader(f, 4<<20))
	f.Close()
	if err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	var s sandboxSpec
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	if len(s.Argv) == 0 || s.Rootfs == "" || s.Data == "" {
		return errors.New("read spec: incomplete")
	}
	// The parent asked for a new mount namespace; make sure nothing
	// mounted here propagates back to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := sandboxMounts(s.Rootfs, s.Data); err != nil {
		return err
	}
	if err := unix.Chroot(s.Rootfs); err != nil {
		return fmt.Errorf("chroot %s: %w", s.Rootfs, err)
	}
	if err := os.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	if s.Dir != "" {
		if err := os.Chdir(s.Dir); err != nil {
			return fmt.Errorf("chdir %s: %w", s.Dir, err)
		}
	}
	// Go's syscall.Setgroups/Setgid/Setuid apply to every thread.
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(s.GID); err != nil {
		return fmt.Errorf("setgid %d: %w", s.GID, err)
	}
	if err := syscall.Setuid(s.UID); err != nil {
		return fmt.Errorf("setuid %d: %w", s.UID, err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	// Changing credentials cleared the parent-death signal: set it again,
	// then make sure ferry did not die in between.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0, 0, 0); err != nil {
		return fmt.Errorf("pdeathsig: %w", err)
	}
	if os.Getppid() != s.Parent {
		return errors.New("ferry exited")
	}
	exe, err := lookPath(s.Argv[0], s.Env, "/")
	if err != nil {
		return err
	}
	return fmt.Errorf("exec %s: %w", exe, syscall.Exec(exe, s.Argv, s.Env))
}

// sandboxMounts builds the replica's view of the filesystem on the
// unpacked image at rootfs: the image itself read-only (every replica of
// every environment shares it), the environment's data directory on /data,
// a private tmpfs on /tmp, a /dev holding only null, zero, full, random and
// urandom, and the host's /etc/hosts and /etc/resolv.conf, read-only.
func sandboxMounts(rootfs, data string) error {
	in := func(p string) string { return filepath.Join(rootfs, p) }
	steps := []struct {
		what               string
		src, dst, fs, opts string
		flags              uintptr
	}{
		{"bind the image", rootfs, rootfs, "", "", unix.MS_BIND},
		{"bind " + data + " on " + dataMount, data, in(dataMount), "", "", unix.MS_BIND},
		{"remount " + dataMount, "", in(dataMount), "", "", unix.MS_BIND | unix.MS_REMOUNT | unix.MS_NOSUID | unix.MS_NODEV},
		{"mount /tmp", "tmpfs", in("/tmp"), "tmpfs", "mode=1777,size=" + sandboxTmpSize, unix.MS_NOSUID | unix.MS_NODEV},
		{"mount /dev", "tmpfs", in("/dev"), "tmpfs", "mode=755,size=64k", unix.MS_NOSUID | unix.MS_NOEXEC},
	}
	for _, st := range steps {
		if err := unix.Mount(st.src, st.dst, st.fs, st.flags, st.opts); err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	for _, d := range []string{"null", "zero", "full", "random", "urandom"} {
		host, dst := "/dev/"+d, in("/dev/"+d)
		if _, err := os.Stat(host); err != nil {
			continue
		}
		if err := os.WriteFile(dst, nil, 0o666); err != nil {
			return fmt.Errorf("/dev/%s: %w", d, err)
		}
		if err := unix.Mount(host, dst, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", d, err)
		}
	}
	for _, f := range mountFiles {
		if _, err := os.Stat(f); err != nil {
			continue
		}
		if err := unix.Mount(f, in(f), "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind %s: %w", f, err)
		}
		if err := unix.Mount("", in(f), "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
			return fmt.Errorf("remount %s read-only: %w", f, err)
		}
	}
	// Last, as it stops creating anything in the image.
	if err := unix.Mount("", rootfs, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("remount the image read-only: %w", err)
	}
	return nil
}

// sandboxTmpSize bounds a sandboxed replica's /tmp, which lives in memory.
const sandboxTmpSize = "128m"

// sandboxCommand returns the command that starts a sandboxed replica and
// a function that hands it the spec once it has started.
func sandboxCommand(s sandboxSpec) (*exec.Cmd, func() error, error) {
	s.Parent = os.Getpid()
	raw, err := json.Marshal(s)
	if err != nil {
		return nil, nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       []string{sandboxArg0},
		Env:        []string{sandboxEnv + "=1"},
		ExtraFiles: []*os.File{r},
		SysProcAttr: &syscall.SysProcAttr{
			Setpgid:      true,
			Pdeathsig:    syscall.SIGKILL,
			Unshareflags: syscall.CLONE_NEWNS,
		},
	}
	started := func() error {
		r.Close()
		_, err := w.Write(raw)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		return err
	}
	return cmd, started, nil
}

// sandboxAvailable reports whether replicas can be sandboxed: ferry runs
// as root.
func sandboxAvailable() bool { return os.Geteuid() == 0 }

// sandboxReady reports whether this program can start sandboxed replicas:
// it called MaybeSandboxInit.
func sandboxReady() bool { return sandboxInitCalled.Load() }

// plainSysProcAttr makes a plain replica its own process group leader
// that dies with ferry.
func plainSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the process group led by p.
func signalGroup(p *os.Process, sig syscall.Signal) error {
	return syscall.Kill(-p.Pid, sig)
}

// lockFile takes an exclusive lock on the file at name, creating it,
// waiting for other holders until ctx ends.
func lockFile(ctx context.Context, name string) (unlock func(), err error) {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, context.Cause(ctx)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// owner is the uid owning a file.
func owner(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}

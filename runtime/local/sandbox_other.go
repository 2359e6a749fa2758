//go:build !linux

package local

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// MaybeSandboxInit returns at once: sandboxed replicas need Linux.
func MaybeSandboxInit() {}

// sandboxSpec is unused outside Linux.
type sandboxSpec struct {
	Rootfs, Data, Dir string
	UID, GID          int
	Argv, Env         []string
}

func sandboxCommand(sandboxSpec) (*exec.Cmd, func() error, error) {
	return nil, nil, errors.New("sandboxed replicas need Linux")
}

// sandboxAvailable is false outside Linux.
func sandboxAvailable() bool { return false }

func sandboxReady() bool { return false }

func plainSysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup signals the process itself: without process groups its
// children are not reached.
func signalGroup(p *os.Process, sig syscall.Signal) error { return p.Signal(sig) }

// lockFile takes no lock outside Linux: two processes unpacking the same
// image at once both unpack it, and the rename keeps one.
func lockFile(ctx context.Context, name string) (func(), error) { return func() {}, nil }

// owner is unknown outside Linux.
func owner(fi os.FileInfo) int { return -1 }

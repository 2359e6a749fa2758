//go:build !linux

package local

import (
	"context"
	"os"
	"syscall"
)

// isRoot is false outside Linux: replicas are contained only there.
func isRoot() bool { return false }

func runcSysProcAttr() *syscall.SysProcAttr { return nil }

func plainSysProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup signals the process itself: without process groups its
// children are not reached.
func signalGroup(p *os.Process, sig syscall.Signal) error { return p.Signal(sig) }

// lockFile takes no lock outside Linux: two processes unpacking the same
// image at once both unpack it, and the rename keeps one.
func lockFile(ctx context.Context, name string) (func(), error) { return func() {}, nil }

// owner is unknown outside Linux.
func owner(fi os.FileInfo) int { return -1 }

func unixSignalName(sig syscall.Signal) string { return "" }

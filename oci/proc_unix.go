//go:build unix

package oci

import (
	"os/exec"
	"syscall"
)

// killGroup runs cmd in its own process group and, on cancellation, kills
// the whole group: a shell's children (docker build, …) go with it.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}

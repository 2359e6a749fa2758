//go:build unix

package source

import (
	"os/exec"
	"syscall"
)

// detach starts cmd in its own session, so that neither git nor the ssh it
// may start has a controlling terminal to prompt on, and makes cancellation
// kill the whole process group (git and its ssh or credential helpers).
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

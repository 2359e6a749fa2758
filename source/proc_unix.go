//go:build unix

package source

import (
	"os/exec"
	"syscall"
)

// detach starts cmd in its own session, so that neither git nor the ssh it
// may start has a controlling terminal to prompt on, and makes cancellation
// kill the whole process group (git and its ssh or credential helpers).
// Where the kernel can, git also dies with ferry (dieWithParent): a git
// left running by a killed ferry would hold or leave locks in the cache
// that the next ferry takes for stale (clearStaleLocks).
func detach(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	dieWithParent(cmd.SysProcAttr)
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

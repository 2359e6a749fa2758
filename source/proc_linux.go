package source

import "syscall"

// dieWithParent has the kernel SIGKILL the child when ferry dies.
func dieWithParent(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }

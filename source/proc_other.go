//go:build !unix

package source

import "os/exec"

// detach does nothing where sessions and process groups do not exist; the
// command context still kills git itself.
func detach(*exec.Cmd) {}

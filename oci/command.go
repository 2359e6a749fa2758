package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// CommandBuild describes an image built and pushed by the user's own
// command, for apps that are not plain Go (a Dockerfile, ko, a Makefile).
type CommandBuild struct {
	// Dir is the working directory (a clean worktree of the commit).
	Dir string
	// Command is run with sh -c.
	Command string
	// Env is added to the command's environment: FERRY_IMAGE,
	// FERRY_COMMIT, FERRY_SHORT_COMMIT, FERRY_BRANCH, FERRY_REGISTRY, ….
	Env []string
	// Ref is the tag reference the command must push; FERRY_IMAGE is set
	// to it unless Env sets it.
	Ref string
}

// RunCommand runs b.Command, streaming its output to log line by line. A
// command that exits non-zero is an error quoting its last line of output.
// The caller then resolves the pushed digest with Publisher.Resolve.
func RunCommand(ctx context.Context, b CommandBuild, log io.Writer) error {
	if strings.TrimSpace(b.Command) == "" {
		return errors.New("build command: empty")
	}
	if b.Dir == "" {
		return errors.New("build command: no working directory")
	}
	if b.Ref == "" {
		return errors.New("build command: no image reference to push")
	}
	env := append(os.Environ(), b.Env...)
	if !hasEnv(b.Env, "FERRY_IMAGE") {
		env = append(env, "FERRY_IMAGE="+b.Ref)
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", b.Command)
	cmd.Dir = b.Dir
	cmd.Env = env
	if log == nil {
		log = io.Discard
	}
	fmt.Fprintf(log, "$ %s\n", b.Command)
	return run(ctx, cmd, "build command", log, lastLine)
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

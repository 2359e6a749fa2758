package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// StartConfig says how to start a node.
type StartConfig struct {
	// Exe and Args run the node: ferry's binary and
	// ["node", "--data-dir", DataDir].
	Exe  string
	Args []string
	// DataDir is the node's data directory; its log goes to LogPath.
	DataDir string
	// Timeout bounds the wait for the node to answer (15 s when 0).
	Timeout time.Duration
}

// Ensure returns once the node of c answers, starting it first when none
// does: detached (its own session, so neither a Ctrl-C in ferry's
// terminal nor ferry's death reaches it), its output appended to
// LogPath(DataDir). started says whether it started one.
func (c *Client) Ensure(ctx context.Context, sc StartConfig) (started bool, err error) {
	if _, err := c.Health(ctx); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(nodeDir(sc.DataDir), 0o700); err != nil {
		return false, fmt.Errorf("start node: %w", err)
	}
	logf, err := os.OpenFile(LogPath(sc.DataDir), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return false, fmt.Errorf("start node: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(sc.Exe, sc.Args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("start node: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it, should it die while ferry runs
	timeout := sc.Timeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := c.Health(ctx); err == nil {
			return true, nil
		}
		select {
		case err := <-exited:
			if _, herr := c.Health(ctx); herr == nil {
				return false, nil // another one won the race to start
			}
			return false, fmt.Errorf("start node: it exited (%v); see %s", err, LogPath(sc.DataDir))
		case <-deadline.C:
			return false, fmt.Errorf("start node: no answer within %v; see %s", timeout, LogPath(sc.DataDir))
		case <-ctx.Done():
			return false, ctx.Err()
		case <-tick.C:
		}
	}
}

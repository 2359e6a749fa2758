// Package oci turns a commit into an OCI image and publishes it, without a
// container daemon.
//
// BuildGo compiles a Go main package into a static binary and assembles a
// small non-root image around it, with fixed timestamps so that one commit
// always yields one digest. A Publisher then pushes, tags, resolves and pulls
// images in one repository of any OCI registry, retrying while the registry
// is unavailable.
package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"
)

// maxLine bounds the bytes held for one line of command output; a longer
// line is passed on in pieces.
const maxLine = 64 << 10

// tailLines is how many of a command's last output lines an error keeps.
const tailLines = 20

// lineWriter passes a command's output on to w one whole line per Write,
// and remembers the last lines for the error message.
type lineWriter struct {
	w    io.Writer
	buf  []byte
	tail []string
}

func (lw *lineWriter) Write(p []byte) (int, error) {
	lw.buf = append(lw.buf, p...)
	for {
		i := bytes.IndexByte(lw.buf, '\n')
		if i < 0 {
			for len(lw.buf) >= maxLine {
				lw.emit(lw.buf[:maxLine])
				lw.buf = lw.buf[maxLine:]
			}
			return len(p), nil
		}
		lw.emit(lw.buf[:i])
		lw.buf = lw.buf[i+1:]
	}
}

// flush passes on a last line that had no newline.
func (lw *lineWriter) flush() {
	if len(lw.buf) > 0 {
		lw.emit(lw.buf)
		lw.buf = nil
	}
}

func (lw *lineWriter) emit(line []byte) {
	s := strings.TrimRight(string(line), "\r")
	// A failing log sink must not fail the build; its output is lost.
	lw.w.Write([]byte(s + "\n"))
	if len(lw.tail) == tailLines {
		lw.tail = append(lw.tail[:0], lw.tail[1:]...)
	}
	lw.tail = append(lw.tail, s)
}

// commandError is a command that ran and failed. All its output went to the
// log; the error names the command and quotes one telling line of it.
type commandError struct {
	what    string // "go build ./cmd/app", "build command"
	err     error
	summary string
}

func (e *commandError) Error() string {
	if e.summary == "" {
		return fmt.Sprintf("%s: %v", e.what, e.err)
	}
	return fmt.Sprintf("%s: %v: %s", e.what, e.err, e.summary)
}

func (e *commandError) Unwrap() error { return e.err }

// run runs cmd with its output streamed to log line by line. pick chooses
// the line of the output tail that the error message quotes.
func run(ctx context.Context, cmd *exec.Cmd, what string, log io.Writer, pick func(tail []string) string) error {
	if log == nil {
		log = io.Discard
	}
	lw := &lineWriter{w: log}
	cmd.Stdout = lw
	cmd.Stderr = lw
	cmd.WaitDelay = 5 * time.Second
	killGroup(cmd)
	err := cmd.Run()
	lw.flush()
	if err == nil {
		return nil
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w", what, ctxErr)
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return &commandError{what: what, err: err, summary: pick(lw.tail)}
}

// lastLine picks the last non-blank line: where shell commands say what went
// wrong.
func lastLine(tail []string) string {
	for i := len(tail) - 1; i >= 0; i-- {
		if s := strings.TrimSpace(tail[i]); s != "" {
			return s
		}
	}
	return ""
}

package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ferryhq/ferry/parts"
)

// serverBinary is the binary that links ferry's server parts: every command
// of ferry's, and those that run the parts in its own process.
const serverBinary = "ferryd"

// serverParts are what the commands serve, node, demo and key run: the
// parts this binary links, or none, and then the hand-off to ferryd.
type serverParts struct {
	p   parts.Parts
	off handOff
}

// run makes a command's RunE out of fn, which gets the parts: here when
// this binary has them, else the command line goes to ferryd, flags
// already checked by this one (both parse them alike: they are the same
// commands).
func (sp serverParts) run(fn func(p parts.Parts, cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if sp.p == nil {
			return sp.off.run(cmd)
		}
		return fn(sp.p, cmd, args)
	}
}

// handOff runs a command line in ferryd in place of this process: same
// PID, arguments, environment, terminal and signals, as if the user had
// typed ferryd.
type handOff struct {
	args       []string // the command line after the program's name
	executable func() (string, error)
	lookPath   func(string) (string, error)
	exec       func(path string, argv, env []string) error
}

func newHandOff(args []string) handOff {
	return handOff{args: args, executable: os.Executable, lookPath: exec.LookPath, exec: syscall.Exec}
}

// find returns ferryd's path: beside this executable (symlinks resolved,
// so that an installed pair stays a pair), else the first on PATH.
func (h handOff) find() (string, error) {
	var beside string
	if exe, err := h.executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		beside = filepath.Join(filepath.Dir(exe), serverBinary)
		if fi, err := os.Stat(beside); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return beside, nil
		}
	}
	if path, err := h.lookPath(serverBinary); err == nil {
		return path, nil
	} else if !errors.Is(err, exec.ErrNotFound) && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("look for %s on PATH: %w", serverBinary, err)
	}
	where := serverBinary + " on PATH"
	if beside != "" {
		where = beside + " nor " + where
	}
	return "", fmt.Errorf("found neither %s", where)
}

func (h handOff) run(cmd *cobra.Command) error {
	path, err := h.find()
	if err != nil {
		return fmt.Errorf("%s runs ferry's server parts, which are in the %s binary, not in this client: %w; "+
			"install both (from ferry's repository: go install ./cmd/ferry ./cmd/%s), or run it there: go run ./cmd/%s %s",
			cmd.CommandPath(), serverBinary, err, serverBinary, serverBinary, shellWords(h.args))
	}
	err = h.exec(path, append([]string{path}, h.args...), os.Environ())
	return fmt.Errorf("run %s: %w", path, err)
}

// shellWords joins args as a shell would read them back: each with a
// character outside the plain ones single-quoted, so that the command in
// an error can be pasted.
func shellWords(args []string) string {
	words := make([]string, len(args))
	for i, a := range args {
		plain := a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-") == ""
		if plain {
			words[i] = a
		} else {
			words[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(words, " ")
}

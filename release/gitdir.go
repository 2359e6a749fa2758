package release

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/ferryhq/ferry"
)

// GitDir is a repository on disk read with the git command line: the
// repository a git server's hook runs in. Git's own environment is kept
// (GIT_QUARANTINE_PATH, GIT_OBJECT_DIRECTORY,
// GIT_ALTERNATE_OBJECT_DIRECTORIES), so inside a pre-receive hook the
// objects of the push being received are visible. GitDir only reads.
type GitDir struct {
	// Path is the git directory (a bare repository, or a work tree's .git).
	Path string
}

// gitError is a failed git command with its trimmed standard error.
type gitError struct {
	args   []string
	stderr string
	err    error
}

func (e *gitError) Error() string {
	s := "git " + strings.Join(e.args, " ") + ": " + e.err.Error()
	if e.stderr != "" {
		s += ": " + e.stderr
	}
	return s
}

func (e *gitError) Unwrap() error { return e.err }

// exitCode is git's exit status, -1 when it did not exit normally.
func (e *gitError) exitCode() int {
	if x, ok := errors.AsType[*exec.ExitError](e.err); ok {
		return x.ExitCode()
	}
	return -1
}

func (g GitDir) git(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"--git-dir=" + g.Path}, args...)...)
	cmd.Env = append(os.Environ(), "LC_ALL=C", "GIT_TERMINAL_PROMPT=0")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, &gitError{args: args, stderr: strings.TrimSpace(stderr.String()), err: err}
	}
	return stdout.Bytes(), nil
}

// resolve returns the commit rev names, ferry.ENOTFOUND if none.
func (g GitDir) resolve(ctx context.Context, rev string) (string, error) {
	if rev == "" || strings.HasPrefix(rev, "-") {
		return "", ferry.Errorf(ferry.EINVALID, "invalid revision %q", rev)
	}
	out, err := g.git(ctx, "rev-parse", "--verify", "--quiet", "--end-of-options", rev+"^{commit}")
	if e, ok := errors.AsType[*gitError](err); ok && e.exitCode() == 1 {
		return "", ferry.Errorf(ferry.ENOTFOUND, "%s is not a commit of %s", ferry.ShortSHA(rev), g.Path)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// Head returns the commit at branch's tip, ferry.ENOTFOUND if the branch
// does not exist.
func (g GitDir) Head(ctx context.Context, branch string) (string, error) {
	if branch == "" || strings.HasPrefix(branch, "-") {
		return "", ferry.Errorf(ferry.EINVALID, "invalid branch %q", branch)
	}
	ref := "refs/heads/" + branch
	out, err := g.git(ctx, "for-each-ref", "--format=%(objectname) %(refname)", ref)
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(out)) {
		sha, name, _ := strings.Cut(strings.TrimSpace(line), " ")
		if name == ref {
			return sha, nil
		}
	}
	return "", ferry.Errorf(ferry.ENOTFOUND, "branch %q not found in %s", branch, g.Path)
}

// IsAncestor reports whether ancestor is reachable from descendant;
// unknown commits are ferry.ENOTFOUND.
func (g GitDir) IsAncestor(ctx context.Context, ancestor, descendant string) (bool, error) {
	a, err := g.resolve(ctx, ancestor)
	if err != nil {
		return false, err
	}
	d, err := g.resolve(ctx, descendant)
	if err != nil {
		return false, err
	}
	_, err = g.git(ctx, "merge-base", "--is-ancestor", a, d)
	if e, ok := errors.AsType[*gitError](err); ok && e.exitCode() == 1 {
		return false, nil
	}
	return err == nil, err
}

// Peel says whether object is an annotated tag and which commit it
// names ("" when it names no commit).
func (g GitDir) Peel(ctx context.Context, object string) (annotated bool, commit string, err error) {
	if !ferry.ValidCommit(object) {
		return false, "", ferry.Errorf(ferry.EINVALID, "invalid object id %q", object)
	}
	out, err := g.git(ctx, "cat-file", "-t", object)
	if err != nil {
		return false, "", fmt.Errorf("type of %s: %w", ferry.ShortSHA(object), err)
	}
	annotated = strings.TrimSpace(string(out)) == "tag"
	commit, err = g.resolve(ctx, object)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return annotated, "", nil
	}
	return annotated, commit, err
}

// Package gittest makes real git repositories for tests: commits carry a
// fixed identity and the time the test names, so commit times (lead
// times, release notes) are known in advance.
package gittest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/source"
)

// Repo is a git repository in a test's temporary directory, on master.
type Repo struct {
	t   testing.TB
	Dir string
}

// New initialises an empty repository.
func New(t testing.TB) *Repo {
	t.Helper()
	r := &Repo{t: t, Dir: filepath.Join(t.TempDir(), "app")}
	if err := os.MkdirAll(r.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.Git(time.Time{}, "init", "-q", "-b", "master")
	return r
}

// Git runs git in the repository with author and committer dates at (now
// when zero), no user or system configuration, and returns its trimmed
// output; a failure fails the test.
func (r *Repo) Git(at time.Time, args ...string) string {
	r.t.Helper()
	if at.IsZero() {
		at = time.Now()
	}
	cmd := exec.Command("git", args...)
	cmd.Dir = r.Dir
	date := at.Format(time.RFC3339)
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME=Ada", "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_AUTHOR_DATE="+date,
		"GIT_COMMITTER_NAME=Ada", "GIT_COMMITTER_EMAIL=ada@example.com", "GIT_COMMITTER_DATE="+date,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Commit makes an empty commit dated at and returns its id.
func (r *Repo) Commit(subject string, at time.Time) string {
	r.t.Helper()
	r.Git(at, "commit", "-q", "--allow-empty", "-m", subject)
	return r.Git(at, "rev-parse", "HEAD")
}

// Source is ferry's view of the repository, its cache fetched.
func (r *Repo) Source() *source.Repo {
	r.t.Helper()
	repo := source.Open(r.Dir, filepath.Join(r.t.TempDir(), "cache"), nil)
	if err := repo.Fetch(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	return repo
}

// Package gittest makes real git repositories for tests: commits carry a
// fixed identity and the time the test names (or, with CommitAll, a fixed
// clock), so commit ids and times (lead times, release notes) are known in
// advance.
package gittest

import (
	"context"
	"io"
	"io/fs"
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
	t      testing.TB
	Dir    string
	author string // "Ada" when empty
	n      int    // commits made by CommitAll
}

// Option configures a repository made by NewFrom.
type Option func(*Repo)

// Author makes the repository's commits carry name as author and
// committer instead of "Ada" (the e-mail stays ada@example.com).
func Author(name string) Option { return func(r *Repo) { r.author = name } }

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
	name := r.author
	if name == "" {
		name = "Ada"
	}
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME="+name, "GIT_AUTHOR_EMAIL=ada@example.com", "GIT_AUTHOR_DATE="+date,
		"GIT_COMMITTER_NAME="+name, "GIT_COMMITTER_EMAIL=ada@example.com", "GIT_COMMITTER_DATE="+date,
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

// Epoch is the fixed clock of CommitAll: its nth commit in a repository is
// dated n seconds after Epoch.
var Epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// NewFrom initialises a repository holding a copy of the directory tree
// from (leaving out databases, test binaries and profiles a developer may
// have left in it) and commits it all as "initial import".
func NewFrom(t testing.TB, from string, opts ...Option) *Repo {
	t.Helper()
	r := &Repo{t: t, Dir: filepath.Join(t.TempDir(), "app")}
	for _, o := range opts {
		o(r)
	}
	if err := copyTree(from, r.Dir); err != nil {
		t.Fatal(err)
	}
	r.Git(time.Time{}, "init", "-q", "-b", "master")
	r.CommitAll("initial import")
	return r
}

// Write sets the content of the file name (slash-separated, relative to
// the repository root), creating its directories.
func (r *Repo) Write(name, content string) {
	r.t.Helper()
	p := filepath.Join(r.Dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

// CommitAll commits every change in the worktree (an empty commit when
// there is none), dated by the fixed clock (see Epoch), and returns its id.
func (r *Repo) CommitAll(subject string) string {
	r.t.Helper()
	r.n++
	at := Epoch.Add(time.Duration(r.n) * time.Second)
	r.Git(at, "add", "-A")
	r.Git(at, "commit", "-q", "--allow-empty", "-m", subject)
	return r.Git(at, "rev-parse", "HEAD")
}

// Head returns the id of the commit checked out.
func (r *Repo) Head() string {
	r.t.Helper()
	return r.Git(time.Time{}, "rev-parse", "HEAD")
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

// copyTree copies the regular files and directories under src to dst,
// leaving out databases, test binaries and profiles.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		switch filepath.Ext(p) {
		case ".db", ".db-wal", ".db-shm", ".test", ".out":
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

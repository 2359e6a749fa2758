package source

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// upstream is a real git repository for tests: a work tree where commits
// are made and a bare repository they are pushed to, which is what a Repo
// fetches from. Commits have fixed authors and dates, so their ids are
// stable within a test.
type upstream struct {
	t    testing.TB
	work string
	bare string
	n    int // commits made, for dates
}

// baseTime is the committer time of the first commit; each later commit
// is one minute later.
var baseTime = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	dir := t.TempDir()
	u := &upstream{t: t, work: filepath.Join(dir, "work"), bare: filepath.Join(dir, "app.git")}
	gitIn(t, "", "init", "--quiet", "--bare", "--initial-branch=master", u.bare)
	gitIn(t, "", "init", "--quiet", "--initial-branch=master", u.work)
	u.git("remote", "add", "origin", u.bare)
	return u
}

// gitIn runs git in dir with a fixed identity and no user or system
// configuration, failing the test on error.
func gitIn(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := gitEnvCmd(dir, nil, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func gitEnvCmd(dir string, extra []string, args ...string) *exec.Cmd {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL="+os.DevNull,
		"GIT_AUTHOR_NAME=Ada Lovelace", "GIT_AUTHOR_EMAIL=ada@example.com",
		"GIT_COMMITTER_NAME=Charles Babbage", "GIT_COMMITTER_EMAIL=charles@example.com",
	)
	cmd.Env = append(cmd.Env, extra...)
	return cmd
}

func (u *upstream) git(args ...string) string {
	u.t.Helper()
	return gitIn(u.t, u.work, args...)
}

// commit replaces the work tree's files with files (path → content; a
// path ending in "*" is written executable, without the star), commits
// with subject msg on the current branch, pushes it, and returns its id.
func (u *upstream) commit(msg string, files map[string]string) string {
	u.t.Helper()
	entries, err := os.ReadDir(u.work)
	if err != nil {
		u.t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != ".git" {
			os.RemoveAll(filepath.Join(u.work, e.Name()))
		}
	}
	for name, content := range files {
		mode := os.FileMode(0o644)
		if n, ok := strings.CutSuffix(name, "*"); ok {
			name, mode = n, 0o755
		}
		p := filepath.Join(u.work, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			u.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			u.t.Fatal(err)
		}
	}
	u.git("add", "--all")
	date := baseTime.Add(time.Duration(u.n) * time.Minute).Format(time.RFC3339)
	u.n++
	out, err := gitEnvCmd(u.work, []string{"GIT_AUTHOR_DATE=" + date, "GIT_COMMITTER_DATE=" + date},
		"commit", "--quiet", "--allow-empty", "-m", msg+"\n\nBody of "+msg+".").CombinedOutput()
	if err != nil {
		u.t.Fatalf("git commit: %v\n%s", err, out)
	}
	sha := u.git("rev-parse", "HEAD")
	u.push()
	return sha
}

// push pushes every branch and tag, deleting those gone from the work tree.
func (u *upstream) push() {
	u.t.Helper()
	u.git("push", "--quiet", "--force", "--prune", "origin", "refs/heads/*:refs/heads/*", "refs/tags/*:refs/tags/*")
}

func fileURL(path string) string { return "file://" + filepath.ToSlash(path) }

// treeFiles returns the regular files under dir (path → content, "*"
// appended to executable ones), leaving out the checkout's .git directory.
func treeFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == ".git" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() {
			return fmt.Errorf("%s: not a regular file", rel)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if info.Mode()&0o100 != 0 {
			name += "*"
		}
		got[name] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

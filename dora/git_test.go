package dora

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/source"
)

// gitRepo is a real git repository in a temp dir whose commits carry the
// committer times the test gives.
type gitRepo struct {
	t   testing.TB
	dir string
}

func newGitRepo(t testing.TB) *gitRepo {
	t.Helper()
	r := &gitRepo{t: t, dir: filepath.Join(t.TempDir(), "app")}
	r.git(time.Time{}, "init", "-q", "-b", "master", r.dir)
	return r
}

func (r *gitRepo) git(at time.Time, args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	if _, err := os.Stat(r.dir); err == nil {
		cmd.Dir = r.dir
	}
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

// commit makes an empty commit at committer time at and returns its id.
func (r *gitRepo) commit(subject string, at time.Time) string {
	r.t.Helper()
	r.git(at, "commit", "-q", "--allow-empty", "-m", subject)
	return r.git(at, "rev-parse", "HEAD")
}

// fetched is a source.Repo of r with its cache fetched.
func (r *gitRepo) fetched() *source.Repo {
	r.t.Helper()
	repo := source.Open(r.dir, filepath.Join(r.t.TempDir(), "cache"), nil)
	if err := repo.Fetch(context.Background()); err != nil {
		r.t.Fatal(err)
	}
	return repo
}

// countingLog counts the git commands GitCommits runs.
type countingLog struct {
	repo  Log
	calls atomic.Int64
}

func (c *countingLog) Log(ctx context.Context, from, to string) ([]source.Commit, error) {
	c.calls.Add(1)
	return c.repo.Log(ctx, from, to)
}

func (c *countingLog) Commit(ctx context.Context, rev string) (source.Commit, error) {
	c.calls.Add(1)
	return c.repo.Commit(ctx, rev)
}

func TestGitCommits(t *testing.T) {
	t.Parallel()
	r := newGitRepo(t)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	c1 := r.commit("one", at(1))
	c2 := r.commit("two", at(2))
	r.git(at(3), "checkout", "-q", "-b", "topic")
	topic := r.commit("topic", at(3))
	r.git(at(4), "checkout", "-q", "master")
	c3 := r.commit("three", at(4))
	r.git(at(5), "merge", "-q", "--no-ff", "-m", "merge topic", "topic")
	merge := r.git(at(5), "rev-parse", "HEAD")

	log := &countingLog{repo: r.fetched()}
	g := NewGitCommits(log)
	ct := g.WithContext(context.Background())

	if got, err := ct.Time(c1); err != nil || !got.Equal(at(1)) {
		t.Errorf("Time(c1) = %v, %v; want %v", got, err, at(1))
	}
	// A merge brings the side branch's commits too, not just the first
	// parents.
	got, err := ct.Between(c2, merge)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, time.Time.Compare)
	if want := []time.Time{at(3), at(4), at(5)}; !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("Between(c2, merge) = %v, want %v (topic %s, three %s, the merge)", got, want, ferry.ShortSHA(topic), ferry.ShortSHA(c3))
	}
	if got, err := ct.Between(merge, c2); err != nil || len(got) != 0 {
		t.Errorf("Between(merge, c2) = %v, %v; want none: going back brings nothing", got, err)
	}

	// Answers are cached: asked again, git is not run.
	calls := log.calls.Load()
	if calls != 3 {
		t.Errorf("git ran %d times for 3 questions, want 3", calls)
	}
	again, err := ct.Between(c2, merge)
	slices.SortFunc(again, time.Time.Compare)
	if err != nil || !slices.EqualFunc(again, got, time.Time.Equal) {
		t.Errorf("Between(c2, merge) again = %v, %v; want %v", again, err, got)
	}
	if _, err := ct.Time(c1); err != nil || log.calls.Load() != calls {
		t.Errorf("cached questions ran git %d more times (err %v), want 0", log.calls.Load()-calls, err)
	}

	// An unknown commit is git's ENOTFOUND, named, and not cached.
	unknown := strings.Repeat("ab", 20)
	for range 2 {
		_, err := ct.Time(unknown)
		if ferry.ErrorCode(err) != ferry.ENOTFOUND || !strings.Contains(err.Error(), "git commit abababababab") {
			t.Errorf("Time(unknown) = %v, want ENOTFOUND naming the commit", err)
		}
		if _, err := ct.Between(c1, unknown); ferry.ErrorCode(err) != ferry.ENOTFOUND {
			t.Errorf("Between(c1, unknown) = %v, want ENOTFOUND", err)
		}
	}
	if n := log.calls.Load() - calls; n != 4 {
		t.Errorf("failed questions ran git %d times, want 4: failures are not cached", n)
	}

	// The context bounds the commands.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := NewGitCommits(log).WithContext(ctx).Time(c2); err == nil {
		t.Errorf("Time with a canceled context succeeded")
	}
}

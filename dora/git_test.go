package dora

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/gittest"
)

// countingLog counts the git commands GitCommits runs.
type countingLog struct {
	repo  Log
	calls atomic.Int64
}

func (c *countingLog) Log(ctx context.Context, from, to string) ([]ferry.Commit, error) {
	c.calls.Add(1)
	return c.repo.Log(ctx, from, to)
}

func (c *countingLog) Commit(ctx context.Context, rev string) (ferry.Commit, error) {
	c.calls.Add(1)
	return c.repo.Commit(ctx, rev)
}

func TestGitCommits(t *testing.T) {
	t.Parallel()
	r := gittest.New(t)
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	c1 := r.Commit("one", at(1))
	c2 := r.Commit("two", at(2))
	r.Git(at(3), "checkout", "-q", "-b", "topic")
	topic := r.Commit("topic", at(3))
	r.Git(at(4), "checkout", "-q", "master")
	c3 := r.Commit("three", at(4))
	r.Git(at(5), "merge", "-q", "--no-ff", "-m", "merge topic", "topic")
	merge := r.Git(at(5), "rev-parse", "HEAD")

	log := &countingLog{repo: r.Source()}
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

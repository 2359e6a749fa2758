package dora

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/ferryhq/ferry"
)

// Log is what GitCommits reads of the app's repository (*source.Repo).
type Log interface {
	// Log returns the commits reachable from to and not from from.
	Log(ctx context.Context, from, to string) ([]ferry.Commit, error)
	// Commit describes one commit.
	Commit(ctx context.Context, rev string) (ferry.Commit, error)
}

// maxCached bounds GitCommits' cache; it is emptied when full.
const maxCached = 4096

// GitCommits is CommitTimes read from git, with a cache: commits never
// change, so an answer once read stays true, and a Report over the same
// window (every scrape of /metrics) costs no git command after the first.
// It is safe for concurrent use.
type GitCommits struct {
	repo Log

	mu    sync.Mutex
	cache map[string][]time.Time
}

// NewGitCommits returns the commit times of repo.
func NewGitCommits(repo Log) *GitCommits {
	return &GitCommits{repo: repo, cache: map[string][]time.Time{}}
}

// WithContext returns g's CommitTimes with every git command bound to ctx.
func (g *GitCommits) WithContext(ctx context.Context) CommitTimes {
	return gitTimes{g: g, ctx: ctx}
}

func (g *GitCommits) cached(key string, read func() ([]time.Time, error)) ([]time.Time, error) {
	g.mu.Lock()
	ts, ok := g.cache[key]
	g.mu.Unlock()
	if ok {
		return ts, nil
	}
	ts, err := read()
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	if len(g.cache) >= maxCached {
		clear(g.cache)
	}
	g.cache[key] = ts
	g.mu.Unlock()
	return ts, nil
}

type gitTimes struct {
	g   *GitCommits
	ctx context.Context
}

func (t gitTimes) Between(from, to string) ([]time.Time, error) {
	return t.g.cached(from+".."+to, func() ([]time.Time, error) {
		cs, err := t.g.repo.Log(t.ctx, from, to)
		if err != nil {
			return nil, fmt.Errorf("git log %s..%s: %w", ferry.ShortSHA(from), ferry.ShortSHA(to), err)
		}
		ts := make([]time.Time, len(cs))
		for i, c := range cs {
			ts[i] = c.Time
		}
		return ts, nil
	})
}

func (t gitTimes) Time(commit string) (time.Time, error) {
	ts, err := t.g.cached(commit, func() ([]time.Time, error) {
		c, err := t.g.repo.Commit(t.ctx, commit)
		if err != nil {
			return nil, fmt.Errorf("git commit %s: %w", ferry.ShortSHA(commit), err)
		}
		return []time.Time{c.Time}, nil
	})
	if err != nil {
		return time.Time{}, err
	}
	return ts[0], nil
}

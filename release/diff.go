package release

import (
	"context"
	"fmt"
	"time"

	"github.com/ferryhq/ferry"
)

// Logger reads history: the commits reachable from to and not from from,
// newest first (from empty: everything reachable from to). source.Repo
// is one.
type Logger interface {
	Log(ctx context.Context, from, to string) ([]ferry.Commit, error)
}

// Diff returns the commits in fromCommit and not in toCommit (ahead) and
// those in toCommit and not in fromCommit (behind), newest first. An empty
// commit stands for an environment that runs nothing: everything on the
// other side is then ahead (or behind).
func Diff(ctx context.Context, repo Logger, fromCommit, toCommit string) (ahead, behind []ferry.Commit, err error) {
	if fromCommit == toCommit {
		return nil, nil, nil
	}
	if fromCommit != "" {
		if ahead, err = repo.Log(ctx, toCommit, fromCommit); err != nil {
			return nil, nil, fmt.Errorf("log %s..%s: %w", ferry.ShortSHA(toCommit), ferry.ShortSHA(fromCommit), err)
		}
	}
	if toCommit != "" {
		if behind, err = repo.Log(ctx, fromCommit, toCommit); err != nil {
			return nil, nil, fmt.Errorf("log %s..%s: %w", ferry.ShortSHA(fromCommit), ferry.ShortSHA(toCommit), err)
		}
	}
	return ahead, behind, nil
}

// Side is one environment in a comparison.
type Side struct {
	Env string `json:"env"`
	// Commit is what the environment runs, empty when nothing.
	Commit string `json:"commit"`
	// Release is its release tag, for a gated environment.
	Release string `json:"release,omitempty"`
}

// Change is one commit in a comparison.
type Change struct {
	Commit      string    `json:"commit"`
	Subject     string    `json:"subject"`
	Author      string    `json:"author"`
	AuthorEmail string    `json:"authorEmail,omitempty"`
	Time        time.Time `json:"time"`
}

// Comparison is what two environments run and the commits between them:
// the body of `GET /api/v1/diff?from=ENV&to=ENV`. Ahead holds the commits
// in From and not in To, Behind those in To and not in From, newest first;
// both are empty lists (never null) when there are none.
type Comparison struct {
	From   Side     `json:"from"`
	To     Side     `json:"to"`
	Ahead  []Change `json:"ahead"`
	Behind []Change `json:"behind"`
}

// Compare fills a Comparison of from and to (their Commit set, possibly
// empty) from repo's history.
func Compare(ctx context.Context, repo Logger, from, to Side) (*Comparison, error) {
	ahead, behind, err := Diff(ctx, repo, from.Commit, to.Commit)
	if err != nil {
		return nil, fmt.Errorf("compare %s and %s: %w", from.Env, to.Env, err)
	}
	return &Comparison{From: from, To: to, Ahead: changes(ahead), Behind: changes(behind)}, nil
}

func changes(cs []ferry.Commit) []Change {
	out := make([]Change, 0, len(cs))
	for _, c := range cs {
		out = append(out, Change{Commit: c.SHA, Subject: c.Subject, Author: c.Author, AuthorEmail: c.AuthorEmail, Time: c.Time})
	}
	return out
}

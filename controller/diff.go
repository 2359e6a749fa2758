package controller

import (
	"context"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/release"
)

// Diff compares what two environments run: the commits in from and not in
// to, and the reverse.
func (c *Controller) Diff(ctx context.Context, from, to string) (*release.Comparison, error) {
	side := func(name string) (release.Side, error) {
		if _, err := c.env(name); err != nil {
			return release.Side{}, err
		}
		s := release.Side{Env: name}
		cur, err := c.ledger.Current(ctx, c.cfg.App, name)
		switch {
		case err == nil:
			s.Commit, s.Release = cur.Commit, cur.Release
		case ferry.ErrorCode(err) != ferry.ENOTFOUND:
			return s, err
		}
		return s, nil
	}
	f, err := side(from)
	if err != nil {
		return nil, err
	}
	t, err := side(to)
	if err != nil {
		return nil, err
	}
	if err := c.git.Fetch(ctx); err != nil {
		return nil, errFetch(err)
	}
	return release.Compare(ctx, c.git, f, t)
}

package controller

import (
	"context"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/release"
)

// Rollback returns env to an earlier release at once (no build): the one
// named, or the previous known release (release.RollbackTarget), unless
// it is quarantined (release.RollbackGates). The release branch is reset
// to that release's commit with a lease, so nothing redeploys the bad head.
func (c *Controller) Rollback(ctx context.Context, env, to, actor, reason string) (*ferry.Deployment, error) {
	r, err := c.env(env)
	if err != nil {
		return nil, err
	}
	if err := release.TakesRollbacks(r.env.Environment); err != nil {
		return nil, err
	}
	r.promoteMu.Lock()
	defer r.promoteMu.Unlock()
	if err := c.git.Fetch(ctx); err != nil {
		return nil, errFetch(err)
	}
	target, err := c.rollbackTarget(ctx, r, to)
	if err != nil {
		return nil, c.refuse(ctx, r, "rollback", to, actor, err)
	}
	q, err := absent(c.locks.Quarantined(ctx, c.cfg.App, target.Commit))
	if err != nil {
		return nil, err
	}
	if err := release.RollbackGates(release.RollbackFacts{Env: r.env.Environment, Target: target, Quarantine: q}); err != nil {
		return nil, c.refuse(ctx, r, "rollback", target.Commit, actor, err)
	}
	head, err := c.branchHead(ctx, r)
	if err == nil {
		err = c.moveBranch(ctx, r, target.Commit, head)
	}
	if err != nil {
		return nil, c.refuse(ctx, r, "rollback", target.Commit, actor, err)
	}
	d := &ferry.Deployment{
		App: c.cfg.App, Env: env, Kind: ferry.DeployRollback, BuildID: target.BuildID,
		Commit: target.Commit, Digest: target.Digest, Release: target.Release, Actor: actor, Reason: reason,
	}
	if d.Reason == "" {
		d.Reason = "rollback to " + target.Release
	}
	return c.request(ctx, r, d)
}

// rollbackTarget reads r's known releases and what it runs, and picks the
// release to return to.
func (c *Controller) rollbackTarget(ctx context.Context, r *envRunner, to string) (release.Known, error) {
	known, err := c.knownReleases(ctx, r)
	if err != nil {
		return release.Known{}, err
	}
	cur, err := absent(c.ledger.Current(ctx, c.cfg.App, r.env.Name))
	if err != nil {
		return release.Known{}, err
	}
	return release.RollbackTarget(r.env.Environment, known, cur, to)
}

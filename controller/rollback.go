package controller

import (
	"context"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/release"
)

// Rollback returns env to an earlier release at once (no build): the one
// named, or the walk back along the release history from what env runs
// when the action's turn comes (release.RollbackTarget), unless it is
// quarantined (release.RollbackGates). The rollback is recorded before
// the release branch is reset to that release's commit with a lease, so
// nothing redeploys the bad head. It is an action (actions.go): recorded,
// then decided in its turn; it returns once decided.
func (c *Controller) Rollback(ctx context.Context, env, to, actor, reason string) (*ferry.Deployment, error) {
	o := c.ask(ctx, ferry.Action{Env: env, Kind: ferry.ActionRollback, Ref: to, Actor: actor, Reason: reason})
	return o.d, o.err
}

// rollback is Rollback in r's turn, for action actionID (0: a push).
func (c *Controller) rollback(ctx context.Context, r *envRunner, to, actor, reason string, actionID int64) (*ferry.Deployment, error) {
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
	if err != nil {
		return nil, c.refuse(ctx, r, "rollback", target.Commit, actor, err)
	}
	d := &ferry.Deployment{
		App: c.cfg.App, Env: r.env.Name, Kind: ferry.DeployRollback, BuildID: target.BuildID,
		Commit: target.Commit, Digest: target.Digest, Release: target.Release, Actor: actor, Reason: reason,
	}
	if d.Reason == "" {
		d.Reason = "rollback to " + target.Release
	}
	if err := c.intend(ctx, r, d, actionID); err != nil {
		return nil, err
	}
	if err := c.moveBranch(ctx, r, target.Commit, head); err != nil {
		return nil, c.abandon(ctx, r, d, c.refuse(ctx, r, "rollback", target.Commit, actor, err))
	}
	c.handOver(ctx, r, d)
	return d, nil
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

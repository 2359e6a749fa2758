package controller

import (
	"context"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// Rollback returns env to an earlier release at once (no build): the one
// named, or the previous succeeded release. The release branch is reset to
// that release's commit with a lease, so nothing redeploys the bad head.
func (c *Controller) Rollback(ctx context.Context, env, to, actor, reason string) (*ferry.Deployment, error) {
	r, err := c.env(env)
	if err != nil {
		return nil, err
	}
	if !r.env.Gated() {
		return nil, ferry.Errorf(ferry.EINVALID, "%s has no releases to roll back to: it follows branch %s", env, r.env.Branch)
	}
	r.promoteMu.Lock()
	defer r.promoteMu.Unlock()
	if err := c.git.Fetch(ctx); err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "fetch the repository: %v", err)
	}
	target, err := c.rollbackTarget(ctx, r, to)
	if err != nil {
		return nil, c.refuse(ctx, r, "rollback", to, actor, err)
	}
	if q, err := c.locks.Quarantined(ctx, c.cfg.App, target.Commit); err == nil {
		return nil, c.refuse(ctx, r, "rollback", target.Commit, actor,
			ferry.Errorf(ferry.ECONFLICT, "%s (%s) is quarantined by %s: %s", target.Release, ferry.ShortSHA(target.Commit), q.Actor, q.Reason))
	} else if ferry.ErrorCode(err) != ferry.ENOTFOUND {
		return nil, err
	}
	if err := c.moveRelease(ctx, r, target.Commit, true); err != nil {
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

// rollbackTarget is the named release, which must have run successfully in
// env, or the newest succeeded release before the current one.
func (c *Controller) rollbackTarget(ctx context.Context, r *envRunner, to string) (*ferry.Deployment, error) {
	ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: r.env.Name, States: []ferry.DeploymentState{ferry.DeploymentSucceeded}, Limit: 1000})
	if err != nil {
		return nil, err
	}
	if to != "" {
		for _, d := range ds {
			if d.Release == to {
				return d, nil
			}
		}
		return nil, ferry.Errorf(ferry.ENOTFOUND, "release %s never ran successfully in %s: nothing to roll back to", to, r.env.Name)
	}
	cur, err := c.ledger.Current(ctx, c.cfg.App, r.env.Name)
	if err != nil {
		return nil, ferry.Errorf(ferry.ECONFLICT, "%s runs nothing yet: nothing to roll back", r.env.Name)
	}
	for _, d := range ds {
		if d.Release != "" && d.Release != cur.Release && d.Digest != cur.Digest {
			return d, nil
		}
	}
	return nil, ferry.Errorf(ferry.ECONFLICT, "%s has no earlier release than %s to roll back to", r.env.Name, dashRelease(cur.Release))
}

func dashRelease(s string) string {
	if s == "" {
		return "what it runs"
	}
	return s
}

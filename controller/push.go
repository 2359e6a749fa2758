package controller

import (
	"context"
	"fmt"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// ReleaseHead handles a new head of a gated environment's branch seen in
// git: someone pushed to release. A fast-forward along the mainline is a
// promotion, a move back to a known release's commit is a rollback (the
// seed's `git branch -f release <sha>; git push --force`); anything else is
// never deployed: it is recorded and shown as an alert until resolved. The
// repository's cache must already hold sha (the poller calls it after a
// fetch).
func (c *Controller) ReleaseHead(ctx context.Context, branch, sha string) {
	for _, r := range c.envs {
		if r.env.Gated() && r.env.Branch == branch {
			c.releaseHead(ctx, r, sha)
		}
	}
}

func (c *Controller) releaseHead(ctx context.Context, r *envRunner, sha string) {
	r.mu.Lock()
	busy := (r.pending != nil && r.pending.Commit == sha) || (r.active != nil && r.active.Commit == sha)
	r.mu.Unlock()
	if busy {
		return
	}
	cur, err := c.ledger.Current(ctx, c.cfg.App, r.env.Name)
	if err != nil && ferry.ErrorCode(err) != ferry.ENOTFOUND {
		c.log.Error("release head", "err", err)
		return
	}
	if cur != nil && cur.Commit == sha {
		c.setAlert(r, "")
		return
	}
	// Back to a release that ran here: a rollback by push.
	if ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: r.env.Name, Commit: sha,
		States: []ferry.DeploymentState{ferry.DeploymentSucceeded}, Limit: 1}); err == nil && len(ds) > 0 && ds[0].Release != "" {
		if _, err := c.Rollback(ctx, r.env.Name, ds[0].Release, "git push", "release moved back to "+ds[0].Release+" by a push"); err != nil {
			c.setAlert(r, fmt.Sprintf("%s pushed to %s, not deployed: %s", ferry.ShortSHA(sha), r.env.Branch, ferry.ErrorMessage(err)))
			return
		}
		c.setAlert(r, "")
		return
	}
	if cur != nil {
		// The caller (the poller) has just fetched: sha is in the cache.
		ff, err := c.git.IsAncestor(ctx, cur.Commit, sha)
		if err != nil {
			c.log.Error("release head", "err", err)
			return
		}
		if !ff {
			msg := fmt.Sprintf("%s was pushed to %s but is neither a fast-forward of what %s runs (%s) nor a known release: it is not deployed",
				ferry.ShortSHA(sha), r.env.Branch, r.env.Name, ferry.ShortSHA(cur.Commit))
			c.illegal(ctx, r, sha, msg)
			return
		}
	}
	if _, err := c.Promote(ctx, r.env.Name, sha, "git push", fmt.Sprintf("%s pushed to %s", ferry.ShortSHA(sha), r.env.Branch)); err != nil {
		c.setAlert(r, fmt.Sprintf("%s pushed to %s, not deployed: %s", ferry.ShortSHA(sha), r.env.Branch, ferry.ErrorMessage(err)))
		return
	}
	c.setAlert(r, "")
}

func (c *Controller) illegal(ctx context.Context, r *envRunner, sha, msg string) {
	c.setAlert(r, msg)
	e := &ferry.Event{Time: c.now(), Actor: "git push", Kind: "release.illegal", App: c.cfg.App, Env: r.env.Name, Commit: sha, Message: msg}
	if err := c.ledger.AddEvent(ctx, e); err != nil {
		c.log.Error("record illegal release head", "err", err)
	}
	c.changed.Notify()
}

func (c *Controller) setAlert(r *envRunner, msg string) {
	r.mu.Lock()
	r.alert = msg
	r.mu.Unlock()
	c.changed.Notify()
}

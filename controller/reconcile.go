package controller

import (
	"context"
	"fmt"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/release"
)

// reconcile makes git and the registry agree with the ledger at start,
// after recoverInterrupted closed what a crash left open and before
// anything new runs: for every environment, the registry tags that follow
// it and its env/<name> ref are re-pointed at what it runs, and the
// release branch of a gated environment is reset (with a lease) to what it
// runs when it points at a release that failed, was abandoned or was
// refused, so that it is never deployed later by itself. A head no
// deployment or refusal knows is a push made while ferry was down: the
// poller hands it over as any push. Every repair is an event.
func (c *Controller) reconcile(ctx context.Context) error {
	if err := c.git.Fetch(ctx); err != nil {
		c.log.Warn("reconcile: fetch failed; git refs not checked", "err", err)
		return nil
	}
	for _, r := range c.envs {
		cur, err := absent(c.ledger.Current(ctx, c.cfg.App, r.env.Name))
		if err != nil {
			return fmt.Errorf("reconcile %s: %w", r.env.Name, err)
		}
		if cur == nil {
			continue
		}
		if r.env.Gated() {
			if err := c.reconcileBranch(ctx, r, cur); err != nil {
				return err
			}
		}
		c.reconcileTags(ctx, r, cur)
	}
	return nil
}

// reconcileBranch resets r's branch when its head is a release that did
// not succeed: a deployment of it in r that failed or was abandoned, or a
// refused push or promotion of it.
func (c *Controller) reconcileBranch(ctx context.Context, r *envRunner, cur *ferry.Deployment) error {
	head, err := c.branchHead(ctx, r)
	if err != nil {
		return fmt.Errorf("reconcile %s: read %s: %w", r.env.Name, r.env.Branch, err)
	}
	if head == "" || head == release.Zero || head == cur.Commit {
		return nil
	}
	ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: r.env.Name, Commit: head, Limit: 1})
	if err != nil {
		return fmt.Errorf("reconcile %s: %w", r.env.Name, err)
	}
	failed := len(ds) > 0 && ds[0].State.Final() && ds[0].State != ferry.DeploymentSucceeded
	if !failed {
		if failed, err = c.refused(ctx, r, head); err != nil {
			return err
		}
	}
	if failed {
		c.resetBranch(ctx, r, "ferry")
	}
	return nil
}

// refused says whether a push or promotion of commit to r was refused.
func (c *Controller) refused(ctx context.Context, r *envRunner, commit string) (bool, error) {
	for _, kind := range []string{"promote.refused", "release.illegal"} {
		es, err := c.ledger.Events(ctx, ledger.EventFilter{App: c.cfg.App, Env: r.env.Name, Kind: kind, Limit: 100})
		if err != nil {
			return false, fmt.Errorf("reconcile %s: %w", r.env.Name, err)
		}
		for _, e := range es {
			if e.Commit == commit {
				return true, nil
			}
		}
	}
	return false, nil
}

// reconcileTags re-points the registry tags that follow r and its
// env/<name> ref at what r runs, when a crash left them elsewhere.
func (c *Controller) reconcileTags(ctx context.Context, r *envRunner, cur *ferry.Deployment) {
	for _, tag := range r.env.Tags {
		if got, err := c.tags.Resolve(ctx, tag); err == nil && got == cur.Digest {
			continue
		}
		if err := c.tags.Tag(ctx, cur.Digest, tag); err != nil {
			c.event(ctx, "tag.failed", "ferry", cur, fmt.Sprintf("registry tag %s: %v", tag, err))
			continue
		}
		c.event(ctx, "tag.repaired", "ferry", cur, fmt.Sprintf("registry tag %s re-pointed at %s, what %s runs", tag, cur.Digest, r.env.Name))
	}
	ref := "env/" + r.env.Name
	if got, err := c.git.ResolveTag(ctx, ref); err == nil && got == cur.Commit {
		return
	}
	if err := c.git.SetRef(ctx, "refs/tags/"+ref, cur.Commit, ""); err != nil {
		c.event(ctx, "tag.failed", "ferry", cur, fmt.Sprintf("git %s: %v", ref, err))
		return
	}
	c.event(ctx, "tag.repaired", "ferry", cur, fmt.Sprintf("git tag %s re-pointed at %s, what %s runs", ref, ferry.ShortSHA(cur.Commit), r.env.Name))
}

package controller

import (
	"context"
	"fmt"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/release"
)

// Git is what releases need of the app's repository.
type Git interface {
	Fetch(ctx context.Context) error
	Head(ctx context.Context, branch string) (string, error)
	IsAncestor(ctx context.Context, ancestor, descendant string) (bool, error)
	Log(ctx context.Context, from, to string) ([]ferry.Commit, error)
	SetRef(ctx context.Context, ref, sha, expect string) error
	CreateTag(ctx context.Context, name, commit, message string) error
	ResolveTag(ctx context.Context, tag string) (string, error)
}

// moveRelease points the environment's branch at commit: forward only for
// a promotion; for a rollback, back to an earlier release. Either way with
// a lease, so a concurrent push is refused instead of overwritten.
func (c *Controller) moveRelease(ctx context.Context, r *envRunner, commit string, back bool) error {
	branch := r.env.Branch
	if branch == "" {
		return nil
	}
	head, err := c.git.Head(ctx, branch)
	switch {
	case ferry.ErrorCode(err) == ferry.ENOTFOUND:
		head = ferry.ZeroSHA
	case err != nil:
		return err
	case head == commit:
		return nil
	case !back:
		ff, err := c.git.IsAncestor(ctx, head, commit)
		if err != nil {
			return err
		}
		if !ff {
			return ferry.Errorf(ferry.ECONFLICT, "%s (%s) is not an ancestor of %s: a promotion only moves %s forward; to go back use ferry rollback %s",
				branch, ferry.ShortSHA(head), ferry.ShortSHA(commit), branch, r.env.Name)
		}
	}
	if err := c.git.SetRef(ctx, "refs/heads/"+branch, commit, head); err != nil {
		return fmt.Errorf("move %s to %s: %w", branch, ferry.ShortSHA(commit), err)
	}
	return nil
}

// releaseNotes lists the commits of a release since the previous one (the
// annotated tag's message).
func (c *Controller) releaseNotes(ctx context.Context, r *envRunner, d *ferry.Deployment) string {
	prevCommit, prevTag := "", ""
	ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: r.env.Name, Kinds: []ferry.DeploymentKind{ferry.DeployPromote}, States: []ferry.DeploymentState{ferry.DeploymentSucceeded}, Limit: 50})
	if err == nil {
		for _, p := range ds {
			if p.ID < d.ID {
				prevCommit, prevTag = p.Commit, p.Release
				break
			}
		}
	}
	commits, err := c.git.Log(ctx, prevCommit, d.Commit)
	if err != nil {
		c.log.Warn("release notes: commit list unavailable", "release", d.Release, "err", err)
	}
	return release.ReleaseNotes(d.Release, prevTag, commits)
}

// KnownReleases lists env's known releases, newest first: the release
// names its succeeded deployments carried (release.KnownReleases, the one
// definition). A push of the release branch may return to one of them;
// `ferry hook pre-receive` asks for them through the API.
func (c *Controller) KnownReleases(ctx context.Context, env string) ([]release.Known, error) {
	r, err := c.env(env)
	if err != nil {
		return nil, err
	}
	if !r.env.Gated() {
		return nil, ferry.Errorf(ferry.EINVALID, "%s has no releases: it follows branch %s", env, r.env.Branch)
	}
	return c.knownReleases(ctx, r)
}

// knownReleases reads r's known releases from the ledger.
func (c *Controller) knownReleases(ctx context.Context, r *envRunner) ([]release.Known, error) {
	ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: r.env.Name, States: []ferry.DeploymentState{ferry.DeploymentSucceeded}, Limit: 1000})
	if err != nil {
		return nil, fmt.Errorf("list the releases of %s: %w", r.env.Name, err)
	}
	return release.KnownReleases(r.env.Environment, ds), nil
}

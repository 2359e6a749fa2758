package controller

import (
	"cmp"
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
	// Tags lists the tags whose names start with prefix, each with the
	// commit it names.
	Tags(ctx context.Context, prefix string) (map[string]string, error)
}

// branchHead is where r's branch points: release.Zero when it does not
// exist yet, "" when the environment has no branch.
func (c *Controller) branchHead(ctx context.Context, r *envRunner) (string, error) {
	if r.env.Branch == "" {
		return "", nil
	}
	head, err := c.git.Head(ctx, r.env.Branch)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return release.Zero, nil
	}
	return head, err
}

// moveBranch points r's branch at commit with a lease on head, where the
// facts saw it, so that a concurrent push is refused instead of
// overwritten. Whether it may move there is the rules' to say, before.
func (c *Controller) moveBranch(ctx context.Context, r *envRunner, commit, head string) error {
	if r.env.Branch == "" || head == commit {
		return nil
	}
	if err := c.git.SetRef(ctx, "refs/heads/"+r.env.Branch, commit, head); err != nil {
		return fmt.Errorf("move %s to %s: %w", r.env.Branch, ferry.ShortSHA(commit), err)
	}
	return nil
}

// handOver gives the recorded deployment d to r's loop, as request does.
func (c *Controller) handOver(ctx context.Context, r *envRunner, d *ferry.Deployment) {
	r.reqMu.Lock()
	defer r.reqMu.Unlock()
	c.hand(ctx, r, d)
}

// abandon closes a recorded deployment whose refs or tags could not be
// moved: it never started, and says why. It returns cause.
func (c *Controller) abandon(ctx context.Context, r *envRunner, d *ferry.Deployment, cause error) error {
	c.fail(ctx, d, ferry.DeploymentPending, fmt.Errorf("not started: %s", ferry.ErrorMessage(cause)))
	c.resetBranch(ctx, r, "ferry")
	return cause
}

// settle runs once deployment id of r has finished, before the next
// action's turn: a promotion or rollback that did not succeed leaves the
// release branch where the environment really runs, so the failed
// release is never deployed later by itself.
func (c *Controller) settle(ctx context.Context, r *envRunner, id int64) {
	if !r.env.Gated() {
		return
	}
	d, err := c.ledger.Deployment(ctx, id)
	if err != nil {
		c.log.Error("settle deployment", "id", id, "err", err)
		return
	}
	if d.State != ferry.DeploymentSucceeded && (d.Kind == ferry.DeployPromote || d.Kind == ferry.DeployRollback) {
		// A branch moved on since d (a push that preempted d's canary)
		// is left to that push's own turn, which handles what it asks.
		if head, err := c.branchHead(ctx, r); err == nil && head != d.Commit {
			return
		}
		c.resetBranch(ctx, r, d.Actor)
	}
}

// resetBranch points r's release branch back at what r runs (the
// ledger), with a lease on where it points now, and records the repair.
// A branch already there, or an environment that runs nothing, is left.
func (c *Controller) resetBranch(ctx context.Context, r *envRunner, actor string) {
	if !r.env.Gated() {
		return
	}
	cur, err := absent(c.ledger.Current(ctx, c.cfg.App, r.env.Name))
	if err != nil || cur == nil {
		return
	}
	head, err := c.branchHead(ctx, r)
	if err != nil {
		c.log.Error("reset release branch", "env", r.env.Name, "err", err)
		return
	}
	if head == cur.Commit {
		return
	}
	if err := c.moveBranch(ctx, r, cur.Commit, head); err != nil {
		c.log.Error("reset release branch", "env", r.env.Name, "err", err)
		return
	}
	c.record(ctx, ferry.Event{Actor: actor, Kind: "release.reset", Env: r.env.Name, Commit: cur.Commit,
		Message: fmt.Sprintf("%s reset from %s to %s, what %s runs (%s)", r.env.Branch, dashIf(head), ferry.ShortSHA(cur.Commit), r.env.Name, cmp.Or(cur.Release, "no release")),
		Reason:  "a release that failed or was refused is never deployed later by itself"})
}

// refuse records a refused action and returns its error.
func (c *Controller) refuse(ctx context.Context, r *envRunner, action, what, actor string, err error) error {
	e := ferry.Event{
		Actor: actor, Kind: action + ".refused", Env: r.env.Name,
		Message: fmt.Sprintf("%s %s to %s refused", action, dashIf(what), r.env.Name), Reason: ferry.ErrorMessage(err),
	}
	if ferry.ValidCommit(what) {
		e.Commit = what
	}
	c.record(ctx, e)
	return err
}

func dashIf(s string) string {
	if s == "" {
		return "(upstream)"
	}
	return ferry.ShortSHA(s)
}

// absent turns ferry.ENOTFOUND into a nil result: a row that is not
// there is a fact (no lock, no quarantine), not an error.
func absent[T any](v *T, err error) (*T, error) {
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return nil, nil
	}
	return v, err
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

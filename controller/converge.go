package controller

import (
	"context"
	"fmt"
	"strings"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// Convergence: an environment fed by a branch (one without `from`, such as
// dev from master) runs the build of its branch's head. At start, after
// every deployment and whenever the poller sees the branch move, the
// environment's loop compares the two and, when they differ, deploys the
// head's build — unless its digest's last rollout in that environment
// failed: that one is never retried by convergence, only by a new commit
// or by the operator's `ferry build BRANCH` (Deploy). `ferry status
// --check` reports an environment that lags its branch (lagDrift).

// interrupted is the error of a deployment that ferry stopped during (a
// crash, a restart): it says nothing against its digest, so convergence
// deploys the digest again.
const interrupted = "ferry stopped during the rollout; the environment was restored to its last succeeded deployment"

// Verdict of converge for one environment.
type lag int

const (
	lagNone     lag = iota // runs its head's build, or has nothing to run yet
	lagDeploy              // lags, and its head's build is to be deployed
	lagHeldBack            // lags, but its head's last rollout here failed
)

// convergence is the facts converge decides on.
type convergence struct {
	build *ferry.Build      // the build of the branch's head; nil when there is none
	cur   *ferry.Deployment // what the environment runs; nil when nothing
	last  *ferry.Deployment // the newest finished rollout of build's digest here; nil when none
}

// decide is the rule: deploy the head's succeeded build when it is not
// what runs, unless its last rollout here failed for a reason of its own
// (an interrupted one did not).
func (f convergence) decide() lag {
	switch {
	case f.build == nil || f.build.State != ferry.BuildSucceeded:
		return lagNone // nothing deployable yet: its success will queue it
	case f.cur != nil && f.cur.Digest == f.build.Digest:
		return lagNone
	case f.last != nil && failedOnItsOwn(f.last):
		return lagHeldBack
	}
	return lagDeploy
}

// failedOnItsOwn reports whether deployment d failed because of what it
// deployed, not because ferry stopped during it.
func failedOnItsOwn(d *ferry.Deployment) bool {
	switch d.State {
	case ferry.DeploymentRolledBack:
		return true
	case ferry.DeploymentFailed:
		return !strings.HasPrefix(d.Error, interrupted)
	}
	return false
}

// fedByBranch reports whether r follows the builds of its branch.
func fedByBranch(r *envRunner) bool { return r.env.From == "" && r.env.Branch != "" }

// facts gathers what converge decides on for r. ok is false when the
// branch's head cannot be known (not fetched yet, branch deleted).
func (c *Controller) facts(ctx context.Context, r *envRunner) (f convergence, head string, ok bool, err error) {
	head, err = c.git.Head(ctx, r.env.Branch)
	if err != nil {
		c.log.Debug("converge: branch head unknown", "env", r.env.Name, "branch", r.env.Branch, "err", err)
		return f, "", false, nil
	}
	if f.build, err = absent(c.ledger.BuildByCommit(ctx, c.cfg.App, head)); err != nil || f.build == nil {
		return f, head, err == nil, err
	}
	if f.cur, err = absent(c.ledger.Current(ctx, c.cfg.App, r.env.Name)); err != nil {
		return f, head, false, err
	}
	if f.build.Digest == "" {
		return f, head, true, nil
	}
	tried, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: r.env.Name, Digest: f.build.Digest,
		States: []ferry.DeploymentState{ferry.DeploymentSucceeded, ferry.DeploymentFailed, ferry.DeploymentRolledBack},
		Kinds:  []ferry.DeploymentKind{ferry.DeployDeploy, ferry.DeployAutoRollback, ferry.DeployPromote, ferry.DeployRollback}, Limit: 1})
	if err != nil {
		return f, head, false, err
	}
	if len(tried) > 0 {
		f.last = tried[0]
	}
	return f, head, true, nil
}

// converge deploys the build of r's branch head when r does not run it
// and the rule allows (convergence.decide). It runs in r's loop, between
// deployments, so it never races a rollout; with a deployment pending it
// does nothing (that one runs first, and converge after it).
func (c *Controller) converge(ctx context.Context, r *envRunner) {
	if !fedByBranch(r) || ctx.Err() != nil {
		return
	}
	r.mu.Lock()
	busy := r.pending != nil || r.active != nil
	r.mu.Unlock()
	if busy {
		return
	}
	f, head, ok, err := c.facts(ctx, r)
	if err != nil {
		c.log.Error("converge", "env", r.env.Name, "err", err)
		return
	}
	if !ok {
		return
	}
	switch f.decide() {
	case lagHeldBack:
		c.log.Info("converge: the head's last rollout failed; not retried", "env", r.env.Name, "commit", head, "deployment", f.last.ID)
		return
	case lagNone:
		return
	}
	reason := fmt.Sprintf("%s follows %s: its head %s (build %d) is not what it runs", r.env.Name, r.env.Branch, ferry.ShortSHA(head), f.build.ID)
	if f.last != nil && f.last.State == ferry.DeploymentFailed {
		reason = fmt.Sprintf("%s follows %s: deployment %d of its head %s was interrupted by a stop of ferry", r.env.Name, r.env.Branch, f.last.ID, ferry.ShortSHA(head))
	}
	if _, err := c.request(ctx, r, c.deployment(r, f.build, "ferry", reason), 0); err != nil {
		c.log.Error("converge: queue deployment", "env", r.env.Name, "err", err)
	}
}

// deployment is a deploy of build b to r.
func (c *Controller) deployment(r *envRunner, b *ferry.Build, actor, reason string) *ferry.Deployment {
	return &ferry.Deployment{
		App: c.cfg.App, Env: r.env.Name, Kind: ferry.DeployDeploy, BuildID: b.ID,
		Commit: b.Commit, Digest: b.Digest, Actor: actor, Reason: reason,
	}
}

// behindHead reports whether build b, just succeeded, is not the head of
// r's branch while the head's own build has succeeded (a build of an
// older commit asked for by hand): convergence would undo its rollout
// at once, so it is not rolled out.
func (c *Controller) behindHead(ctx context.Context, r *envRunner, b *ferry.Build) bool {
	head, err := c.git.Head(ctx, r.env.Branch)
	if err != nil || head == b.Commit {
		return false
	}
	hb, err := c.ledger.BuildByCommit(ctx, c.cfg.App, head)
	if err != nil || hb.State != ferry.BuildSucceeded {
		return false
	}
	c.log.Info("build succeeded behind its branch's head; not deployed", "env", r.env.Name, "build", b.ID, "head", head)
	return true
}

// BranchHead tells the controller that branch, a built branch, now points
// at sha (the poller calls it after each fetch that moved it, the cache
// already holding sha). Each environment the branch feeds converges on it
// once its current deployment, if any, ends: a reset of the branch to an
// older commit that was built deploys that build.
func (c *Controller) BranchHead(ctx context.Context, branch, sha string) {
	for _, r := range c.envs {
		if fedByBranch(r) && r.env.Branch == branch {
			select {
			case r.wake <- struct{}{}: // the loop converges when nothing is pending
			default:
			}
		}
	}
}

// Deploy rolls build b out, at actor's explicit request, to every
// environment b's branch feeds that does not run it already — also when
// its last rollout there failed, which convergence never retries. The
// server calls it for `ferry build BRANCH` when the head is built already.
func (c *Controller) Deploy(ctx context.Context, b *ferry.Build, actor string) ([]*ferry.Deployment, error) {
	if b.State != ferry.BuildSucceeded {
		return nil, ferry.Errorf(ferry.ECONFLICT, "build %d of %s is %s: only a succeeded build can be deployed", b.ID, b.ShortCommit(), b.State)
	}
	var out []*ferry.Deployment
	for _, r := range c.envs {
		if !fedByBranch(r) || r.env.Branch != b.Branch {
			continue
		}
		cur, err := absent(c.ledger.Current(ctx, c.cfg.App, r.env.Name))
		if err != nil {
			return out, err
		}
		if cur != nil && cur.Digest == b.Digest {
			continue
		}
		reason := fmt.Sprintf("%s asked for build %d of %s (ferry build %s)", actor, b.ID, b.ShortCommit(), b.Branch)
		d, err := c.request(ctx, r, c.deployment(r, b, actor, reason), 0)
		if err != nil {
			return out, err
		}
		out = append(out, d)
	}
	return out, nil
}

// lagDrift is the drift of r when it does not run its branch head's
// build: converge is about to deploy it, or holds it back because its last
// rollout here failed. The fix, `ferry build BRANCH`, deploys it (Deploy).
func (c *Controller) lagDrift(ctx context.Context, r *envRunner) (Drift, bool, error) {
	if !fedByBranch(r) {
		return Drift{}, false, nil
	}
	f, head, ok, err := c.facts(ctx, r)
	if err != nil || !ok {
		return Drift{}, false, err
	}
	verdict := f.decide()
	if verdict == lagNone {
		return Drift{}, false, nil
	}
	got := "nothing"
	if f.cur != nil {
		got = ferry.ShortSHA(f.cur.Commit)
	}
	d := Drift{Env: r.env.Name, What: "branch " + r.env.Branch,
		Want: fmt.Sprintf("its head %s (build %d)", ferry.ShortSHA(head), f.build.ID), Got: got,
		Fix: "ferry build " + r.env.Branch}
	if verdict == lagHeldBack {
		why, _, _ := strings.Cut(f.last.Error, "\n") // the first line: no replica logs in a drift
		if len(why) > 200 {
			why = why[:200] + "…"
		}
		d.Got += fmt.Sprintf(" (deployment %d of the head %s: %s)", f.last.ID, f.last.State, strings.ToValidUTF8(why, ""))
	}
	return d, true, nil
}

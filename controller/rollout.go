package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/verify"
)

// loop runs one environment's deployments, one at a time, newest request
// first (older pending ones were superseded on arrival).
func (c *Controller) loop(ctx context.Context, r *envRunner) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		}
		r.mu.Lock()
		d := r.pending
		r.pending = nil
		r.active = d
		r.mu.Unlock()
		if d == nil {
			c.converge(ctx, r) // woken by BranchHead
			continue
		}
		c.execute(ctx, r, d)
		r.mu.Lock()
		r.active, r.finishing = nil, false
		r.mu.Unlock()
		if ctx.Err() == nil {
			r.finished(d.ID)
		}
		c.changed.Notify()
		c.converge(ctx, r)
	}
}

func (c *Controller) spec(r *envRunner, d *ferry.Deployment) ferry.Spec {
	return ferry.Spec{
		Env: r.env.Name, Commit: d.Commit, Image: c.cfg.Image, Digest: d.Digest,
		Replicas: d.Replicas, Release: d.Release, DeploymentID: d.ID,
		Vars: r.env.Vars, Rollout: r.env.Rollout,
	}
}

// execute rolls d out: apply, verify, and on success move the tags; on
// failure revert to what ran before. Shutdown (ctx done) leaves d
// unfinished for the next start to close.
func (c *Controller) execute(ctx context.Context, r *envRunner, d *ferry.Deployment) {
	prev, err := c.ledger.Current(ctx, c.cfg.App, r.env.Name)
	if err != nil && ferry.ErrorCode(err) != ferry.ENOTFOUND {
		c.fail(ctx, d, ferry.DeploymentPending, fmt.Errorf("read current deployment: %w", err))
		return
	}
	if prev != nil {
		d.Previous = prev.Digest
	}
	now := c.now()
	if err := c.ledger.TransitionDeployment(ctx, d.ID, ferry.DeploymentPending, ferry.DeploymentRolling, "", now); err != nil {
		c.log.Error("start deployment", "id", d.ID, "err", err)
		return
	}
	d.State, d.StartedAt = ferry.DeploymentRolling, now
	if err := c.ledger.UpdateDeployment(ctx, d); err != nil {
		c.log.Error("record previous digest", "id", d.ID, "err", err)
	}
	c.event(ctx, "deployment.started", d.Actor, d, "")
	start := c.now()
	progress := func(p ferry.Progress) {
		r.mu.Lock()
		r.progress = p
		r.mu.Unlock()
		c.log.Info("rollout", "env", r.env.Name, "deployment", d.ID, "msg", p.Message, "ready", p.Ready, "updated", p.Updated, "desired", p.Desired)
		c.changed.Notify()
	}

	sp, fig, canary := c.canaryOf(r)
	canary = canary && d.Kind == ferry.DeployPromote && prev != nil && prev.Digest != d.Digest
	switch {
	case d.Kind == ferry.DeployScale && prev != nil && prev.Digest == d.Digest:
		err = r.env.Runtime.Scale(ctx, d.Replicas)
	case canary:
		err = c.runCanary(ctx, r, d, prev, sp, fig, progress)
	default:
		err = c.apply(ctx, r, d, c.spec(r, d), progress)
	}
	if ctx.Err() != nil {
		return // shutting down: the next start closes and restores
	}
	if _, ok := errors.AsType[*refusal](err); ok {
		c.fail(ctx, d, ferry.DeploymentRolling, err) // the runtime was not touched
		return
	}
	if _, ok := errors.AsType[*canaryAbort](err); ok {
		c.fail(ctx, d, ferry.DeploymentRolling, err) // the stable version was not touched
		return
	}
	if err != nil {
		c.revert(ctx, r, d, prev, ferry.DeploymentRolling, fmt.Errorf("rollout: %w", err))
		return
	}
	// verify runs once d has every replica, a canary's too: the checks go
	// to the environment's URL, which reaches a canary only by its weight
	// during the steps (docs/config.md, strategy.canary).
	if len(r.env.Verify) > 0 && d.Kind != ferry.DeployScale {
		if err := c.ledger.TransitionDeployment(ctx, d.ID, ferry.DeploymentRolling, ferry.DeploymentVerifying, "", c.now()); err != nil {
			c.log.Error("verify deployment", "id", d.ID, "err", err)
			return
		}
		if err := c.verify(ctx, r.env); err != nil {
			if ctx.Err() != nil {
				return
			}
			c.revert(ctx, r, d, prev, ferry.DeploymentVerifying, fmt.Errorf("verification: %w", err))
			return
		}
		d.State = ferry.DeploymentVerifying
	}
	if err := c.ledger.TransitionDeployment(ctx, d.ID, d.State, ferry.DeploymentSucceeded, "", c.now()); err != nil {
		c.log.Error("finish deployment", "id", d.ID, "err", err)
		return
	}
	d.State = ferry.DeploymentSucceeded
	r.mu.Lock()
	r.finishing = true
	r.mu.Unlock()
	r.finished(d.ID) // the next action may be decided; the loop moves d's tags before starting it
	c.event(ctx, "deployment.succeeded", d.Actor, d, fmt.Sprintf("rolled out in %s", c.now().Sub(start).Round(time.Millisecond)))
	c.afterSuccess(ctx, r, d)
}

// Verifier checks that a digest carries ferry's signature and a provenance
// attestation that agrees with b, the ledger's record of the build that
// made it; any error means the digest must not run.
type Verifier interface {
	Verify(ctx context.Context, digest string, b *ferry.Build) error
}

// refusal is a digest that failed verification: nothing was applied.
type refusal struct{ err error }

func (r *refusal) Error() string {
	if ferry.ErrorCode(r.err) == ferry.EFORBIDDEN {
		return "refused: " + ferry.ErrorMessage(r.err)
	}
	return "refused: cannot verify the image: " + r.err.Error()
}
func (r *refusal) Unwrap() error { return r.err }

// apply is the one way the controller changes what an environment runs
// (a deployment, a revert, a restore at start), in every runtime: it first
// verifies d's digest against ferry's key and the ledger's build of d's
// commit. A digest that does not verify, or cannot be verified (the
// registry is down), is refused (a *refusal, with a deployment.refused
// event) and the runtime is not touched.
func (c *Controller) apply(ctx context.Context, r *envRunner, d *ferry.Deployment, spec ferry.Spec, progress func(ferry.Progress)) error {
	if err := c.check(ctx, d, spec.Digest); err != nil {
		return err
	}
	return r.env.Runtime.Apply(ctx, spec, progress)
}

// check verifies digest, which d would run, against ferry's key and the
// ledger's build of d's commit: a *refusal (with a deployment.refused
// event) when it does not verify or cannot be verified.
func (c *Controller) check(ctx context.Context, d *ferry.Deployment, digest string) error {
	b, err := c.ledger.BuildByCommit(ctx, c.cfg.App, d.Commit)
	switch {
	case err == nil || ferry.ErrorCode(err) == ferry.ENOTFOUND:
		err = c.cfg.Verifier.Verify(ctx, digest, b) // b nil: no build made it
	default:
		err = fmt.Errorf("read the build of %s: %w", ferry.ShortSHA(d.Commit), err)
	}
	if err != nil {
		ref := &refusal{err: err}
		c.event(ctx, "deployment.refused", "ferry", d, ref.Error())
		return ref
	}
	return nil
}

// afterSuccess moves what follows the environment: its registry tags and
// the git tag env/<name>. A failure here does not undo the rollout; it is
// recorded, and `ferry status --check` reports the drift.
func (c *Controller) afterSuccess(ctx context.Context, r *envRunner, d *ferry.Deployment) {
	for _, tag := range r.env.Tags {
		if err := c.tags.Tag(ctx, d.Digest, tag); err != nil {
			c.event(ctx, "tag.failed", "ferry", d, fmt.Sprintf("registry tag %s: %v", tag, err))
		}
	}
	if d.Kind == ferry.DeployPromote && d.Release != "" {
		if err := c.git.CreateTag(ctx, d.Release, d.Commit, c.releaseNotes(ctx, r, d)); err != nil {
			c.event(ctx, "tag.failed", "ferry", d, fmt.Sprintf("git tag %s: %v", d.Release, err))
		}
	}
	ref := "refs/tags/env/" + r.env.Name
	if err := c.git.SetRef(ctx, ref, d.Commit, ""); err != nil {
		c.event(ctx, "tag.failed", "ferry", d, fmt.Sprintf("git %s: %v", ref, err))
	}
}

// revert restores prev after d failed; d ends rolled-back when the revert
// worked, failed otherwise (or when there was nothing to revert to).
func (c *Controller) revert(ctx context.Context, r *envRunner, d, prev *ferry.Deployment, from ferry.DeploymentState, cause error) {
	c.log.Warn("deployment failed; reverting", "env", r.env.Name, "deployment", d.ID, "err", cause)
	if prev == nil || prev.Digest == "" {
		c.fail(ctx, d, from, fmt.Errorf("%w; nothing ran before, so nothing to revert to", cause))
		return
	}
	back := &ferry.Deployment{
		App: c.cfg.App, Env: r.env.Name, Kind: ferry.DeployAutoRollback, State: ferry.DeploymentPending,
		BuildID: prev.BuildID, Commit: prev.Commit, Digest: prev.Digest, Release: prev.Release,
		Replicas: prev.Replicas, Previous: d.Digest, Actor: "ferry",
		Reason: fmt.Sprintf("deployment %d of %s failed: %v", d.ID, ferry.ShortSHA(d.Commit), cause), CreatedAt: c.now(),
	}
	if err := c.ledger.CreateDeployment(ctx, back); err != nil {
		c.fail(ctx, d, from, fmt.Errorf("%w; recording the revert failed: %v", cause, err))
		return
	}
	_ = c.ledger.TransitionDeployment(ctx, back.ID, ferry.DeploymentPending, ferry.DeploymentRolling, "", c.now())
	err := c.apply(ctx, r, back, c.spec(r, back), func(ferry.Progress) {})
	if err != nil {
		_ = c.ledger.TransitionDeployment(ctx, back.ID, ferry.DeploymentRolling, ferry.DeploymentFailed, err.Error(), c.now())
		c.event(ctx, "deployment.failed", "ferry", back, err.Error())
		c.fail(ctx, d, from, fmt.Errorf("%w; the revert to %s failed too: %v", cause, ferry.ShortSHA(prev.Commit), err))
		return
	}
	_ = c.ledger.TransitionDeployment(ctx, back.ID, ferry.DeploymentRolling, ferry.DeploymentSucceeded, "", c.now())
	c.event(ctx, "deployment.succeeded", "ferry", back, back.Reason)
	if err := c.ledger.TransitionDeployment(ctx, d.ID, from, ferry.DeploymentRolledBack, cause.Error(), c.now()); err != nil {
		c.log.Error("record rolled-back deployment", "id", d.ID, "err", err)
	}
	c.event(ctx, "deployment.rolled-back", "ferry", d, cause.Error())
}

func (c *Controller) fail(ctx context.Context, d *ferry.Deployment, from ferry.DeploymentState, err error) {
	if terr := c.ledger.TransitionDeployment(ctx, d.ID, from, ferry.DeploymentFailed, err.Error(), c.now()); terr != nil {
		c.log.Error("record failed deployment", "id", d.ID, "err", terr)
	}
	c.event(ctx, "deployment.failed", d.Actor, d, err.Error())
}

// verify runs the environment's checks (package verify); each must pass
// within its timeout.
func (c *Controller) verify(ctx context.Context, env Env) error {
	return verify.Run(ctx, http.DefaultClient, env.URL, env.Verify)
}

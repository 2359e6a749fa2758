package controller

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// candidate is what a promotion would roll out.
type candidate struct {
	commit, digest, release string
	buildID                 int64
}

var shortHex = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

// Promote rolls env forward to what its upstream runs (ref "" or the
// upstream's name), or to a given commit (full or at least 7 hex) or
// release tag, after every gate passed. It moves the release branch (fast
// forward only), tags the digest with a new release tag (no rebuild, no
// upload) and queues the rollout. Refusals are *ferry.Error with the reason.
func (c *Controller) Promote(ctx context.Context, env, ref, actor, reason string) (*ferry.Deployment, error) {
	r, err := c.env(env)
	if err != nil {
		return nil, err
	}
	if !r.env.Gated() {
		return nil, ferry.Errorf(ferry.EINVALID, "%s takes no promotions: it follows branch %s", env, r.env.Branch)
	}
	r.promoteMu.Lock()
	defer r.promoteMu.Unlock()
	if err := c.git.Fetch(ctx); err != nil {
		return nil, ferry.Errorf(ferry.EUNAVAILABLE, "fetch the repository: %v", err)
	}
	cand, err := c.resolve(ctx, r, ref)
	if err != nil {
		return nil, c.refuse(ctx, r, "promote", ref, actor, err)
	}
	if err := c.gates(ctx, r, cand); err != nil {
		return nil, c.refuse(ctx, r, "promote", cand.commit, actor, err)
	}
	if err := c.moveRelease(ctx, r, cand.commit, false); err != nil {
		return nil, c.refuse(ctx, r, "promote", cand.commit, actor, err)
	}
	tag, err := c.newReleaseTag(ctx, r)
	if err != nil {
		return nil, err
	}
	if err := c.tags.Tag(ctx, cand.digest, tag); err != nil {
		return nil, fmt.Errorf("tag %s as %s: %w", ferry.ShortSHA(cand.commit), tag, err)
	}
	d := &ferry.Deployment{
		App: c.cfg.App, Env: env, Kind: ferry.DeployPromote, BuildID: cand.buildID,
		Commit: cand.commit, Digest: cand.digest, Release: tag, Actor: actor, Reason: reason,
	}
	if d.Reason == "" {
		d.Reason = fmt.Sprintf("promote %s from %s as %s", ferry.ShortSHA(cand.commit), r.env.From, tag)
	}
	return c.request(ctx, r, d)
}

// refuse records a refused action and returns its error.
func (c *Controller) refuse(ctx context.Context, r *envRunner, action, what, actor string, err error) error {
	e := &ferry.Event{
		Time: c.now(), Actor: actor, Kind: action + ".refused", App: c.cfg.App, Env: r.env.Name,
		Message: fmt.Sprintf("%s %s to %s refused", action, dashIf(what), r.env.Name), Reason: ferry.ErrorMessage(err),
	}
	if ferry.ValidCommit(what) {
		e.Commit = what
	}
	if aerr := c.ledger.AddEvent(ctx, e); aerr != nil {
		c.log.Error("record refusal", "err", aerr)
	}
	c.changed.Notify()
	return err
}

func dashIf(s string) string {
	if s == "" {
		return "(upstream)"
	}
	return ferry.ShortSHA(s)
}

// resolve finds the commit and digest a promotion names.
func (c *Controller) resolve(ctx context.Context, r *envRunner, ref string) (candidate, error) {
	up := r.env.From
	switch {
	case ref == "" || ref == up:
		cur, err := c.ledger.Current(ctx, c.cfg.App, up)
		if err != nil {
			if ferry.ErrorCode(err) == ferry.ENOTFOUND {
				return candidate{}, ferry.Errorf(ferry.ECONFLICT, "%s runs nothing yet: nothing to promote", up)
			}
			return candidate{}, err
		}
		return candidate{commit: cur.Commit, digest: cur.Digest, buildID: cur.BuildID}, nil
	case strings.HasPrefix(ref, "RC"):
		ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Release: ref, Limit: 1})
		if err != nil {
			return candidate{}, err
		}
		if len(ds) == 0 {
			return candidate{}, ferry.Errorf(ferry.ENOTFOUND, "no release %s", ref)
		}
		return candidate{commit: ds[0].Commit, digest: ds[0].Digest, buildID: ds[0].BuildID}, nil
	case shortHex.MatchString(ref):
		b, err := c.buildOf(ctx, ref)
		if err != nil {
			return candidate{}, err
		}
		return candidate{commit: b.Commit, digest: b.Digest, buildID: b.ID}, nil
	}
	return candidate{}, ferry.Errorf(ferry.EINVALID, "%q is neither a commit, a release tag (RC…) nor the upstream environment %q", ref, up)
}

// buildOf finds the succeeded build of a commit given in full or by prefix.
// A full commit id is one indexed lookup; a prefix is matched against the
// newest 1000 succeeded builds.
func (c *Controller) buildOf(ctx context.Context, ref string) (*ferry.Build, error) {
	if ferry.ValidCommit(ref) {
		b, err := c.ledger.BuildByCommit(ctx, c.cfg.App, ref)
		switch {
		case ferry.ErrorCode(err) == ferry.ENOTFOUND || err == nil && b.State != ferry.BuildSucceeded:
			return nil, ferry.Errorf(ferry.ENOTFOUND, "commit %s has no succeeded build: it never ran in dev", ref)
		case err != nil:
			return nil, err
		}
		return b, nil
	}
	builds, err := c.ledger.Builds(ctx, ledger.BuildFilter{App: c.cfg.App, States: []ferry.BuildState{ferry.BuildSucceeded}, Limit: 1000})
	if err != nil {
		return nil, err
	}
	var found *ferry.Build
	for _, b := range builds {
		if strings.HasPrefix(b.Commit, ref) {
			if found != nil {
				return nil, ferry.Errorf(ferry.EINVALID, "commit prefix %s is ambiguous: give more digits", ref)
			}
			found = b
		}
	}
	if found == nil {
		return nil, ferry.Errorf(ferry.ENOTFOUND, "commit %s has no succeeded build: it never ran in dev", ref)
	}
	return found, nil
}

// gates checks every rule a promotion must pass (DESIGN §6).
func (c *Controller) gates(ctx context.Context, r *envRunner, cand candidate) error {
	name, up := r.env.Name, r.env.From
	if l, err := c.locks.LockOf(ctx, c.cfg.App, name); err == nil {
		return ferry.Errorf(ferry.ECONFLICT, "%s is locked by %s since %s UTC: %s (ferry unlock %s)", name, l.Actor, l.CreatedAt.UTC().Format(time.DateTime), l.Reason, name)
	} else if ferry.ErrorCode(err) != ferry.ENOTFOUND {
		return err
	}
	r.mu.Lock()
	busy := r.active
	if busy == nil || r.finishing {
		busy = r.pending
	}
	r.mu.Unlock()
	if busy != nil {
		return ferry.Errorf(ferry.ECONFLICT, "a rollout of %s is in progress (deployment %d, %s %s); wait for it to end", name, busy.ID, busy.Kind, ferry.ShortSHA(busy.Commit))
	}
	if q, err := c.locks.Quarantined(ctx, c.cfg.App, cand.commit); err == nil {
		return ferry.Errorf(ferry.ECONFLICT, "%s is quarantined by %s: %s", ferry.ShortSHA(cand.commit), q.Actor, q.Reason)
	} else if ferry.ErrorCode(err) != ferry.ENOTFOUND {
		return err
	}
	main, err := c.git.Head(ctx, r.mainline)
	if err != nil {
		return fmt.Errorf("read %s: %w", r.mainline, err)
	}
	on, err := c.git.IsAncestor(ctx, cand.commit, main)
	if err != nil {
		return err
	}
	if !on {
		return ferry.Errorf(ferry.ECONFLICT, "%s is not on %s's history: only commits of %s are released", ferry.ShortSHA(cand.commit), r.mainline, r.mainline)
	}
	ran, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: up, Digest: cand.digest, Limit: 100})
	if err != nil {
		return err
	}
	var first *ferry.Deployment
	var failed *ferry.Deployment
	for _, d := range ran { // newest first
		switch d.State {
		case ferry.DeploymentSucceeded:
			first = d
		case ferry.DeploymentFailed, ferry.DeploymentRolledBack:
			if failed == nil {
				failed = d
			}
		}
	}
	if first == nil {
		if failed != nil {
			return ferry.Errorf(ferry.ECONFLICT, "%s failed in %s (deployment %d: %s): it is not promoted", ferry.ShortSHA(cand.commit), up, failed.ID, failed.Error)
		}
		return ferry.Errorf(ferry.ECONFLICT, "%s never ran in %s: only digests that succeeded there are promoted", ferry.ShortSHA(cand.commit), up)
	}
	if soak := r.env.Soak; soak > 0 {
		ranFor := c.now().Sub(first.FinishedAt)
		if ranFor < soak {
			return ferry.Errorf(ferry.ECONFLICT, "%s has run in %s for %s; %s needs %s of soak (promotable at %s)",
				ferry.ShortSHA(cand.commit), up, ranFor.Round(time.Second), name, soak, first.FinishedAt.Add(soak).UTC().Format(time.DateTime))
		}
	}
	return nil
}

// newReleaseTag renders the release tag for now, adding _2, _3 … when a
// release of the same minute exists.
func (c *Controller) newReleaseTag(ctx context.Context, r *envRunner) (string, error) {
	base, err := r.env.ReleaseName(c.now())
	if err != nil {
		return "", err
	}
	tag := base
	for n := 2; ; n++ {
		ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Release: tag, Limit: 1})
		if err != nil {
			return "", err
		}
		if len(ds) == 0 {
			return tag, nil
		}
		tag = fmt.Sprintf("%s_%d", base, n)
	}
}

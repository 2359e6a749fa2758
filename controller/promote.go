package controller

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/release"
)

// candidate is what a promotion would roll out.
type candidate struct {
	commit, digest, release string
	buildID                 int64
}

var shortHex = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{7,40}$`) })

// tooShort is a commit prefix with fewer digits than shortHex takes.
var tooShort = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{1,6}$`) })

func errTooShort(ref string) error {
	return ferry.Errorf(ferry.EINVALID, "commit prefix %s is too short: give at least 7 hex digits", ref)
}

// Promote rolls env forward to what its upstream runs (ref "" or the
// upstream's name), or to a given commit (full or at least 7 hex) or
// release tag, after every gate passed (release.Gates, on the facts
// promotionFacts gathers when the action's turn comes). The deployment is
// recorded (actor, reason, release tag) before anything moves; then the
// release branch moves (with a lease) and the digest gets the new release
// tag (no rebuild, no upload), and the rollout is queued. Refusals are
// *ferry.Error with the reason.
func (c *Controller) Promote(ctx context.Context, env, ref, actor, reason string) (*ferry.Deployment, error) {
	return c.PromoteDowngrade(ctx, env, ref, actor, reason, false)
}

// PromoteDowngrade is Promote that, when downgrade is set, may also move
// env back along the mainline from what it runs; such a downgrade needs a
// reason, recorded with it. It is an action (actions.go): recorded, then
// decided in its turn; it returns once decided.
func (c *Controller) PromoteDowngrade(ctx context.Context, env, ref, actor, reason string, downgrade bool) (*ferry.Deployment, error) {
	o := c.ask(ctx, ferry.Action{Env: env, Kind: ferry.ActionPromote, Ref: ref, AllowDowngrade: downgrade, Actor: actor, Reason: reason})
	return o.d, o.err
}

// promote is Promote in r's turn, for action actionID (0: a push). To an
// environment with an approval rule, a promotion that passed every gate
// is recorded as a pending release request (returned, no deployment)
// unless it releases approved, the request its approvals completed
// (approve.go); a push is refused there. approved's candidate must pass
// every gate again now.
func (c *Controller) promote(ctx context.Context, r *envRunner, ref, actor, reason string, opts promoteOpts, actionID int64, approved *ferry.ReleaseRequest) (*ferry.Deployment, *ferry.ReleaseRequest, error) {
	if err := c.git.Fetch(ctx); err != nil {
		return nil, nil, errFetch(err)
	}
	cand, err := c.resolve(ctx, r, ref)
	if err != nil {
		return nil, nil, c.refuse(ctx, r, "promote", ref, actor, err)
	}
	facts, err := c.promotionFacts(ctx, r, cand, ref)
	facts.AllowDowngrade, facts.Override = opts.downgrade, opts.override
	if err == nil {
		err = release.Gates(facts)
	}
	if err == nil && approved != nil && approved.Digest != cand.digest {
		err = ferry.Errorf(ferry.ECONFLICT, "release request %d was approved for %s, not %s", approved.ID, approved.Digest, cand.digest)
	}
	if err == nil && approved == nil && actionID == 0 { // a push
		err = release.PushNeedsApproval(r.env.Environment, cand.commit)
	}
	if err != nil {
		return nil, nil, c.refuse(ctx, r, "promote", cand.commit, actor, err)
	}
	if approved == nil && release.NeedsApproval(r.env.Environment) {
		req, err := c.requestApproval(ctx, r, cand, ref, actor, reason, actionID)
		return nil, req, err
	}
	tag, err := c.newReleaseTag(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	d := &ferry.Deployment{
		App: c.cfg.App, Env: r.env.Name, Kind: ferry.DeployPromote, BuildID: cand.buildID,
		Commit: cand.commit, Digest: cand.digest, Release: tag, Actor: actor, Reason: reason,
	}
	if d.Reason == "" {
		d.Reason = fmt.Sprintf("promote %s from %s as %s", ferry.ShortSHA(cand.commit), r.env.From, tag)
	}
	if approved != nil {
		d.Actor, d.Reason = approved.Requester, approvedReason(approved, r.env.From, tag)
	}
	if facts.Running != "" && facts.Running != cand.commit && !facts.Ahead {
		d.Reason = "downgrade: " + d.Reason
	}
	overridden := opts.override && !release.Open(r.env.Environment, facts.Now)
	if overridden {
		d.Reason = "override of release windows and freezes: " + d.Reason
	}
	if err := c.intend(ctx, r, d, actionID); err != nil {
		return nil, nil, err
	}
	if err := c.moveBranch(ctx, r, cand.commit, facts.Head); err != nil {
		return nil, nil, c.abandon(ctx, r, d, c.refuse(ctx, r, "promote", cand.commit, actor, err))
	}
	if err := c.tags.Tag(ctx, cand.digest, tag); err != nil {
		return nil, nil, c.abandon(ctx, r, d, fmt.Errorf("tag %s as %s: %w", ferry.ShortSHA(cand.commit), tag, err))
	}
	if overridden {
		c.record(ctx, ferry.Event{Actor: actor, Kind: "promote.override", Env: r.env.Name, Commit: d.Commit, BuildID: d.BuildID,
			Message: fmt.Sprintf("promote %d to %s outside its release windows or in a freeze, overridden", d.ID, r.env.Name), Reason: reason})
	}
	c.handOver(ctx, r, d)
	return d, nil, nil
}

// promoteOpts are a promote action's switches: --allow-downgrade and an
// admin's --override of release windows and freezes.
type promoteOpts struct{ downgrade, override bool }

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
	case tooShort().MatchString(ref):
		return candidate{}, errTooShort(ref)
	case shortHex().MatchString(ref):
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
			return nil, c.noSucceededBuild(ctx, ref)
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
		return nil, c.noSucceededBuild(ctx, ref)
	}
	return found, nil
}

// noSucceededBuild is the refusal for a commit (full or prefix) without a
// succeeded build: still being built when its newest build has not ended,
// else it never ran in dev.
func (c *Controller) noSucceededBuild(ctx context.Context, ref string) error {
	builds, err := c.ledger.Builds(ctx, ledger.BuildFilter{App: c.cfg.App, Limit: 1000})
	if err != nil {
		return err
	}
	for _, b := range builds { // newest first
		if strings.HasPrefix(b.Commit, ref) {
			if !b.State.Final() {
				return ferry.Errorf(ferry.ECONFLICT, "commit %s is still being built (build %d, %s): it has not run in dev yet", ref, b.ID, b.State)
			}
			break
		}
	}
	return ferry.Errorf(ferry.ENOTFOUND, "commit %s has no succeeded build: it never ran in dev", ref)
}

// promotionFacts gathers what the promotion gates decide on: the ledger's
// facts (ledgerPromotionFacts), whether the candidate is ahead of what
// the environment runs, its place on the mainline, and where the release
// branch points (the lease its move is made with).
func (c *Controller) promotionFacts(ctx context.Context, r *envRunner, cand candidate, ref string) (release.PromotionFacts, error) {
	f, err := c.ledgerPromotionFacts(ctx, r, cand, ref)
	if err != nil {
		return f, err
	}
	if f.Running != "" && f.Running != cand.commit {
		if f.Ahead, err = c.git.IsAncestor(ctx, f.Running, cand.commit); err != nil {
			return f, err
		}
	}
	main, err := c.git.Head(ctx, r.mainline)
	if err != nil {
		return f, fmt.Errorf("read %s: %w", r.mainline, err)
	}
	if f.OnMainline, err = c.git.IsAncestor(ctx, cand.commit, main); err != nil {
		return f, err
	}
	if f.Head, err = c.branchHead(ctx, r); err != nil {
		return f, err
	}
	return f, nil
}

// ledgerPromotionFacts gathers the promotion facts the ledger and the
// controller hold: what the environment runs, a release a rollback left
// (for an implicit promotion: ref empty or the upstream), the lock, a
// rollout in progress, a quarantine and the candidate digest's
// deployments upstream. Where the candidate stands in git is the caller's
// to add.
func (c *Controller) ledgerPromotionFacts(ctx context.Context, r *envRunner, cand candidate, ref string) (release.PromotionFacts, error) {
	f := release.PromotionFacts{Env: r.env.Environment, Mainline: r.mainline, Commit: cand.commit, Rollout: r.rollout(), Now: c.now()}
	cur, err := absent(c.ledger.Current(ctx, c.cfg.App, r.env.Name))
	if err != nil {
		return f, err
	}
	if cur != nil {
		f.Running = cur.Commit
	}
	if ref == "" || ref == r.env.From { // implicit: a release a rollback left is not taken again
		known, err := c.knownReleases(ctx, r)
		if err != nil {
			return f, err
		}
		if k, ok := release.ReleaseOf(known, cand.commit); ok && k.RolledBackFrom {
			f.Left = k.Release
		}
	}
	if f.Lock, err = absent(c.locks.LockOf(ctx, c.cfg.App, r.env.Name)); err != nil {
		return f, err
	}
	if f.Quarantine, err = absent(c.locks.Quarantined(ctx, c.cfg.App, cand.commit)); err != nil {
		return f, err
	}
	if f.Upstream, err = c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: r.env.From, Digest: cand.digest, Limit: 100}); err != nil {
		return f, err
	}
	return f, nil
}

// rollout is the deployment of r in progress, or the one waiting to start
// when none is (or the one in progress only moves its tags), nil when
// there is none.
func (r *envRunner) rollout() *ferry.Deployment {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.active == nil || r.finishing {
		return r.pending
	}
	return r.active
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

// untilOpen waits, with the action a queued, until r's environment is
// open for promotions (release.NextOpening, by the controller's clock and
// timer); a promote that can never open again is refused. It returns
// ctx's error when the controller stops first: a stays queued for the
// next start to close.
func (c *Controller) untilOpen(ctx context.Context, r *envRunner, a *ferry.Action) error {
	announced := false
	for {
		now := c.now()
		if release.Open(r.env.Environment, now) {
			return nil
		}
		at, _, ok := release.NextOpening(r.env.Environment, now)
		if !ok {
			err := release.Closed(r.env.Environment, now)
			if terr := c.ledger.TransitionAction(context.WithoutCancel(ctx), a.ID, ferry.ActionQueued, ferry.ActionRefused, ferry.ErrorMessage(err), now); terr != nil {
				c.log.Error("refuse action", "id", a.ID, "err", terr)
			}
			c.changed.Notify()
			return err
		}
		if !announced {
			announced = true
			c.record(ctx, ferry.Event{Actor: a.Actor, Kind: "promote.waiting", Env: r.env.Name,
				Message: fmt.Sprintf("promote %d to %s waits for the next opening, %s UTC", a.ID, r.env.Name, at.UTC().Format(time.DateTime)), Reason: a.Reason})
		}
		select {
		case <-c.cfg.After(at.Sub(now)):
		case <-ctx.Done():
			return ferry.Wrap(ctx.Err(), ferry.EUNAVAILABLE, "ferry stopped while action %d waited for %s to open", a.ID, r.env.Name)
		}
	}
}

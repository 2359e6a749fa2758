package controller

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/release"
)

// autoActor is the actor of ferry's own promotions (auto: true).
const autoActor = "ferry (auto)"

// autoLoop promotes, for an environment with auto: true, the newest
// digest its upstream runs once release.AutoCandidate says it is due:
// at every change, and when the wait is over (on the controller's
// timer). The promotion is an ordinary promote action (with WhenOpen, so
// a closed window makes it wait): every gate applies, and an approval
// rule makes it a release request.
func (c *Controller) autoLoop(ctx context.Context, r *envRunner) {
	tried := map[string]bool{} // digests promoted by this run already
	for {
		changed := c.changed.Wait()
		var timer <-chan time.Time
		if wait, err := c.autoStep(ctx, r, tried); err != nil && ctx.Err() == nil {
			c.log.Error("automatic promotion", "env", r.env.Name, "err", err)
		} else if wait > 0 {
			timer = c.cfg.After(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-timer:
		}
	}
}

// autoStep queues the automatic promotion of r when it is due and
// returns how long until it is, 0 when there is none to wait for.
func (c *Controller) autoStep(ctx context.Context, r *envRunner, tried map[string]bool) (time.Duration, error) {
	f := release.AutoFacts{Env: r.env.Environment}
	up, err := absent(c.ledger.Current(ctx, c.cfg.App, r.env.From))
	if err != nil || up == nil {
		return 0, err
	}
	f.Upstream = up
	cur, err := absent(c.ledger.Current(ctx, c.cfg.App, r.env.Name))
	if err != nil {
		return 0, err
	}
	if cur != nil {
		f.Running = cur.Digest
	}
	if f.Tried, err = c.autoTried(ctx, r, up, tried); err != nil {
		return 0, err
	}
	ups, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: r.env.From, Digest: up.Digest,
		States: []ferry.DeploymentState{ferry.DeploymentSucceeded}, Limit: ledger.MaxLimit})
	if err != nil {
		return 0, err
	}
	f.FirstSuccess = up.FinishedAt
	if len(ups) > 0 {
		f.FirstSuccess = ups[len(ups)-1].FinishedAt // newest first: the last is the first success
	}
	due, ok := release.AutoCandidate(f)
	if !ok {
		return 0, nil
	}
	if now := c.now(); now.Before(due) {
		return due.Sub(now), nil
	}
	tried[up.Digest] = true
	a, err := c.Queue(ctx, ferry.Action{Env: r.env.Name, Kind: ferry.ActionPromote, Ref: up.Commit, WhenOpen: true, Actor: autoActor,
		Reason: fmt.Sprintf("auto: %s succeeded in %s at %s UTC (wait %s)", ferry.ShortSHA(up.Commit), r.env.From, f.FirstSuccess.UTC().Format(time.DateTime), r.env.Wait)})
	if err != nil {
		return 0, fmt.Errorf("queue the automatic promotion of %s: %w", ferry.ShortSHA(up.Commit), err)
	}
	c.record(ctx, ferry.Event{Actor: autoActor, Kind: "promote.auto", Env: r.env.Name, Commit: up.Commit, BuildID: up.BuildID,
		Message: fmt.Sprintf("automatic promotion of %s from %s to %s queued as action %d", ferry.ShortSHA(up.Commit), r.env.From, r.env.Name, a.ID)})
	return 0, nil
}

// autoTried reports whether r had up's digest before: promoted by this
// run, deployed (in any state), or asked for in a pending or approved
// release request. Ferry promotes a digest by itself once.
func (c *Controller) autoTried(ctx context.Context, r *envRunner, up *ferry.Deployment, tried map[string]bool) (bool, error) {
	if tried[up.Digest] {
		return true, nil
	}
	ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: r.env.Name, Digest: up.Digest, Limit: 1})
	if err != nil || len(ds) > 0 {
		return len(ds) > 0, err
	}
	rs, err := c.ledger.ReleaseRequests(ctx, ledger.RequestFilter{App: c.cfg.App, Env: r.env.Name,
		States: []ferry.RequestState{ferry.RequestPending, ferry.RequestApproved}, Limit: ledger.MaxLimit})
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(rs, func(q *ferry.ReleaseRequest) bool { return q.Digest == up.Digest }), nil
}

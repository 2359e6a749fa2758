package controller

import (
	"context"
	"fmt"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/release"
)

// ReleaseHead handles a new head of a gated environment's branch seen in
// git: someone pushed to release. The move from what the environment runs
// to sha is classified by the same rule `ferry hook pre-receive` applies
// (release.Classify, on the ledger's known releases): a fast-forward along
// the mainline is a promotion, a move to a known release's commit a
// rollback (the seed's `git branch -f release <sha>; git push --force`);
// anything else is never deployed: it is recorded and shown as an alert
// until resolved. The repository's cache must already hold sha (the
// poller calls it after a fetch).
func (c *Controller) ReleaseHead(ctx context.Context, branch, sha string) {
	for _, r := range c.envs {
		if r.env.Gated() && r.env.Branch == branch {
			c.releaseHead(ctx, r, sha)
		}
	}
}

// releaseHead first preempts a canary of another commit (it would hold
// the turn through all its steps), then takes its turn among r's actions:
// by then the head may have moved again (a promotion or rollback, or a
// reset after one failed), and a head that is no longer the branch's is
// left to the newer one's call.
// A refused head is not deployed, now or later: the branch is reset, with
// a lease, to what r runs.
func (c *Controller) releaseHead(ctx context.Context, r *envRunner, sha string) {
	c.preemptCanaryFor(ctx, r, sha) // a canary holds the turn until it ends
	_, err := c.inTurn(ctx, r, func() (*ferry.Deployment, error) { return c.pushed(ctx, r, sha) })
	if err != nil {
		c.setAlert(r, fmt.Sprintf("%s pushed to %s, not deployed: %s", ferry.ShortSHA(sha), r.env.Branch, ferry.ErrorMessage(err)))
	}
}

// pushed handles sha, r's branch head, in r's turn.
func (c *Controller) pushed(ctx context.Context, r *envRunner, sha string) (*ferry.Deployment, error) {
	if err := c.git.Fetch(ctx); err != nil {
		return nil, errFetch(err)
	}
	if head, err := c.branchHead(ctx, r); err != nil || head != sha {
		return nil, err // moved on since: the poller reports the newer head
	}
	m, v, err := c.classifyHead(ctx, r, sha)
	if err != nil {
		c.log.Error("release head", "env", r.env.Name, "err", err)
		return nil, nil
	}
	var d *ferry.Deployment
	switch {
	case !v.Allowed:
		msg := fmt.Sprintf("%s was pushed to %s but is not deployed: %s", ferry.ShortSHA(sha), r.env.Branch, v.Reason)
		if v.Rule == release.RuleForward {
			msg = fmt.Sprintf("%s was pushed to %s but is neither a fast-forward of what %s runs (%s) nor a known release: it is not deployed",
				ferry.ShortSHA(sha), r.env.Branch, r.env.Name, ferry.ShortSHA(m.Old))
		}
		c.illegal(ctx, r, sha, msg)
		c.resetBranch(ctx, r, "ferry")
		return nil, nil
	case v.Kind == release.Unchanged:
	case v.Release != "": // back (or over) to a known release
		d, err = c.rollback(ctx, r, v.Release, "git push", "release moved back to "+v.Release+" by a push", 0)
	default: // forward along the mainline
		d, _, err = c.promote(ctx, r, sha, "git push", fmt.Sprintf("%s pushed to %s", ferry.ShortSHA(sha), r.env.Branch), promoteOpts{}, 0, nil)
	}
	if err != nil {
		switch ferry.ErrorCode(err) {
		case ferry.ECONFLICT, ferry.EINVALID, ferry.ENOTFOUND: // refused, not unavailable
			c.resetBranch(ctx, r, "ferry")
		}
		return nil, err
	}
	c.setAlert(r, "")
	return d, nil
}

// classifyHead gathers the facts of the move from what r runs to sha
// (the git side through release.Observe, the known releases from the
// ledger) and classifies it.
func (c *Controller) classifyHead(ctx context.Context, r *envRunner, sha string) (release.Move, release.Verdict, error) {
	m := release.Move{Branch: r.env.Branch, Old: release.Zero, New: sha}
	cur, err := absent(c.ledger.Current(ctx, c.cfg.App, r.env.Name))
	if err != nil {
		return m, release.Verdict{}, err
	}
	if cur != nil {
		m.Old = cur.Commit
	}
	f, err := release.Observe(ctx, c.git, m, r.mainline)
	if err != nil {
		return m, release.Verdict{}, err
	}
	if f.Known, err = c.knownReleases(ctx, r); err != nil {
		return m, release.Verdict{}, err
	}
	f.Env = r.env.Name
	return m, release.Classify(m, f), nil
}

func (c *Controller) illegal(ctx context.Context, r *envRunner, sha, msg string) {
	c.setAlert(r, msg)
	c.record(ctx, ferry.Event{Actor: "git push", Kind: "release.illegal", Env: r.env.Name, Commit: sha, Message: msg})
}

func (c *Controller) setAlert(r *envRunner, msg string) {
	r.mu.Lock()
	r.alert = msg
	r.mu.Unlock()
	c.changed.Notify()
}

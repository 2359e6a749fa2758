package builder

import (
	"context"
	"fmt"
	"slices"

	"github.com/ferryhq/ferry"
)

// MaxArrivals caps how many commits one move of a branch records: a push
// of more (a long-lived branch merged, ferry down for weeks) records the
// newest MaxArrivals and the build.arrivals event says the rest were left
// out.
const MaxArrivals = 100

// arrivals is what recordArrivals did, for the event that sums it up.
type arrivals struct {
	from     string
	recorded int   // commits recorded as superseded
	more     bool  // more than MaxArrivals arrived
	err      error // listing the commits failed
}

// recordArrivals accounts for the commits that moving head.Branch from
// prev to head.Commit brought besides the head: each without a build is
// recorded as a build that never ran, superseded by the head, so that
// every commit of a built branch is in the ledger, built or not, and why.
// It runs before the head's build is recorded, oldest commit first, so
// that build IDs follow the history. A failure is logged and reported in
// the event, never returned: the head is built all the same.
func (b *Builder) recordArrivals(ctx context.Context, prev string, head *ferry.Build) arrivals {
	a := arrivals{from: prev}
	commits, more, err := b.src.Between(ctx, prev, head.Commit, MaxArrivals)
	if err != nil {
		b.log.Warn("list arrived commits", "branch", head.Branch, "from", prev, "to", head.Commit, "err", err)
		a.err = err
		return a
	}
	a.more = more
	reason := supersededBy(head.Commit, head.Branch)
	for _, c := range slices.Backward(commits) {
		if c.SHA == head.Commit {
			continue
		}
		if _, err := b.ledger.BuildByCommit(ctx, b.cfg.App, c.SHA); err == nil {
			continue // built already, on another branch or by hand
		} else if ferry.ErrorCode(err) != ferry.ENOTFOUND {
			b.log.Error("look up arrived commit", "commit", c.SHA, "err", err)
			continue
		}
		now := b.now()
		sb := &ferry.Build{
			App: b.cfg.App, Commit: c.SHA, Branch: head.Branch, Subject: c.Subject, Author: c.Author,
			Trigger: head.Trigger, State: ferry.BuildSuperseded, Reason: reason, Image: b.cfg.Image,
			CreatedAt: now, FinishedAt: now,
		}
		if err := b.ledger.CreateBuild(ctx, sb); err != nil {
			if ferry.ErrorCode(err) != ferry.ECONFLICT { // ECONFLICT: another server recorded it first
				b.log.Error("record arrived commit", "commit", c.SHA, "err", err)
			}
			continue
		}
		a.recorded++
	}
	return a
}

// arrivalsEvent records build.arrivals for head, the queued build, when
// its push brought more than the head (or listing them failed).
func (b *Builder) arrivalsEvent(ctx context.Context, head *ferry.Build, actor string, a arrivals) {
	var reason string
	switch {
	case a.err != nil:
		reason = fmt.Sprintf("the commits between %s and %s could not be listed: %s",
			ferry.ShortSHA(a.from), head.ShortCommit(), ferry.ErrorMessage(a.err))
	case a.recorded == 0 && !a.more:
		return
	default:
		reason = fmt.Sprintf("%d new commits on %s since %s: %s is queued, %d recorded as superseded by it",
			a.recorded+1, head.Branch, ferry.ShortSHA(a.from), head.ShortCommit(), a.recorded)
		if a.more {
			reason += fmt.Sprintf("; more than %d arrived at once, only the newest %d are recorded", MaxArrivals, MaxArrivals)
		}
	}
	b.event(ctx, "build.arrivals", actor, head, reason)
}

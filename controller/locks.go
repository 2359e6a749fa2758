package controller

import (
	"context"
	"fmt"
	"strings"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// Lock freezes an environment: promotions are refused while it holds. It
// is an action (actions.go): a lock asked for during a promotion holds
// from the promotion's end.
func (c *Controller) Lock(ctx context.Context, env, actor, reason string) (*ferry.Lock, error) {
	o := c.ask(ctx, ferry.Action{Env: env, Kind: ferry.ActionLock, Actor: actor, Reason: reason})
	return o.lock, o.err
}

// Unlock lifts an environment's lock, in its turn (an action).
func (c *Controller) Unlock(ctx context.Context, env, actor, reason string) (*ferry.Lock, error) {
	o := c.ask(ctx, ferry.Action{Env: env, Kind: ferry.ActionUnlock, Actor: actor, Reason: reason})
	return o.lock, o.err
}

// Quarantine bars a commit, named by commit or release tag, from ever
// being promoted or rolled back to again.
func (c *Controller) Quarantine(ctx context.Context, ref, actor, reason string) (*ferry.Quarantine, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "a quarantine needs a reason (--reason)")
	}
	q := &ferry.Quarantine{App: c.cfg.App, Actor: actor, Reason: reason, CreatedAt: c.now()}
	if strings.HasPrefix(ref, "RC") {
		ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Release: ref, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(ds) == 0 {
			return nil, ferry.Errorf(ferry.ENOTFOUND, "no release %s", ref)
		}
		q.Commit, q.Release = ds[0].Commit, ref
	} else {
		if tooShort().MatchString(ref) {
			return nil, errTooShort(ref)
		}
		if !shortHex().MatchString(ref) {
			return nil, ferry.Errorf(ferry.EINVALID, "%q is neither a commit nor a release tag (RC…)", ref)
		}
		b, err := c.buildOf(ctx, ref)
		if err != nil {
			return nil, err
		}
		q.Commit = b.Commit
	}
	if err := c.locks.AddQuarantine(ctx, q); err != nil {
		return nil, err
	}
	c.record(ctx, ferry.Event{Actor: actor, Kind: "release.quarantined", Commit: q.Commit,
		Message: fmt.Sprintf("%s quarantined", strings.TrimSpace(q.Release+" "+ferry.ShortSHA(q.Commit))), Reason: reason})
	return q, nil
}

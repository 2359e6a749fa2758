package controller

import (
	"context"
	"fmt"
	"strings"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// Lock freezes an environment: promotions are refused while it holds. It
// takes its turn among the environment's actions (queue.go): a lock asked
// for during a promotion holds from the promotion's end.
func (c *Controller) Lock(ctx context.Context, env, actor, reason string) (*ferry.Lock, error) {
	r, err := c.env(env)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(reason) == "" {
		return nil, ferry.Errorf(ferry.EINVALID, "a lock needs a reason (--reason)")
	}
	var l *ferry.Lock
	_, err = c.inTurn(ctx, r, func() (*ferry.Deployment, error) {
		l = &ferry.Lock{App: c.cfg.App, Env: r.env.Name, Actor: actor, Reason: reason, CreatedAt: c.now()}
		if err := c.locks.Lock(ctx, l); err != nil {
			return nil, err
		}
		c.record(ctx, ferry.Event{Actor: actor, Kind: "env.locked", Env: env, Message: fmt.Sprintf("%s locked", env), Reason: reason})
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Unlock lifts an environment's lock, in its turn. A push refused while
// the lock held was reset then and stays undeployed.
func (c *Controller) Unlock(ctx context.Context, env, actor, reason string) (*ferry.Lock, error) {
	r, err := c.env(env)
	if err != nil {
		return nil, err
	}
	var l *ferry.Lock
	_, err = c.inTurn(ctx, r, func() (*ferry.Deployment, error) {
		if l, err = c.locks.Unlock(ctx, c.cfg.App, env); err != nil {
			return nil, err
		}
		c.record(ctx, ferry.Event{Actor: actor, Kind: "env.unlocked", Env: env, Message: fmt.Sprintf("%s unlocked (locked by %s: %s)", env, l.Actor, l.Reason), Reason: reason})
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
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
		if tooShort.MatchString(ref) {
			return nil, errTooShort(ref)
		}
		if !shortHex.MatchString(ref) {
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

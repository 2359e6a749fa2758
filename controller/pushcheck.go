package controller

import (
	"context"
	"fmt"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/release"
)

// CheckPush judges the ref updates of a push into the app's repository
// before the git server takes it (`ferry hook pre-receive` asks through
// the API): env's branch, its release tags and the env/* tags, each by
// release.JudgePush on the facts this controller acts on — the ledger's
// releases, what each environment runs, the rollout in flight, and the
// gates of the promotion or rollback a move of the branch starts (lock,
// quarantine, success upstream and soak), the same release.Gates and
// release.RollbackGates a promote or rollback runs. The git side of each
// update is the hook's: the pushed objects are in its repository, not yet
// in ferry's copy. It takes no lock a promotion holds, so ferry's own
// pushes, which run the same hook, are judged too.
func (c *Controller) CheckPush(ctx context.Context, env string, updates []release.PushUpdate) ([]release.Verdict, error) {
	r, err := c.env(env)
	if err != nil {
		return nil, err
	}
	if err := release.TakesPromotions(r.env.Environment); err != nil {
		return nil, err
	}
	f := release.PushFacts{Env: r.env.Environment, Runs: map[string]string{}, InFlight: r.rollout()}
	if f.InFlight == nil {
		// A promotion records its deployment before it moves the branch
		// (intend, then moveBranch): ferry's own push of the release
		// branch comes while that deployment is pending in the ledger,
		// before the environment's loop has it.
		ds, err := c.ledger.Deployments(ctx, ledger.DeploymentFilter{App: c.cfg.App, Env: env, States: []ferry.DeploymentState{ferry.DeploymentPending}, Limit: 1})
		if err != nil {
			return nil, fmt.Errorf("what %s is about to deploy: %w", env, err)
		}
		if len(ds) == 1 {
			f.InFlight = ds[0]
		}
	}
	if f.Known, err = c.knownReleases(ctx, r); err != nil {
		return nil, err
	}
	for _, e := range c.envs {
		cur, err := absent(c.ledger.Current(ctx, c.cfg.App, e.env.Name))
		if err != nil {
			return nil, fmt.Errorf("what %s runs: %w", e.env.Name, err)
		}
		if cur != nil {
			f.Runs[e.env.Name] = cur.Commit
		}
	}
	var gateErr error // a fact that could not be read: the push cannot be judged
	f.Gate = func(m release.Move, mf release.MoveFacts, v release.Verdict) error {
		refusal, err := c.pushGates(ctx, r, m, mf, v, f.Known)
		if err != nil && gateErr == nil {
			gateErr = err
		}
		return refusal
	}
	out := make([]release.Verdict, len(updates))
	for i, u := range updates {
		out[i] = release.JudgePush(u, f)
		if gateErr != nil {
			return nil, gateErr
		}
	}
	return out, nil
}

// pushGates applies the gates of what the move m of r's branch starts: a
// return to a known release is a rollback (release.RollbackGates), any
// other allowed move a promotion of the commit's build
// (release.Gates, the git side from the hook). The first result is the
// refusal, the second a failure to read the facts.
func (c *Controller) pushGates(ctx context.Context, r *envRunner, m release.Move, mf release.MoveFacts, v release.Verdict, known []release.Known) (refusal, err error) {
	if v.Release != "" {
		target, _ := release.ReleaseOf(known, m.New)
		q, err := absent(c.locks.Quarantined(ctx, c.cfg.App, target.Commit))
		if err != nil {
			return nil, err
		}
		return release.RollbackGates(release.RollbackFacts{Env: r.env.Environment, Target: target, Quarantine: q}), nil
	}
	b, err := c.buildOf(ctx, m.New)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return err, nil
	}
	if err != nil {
		return nil, err
	}
	// The push names its commit: a release a rollback left may be taken.
	f, err := c.ledgerPromotionFacts(ctx, r, candidate{commit: b.Commit, digest: b.Digest, buildID: b.ID}, b.Commit)
	if err != nil {
		return nil, err
	}
	f.OnMainline = mf.OnMainline && mf.HasMainline
	f.Head = m.Old
	// Forward from what runs: the branch's move is that when it starts
	// where the environment runs (reconcile keeps it there); otherwise
	// ferry's copy answers, if it already holds the pushed commit.
	f.Ahead = mf.FastForward
	if f.Running != "" && f.Running != m.Old {
		if ahead, err := c.git.IsAncestor(ctx, f.Running, m.New); err == nil {
			f.Ahead = ahead
		}
	}
	return release.Gates(f), nil
}

package release

import (
	"time"

	"github.com/ferryhq/ferry"
)

// TakesPromotions refuses a promotion to an environment that follows its
// branch: only a gated one takes them.
func TakesPromotions(env ferry.Environment) error {
	if !env.Gated() {
		return ferry.Errorf(ferry.EINVALID, "%s takes no promotions: it follows branch %s", env.Name, env.Branch)
	}
	return nil
}

// TakesRollbacks refuses a rollback of an environment that follows its
// branch: it has no releases.
func TakesRollbacks(env ferry.Environment) error {
	if !env.Gated() {
		return ferry.Errorf(ferry.EINVALID, "%s has no releases to roll back to: it follows branch %s", env.Name, env.Branch)
	}
	return nil
}

// PromotionFacts is what the promotion gates decide on, gathered
// beforehand from the ledger, the controller's state and git.
type PromotionFacts struct {
	// Env is the environment promoted to; Env.From is its upstream.
	Env ferry.Environment
	// Mainline is the branch whose history alone is released.
	Mainline string
	// Commit is the candidate.
	Commit string
	// Lock is Env's lock, nil when it is not locked.
	Lock *ferry.Lock
	// Rollout is a deployment of Env in progress or waiting to start, nil
	// when there is none.
	Rollout *ferry.Deployment
	// Quarantine bars Commit, nil when it is not quarantined.
	Quarantine *ferry.Quarantine
	// OnMainline says whether Commit is on the mainline's history.
	OnMainline bool
	// Upstream are the deployments of the candidate's digest in Env.From,
	// newest first, whatever their state.
	Upstream []*ferry.Deployment
	// Running is the commit Env runs (the ledger; empty: nothing), and
	// Ahead says whether Running is an ancestor of Commit. A promotion
	// moves forward from what runs, whatever the branch says.
	Running string
	Ahead   bool
	// AllowDowngrade lets a promotion go back from Running (promote
	// --allow-downgrade, with a reason).
	AllowDowngrade bool
	// Left names the release of Commit that a rollback left, for a
	// promotion that did not name the commit: it is taken again only
	// when named.
	Left string
	// Head is where Env.Branch points (Zero or empty: it does not exist):
	// the branch moves with a lease on it.
	Head string
	// Now is the time the soak is measured at, and the release windows
	// and freezes are judged at.
	Now time.Time
	// Override lets a promotion through Env's windows and freezes (an
	// admin's promote --override, with a reason: MayOverride).
	Override bool
}

// Gates applies every rule a promotion must pass (DESIGN §6), in order:
// the environment takes promotions, is not locked, is open (in a release
// window and in no freeze: Closed, unless overridden) and runs no rollout; it
// does not run the candidate already, which is not a release a rollback
// left unless named, and is ahead of what runs (or a downgrade is allowed); the
// commit is not quarantined and is on the mainline's history; its digest
// succeeded upstream and has run there for the soak time; and the release
// branch moves only forward to it. The first rule broken is the refusal,
// a *ferry.Error saying why; nil means the promotion may go ahead.
// "Forward" is judged from what the environment runs, not the branch.
func Gates(f PromotionFacts) error {
	if err := TakesPromotions(f.Env); err != nil {
		return err
	}
	name, up, c := f.Env.Name, f.Env.From, short(f.Commit)
	if l := f.Lock; l != nil {
		return ferry.Errorf(ferry.ECONFLICT, "%s is locked by %s since %s UTC: %s (ferry unlock %s)", name, l.Actor, l.CreatedAt.UTC().Format(time.DateTime), l.Reason, name)
	}
	if !f.Override {
		if err := Closed(f.Env, f.Now); err != nil {
			return err
		}
	}
	if d := f.Rollout; d != nil {
		return ferry.Errorf(ferry.ECONFLICT, "a rollout of %s is in progress (deployment %d, %s %s); wait for it to end", name, d.ID, d.Kind, short(d.Commit))
	}
	if f.Running == f.Commit {
		return ferry.Errorf(ferry.ECONFLICT, "%s already runs %s: nothing to promote", name, c)
	}
	if f.Left != "" {
		return ferry.Errorf(ferry.ECONFLICT, "%s is %s, which a rollback left: name it to run it again (ferry promote --to %s %s)", c, f.Left, name, f.Left)
	}
	if f.Running != "" && !f.Ahead && !f.AllowDowngrade {
		return ferry.Errorf(ferry.ECONFLICT, "%s is not ahead of %s, which %s runs: a promotion only moves forward; to go back use ferry rollback %s (or promote --allow-downgrade --reason …)",
			c, short(f.Running), name, name)
	}
	if q := f.Quarantine; q != nil {
		return ferry.Errorf(ferry.ECONFLICT, "%s is quarantined by %s: %s", c, q.Actor, q.Reason)
	}
	if !f.OnMainline {
		return ferry.Errorf(ferry.ECONFLICT, "%s is not on %s's history: only commits of %s are released", c, f.Mainline, f.Mainline)
	}
	var first, failed, rolling *ferry.Deployment
	for _, d := range f.Upstream { // newest first: first ends as the oldest success
		switch {
		case d.State == ferry.DeploymentSucceeded:
			first = d
		case d.State == ferry.DeploymentFailed, d.State == ferry.DeploymentRolledBack:
			if failed == nil {
				failed = d
			}
		case !d.State.Final() && rolling == nil:
			rolling = d
		}
	}
	if first == nil {
		if rolling != nil {
			return ferry.Errorf(ferry.ECONFLICT, "%s is still rolling out in %s (deployment %d, %s): promote it once it has succeeded there", c, up, rolling.ID, rolling.State)
		}
		if failed != nil {
			return ferry.Errorf(ferry.ECONFLICT, "%s failed in %s (deployment %d: %s): it is not promoted", c, up, failed.ID, failed.Error)
		}
		return ferry.Errorf(ferry.ECONFLICT, "%s never ran in %s: only digests that succeeded there are promoted", c, up)
	}
	if soak := f.Env.Soak; soak > 0 {
		if ranFor := f.Now.Sub(first.FinishedAt); ranFor < soak {
			return ferry.Errorf(ferry.ECONFLICT, "%s has run in %s for %s; %s needs %s of soak (promotable at %s)",
				c, up, ranFor.Round(time.Second), name, soak, first.FinishedAt.Add(soak).UTC().Format(time.DateTime))
		}
	}
	return nil
}

// RollbackTarget picks the release a rollback of env returns to among its
// known releases (KnownReleases): the one named to, or else the walk back
// along the release history (WalkBack) from what current runs. current is
// env's current deployment, nil when it runs nothing.
func RollbackTarget(env ferry.Environment, known []Known, current *ferry.Deployment, to string) (Known, error) {
	if err := TakesRollbacks(env); err != nil {
		return Known{}, err
	}
	if to != "" {
		for _, k := range known {
			if k.Release == to {
				return k, nil
			}
		}
		return Known{}, ferry.Errorf(ferry.ENOTFOUND, "release %s never ran successfully in %s: nothing to roll back to", to, env.Name)
	}
	if current == nil {
		return Known{}, ferry.Errorf(ferry.ECONFLICT, "%s runs nothing yet: nothing to roll back", env.Name)
	}
	if k, ok := WalkBack(known, current.Release, current.Digest); ok {
		return k, nil
	}
	runs := current.Release
	if runs == "" {
		runs = "what it runs"
	}
	return Known{}, ferry.Errorf(ferry.ECONFLICT, "%s has no earlier release than %s to roll back to (a rollback never goes forward; name one with --to)", env.Name, runs)
}

// RollbackFacts is what the rollback gates decide on.
type RollbackFacts struct {
	Env ferry.Environment
	// Target is the release returned to (RollbackTarget).
	Target Known
	// Quarantine bars the target's commit, nil when it is not quarantined.
	Quarantine *ferry.Quarantine
}

// RollbackGates applies the rules a rollback must pass: the environment
// has releases, and the one returned to is not quarantined. A lock does
// not stop a rollback: it freezes promotions, not the way back.
func RollbackGates(f RollbackFacts) error {
	if err := TakesRollbacks(f.Env); err != nil {
		return err
	}
	if q := f.Quarantine; q != nil {
		return ferry.Errorf(ferry.ECONFLICT, "%s (%s) is quarantined by %s: %s", f.Target.Release, short(f.Target.Commit), q.Actor, q.Reason)
	}
	return nil
}

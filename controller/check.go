package controller

import (
	"cmp"
	"context"
	"fmt"

	"github.com/ferryhq/ferry"
)

// Drift is one place where what runs, the ledger, the registry and git
// disagree, with the command that fixes it. Fix is one ferry command line
// that works when pasted (cli's tests parse every one with the real
// command tree), or, when no ferry command fixes it, an instruction that
// does not start with "ferry ".
// It is a domain value; the API's wire form of it is api.Drift.
type Drift struct {
	Env  string
	What string
	Want string
	Got  string
	Fix  string
}

// errFetch is a failed fetch of the app's repository as users see it;
// git's own words (paths, stderr) stay in the logs.
func errFetch(err error) error {
	return ferry.Wrap(err, ferry.EUNAVAILABLE, "cannot fetch the app's repository now; try again")
}

// Check compares, for every environment, what the ledger says it runs with
// what its replicas really run, the registry tags that follow it and its
// git refs (env/<name>, and the release branch of a gated environment),
// whether an environment fed by a branch runs its head's build, and finds
// release tags that no release of the ledger made (forgeries).
func (c *Controller) Check(ctx context.Context) ([]Drift, error) {
	drifts := []Drift{}
	if err := c.git.Fetch(ctx); err != nil {
		return nil, errFetch(err)
	}
	for _, r := range c.envs {
		name := r.env.Name
		r.mu.Lock()
		busy := r.active != nil || r.pending != nil
		r.mu.Unlock()
		if busy {
			drifts = append(drifts, Drift{Env: name, What: "rollout", Want: "none in progress", Got: "a rollout is in progress", Fix: "ferry status --check"})
			continue
		}
		if d, ok, err := c.lagDrift(ctx, r); err != nil {
			return nil, err
		} else if ok {
			drifts = append(drifts, d)
		}
		cur, err := c.ledger.Current(ctx, c.cfg.App, name)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			continue // nothing deployed: nothing to agree on
		}
		if err != nil {
			return nil, err
		}
		// A rollback to the release that runs re-applies it and moves its
		// tags; without a release, a scale to the same count moves the
		// tags, and a restart re-applies the digest.
		redeploy, reapply := fmt.Sprintf("ferry rollback %s --to %s", name, cur.Release), ""
		if cur.Release == "" {
			redeploy = fmt.Sprintf("ferry scale %s %d", name, max(cur.Replicas, 1))
			reapply = fmt.Sprintf("restart ferry: it restores %s from the ledger", name)
		}
		st, err := r.env.Runtime.Status(ctx)
		switch {
		case err != nil:
			err = statusError(err)
			if ferry.ErrorHidden(err) {
				c.log.Warn("check: runtime status", "env", name, "err", err)
			}
			drifts = append(drifts, Drift{Env: name, What: "runtime", Want: cur.Digest, Got: "unreadable: " + ferry.ErrorMessage(err), Fix: "check the runtime"})
		case st.Ready < cur.Replicas:
			drifts = append(drifts, Drift{Env: name, What: "replicas ready", Want: fmt.Sprint(cur.Replicas), Got: fmt.Sprint(st.Ready), Fix: "ferry logs " + name})
		}
		if err == nil {
			for _, p := range st.Replicas {
				if p.Digest != cur.Digest {
					drifts = append(drifts, Drift{Env: name, What: "replica " + p.ID, Want: cur.Digest, Got: p.Digest, Fix: cmp.Or(reapply, redeploy)})
				}
			}
		}
		for _, tag := range r.env.Tags {
			got, err := c.tags.Resolve(ctx, tag)
			if err != nil {
				got = "missing (" + ferry.ErrorMessage(err) + ")"
			}
			if got != cur.Digest {
				drifts = append(drifts, Drift{Env: name, What: "registry tag " + tag, Want: cur.Digest, Got: got, Fix: redeploy})
			}
		}
		tag := "env/" + name
		got, err := c.git.ResolveTag(ctx, tag)
		if err != nil {
			got = "missing"
		}
		if got != cur.Commit {
			drifts = append(drifts, Drift{Env: name, What: "git tag " + tag, Want: cur.Commit, Got: got, Fix: redeploy})
		}
		if r.env.Gated() && r.env.Branch != "" {
			head, err := c.git.Head(ctx, r.env.Branch)
			if err != nil {
				head = "missing"
			}
			if head != cur.Commit {
				// Back to what runs: the rollback resets the branch with a
				// lease. (To release the pushed head instead: ferry promote.)
				drifts = append(drifts, Drift{Env: name, What: "git branch " + r.env.Branch, Want: cur.Commit, Got: head, Fix: redeploy})
			}
		}
	}
	forged, err := c.forgeries(ctx)
	if err != nil {
		return nil, err
	}
	return append(drifts, forged...), nil
}

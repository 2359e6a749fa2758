package controller

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/release"
)

// forgeries finds what a forger leaves: digests under ferry's tags that do
// not verify (unsigned), and (release.Forgeries) release tags in git or in
// the registry that name no release of the ledger, or another commit or
// digest than the release ran. Each is a Drift of the
// first gated environment, with the way to remove it: the hook refuses
// deleting a release tag by push, so it goes where the tag was made.
func (c *Controller) forgeries(ctx context.Context) ([]Drift, error) {
	var gated *envRunner
	for _, r := range c.envs {
		if r.env.Gated() {
			gated = r
			break
		}
	}
	if gated == nil {
		return c.unsigned(ctx, "", nil, nil)
	}
	records, err := c.releaseRecords(ctx)
	if err != nil {
		return nil, err
	}
	gitTags, err := c.git.Tags(ctx, "")
	if err != nil {
		return nil, err
	}
	names, err := c.tags.ListTags(ctx)
	if err != nil {
		return nil, err
	}
	registryTags := map[string]string{}
	for _, name := range names {
		if !ferry.IsReleaseTag(name) {
			continue
		}
		digest, err := c.tags.Resolve(ctx, name)
		if ferry.ErrorCode(err) == ferry.ENOTFOUND {
			// Listed but naming no image: a kill during the tag's PUT
			// leaves that in the registry's storage. It names nothing to
			// pull, and its name stays taken by the ledger's attempt.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("registry tag %s: %w", name, err)
		}
		registryTags[name] = digest
	}
	out, err := c.unsigned(ctx, gated.env.Name, records, registryTags)
	if err != nil {
		return nil, err
	}
	for _, f := range release.Forgeries(records, gitTags, registryTags) {
		d := Drift{Env: gated.env.Name, What: f.Where + " tag " + f.Tag, Want: f.Want, Got: f.Got}
		if d.Want == "" {
			d.Want = "no such tag: the ledger has no release " + f.Tag
		}
		switch f.Where {
		case "git":
			d.Fix = fmt.Sprintf("on the git server: git tag -d %s (ferry never made it; pushes cannot delete release tags)", f.Tag)
		default:
			d.Fix = fmt.Sprintf("delete the tag %s from %s (ferry never made it) and check who can write to the registry", f.Tag, c.cfg.Image)
		}
		out = append(out, d)
	}
	return out, nil
}

// unsigned verifies (Verifier, as before a rollout) each digest ferry's
// tags name: what each environment runs, under its registry tags, and the
// release tags of the registry that the ledger made. A digest that does
// not verify is a Drift: its signature or attestation was removed or
// replaced after the rollout. A digest verified once is not checked
// again by later calls (its rollout checks it again anyway).
func (c *Controller) unsigned(ctx context.Context, releases string, records map[string]release.Record, registryTags map[string]string) ([]Drift, error) {
	type named struct{ env, what, digest, commit string }
	var todo []named
	for _, r := range c.envs {
		cur, err := absent(c.ledger.Current(ctx, c.cfg.App, r.env.Name))
		if err != nil {
			return nil, err
		}
		if cur != nil {
			todo = append(todo, named{r.env.Name, "digest it runs", cur.Digest, cur.Commit})
		}
	}
	for tag, digest := range registryTags {
		if rec, ok := records[tag]; ok && rec.Digest == digest {
			todo = append(todo, named{releases, "registry tag " + tag, digest, rec.Commit})
		}
	}
	slices.SortFunc(todo, func(a, b named) int { return cmp.Or(cmp.Compare(a.env, b.env), cmp.Compare(a.what, b.what)) })
	var out []Drift
	for _, n := range todo {
		c.verifiedMu.Lock()
		ok := c.verified[n.digest]
		c.verifiedMu.Unlock()
		if ok {
			continue
		}
		b, err := absent(c.ledger.BuildByCommit(ctx, c.cfg.App, n.commit))
		if err != nil {
			return nil, err
		}
		if err := c.cfg.Verifier.Verify(ctx, n.digest, b); err != nil {
			out = append(out, Drift{Env: n.env, What: n.what + " is not signed by ferry", Want: "ferry's signature and attestation of " + ferry.ShortSHA(n.commit),
				Got: n.digest + ": " + ferry.ErrorMessage(err), Fix: "find who wrote to the registry; ferry refuses to roll this digest out again (ferry build <branch> makes a signed image)"})
			continue
		}
		c.verifiedMu.Lock()
		c.verified[n.digest] = true
		c.verifiedMu.Unlock()
	}
	return out, nil
}

// releaseRecords reads every deployment of the app that carries a release
// name (release.Records), a page at a time.
func (c *Controller) releaseRecords(ctx context.Context) (map[string]release.Record, error) {
	var all []*ferry.Deployment
	for _, r := range c.envs {
		if !r.env.Gated() {
			continue
		}
		f := ledger.DeploymentFilter{App: c.cfg.App, Env: r.env.Name, Limit: ledger.MaxLimit}
		for {
			ds, err := c.ledger.Deployments(ctx, f)
			if err != nil {
				return nil, fmt.Errorf("the releases of %s: %w", r.env.Name, err)
			}
			all = append(all, ds...)
			if len(ds) < f.PageSize() {
				break
			}
			f.BeforeID = ds[len(ds)-1].ID
		}
	}
	return release.Records(all), nil
}

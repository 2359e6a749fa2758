package controller

import (
	"context"
	"fmt"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/release"
)

// forgeries finds what a forger leaves (release.Forgeries): release tags
// in git or in the registry that name no release of the ledger, or
// another commit or digest than the release ran. Each is a Drift of the
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
		return nil, nil
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
		if registryTags[name], err = c.tags.Resolve(ctx, name); err != nil {
			return nil, fmt.Errorf("registry tag %s: %w", name, err)
		}
	}
	var out []Drift
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

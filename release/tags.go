package release

import (
	"cmp"
	"context"
	"fmt"

	"github.com/ferryhq/ferry"
)

// TagMove is one update of a release tag (refs/tags/RC…).
type TagMove struct {
	Name     string
	Old, New string // the tag objects (Zero or empty: absent)
	// Annotated and Commit describe New: whether it is a tag object, and
	// the commit it peels to.
	Annotated bool
	Commit    string
}

// TagFacts is what ClassifyTag knows of the commit a new release tag
// names, read by ObserveTag.
type TagFacts struct {
	// Env is the gated environment whose releases the tags name, in
	// messages.
	Env string `json:"-"`
	// Mainline is the branch whose history alone is released;
	// HasMainline says whether it exists.
	Mainline    string `json:"mainline"`
	HasMainline bool   `json:"hasMainline"`
	// Exists says whether the tag's commit is a commit of the repository,
	// OnMainline whether it is on the mainline's history.
	Exists     bool `json:"exists"`
	OnMainline bool `json:"onMainline"`
	// Known are Env's known releases, newest first (KnownReleases): the
	// ledger's, filled in by the caller.
	Known []Known `json:"-"`
}

// ClassifyTag applies the release tags' rules to t: a release tag is
// ferry's record of a release, so it is created once, annotated, on a
// commit of the mainline's history, for a release the ledger knows
// (f.Known) and on that release's commit, and never moved or deleted.
// Anyone who can push can make an annotated tag; only ferry makes
// releases. Names that are not release tags are not checked.
func ClassifyTag(t TagMove, f TagFacts) Verdict {
	if !ferry.IsReleaseTag(t.Name) {
		return Verdict{Allowed: true, Kind: Unchanged, Reason: t.Name + " is not a release tag"}
	}
	old, nw := cmp.Or(t.Old, Zero), cmp.Or(t.New, Zero)
	switch {
	case old == nw:
		return Verdict{Allowed: true, Kind: Unchanged, Reason: t.Name + " stays"}
	case nw == Zero:
		return refuse(RuleTag, "release tag %s may not be deleted: releases are findable forever", t.Name)
	case old != Zero:
		return refuse(RuleTag, "release tag %s exists and never moves", t.Name)
	case !t.Annotated:
		return refuse(RuleTag, "release tag %s must be an annotated tag (git tag -a)", t.Name)
	case !ferry.ValidCommit(t.Commit) || t.Commit == Zero:
		return refuse(RuleTag, "release tag %s must name a commit", t.Name)
	case !f.HasMainline:
		return refuse(RuleTag, "release tag %s: %s does not exist, so %s is not on its history", t.Name, f.Mainline, short(t.Commit))
	case !f.Exists:
		return refuse(RuleTag, "release tag %s names %s, which is not a commit of this repository", t.Name, short(t.Commit))
	case !f.OnMainline:
		return refuse(RuleTag, "release tag %s names %s, which is not on %s's history: only commits of %s are released", t.Name, short(t.Commit), f.Mainline, f.Mainline)
	}
	env := cmp.Or(f.Env, "the environment")
	k, ok := knownByName(f.Known, t.Name)
	switch {
	case !ok:
		return refuse(RuleTag, "release tag %s is not a release of %s in ferry's ledger: ferry tags each release itself once it runs (ferry promote %s)", t.Name, env, cmp.Or(f.Env, "ENV"))
	case k.Commit != t.Commit:
		return refuse(RuleTag, "release tag %s names %s, but release %s of %s ran %s", t.Name, short(t.Commit), t.Name, env, short(k.Commit))
	}
	return Verdict{Allowed: true, Kind: Create, Release: t.Name, Reason: fmt.Sprintf("release tag %s on %s", t.Name, short(t.Commit))}
}

func knownByName(known []Known, name string) (Known, bool) {
	for _, k := range known {
		if k.Release == name {
			return k, true
		}
	}
	return Known{}, false
}

// EnvTagPrefix starts the git tags that name what each environment runs
// (env/dev, env/prod): ferry moves them after every rollout.
const EnvTagPrefix = "env/"

// ClassifyEnvTag applies the rule of an environment tag (env/<name>, in
// t.Name without refs/tags/): it names what the environment runs, so it
// may only be set to that commit (runs: the commit of env's current
// deployment, "" when it runs nothing) and is never deleted. It is ferry's
// to move; a push that sets it anywhere else is a forgery of what runs.
func ClassifyEnvTag(t TagMove, env, runs string) Verdict {
	old, nw := cmp.Or(t.Old, Zero), cmp.Or(t.New, Zero)
	switch {
	case old == nw:
		return Verdict{Allowed: true, Kind: Unchanged, Reason: t.Name + " stays"}
	case nw == Zero:
		return refuse(RuleTag, "%s may not be deleted: ferry keeps it on what %s runs", t.Name, env)
	case runs == "":
		return refuse(RuleTag, "%s is ferry's: %s runs nothing yet, so there is nothing for it to name", t.Name, env)
	case t.Commit != runs:
		return refuse(RuleTag, "%s is ferry's: it names what %s runs (%s), not %s; ferry moves it after each rollout", t.Name, env, short(runs), short(cmp.Or(t.Commit, nw)))
	}
	return Verdict{Allowed: true, Kind: Unchanged, Reason: fmt.Sprintf("%s on %s, what %s runs", t.Name, short(runs), env)}
}

// ObserveTag reads from g what ClassifyTag needs to know of t: only a new
// annotated release tag naming a commit needs the repository. An error
// means the facts could not be read, never that the tag is illegal.
func ObserveTag(ctx context.Context, g Git, t TagMove, mainline string) (TagFacts, error) {
	f := TagFacts{Mainline: mainline}
	if !ferry.IsReleaseTag(t.Name) || cmp.Or(t.Old, Zero) != Zero || cmp.Or(t.New, Zero) == Zero ||
		!t.Annotated || !ferry.ValidCommit(t.Commit) || t.Commit == Zero {
		return f, nil // decided without the repository
	}
	head, err := g.Head(ctx, mainline)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("read %s: %w", mainline, err)
	}
	f.HasMainline = true
	f.OnMainline, err = g.IsAncestor(ctx, t.Commit, head)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("is %s on %s: %w", short(t.Commit), mainline, err)
	}
	f.Exists = true
	return f, nil
}

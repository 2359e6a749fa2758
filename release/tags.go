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
	// Mainline is the branch whose history alone is released;
	// HasMainline says whether it exists.
	Mainline    string
	HasMainline bool
	// Exists says whether the tag's commit is a commit of the repository,
	// OnMainline whether it is on the mainline's history.
	Exists, OnMainline bool
}

// ClassifyTag applies the release tags' rules to t: a release tag is
// created once, annotated, on a commit of the mainline's history, and
// never moved or deleted. Names that are not release tags are not checked.
func ClassifyTag(t TagMove, f TagFacts) Verdict {
	if !ferry.IsReleaseTag(t.Name) {
		return Verdict{Allowed: true, Kind: Unchanged, Reason: t.Name + " is not a release tag"}
	}
	old, nw := cmp.Or(t.Old, Zero), cmp.Or(t.New, Zero)
	switch {
	case old == nw:
		return Verdict{Allowed: true, Kind: Unchanged, Reason: t.Name + " stays"}
	case nw == Zero:
		return refuse("", "release tag %s may not be deleted: releases are findable forever", t.Name)
	case old != Zero:
		return refuse("", "release tag %s exists and never moves", t.Name)
	case !t.Annotated:
		return refuse("", "release tag %s must be an annotated tag (git tag -a)", t.Name)
	case !ferry.ValidCommit(t.Commit) || t.Commit == Zero:
		return refuse("", "release tag %s must name a commit", t.Name)
	case !f.HasMainline:
		return refuse("", "release tag %s: %s does not exist, so %s is not on its history", t.Name, f.Mainline, short(t.Commit))
	case !f.Exists:
		return refuse("", "release tag %s names %s, which is not a commit of this repository", t.Name, short(t.Commit))
	case !f.OnMainline:
		return refuse("", "release tag %s names %s, which is not on %s's history: only commits of %s are released", t.Name, short(t.Commit), f.Mainline, f.Mainline)
	}
	return Verdict{Allowed: true, Kind: Create, Release: t.Name, Reason: fmt.Sprintf("release tag %s on %s", t.Name, short(t.Commit))}
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

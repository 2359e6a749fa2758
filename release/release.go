// Package release holds the rules for the branch that tracks a gated
// environment (DESIGN §4, §6.3): `release` moves fast-forward along
// master's history (a promotion) or back to the commit of a known release,
// one that carries an annotated RC… tag (a rollback). Anything else — not
// a fast-forward, not on master, an unknown commit, deleting the branch —
// is refused, with a sentence that names the rule. Release tags themselves
// are permanent: annotated, on master, never moved or deleted.
//
// The rules are plain functions over a small Git interface. Two
// implementations exist: source.Repo (the controller's fetch cache) and
// GitDir (a repository on disk, used by `ferry hook pre-receive` inside a
// git server). The package also renders release notes and compares what
// two environments run.
package release

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ferryhq/ferry"
)

// Git is what the rules read from a repository.
type Git interface {
	// Head returns the commit at branch's tip, ferry.ENOTFOUND if there
	// is no such branch.
	Head(ctx context.Context, branch string) (string, error)
	// IsAncestor reports whether ancestor is reachable from descendant (a
	// commit is its own ancestor); ferry.ENOTFOUND for an unknown commit.
	IsAncestor(ctx context.Context, ancestor, descendant string) (bool, error)
	// ReleaseTags returns the annotated release tags: tag → commit.
	ReleaseTags(ctx context.Context) (map[string]string, error)
}

// Zero is the all-zero id git uses for "no commit": an Old of Zero creates
// the branch, a New of Zero deletes it.
const Zero = ferry.ZeroSHA

// Move is one update of the release branch.
type Move struct {
	// Branch names the branch in messages; empty means "release".
	Branch string
	// Old is where the branch points now (Zero or empty: it does not
	// exist), New where it would point (Zero: deleted). Full commit ids.
	Old, New string
}

// Kind says which rule allowed a move.
type Kind string

// Kinds of allowed moves.
const (
	Promote   Kind = "promote"   // fast-forward along master's history
	Rollback  Kind = "rollback"  // back (or over) to a known release's commit
	Create    Kind = "create"    // the branch is created at a commit on master or of a release
	Unchanged Kind = "unchanged" // the branch stays where it is
)

// Verdict is the outcome of a check.
type Verdict struct {
	Allowed bool `json:"allowed"`
	// Kind is set when Allowed.
	Kind Kind `json:"kind,omitempty"`
	// Release is the release tag a rollback (or a create) returns to.
	Release string `json:"release,omitempty"`
	// Reason is a sentence: for a refusal it names the rule broken, for
	// an allowed move what it is.
	Reason string `json:"reason"`
}

func refuse(format string, args ...any) Verdict {
	return Verdict{Reason: fmt.Sprintf(format, args...)}
}

// Check applies the release branch's rules to m, with mainline (normally
// "master") the branch whose history alone may be released. An error
// means the rules could not be applied (git failed, bad input), never
// that the move is illegal: refusals are a Verdict with Allowed false.
func Check(ctx context.Context, g Git, m Move, mainline string) (Verdict, error) {
	branch := m.Branch
	if branch == "" {
		branch = "release"
	}
	old := m.Old
	if old == "" {
		old = Zero
	}
	if !ferry.ValidCommit(old) {
		return Verdict{}, ferry.Errorf(ferry.EINVALID, "invalid old commit %q", m.Old)
	}
	if !ferry.ValidCommit(m.New) {
		return Verdict{}, ferry.Errorf(ferry.EINVALID, "invalid new commit %q", m.New)
	}
	if m.New == Zero {
		return refuse("%s may not be deleted: it tracks what the environment runs", branch), nil
	}
	if m.New == old {
		return Verdict{Allowed: true, Kind: Unchanged, Reason: fmt.Sprintf("%s stays at %s", branch, short(old))}, nil
	}

	head, err := g.Head(ctx, mainline)
	switch {
	case ferry.ErrorCode(err) == ferry.ENOTFOUND:
		head = ""
	case err != nil:
		return Verdict{}, fmt.Errorf("read %s: %w", mainline, err)
	}
	// Is New on the mainline's history? Without a mainline, asking whether
	// New is its own ancestor still tells an unknown commit from a known one.
	top := head
	if top == "" {
		top = m.New
	}
	onMain, err := g.IsAncestor(ctx, m.New, top)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return refuse("%s is not a commit of this repository", short(m.New)), nil
	}
	if err != nil {
		return Verdict{}, fmt.Errorf("is %s on %s: %w", short(m.New), mainline, err)
	}
	onMain = onMain && head != ""
	ff := false
	if old != Zero {
		ff, err = g.IsAncestor(ctx, old, m.New)
		switch {
		case ferry.ErrorCode(err) == ferry.ENOTFOUND:
			// The old head is gone (or the new one unknown): not a
			// fast-forward of anything we can see.
			ff = false
		case err != nil:
			return Verdict{}, fmt.Errorf("is %s a fast-forward of %s: %w", short(m.New), short(old), err)
		}
	}
	if onMain && (ff || old == Zero) {
		if old == Zero {
			return Verdict{Allowed: true, Kind: Create, Reason: fmt.Sprintf("%s created at %s, on %s's history", branch, short(m.New), mainline)}, nil
		}
		return Verdict{Allowed: true, Kind: Promote, Reason: fmt.Sprintf("fast-forward of %s to %s along %s", short(old), short(m.New), mainline)}, nil
	}

	tags, err := g.ReleaseTags(ctx)
	if err != nil {
		return Verdict{}, fmt.Errorf("list release tags: %w", err)
	}
	if rel := newestTag(tags, m.New); rel != "" {
		kind := Rollback
		if old == Zero {
			kind = Create
		}
		return Verdict{Allowed: true, Kind: kind, Release: rel, Reason: fmt.Sprintf("%s to %s, the commit of release %s", branch, short(m.New), rel)}, nil
	}

	// Refused: say which rules failed, in the pusher's terms.
	notMain := fmt.Sprintf("not on %s's history", mainline)
	if head == "" {
		notMain = fmt.Sprintf("not on %s's history (%s does not exist)", mainline, mainline)
	}
	const notRelease = "not a known release (no annotated RC… tag)"
	switch {
	case old == Zero:
		return refuse("%s is %s and %s", short(m.New), notMain, notRelease), nil
	case ff:
		return refuse("%s is %s (only commits of %s are released) and %s", short(m.New), notMain, mainline, notRelease), nil
	case onMain:
		return refuse("%s is not a fast-forward of %s and %s", short(m.New), short(old), notRelease), nil
	}
	return refuse("%s is not a fast-forward of %s, %s, and %s", short(m.New), short(old), notMain, notRelease), nil
}

// TagMove is one update of a release tag (refs/tags/RC…).
type TagMove struct {
	Name     string
	Old, New string // the tag objects (Zero or empty: absent)
	// Annotated and Commit describe New: whether it is a tag object, and
	// the commit it peels to.
	Annotated bool
	Commit    string
}

// CheckTag applies the release tags' rules to t: a release tag is created
// once, annotated, on a commit of mainline's history, and never moved or
// deleted. Names that are not release tags are not checked.
func CheckTag(ctx context.Context, g Git, t TagMove, mainline string) (Verdict, error) {
	if !ferry.IsReleaseTag(t.Name) {
		return Verdict{Allowed: true, Kind: Unchanged, Reason: t.Name + " is not a release tag"}, nil
	}
	old, nw := t.Old, t.New
	if old == "" {
		old = Zero
	}
	if nw == "" {
		nw = Zero
	}
	switch {
	case old == nw:
		return Verdict{Allowed: true, Kind: Unchanged, Reason: t.Name + " stays"}, nil
	case nw == Zero:
		return refuse("release tag %s may not be deleted: releases are findable forever", t.Name), nil
	case old != Zero:
		return refuse("release tag %s exists and never moves", t.Name), nil
	case !t.Annotated:
		return refuse("release tag %s must be an annotated tag (git tag -a)", t.Name), nil
	case !ferry.ValidCommit(t.Commit) || t.Commit == Zero:
		return refuse("release tag %s must name a commit", t.Name), nil
	}
	head, err := g.Head(ctx, mainline)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return refuse("release tag %s: %s does not exist, so %s is not on its history", t.Name, mainline, short(t.Commit)), nil
	}
	if err != nil {
		return Verdict{}, fmt.Errorf("read %s: %w", mainline, err)
	}
	on, err := g.IsAncestor(ctx, t.Commit, head)
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return refuse("release tag %s names %s, which is not a commit of this repository", t.Name, short(t.Commit)), nil
	}
	if err != nil {
		return Verdict{}, fmt.Errorf("is %s on %s: %w", short(t.Commit), mainline, err)
	}
	if !on {
		return refuse("release tag %s names %s, which is not on %s's history: only commits of %s are released", t.Name, short(t.Commit), mainline, mainline), nil
	}
	return Verdict{Allowed: true, Kind: Create, Release: t.Name, Reason: fmt.Sprintf("release tag %s on %s", t.Name, short(t.Commit))}, nil
}

// newestTag returns the greatest release tag naming commit (names sort by
// time: RCyyyyMMdd_HHmm, then _2, _3 …), or "".
func newestTag(tags map[string]string, commit string) string {
	var names []string
	for name, c := range tags {
		if c == commit {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	slices.SortFunc(names, compareTags)
	return names[len(names)-1]
}

// compareTags orders release tags by time, then by their _N suffix
// (RC…_1200 < RC…_1200_2 < RC…_1200_10).
func compareTags(a, b string) int {
	const minute = len("RCyyyyMMdd_HHmm")
	if len(a) >= minute && len(b) >= minute && a[:minute] == b[:minute] {
		// Same minute: a shorter suffix is a smaller number.
		if c := cmp.Compare(len(a), len(b)); c != 0 {
			return c
		}
	}
	return strings.Compare(a, b)
}

func short(sha string) string { return ferry.ShortSHA(sha) }

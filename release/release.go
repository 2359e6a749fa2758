// Package release holds the rules of a gated environment's releases
// (DESIGN §4, §6) as pure functions over facts gathered beforehand, so
// that each rule is written once and table-tested without git or a ledger:
//
//   - Gates: may a commit be promoted to an environment now (it takes
//     promotions, is not locked, runs no rollout, the commit is not
//     quarantined, is on the mainline's history, succeeded upstream and
//     soaked there, and the release branch only moves forward)?
//   - RollbackTarget and RollbackGates: which release a rollback returns
//     to, and whether it may.
//   - Classify: what a move of the release branch is — a promotion (a
//     fast-forward along the mainline), a return to a known release (a
//     rollback), the branch's creation, no change — or which rule it
//     breaks, in a sentence.
//   - ClassifyTag: release tags (RC…) are annotated, on the mainline's
//     history, and never moved or deleted.
//
// A known release is the ledger's, and only the ledger's: a succeeded
// deployment of the gated environment that carries a release name
// (KnownReleases). An annotated RC… tag in git proves nothing; anyone who
// can push can make one.
//
// Two callers gather the facts. The controller reads its ledger and its
// fetch cache (source.Repo) when it promotes, rolls back or sees a push to
// the release branch; `ferry hook pre-receive`, inside a git server, reads
// the repository through GitDir and asks ferry's API for the known
// releases. Both read git through Observe and ObserveTag and the small Git
// interface, so both decide on the same facts. The package also renders
// release notes and compares what two environments run.
package release

import (
	"cmp"
	"context"
	"fmt"

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
	// For the controller, Old is what the environment runs.
	Old, New string
}

// Kind says which rule allowed a move.
type Kind string

// Kinds of allowed moves.
const (
	Promote   Kind = "promote"   // fast-forward along the mainline's history
	Rollback  Kind = "rollback"  // to a known release's commit, back or over
	Create    Kind = "create"    // the branch is created at a commit of the mainline or of a known release
	Unchanged Kind = "unchanged" // the branch stays where it is
)

// Rule names the rule a refused move breaks.
type Rule string

// The rules of the release branch.
const (
	RuleNoDelete Rule = "no-delete" // the branch is never deleted
	RuleCommit   Rule = "commit"    // it names a commit of the repository
	RuleMainline Rule = "mainline"  // it moves forward only along the mainline's history
	RuleForward  Rule = "forward"   // it moves forward, or to a known release
	RuleGate     Rule = "gate"      // the promotion or rollback it starts passes its gates (Gates, RollbackGates)
	RuleTag      Rule = "tag"       // release tags and environment tags are ferry's (ClassifyTag, ClassifyEnvTag)
)

// Verdict is the outcome of a rule.
type Verdict struct {
	Allowed bool `json:"allowed"`
	// Kind is set when Allowed.
	Kind Kind `json:"kind,omitempty"`
	// Release is the known release a rollback (or a create) goes to.
	Release string `json:"release,omitempty"`
	// Rule is the rule a refused move breaks.
	Rule Rule `json:"rule,omitempty"`
	// Reason is a sentence: for a refusal it names the rule broken, for
	// an allowed move what it is.
	Reason string `json:"reason"`
}

func refuse(rule Rule, format string, args ...any) Verdict {
	return Verdict{Rule: rule, Reason: fmt.Sprintf(format, args...)}
}

// MoveFacts is what Classify knows of a move: the repository's side read by
// Observe, the ledger's (Env, Known) filled in by the caller.
type MoveFacts struct {
	// Env is the gated environment the branch tracks, named in messages.
	Env string `json:"-"`
	// Mainline is the branch whose history alone is released;
	// HasMainline says whether it exists.
	Mainline    string `json:"mainline"`
	HasMainline bool   `json:"hasMainline"`
	// Exists says whether New is a commit of the repository.
	Exists bool `json:"exists"`
	// OnMainline says whether New is on the mainline's history.
	OnMainline bool `json:"onMainline"`
	// FastForward says whether Old is an ancestor of New (false when Old
	// is Zero or no longer a commit of the repository).
	FastForward bool `json:"fastForward"`
	// Known are the environment's known releases, newest first
	// (KnownReleases).
	Known []Known `json:"-"`
}

// Classify applies the release branch's rules to m. The branch is never
// deleted. A move to the commit of a known release is a return to that
// release (a rollback), whether the commit is before or after Old: no new
// release is made of a commit that already is one. Any other move must be
// a fast-forward of Old along the mainline's history (a promotion). A
// branch that does not exist yet may be created at a commit of the
// mainline's history, or else at a known release. Anything else is
// refused, with a sentence naming every rule the move fails.
func Classify(m Move, f MoveFacts) Verdict {
	branch := cmp.Or(m.Branch, "release")
	old := cmp.Or(m.Old, Zero)
	switch {
	case !ferry.ValidCommit(old) || !ferry.ValidCommit(m.New):
		return refuse(RuleCommit, "%s → %s is not a move between two commit ids", m.Old, m.New)
	case m.New == Zero:
		return refuse(RuleNoDelete, "%s may not be deleted: it tracks what the environment runs", branch)
	case m.New == old:
		return Verdict{Allowed: true, Kind: Unchanged, Reason: fmt.Sprintf("%s stays at %s", branch, short(old))}
	case !f.Exists:
		return refuse(RuleCommit, "%s is not a commit of this repository", short(m.New))
	}
	onMain := f.OnMainline && f.HasMainline
	rel, known := ReleaseOf(f.Known, m.New)
	switch {
	case old == Zero && onMain:
		return Verdict{Allowed: true, Kind: Create, Reason: fmt.Sprintf("%s created at %s, on %s's history", branch, short(m.New), f.Mainline)}
	case known:
		kind := Rollback
		if old == Zero {
			kind = Create
		}
		return Verdict{Allowed: true, Kind: kind, Release: rel.Release, Reason: fmt.Sprintf("%s to %s, the commit of release %s", branch, short(m.New), rel.Release)}
	case onMain && f.FastForward:
		return Verdict{Allowed: true, Kind: Promote, Reason: fmt.Sprintf("fast-forward of %s to %s along %s", short(old), short(m.New), f.Mainline)}
	}

	// Refused: say which rules failed, in the pusher's terms.
	notMain := fmt.Sprintf("not on %s's history", f.Mainline)
	if !f.HasMainline {
		notMain = fmt.Sprintf("not on %s's history (%s does not exist)", f.Mainline, f.Mainline)
	}
	notRelease := "not a known release of " + cmp.Or(f.Env, "the environment")
	switch {
	case old == Zero:
		return refuse(RuleMainline, "%s is %s and %s", short(m.New), notMain, notRelease)
	case f.FastForward:
		return refuse(RuleMainline, "%s is %s (only commits of %s are released) and %s", short(m.New), notMain, f.Mainline, notRelease)
	case onMain:
		return refuse(RuleForward, "%s is not a fast-forward of %s and %s", short(m.New), short(old), notRelease)
	}
	return refuse(RuleForward, "%s is not a fast-forward of %s, %s, and %s", short(m.New), short(old), notMain, notRelease)
}

// Observe reads from g what Classify needs to know of m: whether the
// mainline exists, whether New is a commit, on the mainline's history, and
// a fast-forward of Old. The caller adds the environment and its known
// releases. An error means the facts could not be read (git failed, bad
// input), never that the move is illegal.
func Observe(ctx context.Context, g Git, m Move, mainline string) (MoveFacts, error) {
	f := MoveFacts{Mainline: mainline}
	old := cmp.Or(m.Old, Zero)
	if !ferry.ValidCommit(old) {
		return f, ferry.Errorf(ferry.EINVALID, "invalid old commit %q", m.Old)
	}
	if !ferry.ValidCommit(m.New) {
		return f, ferry.Errorf(ferry.EINVALID, "invalid new commit %q", m.New)
	}
	if m.New == Zero || m.New == old {
		return f, nil // decided without the repository
	}
	head, err := g.Head(ctx, mainline)
	switch {
	case ferry.ErrorCode(err) == ferry.ENOTFOUND:
		head = ""
	case err != nil:
		return f, fmt.Errorf("read %s: %w", mainline, err)
	}
	f.HasMainline = head != ""
	// Is New on the mainline's history? Without a mainline, asking whether
	// New is its own ancestor still tells an unknown commit from a known one.
	on, err := g.IsAncestor(ctx, m.New, cmp.Or(head, m.New))
	if ferry.ErrorCode(err) == ferry.ENOTFOUND {
		return f, nil
	}
	if err != nil {
		return f, fmt.Errorf("is %s on %s: %w", short(m.New), mainline, err)
	}
	f.Exists = true
	f.OnMainline = on && f.HasMainline
	if old != Zero {
		f.FastForward, err = g.IsAncestor(ctx, old, m.New)
		switch {
		case ferry.ErrorCode(err) == ferry.ENOTFOUND:
			// The old head is gone: not a fast-forward of anything we can see.
			f.FastForward = false
		case err != nil:
			return f, fmt.Errorf("is %s a fast-forward of %s: %w", short(m.New), short(old), err)
		}
	}
	return f, nil
}

func short(sha string) string { return ferry.ShortSHA(sha) }

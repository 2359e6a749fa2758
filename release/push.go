package release

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/ferryhq/ferry"
)

// PushUpdate is one ref update of a push as a git server's pre-receive
// hook reads it: the ref, its old and new object ids, and what the hook
// read of its own repository about it (the pushed objects are there, not
// yet in ferry's copy). It is the element of the body of
// `POST /api/v1/envs/{env}/push-check`.
type PushUpdate struct {
	Ref string `json:"ref"`
	Old string `json:"old"`
	New string `json:"new"`
	// Move is Observe's facts, for a branch.
	Move MoveFacts `json:"move,omitzero"`
	// Annotated, Commit and Tag describe a tag's New: whether it is a tag
	// object, the commit it peels to, and ObserveTag's facts.
	Annotated bool     `json:"annotated,omitempty"`
	Commit    string   `json:"commit,omitempty"`
	Tag       TagFacts `json:"tag,omitzero"`
}

// PushFacts is what ferry's side knows that a push is judged on.
type PushFacts struct {
	// Env is the gated environment whose branch and release tags the push
	// updates.
	Env ferry.Environment
	// Known are Env's known releases, newest first (KnownReleases).
	Known []Known
	// Runs is the commit each environment runs, by name (absent: it runs
	// nothing), for env/<name> tags.
	Runs map[string]string
	// InFlight is Env's deployment being rolled out or waiting to start,
	// nil when there is none.
	InFlight *ferry.Deployment
	// Gate applies the gates of the promotion or rollback a move of the
	// branch would start (Gates, RollbackGates) on the ledger's facts; v is
	// Classify's verdict. A nil error lets the move through.
	Gate func(m Move, f MoveFacts, v Verdict) error
}

// JudgePush decides one update of a push the way ferry would act on it,
// so that what a git server's hook accepts, ferry deploys, and what ferry
// would refuse, the hook refuses with the same sentence:
//
//   - a branch (refs/heads/…, one that tracks Env): Classify's rules on
//     the ledger's known releases, then the gates of the promotion or
//     rollback the move starts (a promotion by push is refused where an
//     approval rule holds, PushNeedsApproval). ferry's own move of the branch, to the
//     commit of the deployment it is starting, passes;
//   - a release tag (refs/tags/RC…): ClassifyTag, on the ledger's releases;
//   - an environment tag (refs/tags/env/<name>): ClassifyEnvTag;
//   - anything else is not ferry's and passes.
func JudgePush(u PushUpdate, f PushFacts) Verdict {
	if b, ok := strings.CutPrefix(u.Ref, "refs/heads/"); ok {
		m := Move{Branch: b, Old: u.Old, New: u.New}
		mf := u.Move
		mf.Env, mf.Known = f.Env.Name, f.Known
		v := Classify(m, mf)
		if !v.Allowed || v.Kind == Unchanged {
			return v
		}
		if d := f.InFlight; d != nil && d.Commit == u.New {
			return Verdict{Allowed: true, Kind: v.Kind, Release: cmp.Or(v.Release, d.Release),
				Reason: fmt.Sprintf("ferry's own %s of %s to %s (deployment %d)", d.Kind, f.Env.Name, short(d.Commit), d.ID)}
		}
		if v.Release == "" && (v.Kind == Promote || v.Kind == Create) {
			if err := PushNeedsApproval(f.Env, u.New); err != nil {
				return refuse(RuleGate, "%s", ferry.ErrorMessage(err))
			}
		}
		if f.Gate != nil {
			if err := f.Gate(m, mf, v); err != nil {
				return refuse(RuleGate, "%s", ferry.ErrorMessage(err))
			}
		}
		return v
	}
	name, ok := strings.CutPrefix(u.Ref, "refs/tags/")
	if !ok {
		return Verdict{Allowed: true, Kind: Unchanged, Reason: u.Ref + " is not ferry's"}
	}
	t := TagMove{Name: name, Old: u.Old, New: u.New, Annotated: u.Annotated, Commit: u.Commit}
	if env, ok := strings.CutPrefix(name, EnvTagPrefix); ok {
		return ClassifyEnvTag(t, env, f.Runs[env])
	}
	tf := u.Tag
	tf.Env, tf.Known = f.Env.Name, f.Known
	return ClassifyTag(t, tf)
}

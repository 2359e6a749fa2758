package release

import (
	"slices"
	"time"

	"github.com/ferryhq/ferry"
)

// Known is a known release of a gated environment: a release name that a
// succeeded deployment of the environment carried, with what it ran. It
// is the body's element of `GET /api/v1/envs/{env}/releases`.
type Known struct {
	Release string `json:"release"`
	Commit  string `json:"commit"`
	Digest  string `json:"digest"`
	BuildID int64  `json:"buildId,omitempty"`
	// DeploymentID and FinishedAt name the newest succeeded deployment
	// that ran the release.
	DeploymentID int64     `json:"deploymentId"`
	FinishedAt   time.Time `json:"finishedAt"`
	// Since is the release's place in the environment's release history:
	// the id of its oldest succeeded deployment (the promotion that made
	// it). History is a line ordered by Since, whatever ran last.
	Since int64 `json:"since"`
	// RolledBackFrom says a rollback left this release: no later rollback
	// returns to it, and only an explicit promotion runs it again.
	RolledBackFrom bool `json:"rolledBackFrom,omitempty"`
}

// KnownReleases is the one definition of a known release: of env's
// deployments ds (newest first, as the ledger lists them), those that
// succeeded and carry a release name, once per release, newest run first.
// Each is placed in the release history (Since) and marked when a
// succeeded rollback left it (RolledBackFrom). An environment that is not
// gated has none.
func KnownReleases(env ferry.Environment, ds []*ferry.Deployment) []Known {
	out := []Known{}
	if !env.Gated() {
		return out
	}
	at := map[string]int{}
	for _, d := range ds {
		if d.Env != env.Name || d.State != ferry.DeploymentSucceeded || d.Release == "" {
			continue
		}
		if i, ok := at[d.Release]; ok {
			out[i].Since = min(out[i].Since, d.ID)
			continue
		}
		at[d.Release] = len(out)
		out = append(out, Known{Release: d.Release, Commit: d.Commit, Digest: d.Digest, BuildID: d.BuildID, DeploymentID: d.ID, FinishedAt: d.FinishedAt, Since: d.ID})
	}
	// Walk the succeeded deployments oldest first: what ran just before a
	// succeeded rollback is the release that rollback left.
	running := ""
	for _, d := range slices.Backward(ds) {
		if d.Env != env.Name || d.State != ferry.DeploymentSucceeded {
			continue
		}
		if d.Kind == ferry.DeployRollback && running != "" && running != d.Release {
			if i, ok := at[running]; ok {
				out[i].RolledBackFrom = true
			}
		}
		running = d.Release
	}
	return out
}

// ReleaseOf returns the newest of known (newest first) that ran commit.
func ReleaseOf(known []Known, commit string) (Known, bool) {
	for _, k := range known {
		if k.Commit == commit {
			return k, true
		}
	}
	return Known{}, false
}

// WalkBack is the release a rollback without a target returns to: the
// newest in the release history (Since) older than running, that no
// rollback left and that does not run the same digest. running is the
// release the environment runs ("" for none: every release is older).
// ok is false when there is none: a rollback never goes forward.
func WalkBack(known []Known, running, digest string) (Known, bool) {
	limit := int64(-1)
	for _, k := range known {
		if k.Release == running {
			limit = k.Since
		}
	}
	var best Known
	found := false
	for _, k := range known {
		if k.Release == running || k.RolledBackFrom || k.Digest == digest || (limit >= 0 && k.Since >= limit) {
			continue
		}
		if !found || k.Since > best.Since {
			best, found = k, true
		}
	}
	return best, found
}

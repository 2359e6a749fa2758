package release

import (
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
}

// KnownReleases is the one definition of a known release: of env's
// deployments ds (newest first, as the ledger lists them), those that
// succeeded and carry a release name, once per release, newest first. An
// environment that is not gated has none.
func KnownReleases(env ferry.Environment, ds []*ferry.Deployment) []Known {
	out := []Known{}
	if !env.Gated() {
		return out
	}
	seen := map[string]bool{}
	for _, d := range ds {
		if d.Env != env.Name || d.State != ferry.DeploymentSucceeded || d.Release == "" || seen[d.Release] {
			continue
		}
		seen[d.Release] = true
		out = append(out, Known{Release: d.Release, Commit: d.Commit, Digest: d.Digest, BuildID: d.BuildID, DeploymentID: d.ID, FinishedAt: d.FinishedAt})
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

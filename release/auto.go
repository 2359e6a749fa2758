package release

import (
	"time"

	"github.com/ferryhq/ferry"
)

// AutoFacts is what an automatic promotion of Env decides on.
type AutoFacts struct {
	Env ferry.Environment
	// Upstream is what Env.From runs (nil: nothing), and FirstSuccess
	// when that digest first succeeded there.
	Upstream     *ferry.Deployment
	FirstSuccess time.Time
	// Running is the digest Env runs ("" for nothing).
	Running string
	// Tried says Env has had that digest before: a deployment of it in
	// any state, a release request or an automatic promotion of it.
	// Ferry promotes a digest by itself once; a person may do it again.
	Tried bool
}

// AutoCandidate says whether Env (with auto: true) is to promote, by
// itself, the digest its upstream runs, and when: its first success
// upstream plus the longer of wait and soak. ok is false when there is
// nothing to promote: auto is off, the upstream runs nothing or what Env
// runs, or that digest was tried already. Every gate still applies when
// it is promoted.
func AutoCandidate(f AutoFacts) (due time.Time, ok bool) {
	u := f.Upstream
	if !f.Env.Auto || !f.Env.Gated() || u == nil || u.Digest == f.Running || f.Tried {
		return time.Time{}, false
	}
	return f.FirstSuccess.Add(max(f.Env.Wait, f.Env.Soak)), true
}

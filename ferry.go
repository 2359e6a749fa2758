// Package ferry holds the release vocabulary shared by every part of the
// release controller: builds, their steps and log lines, and audit events,
// together with the error codes that the API maps to HTTP statuses.
//
// The package is plain Go with no I/O. Adapters named for their technology
// (ledger/sqlite, ledger/postgres, registry, source, …) depend on it; it
// depends on none of them.
package ferry

import (
	"regexp"
	"sync"
	"time"
)

// BuildState is where a build is in its life.
type BuildState string

// Build states. A build starts queued, runs, and ends in one of the final
// states; superseded builds were queued when a newer commit of the same
// branch arrived and were never started.
const (
	BuildQueued     BuildState = "queued"
	BuildRunning    BuildState = "running"
	BuildSucceeded  BuildState = "succeeded"
	BuildFailed     BuildState = "failed"
	BuildSuperseded BuildState = "superseded"
	BuildCanceled   BuildState = "canceled"
)

// BuildStates returns every build state.
func BuildStates() []BuildState {
	return []BuildState{BuildQueued, BuildRunning, BuildSucceeded, BuildFailed, BuildSuperseded, BuildCanceled}
}

// Final reports whether no further transition is possible.
func (s BuildState) Final() bool {
	switch s {
	case BuildSucceeded, BuildFailed, BuildSuperseded, BuildCanceled:
		return true
	}
	return false
}

// Build is one commit turned into one image digest. It is keyed by the
// application and the full 40-hex commit: a commit is built at most once.
type Build struct {
	ID      int64      `json:"id"`
	App     string     `json:"app"`
	Commit  string     `json:"commit"`
	Branch  string     `json:"branch"`
	Subject string     `json:"subject,omitempty"`
	Author  string     `json:"author,omitempty"`
	Trigger string     `json:"trigger,omitempty"` // poll, webhook:github, manual, …
	State   BuildState `json:"state"`
	// Reason explains a failed, superseded or canceled build.
	Reason string `json:"reason,omitempty"`
	// Image is the repository the image was pushed to, without tag or digest.
	Image string `json:"image,omitempty"`
	// Digest is the manifest digest (sha256:…) once the image is pushed.
	Digest     string    `json:"digest,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
	Steps      []Step    `json:"steps,omitempty"`
}

// ShortCommit is the 12-hex prefix used in tags and tables.
func (b *Build) ShortCommit() string { return ShortSHA(b.Commit) }

// StepState is where a pipeline step is in its life.
type StepState string

// Step states.
const (
	StepPending   StepState = "pending"
	StepRunning   StepState = "running"
	StepSucceeded StepState = "succeeded"
	StepFailed    StepState = "failed"
	StepSkipped   StepState = "skipped"
	StepCanceled  StepState = "canceled"
)

// Step is one stage of a build's pipeline (test, build, push, tag).
type Step struct {
	BuildID    int64     `json:"buildId"`
	Seq        int       `json:"seq"`
	Name       string    `json:"name"`
	State      StepState `json:"state"`
	Attempts   int       `json:"attempts"`
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// LogLine is one line of output written by a step.
type LogLine struct {
	BuildID int64     `json:"buildId"`
	Seq     int64     `json:"seq"` // increasing per build, assigned by the ledger
	Step    string    `json:"step"`
	Time    time.Time `json:"time"`
	Text    string    `json:"text"`
}

// Event is an append-only audit record: when, who, what, why.
type Event struct {
	ID      int64     `json:"id"`
	Time    time.Time `json:"time"`
	Actor   string    `json:"actor"`
	Kind    string    `json:"kind"` // build.queued, build.succeeded, source.error, …
	App     string    `json:"app,omitempty"`
	Env     string    `json:"env,omitempty"`
	Commit  string    `json:"commit,omitempty"`
	BuildID int64     `json:"buildId,omitempty"`
	Message string    `json:"message"`
	Reason  string    `json:"reason,omitempty"`
}

var fullSHA = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9a-f]{40}$`) })

// ValidCommit reports whether s is a full 40-hex lowercase commit id.
func ValidCommit(s string) bool { return fullSHA().MatchString(s) }

var digestPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^sha256:[0-9a-f]{64}$`) })

// ValidDigest reports whether s is a manifest digest as ferry records it:
// sha256: and 64 lowercase hex digits.
func ValidDigest(s string) bool { return digestPattern().MatchString(s) }

// ShortDigest returns "sha256:" and the first 12 hex digits of a digest
// (or d itself if shorter).
func ShortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

// ShortSHA returns the 12-hex prefix of a commit id (or s itself if shorter).
func ShortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// ZeroSHA is git's all-zero object id: the old value of a ref being made,
// the new value of one being deleted, and, as an expected value, "the ref
// must not exist yet".
const ZeroSHA = "0000000000000000000000000000000000000000"

// Tag names derived from a commit (DESIGN §4).
func CommitTag(commit string) string      { return "sha-" + commit }
func ShortCommitTag(commit string) string { return ShortSHA(commit) }

// DeploymentKind says why a deployment happened.
type DeploymentKind string

// Deployment kinds.
const (
	DeployDeploy       DeploymentKind = "deploy"        // a new build rolled out to an environment driven by a branch
	DeployPromote      DeploymentKind = "promote"       // a digest promoted from the upstream environment
	DeployRollback     DeploymentKind = "rollback"      // a person rolled back to an earlier release
	DeployAutoRollback DeploymentKind = "auto-rollback" // ferry reverted a failed rollout or verification
	DeployScale        DeploymentKind = "scale"         // the replica count changed, not the digest
)

// DeploymentKinds returns every deployment kind.
func DeploymentKinds() []DeploymentKind {
	return []DeploymentKind{DeployDeploy, DeployPromote, DeployRollback, DeployAutoRollback, DeployScale}
}

// DeploymentState is where a deployment is in its life.
type DeploymentState string

// Deployment states: pending → rolling → verifying → succeeded | failed |
// rolled-back. A deployment is rolled-back when its rollout or verification
// failed and ferry restored the previous digest (recorded as a separate
// auto-rollback deployment).
const (
	DeploymentPending    DeploymentState = "pending"
	DeploymentRolling    DeploymentState = "rolling"
	DeploymentVerifying  DeploymentState = "verifying"
	DeploymentSucceeded  DeploymentState = "succeeded"
	DeploymentFailed     DeploymentState = "failed"
	DeploymentRolledBack DeploymentState = "rolled-back"
	DeploymentSuperseded DeploymentState = "superseded"
)

// DeploymentStates returns every deployment state.
func DeploymentStates() []DeploymentState {
	return []DeploymentState{DeploymentPending, DeploymentRolling, DeploymentVerifying, DeploymentSucceeded,
		DeploymentFailed, DeploymentRolledBack, DeploymentSuperseded}
}

// Final reports whether no further transition is possible.
func (s DeploymentState) Final() bool {
	switch s {
	case DeploymentSucceeded, DeploymentFailed, DeploymentRolledBack, DeploymentSuperseded:
		return true
	}
	return false
}

// Deployment is one rollout of a digest (or a replica count) into an
// environment.
type Deployment struct {
	ID      int64           `json:"id"`
	App     string          `json:"app"`
	Env     string          `json:"env"`
	Kind    DeploymentKind  `json:"kind"`
	State   DeploymentState `json:"state"`
	BuildID int64           `json:"buildId,omitempty"`
	Commit  string          `json:"commit"`
	Digest  string          `json:"digest"`
	// Release is the release tag (RC…) for gated environments; empty for dev.
	Release  string `json:"release,omitempty"`
	Replicas int    `json:"replicas"`
	// Previous is the digest the environment ran before; a failed rollout
	// reverts to it.
	Previous string `json:"previous,omitempty"`
	Actor    string `json:"actor"`
	Reason   string `json:"reason,omitempty"`
	// Error explains a failed or rolled-back deployment.
	Error      string    `json:"error,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// Role is what an API token may do. Roles are ordered, each allowing all
// that the ones before it allow: viewer < deployer < releaser < admin.
type Role string

// Roles. An environment's configuration names the role its changes need:
// deployer for dev by default, releaser for an environment promoted from
// another (prod).
const (
	RoleViewer   Role = "viewer"   // read builds, logs, deployments, status, events
	RoleDeployer Role = "deployer" // trigger and cancel builds; change environments needing deployer
	RoleReleaser Role = "releaser" // promote, roll back, scale and lock gated environments
	RoleAdmin    Role = "admin"    // all of it, and create, list and revoke tokens
)

// Roles returns every role from the least to the most allowed.
func Roles() []Role { return []Role{RoleViewer, RoleDeployer, RoleReleaser, RoleAdmin} }

// rank is r's place in Roles, or -1 for an unknown role.
func (r Role) rank() int {
	for i, x := range Roles() {
		if x == r {
			return i
		}
	}
	return -1
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r.rank() >= 0 }

// Allows reports whether a token with role r may do what needs role need.
// An unknown role allows nothing and is allowed by nothing.
func (r Role) Allows(need Role) bool {
	return r.Valid() && need.Valid() && r.rank() >= need.rank()
}

// ParseRole returns the role named s exactly, or an EINVALID error listing
// the roles.
func ParseRole(s string) (Role, error) {
	if r := Role(s); r.Valid() {
		return r, nil
	}
	return "", Errorf(EINVALID, "unknown role %q (want viewer, deployer, releaser or admin)", s)
}

// Token is an API credential with a role. Its secret is shown once, when
// the token is made; the ledger keeps only the secret's SHA-256 (Hash), so
// neither the ledger nor the API can give the secret back.
type Token struct {
	ID int64 `json:"id"`
	// Name identifies the token and is the actor of everything done with
	// it. Names are never reused, also after revocation.
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Hash      string    `json:"-"` // hex SHA-256 of the secret
	CreatedAt time.Time `json:"createdAt"`
	CreatedBy string    `json:"createdBy,omitempty"`
	// LastUsedAt is updated at most about once a minute.
	LastUsedAt time.Time `json:"lastUsedAt,omitzero"`
	RevokedAt  time.Time `json:"revokedAt,omitzero"`
}

// Revoked reports whether the token no longer authenticates.
func (t *Token) Revoked() bool { return !t.RevokedAt.IsZero() }

var tokenName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`) })

// ValidTokenName reports whether s may name a token: 1 to 64 letters,
// digits, '.', '_', '@' or '-', starting with a letter or digit.
func ValidTokenName(s string) bool { return tokenName().MatchString(s) }

// Lock freezes an environment: no promotion starts while it holds.
type Lock struct {
	App       string    `json:"app"`
	Env       string    `json:"env"`
	Reason    string    `json:"reason"`
	Actor     string    `json:"actor"`
	CreatedAt time.Time `json:"createdAt"`
}

// Quarantine bars a commit (and the release made of it) from ever being
// promoted or rolled back to again.
type Quarantine struct {
	ID        int64     `json:"id"`
	App       string    `json:"app"`
	Commit    string    `json:"commit"`
	Release   string    `json:"release,omitempty"`
	Reason    string    `json:"reason"`
	Actor     string    `json:"actor"`
	CreatedAt time.Time `json:"createdAt"`
}

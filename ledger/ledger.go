// Package ledger is ferry's record of what it did: builds with their steps
// and log lines, deployments into environments, and the audit events. It holds the Store contract, the
// filters and the helpers its engines share; the engines live in
// ledger/sqlite (the embedded default) and ledger/postgres (several ferry
// servers sharing one ledger), and ledger/ledgerdb opens either from a URL.
// ledger/ledgertest is the one test suite every engine passes.
//
// The contract that callers rely on, whatever the engine:
//
//   - errors are *ferry.Error with ENOTFOUND for a missing build or
//     deployment, ECONFLICT for a duplicate (app, commit) or a lost
//     compare-and-set, EINVALID for
//     input the ledger refuses; anything else is an internal error wrapped
//     with context;
//   - list methods return newest first and never nil (an empty list is
//     encoded as JSON []);
//   - times come back in UTC and equal (time.Equal) to what was stored, to
//     the microsecond;
//   - keys (apps, environments, branches, commits, releases, names) with a
//     NUL byte or invalid UTF-8, or over their limit, are refused with
//     EINVALID, in writes, lookups and filters alike (text.go);
//   - free text (log lines, messages, commit subjects) is stored as valid
//     UTF-8 without NUL bytes: anything else is replaced by U+FFFD, so that
//     odd tool output is kept rather than refused; text over its limit is
//     cut and marked (StoreText, text.go).
package ledger

import (
	"context"
	"time"

	"github.com/ferryhq/ferry"
)

// Store is the ledger: builds with their steps and logs, deployments, and
// audit events.
// Implementations are safe for concurrent use by many goroutines, and (for
// engines that allow it) by several processes sharing one database.
type Store interface {
	// CreateBuild records a new build and sets b.ID. b.CreatedAt must be
	// set; an empty b.State becomes queued. A second build of the same
	// (App, Commit) is refused with ECONFLICT: a commit is built once.
	CreateBuild(ctx context.Context, b *ferry.Build) error
	// Build returns a build with its steps, ordered by Seq.
	Build(ctx context.Context, id int64) (*ferry.Build, error)
	// BuildByCommit returns the build of an app's commit with its steps.
	BuildByCommit(ctx context.Context, app, commit string) (*ferry.Build, error)
	// Builds lists builds newest first, without their steps.
	Builds(ctx context.Context, f BuildFilter) ([]*ferry.Build, error)
	// UpdateBuild overwrites the mutable fields of the build b.ID: State,
	// Reason, Image, Digest, StartedAt, FinishedAt, Subject and Author.
	// App, Commit, Branch, Trigger and CreatedAt never change.
	UpdateBuild(ctx context.Context, b *ferry.Build) error
	// TransitionBuild moves build id from state from to state to, only if
	// it is still in from (compare-and-set), and sets its Reason to reason.
	// Moving to running sets StartedAt to at and clears FinishedAt; moving
	// to a final state sets FinishedAt to at; moving back to queued clears
	// both. A build no longer in from gives ECONFLICT, so two ferry servers,
	// or one restarted, never run a build twice.
	TransitionBuild(ctx context.Context, id int64, from, to ferry.BuildState, reason string, at time.Time) error
	// SaveStep inserts or replaces the step (s.BuildID, s.Name).
	SaveStep(ctx context.Context, s ferry.Step) error
	// AppendLog stores lines of build buildID atomically, assigning each a
	// Seq one higher than the last line of that build (1, 2, 3, … without
	// gaps, also under concurrent appends) and writing BuildID, Seq and the
	// stored Text back into lines. Every line needs a Time.
	AppendLog(ctx context.Context, buildID int64, lines []ferry.LogLine) error
	// Logs returns up to limit lines of a build with Seq > afterSeq, in Seq
	// order; limit ≤ 0 means DefaultLogLimit, and at most MaxLogLimit lines
	// are returned. Follow a running build by passing the last Seq seen.
	Logs(ctx context.Context, buildID int64, afterSeq int64, limit int) ([]ferry.LogLine, error)
	// CreateDeployment records a new deployment and sets d.ID. App, Env,
	// Kind, State, Actor and CreatedAt are required, Commit must be a full
	// 40-hex commit and Digest (and Previous, when set) a sha256:<64 hex>
	// digest, also for a scale, which keeps what runs. A BuildID that names
	// no build gives ENOTFOUND; 0 means none.
	CreateDeployment(ctx context.Context, d *ferry.Deployment) error
	// Deployment returns the deployment id.
	Deployment(ctx context.Context, id int64) (*ferry.Deployment, error)
	// UpdateDeployment overwrites the mutable fields of the deployment d.ID:
	// State, Error, Reason, Replicas, Release, StartedAt, FinishedAt and
	// Previous (zero times clear what was stored). App, Env, Kind, BuildID,
	// Commit, Digest, Actor and CreatedAt never change.
	UpdateDeployment(ctx context.Context, d *ferry.Deployment) error
	// Deployments lists deployments newest first.
	Deployments(ctx context.Context, f DeploymentFilter) ([]*ferry.Deployment, error)
	// Current returns the newest (highest ID) succeeded deployment of app in
	// env, which is what the environment runs; newer deployments in any
	// other state are passed over. ENOTFOUND when there is none.
	Current(ctx context.Context, app, env string) (*ferry.Deployment, error)
	// TransitionDeployment moves deployment id from state from to state to,
	// only if it is still in from (compare-and-set; ECONFLICT otherwise),
	// and sets its Error to errMsg. Moving to rolling sets StartedAt to at
	// and clears FinishedAt; moving to a final state sets FinishedAt to at;
	// moving back to pending clears both. A final state is never left
	// (EINVALID), so a finished deployment's history stays as it ended.
	TransitionDeployment(ctx context.Context, id int64, from, to ferry.DeploymentState, errMsg string, at time.Time) error
	// SetCommitTimes stores the committer times of the commits that the
	// succeeded deployment id newly brought to its environment (what DORA's
	// lead time reads of git, package dora), once: a later call for the same
	// deployment keeps what was stored first, since commit times never
	// change. ENOTFOUND when there is no such deployment, EINVALID when it
	// has not succeeded or a time is zero; nothing is stored then.
	SetCommitTimes(ctx context.Context, id int64, times []time.Time) error
	// CommitTimes returns the times stored for those of ids that have them
	// (a deployment that brought no new commit has an empty list); ids
	// without any are absent from the map.
	CommitTimes(ctx context.Context, ids []int64) (map[int64][]time.Time, error)
	// AddEvent appends an event and sets e.ID. e.Time and e.Kind are
	// required.
	AddEvent(ctx context.Context, e *ferry.Event) error
	// Events lists events newest first.
	Events(ctx context.Context, f EventFilter) ([]ferry.Event, error)
	// TokenStore keeps the API tokens (token.go).
	TokenStore
	// LockStore keeps environment locks and quarantines (lock.go).
	LockStore
	// DeliveryStore remembers webhook deliveries (delivery.go).
	DeliveryStore
	// LeaseStore keeps the leader lease and fences a leader's writes
	// (lease.go).
	LeaseStore
	// ActionStore records the actions asked of environments (action.go).
	ActionStore
	// RequestStore records release requests and their approvals
	// (request.go).
	RequestStore
	// CanaryStore keeps each canary's state (rollout.go).
	CanaryStore
	// NotificationStore is the outbox of outgoing notifications
	// (notification.go).
	NotificationStore
	// Close releases the store's connections. It is safe to call twice.
	Close() error
}

// Page sizes of the list methods.
const (
	DefaultLimit    = 50    // builds, deployments and events when Limit ≤ 0
	MaxLimit        = 1000  // builds, deployments and events at most
	DefaultLogLimit = 1000  // log lines when limit ≤ 0
	MaxLogLimit     = 10000 // log lines at most
)

// BuildFilter selects builds. Zero fields select everything.
type BuildFilter struct {
	App    string
	Branch string
	// States keeps builds in any of these states.
	States []ferry.BuildState
	// BeforeID keeps builds with a smaller ID: pass the last ID of a page
	// to get the next (older) one.
	BeforeID int64
	// Limit bounds the result: ≤ 0 means DefaultLimit, at most MaxLimit.
	Limit int
}

// PageSize is the number of builds f asks for, after defaults and bounds.
func (f BuildFilter) PageSize() int { return pageSize(f.Limit, DefaultLimit, MaxLimit) }

// DeploymentFilter selects deployments. Zero fields select everything.
type DeploymentFilter struct {
	App string
	Env string
	// Kinds keeps deployments of any of these kinds.
	Kinds []ferry.DeploymentKind
	// States keeps deployments in any of these states.
	States  []ferry.DeploymentState
	Commit  string
	Digest  string
	Release string // the RC… tag of a gated environment's release
	// BeforeID keeps deployments with a smaller ID, for paging.
	BeforeID int64
	// Limit bounds the result: ≤ 0 means DefaultLimit, at most MaxLimit.
	Limit int
}

// PageSize is the number of deployments f asks for, after defaults and
// bounds.
func (f DeploymentFilter) PageSize() int { return pageSize(f.Limit, DefaultLimit, MaxLimit) }

// EventFilter selects events. Zero fields select everything.
type EventFilter struct {
	App string
	Env string
	// Kind keeps events whose kind starts with it, literally: "build."
	// selects build.queued and build.failed.
	Kind    string
	BuildID int64
	// BeforeID keeps events with a smaller ID, for paging.
	BeforeID int64
	// Limit bounds the result: ≤ 0 means DefaultLimit, at most MaxLimit.
	Limit int
}

// PageSize is the number of events f asks for, after defaults and bounds.
func (f EventFilter) PageSize() int { return pageSize(f.Limit, DefaultLimit, MaxLimit) }

// LogPageSize is the number of log lines a Logs call with limit returns at
// most, after defaults and bounds.
func LogPageSize(limit int) int { return pageSize(limit, DefaultLogLimit, MaxLogLimit) }

func pageSize(n, def, most int) int {
	if n <= 0 {
		return def
	}
	return min(n, most)
}

// Strings is ss as plain strings, for queries: states of any kind.
func Strings[S ~string](ss []S) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = string(s)
	}
	return out
}

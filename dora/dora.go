// Package dora computes the four DORA figures of software delivery for one
// environment (normally production) from ferry's ledger of deployments and
// the commit times in git, over a window [From, To) that ends at an
// injected now.
//
// The history of an environment is its deployments ordered by ID (the
// order ferry created them; one environment runs one rollout at a time).
// A deployment counts only once it has finished before To: one still
// running, or finished at or after To, is read as in progress. Scale
// deployments change no code and take no part in any figure.
//
//   - A change is a deploy or promote deployment: a new digest rolled out.
//     A change is attempted in the window when it finished in [From, To)
//     as succeeded, failed or rolled-back; a superseded one never ran.
//     Rollbacks and automatic rollbacks are restorations, not changes.
//
//   - Deployments is the number of changes that succeeded in the window;
//     DeploymentsPerDay divides it by the window's length in days.
//
//   - Lead time for changes: for each of those deployments, every commit it
//     newly brought to the environment — the commits reachable from its
//     commit and not from the commit the environment ran before it (git log
//     before..commit) — gives one sample: the deployment's finish minus the
//     commit's committer time (0 if the commit is dated later). The first
//     deployment an environment ever had has nothing to diff against and
//     gives one sample, its own commit. A commit that was rolled back and
//     deployed again is counted again, at its new arrival. LeadTimeSeconds
//     is the median of the samples (the mean of the middle two for an even
//     count).
//
//   - A failure is an attempted change that either (a) ended failed or
//     rolled-back (its rollout or verification failed and ferry reverted
//     it, or could not), or (b) succeeded and was later undone by a
//     succeeded rollback finished before To. A rollback to digest D undoes
//     every succeeded change since the environment last ran D: going back
//     through the succeeded deployments before it, every change until the
//     first one that rolled out D. ChangeFailureRate is failures ÷ changes
//     attempted; Changes is that count.
//
//   - Time to restore: a failure of kind (a) is restored by the first
//     succeeded non-scale deployment created after it (normally its own
//     automatic rollback; else whatever deployment next succeeded); a
//     failure of kind (b) by the rollback that undid it. The sample runs
//     from the moment the bad version began to reach the environment —
//     the failed deployment's start for (a), since its new replicas were
//     rolling out from then on, the undone deployment's finish for (b) —
//     to the restoring deployment's finish, never below 0.
//     TimeToRestoreSeconds is the median; Restores the number of failures
//     restored before To.
//
// A figure without samples is 0 with its count 0, never NaN.
package dora

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/ferryhq/ferry"
)

// Report is the four DORA figures of one environment over [From, To). Its
// JSON shape is a contract: fields may be added, never renamed.
type Report struct {
	Env         string    `json:"env"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Deployments int       `json:"deployments"` // successful changes deployed to Env in [From,To)
	// DeploymentsPerDay is Deployments divided by the window in days.
	DeploymentsPerDay float64 `json:"deploymentsPerDay"`
	// LeadTimeSeconds is the median time from commit to running in Env,
	// over every commit newly deployed.
	LeadTimeSeconds float64 `json:"leadTimeSeconds"`
	LeadTimeSamples int     `json:"leadTimeSamples"`
	// ChangeFailureRate is failed changes ÷ changes attempted, 0..1.
	ChangeFailureRate float64 `json:"changeFailureRate"`
	Failures          int     `json:"failures"`
	// Changes is the number of changes attempted in the window: what
	// ChangeFailureRate divides Failures by (Deployments counts only
	// those that succeeded).
	Changes int `json:"changes"`
	// TimeToRestoreSeconds is the median time from a failure to the
	// deployment that restored the environment.
	TimeToRestoreSeconds float64 `json:"timeToRestoreSeconds"`
	Restores             int     `json:"restores"`
}

// CommitTimes is what lead time needs of git. Implementations bind their
// own context (GitCommits.WithContext), so Compute stays a plain function.
type CommitTimes interface {
	// Between returns the committer times of the commits reachable from
	// to and not from from (git log from..to): what deploying to brings
	// to an environment that ran from. from is never empty.
	Between(from, to string) ([]time.Time, error)
	// Time returns the committer time of one commit.
	Time(commit string) (time.Time, error)
}

// Compute returns the figures of env over [from, to) from deps, the
// environment's deployments (any order; other environments' are ignored).
// deps must reach back to the last deployment that succeeded before from,
// so that the first change of the window is diffed against what ran
// before it. Compute does no I/O but through commitTimes, and fails only
// when the window is empty or commitTimes fails.
func Compute(deps []*ferry.Deployment, commitTimes CommitTimes, env string, from, to time.Time) (Report, error) {
	return compute(deps, func(before []*ferry.Deployment, d *ferry.Deployment) ([]time.Time, error) {
		times, _, err := newCommitTimes(commitTimes, before, d, to)
		return times, err
	}, env, from, to)
}

// arrivals returns the committer times of the commits that d, a succeeded
// change, newly brought to its environment, given the deployments before
// it (oldest first).
type arrivals func(before []*ferry.Deployment, d *ferry.Deployment) ([]time.Time, error)

// compute is Compute with the lead time's commits read through arrived.
func compute(deps []*ferry.Deployment, arrived arrivals, env string, from, to time.Time) (Report, error) {
	if !from.Before(to) {
		return Report{}, ferry.Errorf(ferry.EINVALID, "the window from %s to %s is empty", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	rep := Report{Env: env, From: from, To: to}
	var hist []*ferry.Deployment
	for _, d := range deps {
		if d.Env == env {
			hist = append(hist, d)
		}
	}
	slices.SortFunc(hist, func(a, b *ferry.Deployment) int { return cmp.Compare(a.ID, b.ID) })
	done := func(d *ferry.Deployment) bool { return done(d, to) }
	succeeded := func(d *ferry.Deployment) bool { return succeeded(d, to) }

	// undoneBy maps each change a rollback undid to the first rollback
	// that undid it.
	undoneBy := map[int64]*ferry.Deployment{}
	for i, r := range hist {
		if r.Kind != ferry.DeployRollback || !succeeded(r) {
			continue
		}
		for _, d := range slices.Backward(hist[:i]) {
			if !succeeded(d) {
				continue
			}
			if d.Digest == r.Digest {
				break
			}
			if isChange(d) && undoneBy[d.ID] == nil {
				undoneBy[d.ID] = r
			}
		}
	}

	var lead, restore []float64
	attempted := 0
	for i, d := range hist {
		if !isChange(d) || !done(d) || d.FinishedAt.Before(from) {
			continue
		}
		switch d.State {
		case ferry.DeploymentSucceeded:
			attempted++
			rep.Deployments++
			times, err := arrived(hist[:i], d)
			if err != nil {
				return Report{}, fmt.Errorf("lead time of deployment %d (%s): %w", d.ID, ferry.ShortSHA(d.Commit), err)
			}
			for _, ct := range times {
				lead = append(lead, nonNegative(d.FinishedAt.Sub(ct)))
			}
			if r := undoneBy[d.ID]; r != nil {
				rep.Failures++
				restore = append(restore, nonNegative(r.FinishedAt.Sub(d.FinishedAt)))
			}
		case ferry.DeploymentFailed, ferry.DeploymentRolledBack:
			attempted++
			rep.Failures++
			for _, r := range hist[i+1:] {
				if succeeded(r) && r.Kind != ferry.DeployScale {
					restore = append(restore, nonNegative(r.FinishedAt.Sub(failedSince(d))))
					break
				}
			}
		}
	}
	days := to.Sub(from).Hours() / 24
	rep.DeploymentsPerDay = float64(rep.Deployments) / days
	rep.LeadTimeSeconds, rep.LeadTimeSamples = median(lead), len(lead)
	rep.TimeToRestoreSeconds, rep.Restores = median(restore), len(restore)
	rep.Changes = attempted
	if attempted > 0 {
		rep.ChangeFailureRate = float64(rep.Failures) / float64(attempted)
	}
	return rep, nil
}

// done reports whether d counts in a window ending at to: it finished
// before to.
func done(d *ferry.Deployment, to time.Time) bool {
	return d.State.Final() && !d.FinishedAt.IsZero() && d.FinishedAt.Before(to)
}

func succeeded(d *ferry.Deployment, to time.Time) bool {
	return done(d, to) && d.State == ferry.DeploymentSucceeded
}

// newCommitTimes returns the committer times of the commits d newly brought
// to its environment, given the deployments before it (oldest first), in a
// window ending at to. final says the answer holds for every later to as
// well, so it may be kept for good: every deployment between the one d is
// diffed against and d has ended (given that before is all there was before
// d, or reaches back to a deployment that succeeded).
func newCommitTimes(ct CommitTimes, before []*ferry.Deployment, d *ferry.Deployment, to time.Time) (times []time.Time, final bool, err error) {
	final = true
	for _, p := range slices.Backward(before) {
		if succeeded(p, to) {
			if p.Commit == d.Commit {
				return []time.Time{}, final, nil
			}
			times, err := ct.Between(p.Commit, d.Commit)
			return times, final, err
		}
		// One that has not ended, or ends after to, may yet become the
		// deployment d is diffed against.
		if !p.State.Final() || p.State == ferry.DeploymentSucceeded {
			final = false
		}
	}
	t, err := ct.Time(d.Commit)
	if err != nil {
		return nil, false, err
	}
	return []time.Time{t}, final, nil
}

// isChange reports whether d rolls out new code: a deploy or a promote.
func isChange(d *ferry.Deployment) bool {
	return d.Kind == ferry.DeployDeploy || d.Kind == ferry.DeployPromote
}

func nonNegative(d time.Duration) float64 { return max(d, 0).Seconds() }

// median is the middle value of xs (the mean of the middle two for an
// even count), 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// failedSince is when a failed deployment began to roll its version out:
// its start, or its finish when it never recorded a start.
func failedSince(d *ferry.Deployment) time.Time {
	if d.StartedAt.IsZero() {
		return d.FinishedAt
	}
	return d.StartedAt
}

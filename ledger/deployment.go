package ledger

import (
	"time"

	"github.com/ferryhq/ferry"
)

// The helpers below check and normalise deployments the same way for every
// engine, as check.go does for builds.

// DeploymentNotFound is the error for a missing deployment.
func DeploymentNotFound(id int64) error {
	return ferry.Errorf(ferry.ENOTFOUND, "deployment %d not found", id)
}

// NoCurrentDeployment is the error of Current for an environment that has
// no succeeded deployment yet.
func NoCurrentDeployment(app, env string) error {
	return ferry.Errorf(ferry.ENOTFOUND, "%s has no succeeded deployment in %s", app, env)
}

// PrepareCreateDeployment checks a deployment about to be created and makes
// its free text storable.
func PrepareCreateDeployment(d *ferry.Deployment) error {
	switch {
	case d.App == "":
		return ferry.Errorf(ferry.EINVALID, "deployment needs an app")
	case d.Env == "":
		return ferry.Errorf(ferry.EINVALID, "deployment of %s needs an environment", d.App)
	case d.Actor == "":
		return ferry.Errorf(ferry.EINVALID, "deployment of %s to %s needs an actor", d.App, d.Env)
	case d.CreatedAt.IsZero():
		return ferry.Errorf(ferry.EINVALID, "deployment of %s to %s needs a creation time", d.App, d.Env)
	case !validDeploymentKind(d.Kind):
		return ferry.Errorf(ferry.EINVALID, "unknown deployment kind %q", d.Kind)
	case !ferry.ValidCommit(d.Commit):
		return ferry.Errorf(ferry.EINVALID, "deployment commit %q is not a full 40-hex commit id", d.Commit)
	case !ferry.ValidDigest(d.Digest):
		return ferry.Errorf(ferry.EINVALID, "deployment digest %q is not sha256:<64 hex>", d.Digest)
	case d.BuildID < 0:
		return ferry.Errorf(ferry.EINVALID, "deployment build id %d is negative", d.BuildID)
	}
	if err := CheckEnv(d.App, d.Env); err != nil {
		return err
	}
	if err := checkDeployment(d); err != nil {
		return err
	}
	d.Actor = StoreText(d.Actor, MaxPerson)
	return nil
}

// PrepareUpdateDeployment checks the mutable fields of a deployment about
// to be updated and makes its free text storable.
func PrepareUpdateDeployment(d *ferry.Deployment) error {
	return checkDeployment(d)
}

// checkDeployment checks and cleans what both create and update write.
func checkDeployment(d *ferry.Deployment) error {
	switch {
	case d.State == "":
		return ferry.Errorf(ferry.EINVALID, "deployment needs a state")
	case !validDeploymentState(d.State):
		return ferry.Errorf(ferry.EINVALID, "unknown deployment state %q", d.State)
	case d.Previous != "" && !ferry.ValidDigest(d.Previous):
		return ferry.Errorf(ferry.EINVALID, "previous digest %q is not sha256:<64 hex>", d.Previous)
	case d.Replicas < 0:
		return ferry.Errorf(ferry.EINVALID, "deployment replicas %d is negative", d.Replicas)
	}
	if err := CheckKey("release", d.Release, MaxRef); err != nil {
		return err
	}
	d.Reason, d.Error = StoreText(d.Reason, MaxText), StoreText(d.Error, MaxText)
	return nil
}

// TransitionDeployment applies a compare-and-set state change to d as
// Store.TransitionDeployment documents: EINVALID for unknown states, for
// leaving a final state and for a missing time, ECONFLICT if d is no longer
// in from. d is unchanged when the change is refused.
func TransitionDeployment(d *ferry.Deployment, from, to ferry.DeploymentState, errMsg string, at time.Time) error {
	for _, s := range []ferry.DeploymentState{from, to} {
		if !validDeploymentState(s) {
			return ferry.Errorf(ferry.EINVALID, "unknown deployment state %q", s)
		}
	}
	if from.Final() {
		return ferry.Errorf(ferry.EINVALID, "deployment %d cannot leave the final state %s", d.ID, from)
	}
	if at.IsZero() && (to == ferry.DeploymentRolling || to.Final()) {
		return ferry.Errorf(ferry.EINVALID, "moving deployment %d to %s needs a time", d.ID, to)
	}
	if d.State != from {
		return ferry.Errorf(ferry.ECONFLICT, "deployment %d is %s, not %s", d.ID, d.State, from)
	}
	d.State = to
	d.Error = StoreText(errMsg, MaxText)
	switch {
	case to == ferry.DeploymentRolling:
		d.StartedAt, d.FinishedAt = at, time.Time{}
	case to == ferry.DeploymentPending:
		d.StartedAt, d.FinishedAt = time.Time{}, time.Time{}
	case to.Final():
		d.FinishedAt = at
	}
	return nil
}

// CheckCommitTimes checks what SetCommitTimes would store for
// deployment id.
func CheckCommitTimes(id int64, times []time.Time) error {
	for _, t := range times {
		if t.IsZero() {
			return ferry.Errorf(ferry.EINVALID, "commit times of deployment %d: a time is zero", id)
		}
	}
	return nil
}

// CommitTimesRefused is SetCommitTimes' error for a deployment in state,
// which is not succeeded.
func CommitTimesRefused(id int64, state ferry.DeploymentState) error {
	return ferry.Errorf(ferry.EINVALID, "deployment %d is %s: only a succeeded deployment has commit times", id, state)
}

// CommitTimesChunk bounds the ids of one CommitTimes query.
const CommitTimesChunk = 500

func validDeploymentKind(k ferry.DeploymentKind) bool {
	switch k {
	case ferry.DeployDeploy, ferry.DeployPromote, ferry.DeployRollback,
		ferry.DeployAutoRollback, ferry.DeployScale:
		return true
	}
	return false
}

func validDeploymentState(s ferry.DeploymentState) bool {
	switch s {
	case ferry.DeploymentPending, ferry.DeploymentRolling, ferry.DeploymentVerifying,
		ferry.DeploymentSucceeded, ferry.DeploymentFailed, ferry.DeploymentRolledBack,
		ferry.DeploymentSuperseded:
		return true
	}
	return false
}

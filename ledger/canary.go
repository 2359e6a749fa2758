package ledger

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/ferryhq/ferry"
)

// CanaryStore keeps each canary's state (ferry.CanaryRun), one row per
// release deployment, written at every step, pause and verdict change.
type CanaryStore interface {
	// SaveCanary inserts or replaces the canary of r.DeploymentID. The
	// deployment must exist (ENOTFOUND) and be of r.App and r.Env
	// (EINVALID). A canary that has ended is never changed again
	// (EINVALID), so its record stays as it ended.
	SaveCanary(ctx context.Context, r *ferry.CanaryRun) error
	// Canary returns the canary of a deployment; ENOTFOUND when it had
	// none.
	Canary(ctx context.Context, deploymentID int64) (*ferry.CanaryRun, error)
	// Canaries lists an app's canaries newest first (by deployment),
	// of env when env is set, in one of states when states are given, at
	// most limit (≤ 0: DefaultLimit; at most MaxLimit).
	Canaries(ctx context.Context, app, env string, states []ferry.CanaryState, limit int) ([]*ferry.CanaryRun, error)
}

var rolloutStates = []ferry.CanaryState{ferry.CanaryRunning, ferry.CanaryPaused, ferry.CanaryPromoted, ferry.CanaryAborted}

// PrepareCanary checks a canary before it is stored.
func PrepareCanary(r *ferry.CanaryRun) error {
	if err := CheckEnv(r.App, r.Env); err != nil {
		return err
	}
	r.Reason = StoreText(strings.TrimSpace(r.Reason), MaxText)
	switch {
	case r.DeploymentID <= 0:
		return ferry.Errorf(ferry.EINVALID, "a canary needs its deployment")
	case r.App == "" || r.Env == "":
		return ferry.Errorf(ferry.EINVALID, "a canary needs an app and an environment")
	case !slices.Contains(rolloutStates, r.State):
		return ferry.Errorf(ferry.EINVALID, "unknown canary state %q", r.State)
	case r.Steps < 1 || r.Step < 0 || r.Step >= r.Steps:
		return ferry.Errorf(ferry.EINVALID, "canary step %d of %d is out of range", r.Step, r.Steps)
	case r.Weight < 0 || r.Weight > 100:
		return ferry.Errorf(ferry.EINVALID, "canary weight %d is not a percentage", r.Weight)
	case len(r.Verdict) > 0 && !json.Valid(r.Verdict):
		return ferry.Errorf(ferry.EINVALID, "a canary's verdict must be JSON")
	case len(r.Verdict) > MaxText:
		return ferry.Errorf(ferry.EINVALID, "a canary's verdict is over %d bytes", MaxText)
	case r.UpdatedAt.IsZero():
		return ferry.Errorf(ferry.EINVALID, "a canary needs its time")
	}
	r.UpdatedAt, r.StepStarted = r.UpdatedAt.UTC(), r.StepStarted.UTC()
	return nil
}

// CanaryEnded is the error of changing a canary that has ended.
func CanaryEnded(r *ferry.CanaryRun) error {
	return ferry.Errorf(ferry.EINVALID, "the canary of deployment %d has ended (%s)", r.DeploymentID, r.State)
}

// CanaryPageSize is the number of canaries a limit asks for.
func CanaryPageSize(limit int) int { return pageSize(limit, DefaultLimit, MaxLimit) }

// CanaryNotFound is the error of a deployment without a canary.
func CanaryNotFound(deploymentID int64) error {
	return ferry.Errorf(ferry.ENOTFOUND, "deployment %d has no canary", deploymentID)
}

// RefusedCanary says why SaveCanary of r changed nothing, given the
// deployment it names (or the error reading it) and the canary stored
// for it (nil when none).
func RefusedCanary(r *ferry.CanaryRun, d *ferry.Deployment, derr error, stored *ferry.CanaryRun) error {
	switch {
	case derr != nil:
		return derr
	case d.App != r.App || d.Env != r.Env:
		return ferry.Errorf(ferry.EINVALID, "deployment %d is of %s in %s, not of %s in %s", d.ID, d.App, d.Env, r.App, r.Env)
	case stored != nil && stored.State.Final():
		return CanaryEnded(stored)
	}
	return ferry.Errorf(ferry.ECONFLICT, "the canary of deployment %d changed meanwhile", r.DeploymentID)
}

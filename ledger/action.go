package ledger

import (
	"context"
	"slices"
	"time"

	"github.com/ferryhq/ferry"
)

// ActionStore records the actions asked of environments (promote,
// rollback, scale, lock, unlock), each with its own result. An action is
// written queued before it waits for its turn, so a crash at any point
// leaves it in the ledger for the next start to close.
type ActionStore interface {
	// CreateAction records a queued action and sets a.ID. App, Env, Kind,
	// Actor and CreatedAt are required; State must be empty or queued.
	CreateAction(ctx context.Context, a *ferry.Action) error
	// Action returns the action id, with the deployment it started.
	Action(ctx context.Context, id int64) (*ferry.Action, error)
	// Actions lists actions newest first.
	Actions(ctx context.Context, f ActionFilter) ([]*ferry.Action, error)
	// TransitionAction moves action id from state from to state to, only
	// if it is still in from (compare-and-set; ECONFLICT otherwise), and
	// sets its Result to result. Moving to running sets StartedAt to at;
	// moving to a final state sets FinishedAt to at. A final state is
	// never left (EINVALID), nor is running left for queued.
	TransitionAction(ctx context.Context, id int64, from, to ferry.ActionState, result string, at time.Time) error
	// CreateActionDeployment records d as CreateDeployment does and makes
	// it the deployment of action id, in one transaction: no crash can
	// leave the deployment without its action or the other way round. The
	// action must be running and have no deployment yet (ECONFLICT).
	CreateActionDeployment(ctx context.Context, actionID int64, d *ferry.Deployment) error
}

// ActionFilter selects actions. Zero fields select everything.
type ActionFilter struct {
	App string
	Env string
	// States keeps actions in any of these states.
	States []ferry.ActionState
	// BeforeID keeps actions with a smaller ID, for paging.
	BeforeID int64
	// Limit bounds the result: ≤ 0 means DefaultLimit, at most MaxLimit.
	Limit int
}

// PageSize is the number of actions f asks for, after defaults and bounds.
func (f ActionFilter) PageSize() int { return pageSize(f.Limit, DefaultLimit, MaxLimit) }

// Check refuses a filter whose keys no action could have (CheckKey).
func (f ActionFilter) Check() error {
	if err := CheckEnv(f.App, f.Env); err != nil {
		return err
	}
	for _, st := range f.States {
		if err := CheckKey("action state", string(st), MaxName); err != nil {
			return err
		}
	}
	return nil
}

// ActionNotFound is the error for a missing action.
func ActionNotFound(id int64) error {
	return ferry.Errorf(ferry.ENOTFOUND, "action %d not found", id)
}

// PrepareCreateAction checks an action about to be created and makes its
// text storable, as every engine must before any SQL.
func PrepareCreateAction(a *ferry.Action) error {
	if a.State == "" {
		a.State = ferry.ActionQueued
	}
	switch {
	case a.App == "":
		return ferry.Errorf(ferry.EINVALID, "an action needs an app")
	case a.Env == "":
		return ferry.Errorf(ferry.EINVALID, "an action of %s needs an environment", a.App)
	case !slices.Contains(ferry.ActionKinds(), a.Kind):
		return ferry.Errorf(ferry.EINVALID, "unknown action kind %q", a.Kind)
	case a.State != ferry.ActionQueued:
		return ferry.Errorf(ferry.EINVALID, "an action is recorded queued, not %s", a.State)
	case a.CreatedAt.IsZero():
		return ferry.Errorf(ferry.EINVALID, "an action needs its creation time")
	case a.Replicas < 0:
		return ferry.Errorf(ferry.EINVALID, "action replicas %d is negative", a.Replicas)
	case a.DeploymentID != 0:
		return ferry.Errorf(ferry.EINVALID, "an action is recorded before its deployment")
	}
	if err := CheckKeys(Key{"app", a.App, MaxName}, Key{"environment", a.Env, MaxName}, Key{"action ref", a.Ref, MaxRef}); err != nil {
		return err
	}
	a.Actor = StoreText(a.Actor, MaxPerson)
	if a.Actor == "" {
		return ferry.Errorf(ferry.EINVALID, "an action of %s to %s needs an actor", a.App, a.Env)
	}
	a.Reason, a.Result = StoreText(a.Reason, MaxText), StoreText(a.Result, MaxText)
	a.CreatedAt, a.StartedAt, a.FinishedAt = a.CreatedAt.UTC(), time.Time{}, time.Time{}
	return nil
}

// TransitionAction applies a compare-and-set state change to a as
// ActionStore.TransitionAction documents. a is unchanged when the change
// is refused.
func TransitionAction(a *ferry.Action, from, to ferry.ActionState, result string, at time.Time) error {
	for _, s := range []ferry.ActionState{from, to} {
		if !validActionState(s) {
			return ferry.Errorf(ferry.EINVALID, "unknown action state %q", s)
		}
	}
	switch {
	case from.Final():
		return ferry.Errorf(ferry.EINVALID, "action %d cannot leave the final state %s", a.ID, from)
	case to == ferry.ActionQueued:
		return ferry.Errorf(ferry.EINVALID, "action %d cannot go back to queued", a.ID)
	case at.IsZero():
		return ferry.Errorf(ferry.EINVALID, "moving action %d to %s needs a time", a.ID, to)
	case a.State != from:
		return ferry.Errorf(ferry.ECONFLICT, "action %d is %s, not %s", a.ID, a.State, from)
	}
	a.State, a.Result = to, StoreText(result, MaxText)
	if to == ferry.ActionRunning {
		a.StartedAt = at.UTC()
	} else if to.Final() {
		a.FinishedAt = at.UTC()
	}
	return nil
}

// CanStartDeployment refuses to record d as the deployment of action a
// unless a is running, has none yet, and is of d's app and environment.
func CanStartDeployment(a *ferry.Action, d *ferry.Deployment) error {
	switch {
	case a.App != d.App || a.Env != d.Env:
		return ferry.Errorf(ferry.EINVALID, "action %d is of %s in %s, not of %s in %s", a.ID, a.App, a.Env, d.App, d.Env)
	case a.State != ferry.ActionRunning:
		return ferry.Errorf(ferry.ECONFLICT, "action %d is %s, not running: it starts no deployment", a.ID, a.State)
	case a.DeploymentID != 0:
		return ferry.Errorf(ferry.ECONFLICT, "action %d already started deployment %d", a.ID, a.DeploymentID)
	}
	return nil
}

func validActionState(s ferry.ActionState) bool {
	switch s {
	case ferry.ActionQueued, ferry.ActionRunning, ferry.ActionSucceeded, ferry.ActionFailed, ferry.ActionRefused:
		return true
	}
	return false
}

package ferry

import "time"

// ActionKind is what an operator asked of an environment.
type ActionKind string

// Action kinds: the requests that take turns in an environment's queue.
const (
	ActionPromote  ActionKind = "promote"
	ActionRollback ActionKind = "rollback"
	ActionScale    ActionKind = "scale"
	ActionLock     ActionKind = "lock"
	ActionUnlock   ActionKind = "unlock"
)

// ActionKinds returns every action kind, in the order they are documented.
func ActionKinds() []ActionKind {
	return []ActionKind{ActionPromote, ActionRollback, ActionScale, ActionLock, ActionUnlock}
}

// ActionState is where an action is in its life.
type ActionState string

// Action states: queued → running → succeeded | failed | refused. An
// action is queued once recorded, running once its turn has come (and,
// when it started a deployment, until that deployment has finished),
// refused when a rule said no in its turn (the rule's sentence is its
// result), and failed when something broke or its deployment did not
// succeed.
const (
	ActionQueued    ActionState = "queued"
	ActionRunning   ActionState = "running"
	ActionSucceeded ActionState = "succeeded"
	ActionFailed    ActionState = "failed"
	ActionRefused   ActionState = "refused"
)

// ActionStates returns every action state.
func ActionStates() []ActionState {
	return []ActionState{ActionQueued, ActionRunning, ActionSucceeded, ActionFailed, ActionRefused}
}

// Final reports whether no further transition is possible.
func (s ActionState) Final() bool {
	switch s {
	case ActionSucceeded, ActionFailed, ActionRefused:
		return true
	}
	return false
}

// Action is one request to change an environment, recorded before it waits
// for its turn, with its own result.
type Action struct {
	ID   int64      `json:"id"`
	App  string     `json:"app"`
	Env  string     `json:"env"`
	Kind ActionKind `json:"kind"`
	// Ref is what a promote names (a commit, RC… or the upstream; empty
	// for what the upstream runs) or the release a rollback goes to (empty
	// for the walk back).
	Ref string `json:"ref,omitempty"`
	// Replicas is a scale's count.
	Replicas int `json:"replicas,omitempty"`
	// AllowDowngrade is promote --allow-downgrade.
	AllowDowngrade bool `json:"allowDowngrade,omitempty"`
	// Override is an admin's promote --override: the environment's
	// release windows and freezes do not stop it (its reason says why).
	Override bool `json:"override,omitempty"`
	// WhenOpen is promote --when-open: outside the environment's release
	// windows, or in a freeze, it waits for the next opening, queued,
	// before it takes its turn.
	WhenOpen bool        `json:"whenOpen,omitempty"`
	Actor    string      `json:"actor"`
	Reason   string      `json:"reason,omitempty"`
	State    ActionState `json:"state"`
	// Result says how it ended: the refusal's sentence, the error, or
	// what it did.
	Result string `json:"result,omitempty"`
	// DeploymentID is the deployment it started, once it has one.
	DeploymentID int64     `json:"deploymentId,omitempty"`
	CreatedAt    time.Time `json:"createdAt"`
	StartedAt    time.Time `json:"startedAt,omitzero"`
	FinishedAt   time.Time `json:"finishedAt,omitzero"`
}

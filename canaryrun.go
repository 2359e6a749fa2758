package ferry

import (
	"encoding/json"
	"time"
)

// CanaryRun is the recorded state of one canary: a release's deployment
// going through its environment's canary steps. The ledger keeps it so
// that status, the dashboard and a restarted ferry read what really
// happened.
type CanaryRun struct {
	// DeploymentID is the release's deployment; one rollout per
	// deployment.
	DeploymentID int64  `json:"deploymentId"`
	App          string `json:"app"`
	Env          string `json:"env"`
	// Step is the index of the current step in the environment's
	// Canary.Steps, Steps their number; Weight is the percent of requests
	// the canary takes now (0 once it ended).
	Step   int         `json:"step"`
	Steps  int         `json:"steps"`
	Weight int         `json:"weight"`
	State  CanaryState `json:"state"`
	// Reason says why the rollout is paused, aborted or was promoted
	// early (a person's reason, or the verdict's).
	Reason string `json:"reason,omitempty"`
	// Verdict is the last judgement, as package analysis writes it in
	// JSON (analysis.Verdict); empty before the first.
	Verdict json.RawMessage `json:"-"`
	// StepStarted is when the current step's split took effect;
	// UpdatedAt is the last change.
	StepStarted time.Time `json:"stepStarted"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// CanaryState is where a canary is.
type CanaryState string

const (
	CanaryRunning CanaryState = "running"
	// CanaryPaused waits for a person: inconclusive for too long, or
	// paused by `ferry rollout pause`.
	CanaryPaused CanaryState = "paused"
	// CanaryPromoted took every replica: through its steps, or by
	// `ferry rollout promote`.
	CanaryPromoted CanaryState = "promoted"
	// CanaryAborted was stopped: a failed judgement, `ferry rollout
	// abort`, a rollback, or ferry restarted mid-canary.
	CanaryAborted CanaryState = "aborted"
)

// Final reports whether the rollout has ended.
func (s CanaryState) Final() bool { return s == CanaryPromoted || s == CanaryAborted }

package ferry

import "time"

// Approval is an environment's rule that a promotion waits for people
// other than the one who asked (`approval:` in ferry.yaml): Required
// approvals by tokens with at least Role, none of them the requester
// unless SelfApproval, given within Expires of the request.
type Approval struct {
	// Required is how many different people must approve (at least 1).
	Required int
	// Role is the least role an approver's token needs.
	Role Role
	// SelfApproval lets the requester (or the commit's author) approve.
	SelfApproval bool
	// Expires is how long a request waits for its approvals.
	Expires time.Duration
}

// Defaults of an approval rule.
const (
	DefaultApprovalExpires = 24 * time.Hour
	DefaultApprovalRole    = RoleReleaser
)

// RequestState is where a pending release is in its life.
type RequestState string

// Request states: pending → approved | cancelled | expired. An approved
// request is released by the promote action its last approval queued
// (ReleaseRequest.ActionID), which runs every gate again in its turn.
const (
	RequestPending   RequestState = "pending"
	RequestApproved  RequestState = "approved"
	RequestCancelled RequestState = "cancelled"
	RequestExpired   RequestState = "expired"
)

// RequestStates returns every request state.
func RequestStates() []RequestState {
	return []RequestState{RequestPending, RequestApproved, RequestCancelled, RequestExpired}
}

// Final reports whether no further transition is possible.
func (s RequestState) Final() bool { return s != RequestPending && s != "" }

// ReleaseRequest is a promotion to an environment with an approval rule,
// waiting for its approvals: a pending release. It is recorded when the
// promotion passed every gate in its turn, and names the candidate then.
type ReleaseRequest struct {
	ID  int64  `json:"id"`
	App string `json:"app"`
	Env string `json:"env"`
	// Ref is what the promotion named (empty: what the upstream ran).
	Ref     string `json:"ref,omitempty"`
	Commit  string `json:"commit"`
	Digest  string `json:"digest"`
	BuildID int64  `json:"buildId,omitempty"`
	// Author is the commit's author as its build recorded it ("" when
	// unknown).
	Author string `json:"author,omitempty"`
	// Requester is the token that asked; Reason is theirs.
	Requester string       `json:"requester"`
	Reason    string       `json:"reason,omitempty"`
	State     RequestState `json:"state"`
	// Required is the number of approvals the rule asked for when the
	// request was made.
	Required  int        `json:"required"`
	Approvals []Approver `json:"approvals"`
	// Result says how it ended: who cancelled it and why, when it expired.
	Result string `json:"result,omitempty"`
	// RequestActionID is the promote action that asked; ActionID the
	// promote action that releases it once approved.
	RequestActionID int64     `json:"requestActionId,omitempty"`
	ActionID        int64     `json:"actionId,omitempty"`
	CreatedAt       time.Time `json:"createdAt"`
	ExpiresAt       time.Time `json:"expiresAt"`
	DecidedAt       time.Time `json:"decidedAt,omitzero"`
}

// Approver is one approval of a release request.
type Approver struct {
	Actor  string    `json:"actor"`
	Role   Role      `json:"role"`
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// Approvers names the approvers of r, in the order they approved.
func (r *ReleaseRequest) Approvers() []string {
	out := make([]string, len(r.Approvals))
	for i, a := range r.Approvals {
		out[i] = a.Actor
	}
	return out
}

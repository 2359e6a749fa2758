package ledger

import (
	"context"
	"slices"
	"time"

	"github.com/ferryhq/ferry"
)

// RequestStore records release requests (pending releases) and their
// approvals. Every change is a compare-and-set on what the caller read,
// so that two approvals, or an approval and a cancellation, racing on
// one request cannot both take effect.
type RequestStore interface {
	// CreateReleaseRequest records a pending request and sets r.ID. App,
	// Env, Commit (40 hex), Digest, Requester, Required (≥ 1), CreatedAt
	// and ExpiresAt are required.
	CreateReleaseRequest(ctx context.Context, r *ferry.ReleaseRequest) error
	// ReleaseRequest returns request id with its approvals, oldest first.
	ReleaseRequest(ctx context.Context, id int64) (*ferry.ReleaseRequest, error)
	// ReleaseRequests lists requests newest first, with their approvals.
	ReleaseRequests(ctx context.Context, f RequestFilter) ([]*ferry.ReleaseRequest, error)
	// AddApproval records approval a of request id, which the caller read
	// pending with seen approvals; complete marks the request approved
	// (DecidedAt a.At) in the same transaction. ECONFLICT when the request
	// is no longer pending, its approvals are no longer seen, or a.Actor
	// approved it already.
	AddApproval(ctx context.Context, id int64, a ferry.Approver, seen int, complete bool) error
	// CloseReleaseRequest moves pending request id to cancelled or
	// expired with result, at at (compare-and-set: ECONFLICT when it is no
	// longer pending).
	CloseReleaseRequest(ctx context.Context, id int64, to ferry.RequestState, result string, at time.Time) error
	// SetRequestAction records actionID as the promote action that
	// releases approved request id, once (ECONFLICT when it is not
	// approved or has one).
	SetRequestAction(ctx context.Context, id, actionID int64) error
}

// RequestFilter selects release requests. Zero fields select everything.
type RequestFilter struct {
	App string
	Env string
	// States keeps requests in any of these states.
	States []ferry.RequestState
	// BeforeID keeps requests with a smaller ID, for paging.
	BeforeID int64
	// Limit bounds the result: ≤ 0 means DefaultLimit, at most MaxLimit.
	Limit int
}

// PageSize is the number of requests f asks for, after defaults and bounds.
func (f RequestFilter) PageSize() int { return pageSize(f.Limit, DefaultLimit, MaxLimit) }

// Check refuses a filter whose keys no request could have (CheckKey).
func (f RequestFilter) Check() error {
	if err := CheckEnv(f.App, f.Env); err != nil {
		return err
	}
	for _, st := range f.States {
		if err := CheckKey("request state", string(st), MaxName); err != nil {
			return err
		}
	}
	return nil
}

// RequestNotFound is the error for a missing release request.
func RequestNotFound(id int64) error {
	return ferry.Errorf(ferry.ENOTFOUND, "release request %d not found", id)
}

// PrepareCreateRequest checks a request about to be created and makes
// its text storable, as every engine must before any SQL.
func PrepareCreateRequest(r *ferry.ReleaseRequest) error {
	if r.State == "" {
		r.State = ferry.RequestPending
	}
	switch {
	case r.App == "" || r.Env == "":
		return ferry.Errorf(ferry.EINVALID, "a release request needs an app and an environment")
	case !ferry.ValidCommit(r.Commit):
		return ferry.Errorf(ferry.EINVALID, "release request commit %q is not a full 40-hex commit", r.Commit)
	case !ferry.ValidDigest(r.Digest):
		return ferry.Errorf(ferry.EINVALID, "release request digest %q is not a sha256 digest", r.Digest)
	case r.State != ferry.RequestPending:
		return ferry.Errorf(ferry.EINVALID, "a release request is recorded pending, not %s", r.State)
	case r.Required < 1:
		return ferry.Errorf(ferry.EINVALID, "a release request needs at least one approval, not %d", r.Required)
	case r.CreatedAt.IsZero() || r.ExpiresAt.IsZero():
		return ferry.Errorf(ferry.EINVALID, "a release request needs its creation and expiry times")
	case len(r.Approvals) > 0 || r.ActionID != 0:
		return ferry.Errorf(ferry.EINVALID, "a release request is recorded before its approvals")
	}
	if err := CheckKeys(Key{"app", r.App, MaxName}, Key{"environment", r.Env, MaxName}, Key{"request ref", r.Ref, MaxRef}); err != nil {
		return err
	}
	r.Requester = StoreText(r.Requester, MaxPerson)
	if r.Requester == "" {
		return ferry.Errorf(ferry.EINVALID, "a release request needs its requester")
	}
	r.Author, r.Reason, r.Result = StoreText(r.Author, MaxPerson), StoreText(r.Reason, MaxText), StoreText(r.Result, MaxText)
	r.Approvals = []ferry.Approver{}
	r.CreatedAt, r.ExpiresAt, r.DecidedAt = r.CreatedAt.UTC(), r.ExpiresAt.UTC(), time.Time{}
	return nil
}

// PrepareApproval checks approval a of request id and makes it storable.
func PrepareApproval(id int64, a *ferry.Approver) error {
	a.Actor = StoreText(a.Actor, MaxPerson)
	switch {
	case a.Actor == "":
		return ferry.Errorf(ferry.EINVALID, "an approval of release request %d needs its approver", id)
	case !a.Role.Valid():
		return ferry.Errorf(ferry.EINVALID, "an approval of release request %d needs its approver's role", id)
	case a.At.IsZero():
		return ferry.Errorf(ferry.EINVALID, "an approval of release request %d needs its time", id)
	}
	a.Reason, a.At = StoreText(a.Reason, MaxText), a.At.UTC()
	return nil
}

// CanApprove refuses approval by actor of r, read with seen approvals,
// unless r is still pending as seen and actor has not approved it.
func CanApprove(r *ferry.ReleaseRequest, actor string, seen int) error {
	switch {
	case r.State != ferry.RequestPending:
		return ferry.Errorf(ferry.ECONFLICT, "release request %d is %s, not pending", r.ID, r.State)
	case slices.Contains(r.Approvers(), actor):
		return ferry.Errorf(ferry.ECONFLICT, "%s approved release request %d already", actor, r.ID)
	case len(r.Approvals) != seen:
		return ferry.Errorf(ferry.ECONFLICT, "release request %d was approved meanwhile (%d approvals, not %d)", r.ID, len(r.Approvals), seen)
	}
	return nil
}

// CanClose refuses to move r to state to at at unless r is pending and to
// is cancelled or expired.
func CanClose(r *ferry.ReleaseRequest, to ferry.RequestState, at time.Time) error {
	switch {
	case to != ferry.RequestCancelled && to != ferry.RequestExpired:
		return ferry.Errorf(ferry.EINVALID, "a release request is closed cancelled or expired, not %q", to)
	case at.IsZero():
		return ferry.Errorf(ferry.EINVALID, "closing release request %d needs a time", r.ID)
	case r.State != ferry.RequestPending:
		return ferry.Errorf(ferry.ECONFLICT, "release request %d is %s, not pending", r.ID, r.State)
	}
	return nil
}

// CanSetAction refuses to link an action to r unless r is approved and
// has none.
func CanSetAction(r *ferry.ReleaseRequest, actionID int64) error {
	switch {
	case actionID <= 0:
		return ferry.Errorf(ferry.EINVALID, "release request %d: action id %d", r.ID, actionID)
	case r.State != ferry.RequestApproved:
		return ferry.Errorf(ferry.ECONFLICT, "release request %d is %s, not approved: nothing releases it", r.ID, r.State)
	case r.ActionID != 0:
		return ferry.Errorf(ferry.ECONFLICT, "release request %d is released by action %d already", r.ID, r.ActionID)
	}
	return nil
}

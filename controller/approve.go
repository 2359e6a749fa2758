package controller

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/release"
)

// Approvals (issue 17). A promotion to an environment with an approval
// rule that passed every gate in its turn becomes a release request,
// recorded pending; the promote action ends there with the request named
// in its result. Approve records one approval by a different person
// (release.Approve decides who may); the approval that completes the
// request marks it approved in the same ledger write and queues a promote
// action of the request's commit, which runs every gate again in its turn
// and deploys it, the requester recorded as the deployment's actor and
// the approvers in its reason. A crash between the approval and that
// action is repaired at the next start (resumeApproved). An expired
// request is closed when it is next read and is never approved.

// requestApproval records the pending release request of cand, which
// passed every gate, and its event.
func (c *Controller) requestApproval(ctx context.Context, r *envRunner, cand candidate, ref, actor, reason string, actionID int64) (*ferry.ReleaseRequest, error) {
	author := ""
	if b, err := c.ledger.BuildByCommit(ctx, c.cfg.App, cand.commit); err == nil {
		author = b.Author
	}
	req := release.NewRequest(r.env.Environment, cand.commit, cand.digest, cand.buildID, author, actor, reason, ref, c.now())
	req.App, req.RequestActionID = c.cfg.App, actionID
	if err := c.ledger.CreateReleaseRequest(ctx, req); err != nil {
		return nil, fmt.Errorf("record the release request to %s: %w", r.env.Name, err)
	}
	c.record(ctx, ferry.Event{Actor: actor, Kind: "release.pending", Env: r.env.Name, Commit: req.Commit, BuildID: req.BuildID,
		Message: fmt.Sprintf("release request %d: %s to %s awaits %d approval(s)", req.ID, ferry.ShortSHA(req.Commit), r.env.Name, req.Required),
		Reason:  reason})
	return req, nil
}

// pendingResult is the result of a promote action that became request
// req under rule.
func pendingResult(req *ferry.ReleaseRequest, rule *ferry.Approval) string {
	who := "a " + string(ferry.DefaultApprovalRole)
	if rule != nil {
		who = "a " + string(rule.Role)
		if !rule.SelfApproval {
			who += " other than " + req.Requester
		}
	}
	return fmt.Sprintf("pending approval: release request %d of %s to %s needs %d approval(s) by %s before %s UTC (ferry approve %d)",
		req.ID, ferry.ShortSHA(req.Commit), req.Env, req.Required, who, req.ExpiresAt.UTC().Format(time.DateTime), req.ID)
}

// approvedReason is the reason of the deployment that releases req.
func approvedReason(req *ferry.ReleaseRequest, from, tag string) string {
	s := fmt.Sprintf("promote %s from %s as %s; requested by %s, approved by %s (release request %d)",
		ferry.ShortSHA(req.Commit), from, tag, req.Requester, strings.Join(req.Approvers(), ", "), req.ID)
	if req.Reason != "" {
		s += ": " + req.Reason
	}
	return s
}

// rule is the approval rule request req is judged by: its environment's,
// or, should the configuration have dropped it since, the defaults with
// the count the request was made with.
func (c *Controller) rule(r *envRunner, req *ferry.ReleaseRequest) ferry.Approval {
	if a := r.env.Approval; a != nil {
		return *a
	}
	return ferry.Approval{Required: req.Required, Role: ferry.DefaultApprovalRole, Expires: ferry.DefaultApprovalExpires}
}

// ReleaseRequest returns request id of the controller's app, closed as
// expired first when its time is up.
func (c *Controller) ReleaseRequest(ctx context.Context, id int64) (*ferry.ReleaseRequest, error) {
	req, err := c.ledger.ReleaseRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	if req.App != c.cfg.App {
		return nil, ledger.RequestNotFound(id)
	}
	return c.expire(ctx, req)
}

// ReleaseRequests lists the app's release requests newest first, each
// expired one closed first; an environment named in f must exist.
func (c *Controller) ReleaseRequests(ctx context.Context, f ledger.RequestFilter) ([]*ferry.ReleaseRequest, error) {
	if f.Env != "" {
		if _, err := c.env(f.Env); err != nil {
			return nil, err
		}
	}
	f.App = c.cfg.App
	rs, err := c.ledger.ReleaseRequests(ctx, f)
	if err != nil {
		return nil, err
	}
	for i, req := range rs {
		if rs[i], err = c.expire(ctx, req); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

// expire closes req when it is pending past its expiry, with its event,
// and returns it as the ledger then holds it.
func (c *Controller) expire(ctx context.Context, req *ferry.ReleaseRequest) (*ferry.ReleaseRequest, error) {
	now := c.now()
	if !release.Expired(req, now) {
		return req, nil
	}
	result := fmt.Sprintf("expired at %s UTC with %d of %d approval(s)", req.ExpiresAt.UTC().Format(time.DateTime), len(req.Approvals), req.Required)
	switch err := c.ledger.CloseReleaseRequest(ctx, req.ID, ferry.RequestExpired, result, now); {
	case err == nil:
		c.record(ctx, ferry.Event{Actor: "ferry", Kind: "release.expired", Env: req.Env, Commit: req.Commit, BuildID: req.BuildID,
			Message: fmt.Sprintf("release request %d of %s to %s expired", req.ID, ferry.ShortSHA(req.Commit), req.Env), Reason: result})
	case ferry.ErrorCode(err) != ferry.ECONFLICT: // ECONFLICT: decided meanwhile
		return nil, err
	}
	return c.ledger.ReleaseRequest(ctx, req.ID)
}

// Approve records approver's approval (token role role) of request id.
// The approval that completes the request queues the promote action that
// releases it, returned with the request; a refusal quotes the rule
// (release.Approve) and is recorded as an event.
func (c *Controller) Approve(ctx context.Context, id int64, approver string, role ferry.Role, reason string) (*ferry.ReleaseRequest, *ferry.Action, error) {
	req, err := c.ReleaseRequest(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	r, err := c.env(req.Env)
	if err != nil {
		return nil, nil, err
	}
	complete, err := release.Approve(release.ApprovalFacts{Rule: c.rule(r, req), Request: req, Approver: approver, Role: role, Now: c.now()})
	if err == nil {
		err = c.ledger.AddApproval(ctx, id, ferry.Approver{Actor: approver, Role: role, Reason: reason, At: c.now()}, len(req.Approvals), complete)
	}
	if err != nil {
		c.record(ctx, ferry.Event{Actor: approver, Kind: "release.approval-refused", Env: req.Env, Commit: req.Commit, BuildID: req.BuildID,
			Message: fmt.Sprintf("approval of release request %d to %s refused", id, req.Env), Reason: ferry.ErrorMessage(err)})
		return nil, nil, err
	}
	req, err = c.ledger.ReleaseRequest(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	c.record(ctx, ferry.Event{Actor: approver, Kind: "release.approved", Env: req.Env, Commit: req.Commit, BuildID: req.BuildID,
		Message: fmt.Sprintf("%s approved release request %d of %s to %s (%d of %d)", approver, id, ferry.ShortSHA(req.Commit), req.Env, len(req.Approvals), req.Required),
		Reason:  reason})
	if !complete {
		return req, nil, nil
	}
	a, err := c.releaseApproved(ctx, r, req)
	if err != nil {
		return req, nil, err
	}
	req.ActionID = a.ID
	return req, a, nil
}

// releaseApproved queues the promote action that releases the approved
// request req and links it to req.
func (c *Controller) releaseApproved(ctx context.Context, r *envRunner, req *ferry.ReleaseRequest) (*ferry.Action, error) {
	approvers := req.Approvers()
	a := ferry.Action{Env: req.Env, Kind: ferry.ActionPromote, Ref: req.Commit, Actor: approvers[len(approvers)-1],
		Reason: fmt.Sprintf("release request %d, requested by %s, approved by %s", req.ID, req.Requester, strings.Join(approvers, ", "))}
	id := req.ID
	work := func(ctx context.Context, r *envRunner, a *ferry.Action) outcome {
		req, err := c.ledger.ReleaseRequest(ctx, id) // as it is now, in the turn
		if err == nil && (req.State != ferry.RequestApproved || req.ActionID != a.ID) {
			err = ferry.Errorf(ferry.ECONFLICT, "release request %d is %s and released by action %d, not %d", id, req.State, req.ActionID, a.ID)
		}
		if err != nil {
			return outcome{err: err}
		}
		d, _, err := c.promote(ctx, r, req.Commit, a.Actor, a.Reason, promoteOpts{}, a.ID, req)
		return outcome{d: d, err: err}
	}
	rec, _, err := c.submitWork(ctx, r, a, c.linked(id, work))
	if err != nil {
		return nil, fmt.Errorf("queue the release of request %d: %w", id, err)
	}
	return rec, nil
}

// linked is work that first records the action as the one releasing
// request id: the action exists only once submitWork has recorded it.
func (c *Controller) linked(id int64, work step) step {
	return func(ctx context.Context, r *envRunner, a *ferry.Action) outcome {
		if err := c.ledger.SetRequestAction(ctx, id, a.ID); err != nil {
			return outcome{err: fmt.Errorf("link release request %d to action %d: %w", id, a.ID, err)}
		}
		c.changed.Notify()
		return work(ctx, r, a)
	}
}

// CancelRequest cancels pending request id for actor (token role role)
// with reason (release.Cancel decides who may).
func (c *Controller) CancelRequest(ctx context.Context, id int64, actor string, role ferry.Role, reason string) (*ferry.ReleaseRequest, error) {
	req, err := c.ReleaseRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	r, err := c.env(req.Env)
	if err != nil {
		return nil, err
	}
	result := "cancelled by " + actor
	if reason != "" {
		result += ": " + reason
	}
	err = release.Cancel(c.rule(r, req), req, actor, role, c.now())
	if err == nil {
		err = c.ledger.CloseReleaseRequest(ctx, id, ferry.RequestCancelled, result, c.now())
	}
	if err != nil {
		return nil, err
	}
	c.record(ctx, ferry.Event{Actor: actor, Kind: "release.cancelled", Env: req.Env, Commit: req.Commit, BuildID: req.BuildID,
		Message: fmt.Sprintf("release request %d of %s to %s cancelled", id, ferry.ShortSHA(req.Commit), req.Env), Reason: reason})
	return c.ledger.ReleaseRequest(ctx, id)
}

// resumeApproved queues the release of every approved request that a
// crash left before its promote action's turn came (no action linked:
// the action, if recorded, was closed by recoverActions). One whose
// action had started keeps that action's end as its fate.
func (c *Controller) resumeApproved(ctx context.Context) error {
	rs, err := c.ledger.ReleaseRequests(ctx, ledger.RequestFilter{App: c.cfg.App, States: []ferry.RequestState{ferry.RequestApproved}, Limit: ledger.MaxLimit})
	if err != nil {
		return fmt.Errorf("list approved release requests: %w", err)
	}
	for i := len(rs) - 1; i >= 0; i-- { // oldest first
		req := rs[i]
		if req.ActionID != 0 {
			continue
		}
		r, err := c.env(req.Env)
		if err != nil {
			c.log.Warn("approved release request of an unknown environment", "id", req.ID, "env", req.Env)
			continue
		}
		if _, err := c.releaseApproved(ctx, r, req); err != nil {
			return err
		}
		c.record(ctx, ferry.Event{Actor: "ferry", Kind: "release.resumed", Env: req.Env, Commit: req.Commit, BuildID: req.BuildID,
			Message: fmt.Sprintf("release request %d of %s to %s, approved before ferry stopped, queued", req.ID, ferry.ShortSHA(req.Commit), req.Env)})
	}
	return nil
}

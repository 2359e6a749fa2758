package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/ledger"
)

// Approvals is what the API asks of the controller for release requests:
// promotions to an environment with an approval rule, waiting for
// approvals by other people.
type Approvals interface {
	ReleaseRequest(ctx context.Context, id int64) (*ferry.ReleaseRequest, error)
	ReleaseRequests(ctx context.Context, f ledger.RequestFilter) ([]*ferry.ReleaseRequest, error)
	// Approve records an approval by approver, whose token has role; the
	// one that completes the request returns the promote action it queued.
	Approve(ctx context.Context, id int64, approver string, role ferry.Role, reason string) (*ferry.ReleaseRequest, *ferry.Action, error)
	CancelRequest(ctx context.Context, id int64, actor string, role ferry.Role, reason string) (*ferry.ReleaseRequest, error)
}

// RequestBody is the answer of GET /api/v1/requests/{id}, of an approval
// and of a cancellation: the request, the promote action that releases
// it once approved, and where to follow them.
type RequestBody struct {
	Request *ferry.ReleaseRequest `json:"request"`
	Action  *ferry.Action         `json:"action,omitempty"`
	Links   RequestLinks          `json:"links"`
}

// RequestLinks are the routes of a request.
type RequestLinks struct {
	Self    string `json:"self"`
	Approve string `json:"approve,omitempty"`
	Cancel  string `json:"cancel,omitempty"`
	Action  string `json:"action,omitempty"`
}

// RequestList is the body of GET /api/v1/requests.
type RequestList struct {
	Requests []*ferry.ReleaseRequest `json:"requests"`
}

func requestBody(q *ferry.ReleaseRequest, a *ferry.Action) RequestBody {
	self := fmt.Sprintf("/api/v1/requests/%d", q.ID)
	b := RequestBody{Request: q, Action: a, Links: RequestLinks{Self: self}}
	if q.State == ferry.RequestPending {
		b.Links.Approve, b.Links.Cancel = self+"/approve", self+"/cancel"
	}
	if q.ActionID != 0 {
		b.Links.Action = fmt.Sprintf("/api/v1/actions/%d", q.ActionID)
	}
	return b
}

func (s *Server) listRequests(w http.ResponseWriter, r *http.Request) {
	limit, before, err := page(r, 50)
	if err != nil {
		s.error(w, r, err)
		return
	}
	f := ledger.RequestFilter{Env: r.URL.Query().Get("env"), BeforeID: before, Limit: int(limit)}
	if f.States, err = queryEnum(r, "state", "request state", ferry.RequestStates()); err != nil {
		s.error(w, r, err)
		return
	}
	rs, err := s.Approvals.ReleaseRequests(r.Context(), f)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, RequestList{Requests: rs})
}

func (s *Server) getRequest(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	q, err := s.Approvals.ReleaseRequest(r.Context(), id)
	if err != nil {
		s.error(w, r, err)
		return
	}
	var a *ferry.Action
	if q.ActionID != 0 && s.Actions != nil {
		if a, err = s.Actions.Action(r.Context(), q.ActionID); err != nil {
			s.error(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, requestBody(q, a))
}

// approve answers 200 with the request; when the approval completed it,
// 202 with the promote action queued, Location naming it.
func (s *Server) approve(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	var req ReasonRequest
	if err := decodeOptional(w, r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	q, a, err := s.Approvals.Approve(r.Context(), id, actor(r), tokenRole(r), req.Reason)
	if err != nil {
		s.error(w, r, err)
		return
	}
	status := http.StatusOK
	if a != nil {
		status = http.StatusAccepted
		w.Header().Set("Location", fmt.Sprintf("/api/v1/actions/%d", a.ID))
	}
	writeJSON(w, status, requestBody(q, a))
}

func (s *Server) cancelRequest(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	var req ReasonRequest
	if err := decodeOptional(w, r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	q, err := s.Approvals.CancelRequest(r.Context(), id, actor(r), tokenRole(r), req.Reason)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, requestBody(q, nil))
}

// tokenRole is the role of the request's token ("" without one, which
// allows nothing).
func tokenRole(r *http.Request) ferry.Role {
	if t := auth.TokenOf(r); t != nil {
		return t.Role
	}
	return ""
}

package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/release"
)

// ActionQueue is what the API asks of the controller for an environment's
// actions: promote, rollback, scale, lock and unlock are queued, recorded,
// and run in the environment's turn; the API answers with the action at
// once.
type ActionQueue interface {
	// Queue records a as queued and returns it; what can be judged without
	// the environment's turn (the environment, the arguments) is an error
	// here, the rest becomes the action's result.
	Queue(ctx context.Context, a ferry.Action) (*ferry.Action, error)
	Action(ctx context.Context, id int64) (*ferry.Action, error)
	Actions(ctx context.Context, f ledger.ActionFilter) ([]*ferry.Action, error)
}

// ActionBody is the answer of a queued action (202) and of GET
// /api/v1/actions/{id}: the action, the deployment it started once it
// has one (GET only), and where to follow them.
type ActionBody struct {
	Action     *ferry.Action     `json:"action"`
	Deployment *ferry.Deployment `json:"deployment,omitempty"`
	Links      ActionLinks       `json:"links"`
}

// ActionLinks are the routes that follow an action.
type ActionLinks struct {
	Self       string `json:"self"`
	Deployment string `json:"deployment,omitempty"`
}

// ActionList is the body of GET /api/v1/actions.
type ActionList struct {
	Actions []*ferry.Action `json:"actions"`
}

func actionBody(a *ferry.Action, d *ferry.Deployment) ActionBody {
	b := ActionBody{Action: a, Deployment: d, Links: ActionLinks{Self: fmt.Sprintf("/api/v1/actions/%d", a.ID)}}
	if a.DeploymentID != 0 {
		b.Links.Deployment = fmt.Sprintf("/api/v1/deployments/%d", a.DeploymentID)
	}
	return b
}

// queue asks for a and answers 202 with it, queued.
func (s *Server) queue(w http.ResponseWriter, r *http.Request, a ferry.Action) {
	a.Env, a.Actor = r.PathValue("env"), actor(r)
	rec, err := s.Actions.Queue(r.Context(), a)
	if err != nil {
		s.error(w, r, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/api/v1/actions/%d", rec.ID))
	writeJSON(w, http.StatusAccepted, actionBody(rec, nil))
}

func (s *Server) promote(w http.ResponseWriter, r *http.Request) {
	var req PromoteRequest
	if err := decode(w, r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	if req.Override {
		if err := release.MayOverride(tokenRole(r), req.Reason); err != nil {
			s.error(w, r, err)
			return
		}
	}
	s.queue(w, r, ferry.Action{Kind: ferry.ActionPromote, Ref: req.Ref, AllowDowngrade: req.AllowDowngrade, Override: req.Override, WhenOpen: req.WhenOpen, Reason: req.Reason})
}

func (s *Server) rollback(w http.ResponseWriter, r *http.Request) {
	var req RollbackRequest
	if err := decode(w, r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	s.queue(w, r, ferry.Action{Kind: ferry.ActionRollback, Ref: req.To, Reason: req.Reason})
}

func (s *Server) scale(w http.ResponseWriter, r *http.Request) {
	var req ScaleRequest
	if err := decode(w, r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	s.queue(w, r, ferry.Action{Kind: ferry.ActionScale, Replicas: req.Replicas, Reason: req.Reason})
}

func (s *Server) lock(w http.ResponseWriter, r *http.Request) {
	var req ReasonRequest
	if err := decode(w, r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	s.queue(w, r, ferry.Action{Kind: ferry.ActionLock, Reason: req.Reason})
}

func (s *Server) unlock(w http.ResponseWriter, r *http.Request) {
	var req ReasonRequest
	if err := decodeOptional(w, r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	s.queue(w, r, ferry.Action{Kind: ferry.ActionUnlock, Reason: req.Reason})
}

func (s *Server) getAction(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.error(w, r, err)
		return
	}
	a, err := s.Actions.Action(r.Context(), id)
	if err != nil {
		s.error(w, r, err)
		return
	}
	var d *ferry.Deployment
	if a.DeploymentID != 0 && s.Deployments != nil {
		if d, err = s.Deployments.Deployment(r.Context(), a.DeploymentID); err != nil {
			s.error(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, actionBody(a, d))
}

func (s *Server) listActions(w http.ResponseWriter, r *http.Request) {
	limit, before, err := page(r, 50)
	if err != nil {
		s.error(w, r, err)
		return
	}
	q := r.URL.Query()
	f := ledger.ActionFilter{Env: q.Get("env"), BeforeID: before, Limit: int(limit)}
	if f.States, err = queryEnum(r, "state", "action state", ferry.ActionStates()); err != nil {
		s.error(w, r, err)
		return
	}
	as, err := s.Actions.Actions(r.Context(), f)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, ActionList{Actions: as})
}

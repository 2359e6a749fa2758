package api

import (
	"context"
	"net/http"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/release"
)

// Releases is what the API asks of the controller for gated environments
// and operations; the changes of an environment are Actions (actions.go).
type Releases interface {
	Quarantine(ctx context.Context, ref, actor, reason string) (*ferry.Quarantine, error)
	Diff(ctx context.Context, from, to string) (*release.Comparison, error)
	// KnownReleases lists a gated environment's known releases, newest
	// first (release.KnownReleases).
	KnownReleases(ctx context.Context, env string) ([]release.Known, error)
	// CheckPush judges the ref updates of a push into the app's repository
	// as ferry would act on them (release.JudgePush), one verdict each.
	CheckPush(ctx context.Context, env string, updates []release.PushUpdate) ([]release.Verdict, error)
}

// MaxPushUpdates bounds the updates of one push check; `ferry hook
// pre-receive` sends more in several requests.
const MaxPushUpdates = 100

// PushCheckRequest is the body of POST /api/v1/envs/{env}/push-check: the
// ref updates of a push that touch env's branch, release tags or env/*
// tags, with what the git server's hook read of each.
type PushCheckRequest struct {
	Updates []release.PushUpdate `json:"updates"`
}

// PushCheck is its answer: a verdict per update, in order.
type PushCheck struct {
	Verdicts []release.Verdict `json:"verdicts"`
}

func (s *Server) checkPush(w http.ResponseWriter, r *http.Request) {
	var req PushCheckRequest
	if err := decode(w, r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	if n := len(req.Updates); n == 0 || n > MaxPushUpdates {
		s.error(w, r, ferry.Errorf(ferry.EINVALID, "a push check takes 1 to %d updates, got %d", MaxPushUpdates, n))
		return
	}
	vs, err := s.Releases.CheckPush(r.Context(), r.PathValue("env"), req.Updates)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, PushCheck{Verdicts: vs})
}

// ReleaseList is the body of GET /api/v1/envs/{env}/releases.
type ReleaseList struct {
	Releases []release.Known `json:"releases"`
}

func (s *Server) knownReleases(w http.ResponseWriter, r *http.Request) {
	ks, err := s.Releases.KnownReleases(r.Context(), r.PathValue("env"))
	if err != nil {
		s.error(w, r, err)
		return
	}
	if ks == nil {
		ks = []release.Known{}
	}
	writeJSON(w, http.StatusOK, ReleaseList{Releases: ks})
}

func (s *Server) diff(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	from, to := q.Get("from"), q.Get("to")
	if from == "" || to == "" {
		s.error(w, r, ferry.Errorf(ferry.EINVALID, "diff needs from and to environments (?from=dev&to=prod)"))
		return
	}
	c, err := s.Releases.Diff(r.Context(), from, to)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// PromoteRequest is the body of POST /api/v1/envs/{env}/promote. Ref is a
// commit, a release tag (RC…) or the upstream environment's name; empty
// means what the upstream runs.
type PromoteRequest struct {
	Ref    string `json:"ref,omitempty"`
	Reason string `json:"reason,omitempty"`
	// AllowDowngrade lets the promotion move back from what the
	// environment runs; it needs a reason.
	AllowDowngrade bool `json:"allowDowngrade,omitempty"`
	// Override lets an admin's promotion through the environment's
	// release windows and freezes; it needs a reason.
	Override bool `json:"override,omitempty"`
	// WhenOpen makes a promotion outside the windows, or in a freeze,
	// wait queued for the next opening instead of being refused.
	WhenOpen bool `json:"whenOpen,omitempty"`
}

// RollbackRequest is the body of POST /api/v1/envs/{env}/rollback; To is a
// release tag, empty for the previous release.
type RollbackRequest struct {
	To     string `json:"to,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// ReasonRequest is the body of lock, unlock and quarantine.
type ReasonRequest struct {
	Reason string `json:"reason"`
}

// QuarantineRequest is the body of POST /api/v1/quarantines.
type QuarantineRequest struct {
	Ref    string `json:"ref"`
	Reason string `json:"reason"`
}

func (s *Server) quarantine(w http.ResponseWriter, r *http.Request) {
	var req QuarantineRequest
	if err := decode(w, r, &req); err != nil {
		s.error(w, r, err)
		return
	}
	q, err := s.Releases.Quarantine(r.Context(), req.Ref, actor(r), req.Reason)
	if err != nil {
		s.error(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, q)
}

// Package api serves ferry's HTTP API under /api/v1: JSON in and out, one
// function mapping domain error codes to statuses, and log streams as
// newline-delimited JSON. The CLI is its client.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/ledger"
)

// Ledger is what the API reads.
type Ledger interface {
	Build(ctx context.Context, id int64) (*ferry.Build, error)
	Builds(ctx context.Context, f ledger.BuildFilter) ([]*ferry.Build, error)
	Logs(ctx context.Context, buildID, afterSeq int64, limit int) ([]ferry.LogLine, error)
	Events(ctx context.Context, f ledger.EventFilter) ([]ferry.Event, error)
}

// Builds is what the API asks of the builder.
type Builds interface {
	// Trigger queues a build of branch's current head, or of commit when set.
	Trigger(ctx context.Context, branch, commit, actor string) (*ferry.Build, bool, error)
	Cancel(ctx context.Context, id int64, actor, reason string) error
	// Changed returns a channel closed at the next change of builds or logs.
	Changed() <-chan struct{}
}

// Server is the HTTP API.
type Server struct {
	App     string
	Version string
	Ledger  Ledger
	Builds  Builds
	// Envs and Deployments serve environments; nil before the controller
	// exists (build-only servers).
	Envs        Environments
	Deployments DeploymentLedger
	Releases    Releases
	// Dora serves GET /api/v1/dora; nil answers 404.
	Dora Dora
	// Hooks serves /hooks/{provider}; nil disables webhooks.
	Hooks http.Handler
	// Tokens authenticates the requests of every route routeAccess does
	// not open (access.go), and serves /api/v1/tokens. It is required:
	// without it those routes refuse every request.
	Tokens Tokens
	Logger *slog.Logger
	// Heartbeat is how often a log follower gets an empty keep-alive
	// line while it waits; ledger.DefaultHeartbeat (15s) when 0.
	Heartbeat time.Duration
}

// routes registers every route, each guarded by its access rule
// (access.go).
func (s *Server) routes() *guardedMux {
	mux := &guardedMux{ServeMux: http.NewServeMux(), s: s}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /api/v1/version", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"version": s.Version, "app": s.App})
	})
	mux.HandleFunc("GET /api/v1/openapi.json", s.openAPI)
	mux.HandleFunc("GET /api/v1/builds", s.listBuilds)
	mux.HandleFunc("POST /api/v1/builds", s.triggerBuild)
	mux.HandleFunc("GET /api/v1/builds/{id}", s.getBuild)
	mux.HandleFunc("POST /api/v1/builds/{id}/cancel", s.cancelBuild)
	mux.HandleFunc("GET /api/v1/builds/{id}/logs", s.buildLogs)
	mux.HandleFunc("GET /api/v1/events", s.listEvents)
	if s.Envs != nil {
		mux.HandleFunc("GET /api/v1/status", s.status)
		mux.HandleFunc("POST /api/v1/envs/{env}/scale", s.scale)
		mux.HandleFunc("GET /api/v1/envs/{env}/logs", s.envLogs)
		mux.HandleFunc("GET /api/v1/deployments", s.listDeployments)
		mux.HandleFunc("GET /api/v1/deployments/{id}", s.getDeployment)
		mux.HandleFunc("GET /api/v1/dora", s.dora)
	}
	if s.Releases != nil {
		mux.HandleFunc("POST /api/v1/envs/{env}/promote", s.promote)
		mux.HandleFunc("POST /api/v1/envs/{env}/rollback", s.rollback)
		mux.HandleFunc("POST /api/v1/envs/{env}/lock", s.lock)
		mux.HandleFunc("DELETE /api/v1/envs/{env}/lock", s.unlock)
		mux.HandleFunc("GET /api/v1/envs/{env}/releases", s.knownReleases)
		mux.HandleFunc("POST /api/v1/quarantines", s.quarantine)
		mux.HandleFunc("GET /api/v1/diff", s.diff)
	}
	mux.HandleFunc("POST /api/v1/tokens", s.createToken)
	mux.HandleFunc("GET /api/v1/tokens", s.listTokens)
	mux.HandleFunc("DELETE /api/v1/tokens/{name}", s.revokeToken)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		s.error(w, r, ferry.Errorf(ferry.ENOTFOUND, "no API route %s %s", r.Method, r.URL.Path))
	})
	if s.Hooks != nil {
		mux.Handle("/hooks/", s.Hooks)
	}
	return mux
}

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

func (s *Server) error(w http.ResponseWriter, r *http.Request, err error) {
	code := ferry.ErrorCode(err)
	if code == ferry.EINTERNAL {
		s.Logger.Error("api", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeJSON(w, ferry.HTTPStatus(err), ErrorBody{Error: ferry.ErrorMessage(err), Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// decode reads a JSON body of at most 64 KiB into v, refusing unknown fields.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return ferry.Errorf(ferry.EINVALID, "request body is empty; expected JSON")
		}
		return ferry.Errorf(ferry.EINVALID, "request body: %v", err)
	}
	return nil
}

func pathID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, ferry.Errorf(ferry.EINVALID, "id %q is not a positive number", r.PathValue("id"))
	}
	return id, nil
}

func queryInt(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, ferry.Errorf(ferry.EINVALID, "query parameter %s=%q is not a non-negative number", name, v)
	}
	return n, nil
}

// queryBool reports whether the query parameter name is "1" or "true".
func queryBool(r *http.Request, name string) bool {
	v := r.URL.Query().Get(name)
	return v == "1" || v == "true"
}

// page reads a list's paging parameters: limit (def when absent) and
// before, an id to list below.
func page(r *http.Request, def int64) (limit, before int64, err error) {
	if limit, err = queryInt(r, "limit", def); err != nil {
		return 0, 0, err
	}
	if before, err = queryInt(r, "before", 0); err != nil {
		return 0, 0, err
	}
	return limit, before, nil
}

// actor names who asked: the name of the token that authenticated r.
func actor(r *http.Request) string { return auth.Actor(r) }

package api

import (
	"errors"
	"net/http"
	"strings"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
)

// access is what a route needs of the request's token.
type access struct {
	public bool       // no token at all
	need   ferry.Role // the role needed, or the least one with perEnv
	// perEnv: the role the {env} path value's environment needs for
	// changes (auth.EnvRole).
	perEnv bool
}

var (
	openRoute    = access{public: true}
	needViewer   = access{need: ferry.RoleViewer}
	needDeployer = access{need: ferry.RoleDeployer}
	needReleaser = access{need: ferry.RoleReleaser}
	needAdmin    = access{need: ferry.RoleAdmin}
	needEnvRole  = access{need: ferry.RoleDeployer, perEnv: true}
)

// routeAccess is every route's access rule in one table, keyed by the
// pattern it is registered with. A GET route missing here needs viewer; any
// other route missing here needs admin, so a new route that changes
// something is closed until it is listed.
var routeAccess = map[string]access{
	"GET /healthz":                       openRoute,
	"GET /api/v1/openapi.json":           openRoute,  // the API's documentation
	"/hooks/":                            openRoute,  // webhooks check their signatures
	"/api/":                              needViewer, // the JSON 404 or 405 for unknown routes
	"GET /api/v1/version":                needViewer,
	"GET /api/v1/builds":                 needViewer,
	"GET /api/v1/builds/{id}":            needViewer,
	"GET /api/v1/builds/{id}/logs":       needViewer,
	"GET /api/v1/events":                 needViewer,
	"GET /api/v1/status":                 needViewer,
	"GET /api/v1/envs/{env}/logs":        needViewer,
	"GET /api/v1/deployments":            needViewer,
	"GET /api/v1/deployments/{id}":       needViewer,
	"GET /api/v1/actions":                needViewer,
	"GET /api/v1/actions/{id}":           needViewer,
	"GET /api/v1/dora":                   needViewer,
	"GET /api/v1/diff":                   needViewer,
	"GET /api/v1/envs/{env}/releases":    needViewer, // what ferry hook pre-receive asks
	"POST /api/v1/envs/{env}/push-check": needViewer, // ferry hook pre-receive: a question, it changes nothing
	"POST /api/v1/builds":                needDeployer,
	"POST /api/v1/builds/{id}/cancel":    needDeployer,
	"POST /api/v1/envs/{env}/scale":      needEnvRole,
	"POST /api/v1/envs/{env}/promote":    needEnvRole,
	"POST /api/v1/envs/{env}/rollback":   needEnvRole,
	"POST /api/v1/envs/{env}/lock":       needEnvRole,
	"DELETE /api/v1/envs/{env}/lock":     needEnvRole,
	"POST /api/v1/quarantines":           needReleaser,
	// A running canary's commands need what a promotion or rollback of
	// the environment needs.
	"GET /api/v1/envs/{env}/rollout":          needViewer,
	"POST /api/v1/envs/{env}/rollout/pause":   needEnvRole,
	"POST /api/v1/envs/{env}/rollout/resume":  needEnvRole,
	"POST /api/v1/envs/{env}/rollout/abort":   needEnvRole,
	"POST /api/v1/envs/{env}/rollout/promote": needEnvRole,
	// The environment's approval rule names the approver's role; the
	// controller checks it (release.Approve) and quotes the rule.
	"POST /api/v1/requests/{id}/approve": needDeployer,
	"POST /api/v1/requests/{id}/cancel":  needDeployer,
	"POST /api/v1/tokens":                needAdmin,
	"GET /api/v1/tokens":                 needAdmin,
	"DELETE /api/v1/tokens/{name}":       needAdmin,
}

// accessOf returns pattern's rule.
func accessOf(pattern string) access {
	if a, ok := routeAccess[pattern]; ok {
		return a
	}
	if strings.HasPrefix(pattern, "GET ") {
		return needViewer
	}
	return needAdmin
}

// guardedMux is a ServeMux whose routes check the token and role their
// access rule needs before their handler runs. Registering stays as with
// http.ServeMux.
type guardedMux struct {
	*http.ServeMux
	s *Server
	// patterns are the registered patterns, for tests.
	patterns []string
}

func (m *guardedMux) Handle(pattern string, h http.Handler) {
	a := accessOf(pattern)
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.Handle(pattern, m.s.guard(a, h))
}

func (m *guardedMux) HandleFunc(pattern string, h func(http.ResponseWriter, *http.Request)) {
	m.Handle(pattern, http.HandlerFunc(h))
}

// guard wraps h with a's checks: a token (auth.Middleware answers 401
// without a valid one), then the role (auth.Allowed), then the text of the
// request's path and query parameters (checkParams). Public routes run h
// as it is. A server without Tokens is closed, not open: its guarded
// routes answer 500 and log why.
func (s *Server) guard(a access, h http.Handler) http.Handler {
	if a.public {
		return h
	}
	if s.Tokens == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.error(w, r, errNoTokens)
		})
	}
	return auth.Middleware(s.Tokens.Lookup, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := s.need(r, a)
		if err := auth.Allowed(auth.TokenOf(r), need); err != nil {
			s.Logger.Warn("refused", "method", r.Method, "path", r.URL.Path, "token", auth.Actor(r), "need", need)
			s.error(w, r, err)
			return
		}
		if err := checkParams(r); err != nil {
			s.error(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// need is the role a request on a route with rule a needs: the rule's, or
// for a change of the {env} environment the role its configuration names
// (auth.EnvRole). An environment that does not exist needs the rule's
// least role (the handler then refuses it by name).
func (s *Server) need(r *http.Request, a access) ferry.Role {
	if !a.perEnv {
		return a.need
	}
	if s.Envs == nil {
		return ferry.RoleAdmin
	}
	env, ok := s.Envs.Environment(r.PathValue("env"))
	if !ok {
		return a.need
	}
	return auth.EnvRole(env)
}

// errNoTokens is a server wired without its token lookup.
var errNoTokens = errors.New("api: Server.Tokens is nil, so no token can be checked; refusing every guarded route")

// Handler returns every route; each needs a token with the role
// routeAccess gives it, but for the routes it opens (the health check, the
// API's documentation and webhooks).
func (s *Server) Handler() http.Handler {
	return s.routes()
}

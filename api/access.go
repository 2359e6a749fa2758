package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
)

// access is what a route needs of the request's token.
type access struct {
	public bool       // no token at all
	need   ferry.Role // the role needed, or the least one with perEnv
	// perEnv: the role the {env} path value's environment needs for
	// changes (Server.EnvRoles).
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
	"GET /healthz":                     openRoute,
	"GET /api/v1/openapi.json":         openRoute,  // the API's documentation
	"/hooks/":                          openRoute,  // webhooks check their signatures
	"/api/":                            needViewer, // the JSON 404 for unknown routes
	"GET /api/v1/version":              needViewer,
	"GET /api/v1/builds":               needViewer,
	"GET /api/v1/builds/{id}":          needViewer,
	"GET /api/v1/builds/{id}/logs":     needViewer,
	"GET /api/v1/events":               needViewer,
	"GET /api/v1/status":               needViewer,
	"GET /api/v1/envs/{env}/logs":      needViewer,
	"GET /api/v1/deployments":          needViewer,
	"GET /api/v1/deployments/{id}":     needViewer,
	"GET /api/v1/dora":                 needViewer,
	"GET /api/v1/envs/{env}/releases":  needViewer, // what ferry hook pre-receive asks
	"POST /api/v1/builds":              needDeployer,
	"POST /api/v1/builds/{id}/cancel":  needDeployer,
	"POST /api/v1/envs/{env}/scale":    needEnvRole,
	"POST /api/v1/envs/{env}/promote":  needEnvRole,
	"POST /api/v1/envs/{env}/rollback": needEnvRole,
	"POST /api/v1/envs/{env}/lock":     needEnvRole,
	"DELETE /api/v1/envs/{env}/lock":   needEnvRole,
	"POST /api/v1/quarantines":         needReleaser,
	"POST /api/v1/tokens":              needAdmin,
	"GET /api/v1/tokens":               needAdmin,
	"DELETE /api/v1/tokens/{name}":     needAdmin,
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
// without a valid one), then the role. Without access control (no Tokens)
// and for public routes, h runs as it is.
func (s *Server) guard(a access, h http.Handler) http.Handler {
	if s.Tokens == nil || a.public {
		return h
	}
	return auth.Middleware(s.Tokens.Lookup, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := a.need
		if a.perEnv {
			need = s.envRole(r.PathValue("env"), a.need)
		}
		if err := auth.Require(r, need); err != nil {
			s.Logger.Warn("refused", "method", r.Method, "path", r.URL.Path, "token", auth.Actor(r), "need", need)
			s.error(w, r, err)
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// envRole is the role changing env needs: what its configuration says.
// An environment that does not exist needs least (the handler then refuses
// it by name); one that exists but has no role here needs admin, so a
// wiring mistake closes an environment rather than opening it.
func (s *Server) envRole(env string, least ferry.Role) ferry.Role {
	if r, ok := s.EnvRoles[env]; ok && r.Valid() {
		return r
	}
	if s.Envs != nil && !slices.Contains(s.Envs.Names(), env) {
		return least
	}
	return ferry.RoleAdmin
}

// Handler returns every route; with Tokens set, each needs a token with
// the role routeAccess gives it, but for the routes it opens (the health
// check, the API's documentation and webhooks).
func (s *Server) Handler() http.Handler {
	return s.routes()
}

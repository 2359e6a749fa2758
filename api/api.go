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
	"maps"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// Leases tells GET /api/v1/status who leads; nil leaves it out.
	Leases Leases
	// Actions queues and reports an environment's actions (promote,
	// rollback, scale, lock, unlock); nil leaves those routes out.
	Actions ActionQueue
	// Approvals serves the release requests waiting for approvals; nil
	// leaves those routes out.
	Approvals Approvals
	// Notifications lists the outgoing notifications and their
	// deliveries; nil leaves the route out.
	Notifications Outbox
	// Canaries serves a running canary's status and commands (`ferry
	// rollout`); nil leaves those routes out.
	Canaries Canaries
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
		mux.HandleFunc("GET /api/v1/envs/{env}/logs", s.envLogs)
		mux.HandleFunc("GET /api/v1/deployments", s.listDeployments)
		mux.HandleFunc("GET /api/v1/deployments/{id}", s.getDeployment)
		mux.HandleFunc("GET /api/v1/dora", s.dora)
	}
	if s.Releases != nil {
		mux.HandleFunc("GET /api/v1/envs/{env}/releases", s.knownReleases)
		mux.HandleFunc("POST /api/v1/envs/{env}/push-check", s.checkPush)
		mux.HandleFunc("POST /api/v1/quarantines", s.quarantine)
		mux.HandleFunc("GET /api/v1/diff", s.diff)
	}
	if s.Actions != nil {
		mux.HandleFunc("POST /api/v1/envs/{env}/scale", s.scale)
		mux.HandleFunc("POST /api/v1/envs/{env}/promote", s.promote)
		mux.HandleFunc("POST /api/v1/envs/{env}/rollback", s.rollback)
		mux.HandleFunc("POST /api/v1/envs/{env}/lock", s.lock)
		mux.HandleFunc("DELETE /api/v1/envs/{env}/lock", s.unlock)
		mux.HandleFunc("GET /api/v1/actions", s.listActions)
		mux.HandleFunc("GET /api/v1/actions/{id}", s.getAction)
	}
	if s.Canaries != nil {
		mux.HandleFunc("GET /api/v1/envs/{env}/rollout", s.canaryStatus)
		mux.HandleFunc("POST /api/v1/envs/{env}/rollout/pause", s.canaryCommand("pause"))
		mux.HandleFunc("POST /api/v1/envs/{env}/rollout/resume", s.canaryCommand("resume"))
		mux.HandleFunc("POST /api/v1/envs/{env}/rollout/abort", s.canaryCommand("abort"))
		mux.HandleFunc("POST /api/v1/envs/{env}/rollout/promote", s.canaryCommand("promote"))
	}
	if s.Notifications != nil {
		mux.HandleFunc("GET /api/v1/notifications", s.listNotifications)
	}
	if s.Approvals != nil {
		mux.HandleFunc("GET /api/v1/requests", s.listRequests)
		mux.HandleFunc("GET /api/v1/requests/{id}", s.getRequest)
		mux.HandleFunc("POST /api/v1/requests/{id}/approve", s.approve)
		mux.HandleFunc("POST /api/v1/requests/{id}/cancel", s.cancelRequest)
	}
	mux.HandleFunc("POST /api/v1/tokens", s.createToken)
	mux.HandleFunc("GET /api/v1/tokens", s.listTokens)
	mux.HandleFunc("DELETE /api/v1/tokens/{name}", s.revokeToken)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) { s.noRoute(mux.ServeMux, w, r) })
	if s.Hooks != nil {
		mux.Handle("/hooks/", s.Hooks)
	}
	return mux
}

// ServeHTTP serves r with its route, and a request no route serves
// outside /api/ (whose catch-all needs a token first) as the API does:
// noRoute.
func (m *guardedMux) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := m.ServeMux.Handler(r); pattern == "" {
		m.s.noRoute(m.ServeMux, w, r)
		return
	}
	m.ServeMux.ServeHTTP(w, r)
}

// noRoute answers a request that no route of mux serves: 405 with the
// methods its path has in Allow, or 404 when it has none.
func (s *Server) noRoute(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
		probe := r.Clone(r.Context())
		probe.Method = m
		// Patterns without a method are catch-alls, not routes of the path.
		if _, pattern := mux.Handler(probe); strings.Contains(pattern, " ") {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		s.error(w, r, ferry.Errorf(ferry.ENOTFOUND, "no API route %s %s", r.Method, r.URL.Path))
		return
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	s.error(w, r, ferry.Errorf(ferry.EMETHOD, "%s %s: this path answers only %s", r.Method, r.URL.Path, strings.Join(allow, ", ")))
}

// ErrorBody is the JSON of every error response.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// error answers err: its status and safe message. What the message leaves
// out goes to the log (logError).
func (s *Server) error(w http.ResponseWriter, r *http.Request, err error) {
	s.logError(r, "api", err)
	writeJSON(w, ferry.HTTPStatus(err), ErrorBody{Error: ferry.ErrorMessage(err), Code: ferry.ErrorCode(err)})
}

// logError logs err whole when a user sees less of it than it says
// (ferry.ErrorHidden): as an error for a fault of the server (5xx), as a
// warning otherwise.
func (s *Server) logError(r *http.Request, msg string, err error, args ...any) {
	if !ferry.ErrorHidden(err) {
		return
	}
	level := slog.LevelWarn
	if ferry.HTTPStatus(err) >= 500 {
		level = slog.LevelError
	}
	args = append([]any{"method", r.Method, "path", r.URL.Path}, args...)
	s.Logger.Log(r.Context(), level, msg, append(args, "code", ferry.ErrorCode(err), "err", err)...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// maxBody is the most a request body may hold.
const maxBody = 64 << 10

// decode reads r's body, which must be one JSON object, into v; see
// readBody.
func decode(w http.ResponseWriter, r *http.Request, v any) error { return readBody(w, r, v, false) }

// decodeOptional is decode for a body a request may leave out: an empty
// one leaves v as it is.
func decodeOptional(w http.ResponseWriter, r *http.Request, v any) error {
	return readBody(w, r, v, true)
}

// readBody is every handler's one way to read a JSON body: at most
// maxBody bytes (else ETOOLARGE), one JSON object with no field v lacks
// and nothing but white space after it, and no string in it that the
// ledger refuses (checkBody) (else EINVALID, with a message that names
// what is wrong).
func readBody(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if errors.Is(err, io.EOF) && optional {
		return nil
	}
	if err == nil {
		var rest json.RawMessage
		err = dec.Decode(&rest)
		if errors.Is(err, io.EOF) {
			return checkBody(v)
		}
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); !tooLarge {
			return ferry.Wrap(err, ferry.EINVALID, "request body has more after its JSON object")
		}
	}
	return bodyError(err)
}

// bodyError is why a request body could not be decoded, in words a user
// can act on.
func bodyError(err error) error {
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return ferry.Wrap(err, ferry.ETOOLARGE, "request body is over %d KiB", maxBody>>10)
	}
	if syn, ok := errors.AsType[*json.SyntaxError](err); ok {
		return ferry.Wrap(err, ferry.EINVALID, "request body is not valid JSON (at byte %d)", syn.Offset)
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		if te.Field == "" {
			return ferry.Wrap(err, ferry.EINVALID, "request body must be a JSON object")
		}
		return ferry.Wrap(err, ferry.EINVALID, "request body: %s must be %s", te.Field, jsonKind(te.Type))
	}
	if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return ferry.Wrap(err, ferry.EINVALID, "request body: unknown field %s", field)
	}
	switch {
	case errors.Is(err, io.EOF):
		return ferry.Errorf(ferry.EINVALID, "request body is empty; expected a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return ferry.Wrap(err, ferry.EINVALID, "request body ends inside its JSON")
	}
	return ferry.Wrap(err, ferry.EINVALID, "request body could not be read")
}

// jsonKind names the JSON value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	}
	return "an object"
}

// wildcard finds the {name} and {name...} wildcards of a route pattern.
var wildcard = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(?:\.\.\.)?\}`) })

// checkParams refuses a request whose path values or query parameters
// hold a NUL byte or invalid UTF-8 (ledger.CheckText, the rule every
// ledger engine applies), naming the parameter: such text names nothing
// ferry has, and would otherwise reach git or the ledger.
func checkParams(r *http.Request) error {
	for _, m := range wildcard().FindAllStringSubmatch(r.Pattern, -1) {
		if err := ledger.CheckText("path parameter "+m[1], r.PathValue(m[1])); err != nil {
			return err
		}
	}
	q := r.URL.Query()
	for _, name := range slices.Sorted(maps.Keys(q)) {
		if err := ledger.CheckText("query parameter name", name); err != nil {
			return err
		}
		for _, v := range q[name] {
			if err := ledger.CheckText("query parameter "+name, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkBody refuses a decoded request body (a pointer to a struct of
// plain fields, as every request type is) with a string field that holds a
// NUL byte, written \u0000 in JSON, naming the field. The JSON decoder
// has already replaced invalid UTF-8 by U+FFFD.
func checkBody(v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return nil
	}
	rv = rv.Elem()
	for i := range rv.NumField() {
		f := rv.Type().Field(i)
		if !f.IsExported() || f.Type.Kind() != reflect.String {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		if err := ledger.CheckText("request body: "+name, rv.Field(i).String()); err != nil {
			return err
		}
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

// queryEnum reads every value of the query parameter name, each one of
// all; what names a value in the refusal ("build state").
func queryEnum[T ~string](r *http.Request, name, what string, all []T) ([]T, error) {
	var out []T
	for _, v := range r.URL.Query()[name] {
		if !slices.Contains(all, T(v)) {
			return nil, ferry.Errorf(ferry.EINVALID, "unknown %s %q (%s=%s)", what, v, name, joinValues(all))
		}
		out = append(out, T(v))
	}
	return out, nil
}

// joinValues lists the values a parameter takes: a|b|c.
func joinValues[T ~string](all []T) string {
	s := make([]string, len(all))
	for i, v := range all {
		s[i] = string(v)
	}
	return strings.Join(s, "|")
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

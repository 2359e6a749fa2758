package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

// TestEveryRouteHasAnAccessRule registers every route (each optional part
// present) and checks that routeAccess lists each one that changes
// something (a GET needs viewer without being listed), and nothing that is
// not a route: a new route that changes something must say which role it
// needs, instead of silently needing admin.
func TestEveryRouteHasAnAccessRule(t *testing.T) {
	s := &Server{
		Ledger: struct{ Ledger }{}, Builds: struct{ Builds }{}, Envs: struct{ Environments }{},
		Deployments: struct{ DeploymentLedger }{}, Releases: struct{ Releases }{}, Actions: struct{ ActionQueue }{}, Approvals: struct{ Approvals }{}, Notifications: struct{ Outbox }{}, Tokens: struct{ Tokens }{}, Canaries: struct{ Canaries }{},
		Hooks: http.NotFoundHandler(), Logger: slog.New(slog.DiscardHandler),
	}
	m := s.routes()
	for _, p := range m.patterns {
		if _, ok := routeAccess[p]; !ok && !strings.HasPrefix(p, "GET ") {
			t.Errorf("route %q has no entry in routeAccess (access.go)", p)
		}
	}
	for p := range routeAccess {
		if !slices.Contains(m.patterns, p) {
			t.Errorf("routeAccess lists %q, which is not a route", p)
		}
	}
}

// fakeBuilds answers Trigger with a queued build and remembers the actor.
type fakeBuilds struct {
	mu     sync.Mutex
	actors []string
}

func (f *fakeBuilds) Trigger(_ context.Context, branch, commit, actor string) (*ferry.Build, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actors = append(f.actors, actor)
	return &ferry.Build{ID: 1, Branch: branch, State: ferry.BuildQueued}, true, nil
}

func (f *fakeBuilds) Cancel(context.Context, int64, string, string) error { return nil }
func (f *fakeBuilds) Changed() <-chan struct{}                            { return make(chan struct{}) }

// fakeEnvs knows dev and prod, each needing the role roles gives it for
// changes, and accepts every scale of them.
type fakeEnvs struct{ roles map[string]ferry.Role }

func (fakeEnvs) Status(context.Context) ([]controller.EnvStatus, error) { return nil, nil }
func (fakeEnvs) Names() []string                                        { return []string{"dev", "prod"} }

func (f fakeEnvs) Environment(name string) (ferry.Environment, bool) {
	if name != "dev" && name != "prod" {
		return ferry.Environment{}, false
	}
	return ferry.Environment{Name: name, Role: f.roles[name]}, true
}

func (fakeEnvs) Check(context.Context) ([]controller.Drift, error) { return nil, nil }
func (fakeEnvs) Logs(context.Context, string, io.Writer, int, bool) error {
	return nil
}

// fakeActions records the actions asked of dev and prod in the real
// ledger, queued, as the controller does before their turn.
type fakeActions struct{ store ledger.Store }

func (f fakeActions) Queue(ctx context.Context, a ferry.Action) (*ferry.Action, error) {
	if a.Env != "dev" && a.Env != "prod" {
		return nil, ferry.UnknownEnvironment(a.Env, []string{"dev", "prod"})
	}
	a.App, a.CreatedAt = "app", time.Now()
	if err := f.store.CreateAction(ctx, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

func (f fakeActions) Action(ctx context.Context, id int64) (*ferry.Action, error) {
	return f.store.Action(ctx, id)
}

func (f fakeActions) Actions(ctx context.Context, flt ledger.ActionFilter) ([]*ferry.Action, error) {
	flt.App = "app"
	return f.store.Actions(ctx, flt)
}

type testAPI struct {
	url     string
	store   ledger.Store
	tokens  *auth.Tokens
	builds  *fakeBuilds
	logs    *bytes.Buffer
	secrets map[ferry.Role]string
}

// newTestAPI serves the API with access control on a real SQLite ledger,
// a token of each role (named after it), dev needing deployer and prod
// releaser.
func newTestAPI(t *testing.T, envRoles map[string]ferry.Role) *testAPI {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	logs := &bytes.Buffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tokens := &auth.Tokens{Store: store, App: "app", Logger: logger}
	ta := &testAPI{store: store, tokens: tokens, builds: &fakeBuilds{}, logs: logs, secrets: map[ferry.Role]string{}}
	for _, r := range ferry.Roles() {
		_, secret, err := tokens.Create(t.Context(), string(r), r, "test", "")
		if err != nil {
			t.Fatal(err)
		}
		ta.secrets[r] = secret
	}
	s := &Server{
		App: "app", Ledger: store, Builds: ta.builds, Envs: fakeEnvs{roles: envRoles}, Deployments: store, Actions: fakeActions{store}, Canaries: &fakeCanaries{},
		Tokens: tokens, Logger: logger,
		Hooks: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hook reached")
		}),
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	ta.url = srv.URL
	return ta
}

// do sends a request with the secret as bearer token (none when empty) and
// returns the status and body.
func (ta *testAPI) do(t *testing.T, secret, method, path, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, ta.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var devAndProd = map[string]ferry.Role{"dev": ferry.RoleDeployer, "prod": ferry.RoleReleaser}

func TestRoles(t *testing.T) {
	ta := newTestAPI(t, devAndProd)
	scale := `{"replicas": 3, "reason": "load"}`
	tests := []struct {
		role       ferry.Role // "" sends no token
		method     string
		path       string
		body       string
		wantStatus int
		wantBody   string
	}{
		{"", "GET", "/api/v1/builds", "", 401, `"code": "unauthorized"`},
		{"", "GET", "/healthz", "", 200, "ok"},
		{ferry.RoleViewer, "GET", "/api/v1/builds", "", 200, `"builds"`},
		{ferry.RoleViewer, "GET", "/api/v1/status", "", 200, `"environments"`},
		{ferry.RoleViewer, "GET", "/api/v1/events", "", 200, `"events"`},
		{ferry.RoleViewer, "GET", "/api/v1/nothing", "", 404, "no API route"},
		{ferry.RoleViewer, "POST", "/api/v1/builds", `{"branch": "master"}`, 403, `token \"viewer\" has role viewer; this needs deployer`},
		{ferry.RoleViewer, "POST", "/api/v1/builds/1/cancel", `{}`, 403, "this needs deployer"},
		{ferry.RoleViewer, "POST", "/api/v1/envs/dev/scale", scale, 403, `token \"viewer\" has role viewer; this needs deployer`},
		{ferry.RoleDeployer, "POST", "/api/v1/builds", `{"branch": "master"}`, 202, `"queued": true`},
		{ferry.RoleDeployer, "POST", "/api/v1/envs/dev/scale", scale, 202, `"actor": "deployer"`},
		{ferry.RoleDeployer, "POST", "/api/v1/envs/prod/scale", scale, 403, `token \"deployer\" has role deployer; this needs releaser`},
		{ferry.RoleDeployer, "POST", "/api/v1/envs/prdo/scale", scale, 404, `unknown environment \"prdo\"`},
		{ferry.RoleViewer, "POST", "/api/v1/envs/prdo/scale", scale, 403, "this needs deployer"},
		{ferry.RoleViewer, "GET", "/api/v1/deployments?env=prdo", "", 404, `unknown environment \"prdo\" (did you mean \"prod\"?)`},
		{ferry.RoleReleaser, "POST", "/api/v1/envs/prod/scale", scale, 202, `"actor": "releaser"`},
		{ferry.RoleAdmin, "POST", "/api/v1/envs/prod/scale", scale, 202, `"actor": "admin"`},
		{ferry.RoleReleaser, "POST", "/api/v1/envs/prod/promote", `{"override": true, "reason": "hotfix"}`, 403, "only an admin may override release windows and freezes (role releaser)"},
		{ferry.RoleAdmin, "POST", "/api/v1/envs/prod/promote", `{"override": true}`, 400, "an override of release windows and freezes needs a reason (--reason)"},
		{ferry.RoleReleaser, "GET", "/api/v1/tokens", "", 403, `token \"releaser\" has role releaser; this needs admin`},
		{ferry.RoleReleaser, "POST", "/api/v1/tokens", `{"name": "x", "role": "admin"}`, 403, "this needs admin"},
		{ferry.RoleDeployer, "DELETE", "/api/v1/tokens/admin", "", 403, "this needs admin"},
		{ferry.RoleAdmin, "POST", "/api/v1/tokens", `{"name": "ci", "role": "releasr"}`, 400, `unknown role \"releasr\" (want viewer, deployer, releaser or admin)`},
		{ferry.RoleAdmin, "POST", "/api/v1/tokens", `{"role": "viewer"}`, 400, "name is required"},
		{ferry.RoleAdmin, "DELETE", "/api/v1/tokens/nobody", "", 404, `no token named \"nobody\"`},
	}
	for _, tt := range tests {
		name := string(tt.role)
		if name == "" {
			name = "no token"
		}
		status, body := ta.do(t, ta.secrets[tt.role], tt.method, tt.path, tt.body)
		if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s: %s %s = %d %s, want %d with %s", name, tt.method, tt.path, status, body, tt.wantStatus, tt.wantBody)
		}
	}
}

// TestPublicRoutes: the routes routeAccess opens need no token and ignore
// a bad one; everything else, however its path is dressed up, needs one.
func TestPublicRoutes(t *testing.T) {
	ta := newTestAPI(t, devAndProd)
	tests := []struct {
		name       string
		secret     string
		method     string
		path       string
		wantStatus int
		wantBody   string
	}{
		{"health check", "", "GET", "/healthz", 200, `"status": "ok"`},
		{"health check, HEAD", "", "HEAD", "/healthz", 200, ""},
		{"health check, unknown token", "ferry_nope", "GET", "/healthz", 200, `"status": "ok"`},
		{"the API's documentation", "", "GET", "/api/v1/openapi.json", 200, `"openapi"`},
		{"webhook", "", "POST", "/hooks/github", 200, "hook reached"},
		{"webhook, revoked-looking token", "ferry_nope", "POST", "/hooks/gitlab", 200, "hook reached"},
		// The mux redirects to the clean path, which needs admin.
		{"not a webhook in disguise", "", "GET", "/hooks/../api/v1/tokens", 401, "this API needs a token"},
		{"unknown API route", "", "GET", "/api/v1/nothing", 401, "this API needs a token"},
		{"unknown API route, unknown token", "ferry_nope", "GET", "/api/v1/nothing", 401, "unknown API token"},
		// No route answers POST /healthz, so no token is asked for.
		{"POST to the health check", "", "POST", "/healthz", 405, `"code": "method_not_allowed"`},
	}
	for _, tt := range tests {
		status, body := ta.do(t, tt.secret, tt.method, tt.path, "")
		if status != tt.wantStatus || !strings.Contains(body, tt.wantBody) {
			t.Errorf("%s: %s %s = %d %s, want %d with %q", tt.name, tt.method, tt.path, status, body, tt.wantStatus, tt.wantBody)
		}
	}
}

// TestActorIsTheToken: with access control the actor is the token's name,
// whatever X-Ferry-Actor claims.
func TestActorIsTheToken(t *testing.T) {
	ta := newTestAPI(t, devAndProd)
	status, body := ta.do(t, ta.secrets[ferry.RoleDeployer], "POST", "/api/v1/builds", `{"branch": "master"}`, "X-Ferry-Actor", "mallory")
	if status != 202 {
		t.Fatalf("POST /api/v1/builds = %d %s", status, body)
	}
	if got := ta.builds.actors; !slices.Equal(got, []string{"deployer"}) {
		t.Errorf("Trigger actors = %q, want [deployer]", got)
	}
}

// TestUnmappedEnvironmentNeedsAdmin: an environment that exists but has no
// configured role is closed, not open.
func TestUnmappedEnvironmentNeedsAdmin(t *testing.T) {
	ta := newTestAPI(t, map[string]ferry.Role{"dev": ferry.RoleDeployer})
	status, body := ta.do(t, ta.secrets[ferry.RoleReleaser], "POST", "/api/v1/envs/prod/scale", `{"replicas": 2}`)
	if status != 403 || !strings.Contains(body, "this needs admin") {
		t.Errorf("releaser scales prod without a configured role = %d %s, want 403 needing admin", status, body)
	}
	status, body = ta.do(t, ta.secrets[ferry.RoleAdmin], "POST", "/api/v1/envs/prod/scale", `{"replicas": 2}`)
	if status != 202 {
		t.Errorf("admin scales prod = %d %s, want 202", status, body)
	}
}

// TestTokenRoutes makes, lists and revokes a token through the API, and
// checks that its secret appears once, in the answer to its creation:
// never in the list, the events or the server's log.
func TestTokenRoutes(t *testing.T) {
	ta := newTestAPI(t, devAndProd)
	admin := ta.secrets[ferry.RoleAdmin]
	status, body := ta.do(t, admin, "POST", "/api/v1/tokens", `{"name": "ci", "role": "deployer", "reason": "pipeline"}`)
	if status != 201 {
		t.Fatalf("POST /api/v1/tokens = %d %s, want 201", status, body)
	}
	var created NewToken
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	secret := created.Secret
	if !strings.HasPrefix(secret, auth.Prefix) || created.Token.Name != "ci" || created.Token.Role != ferry.RoleDeployer || created.Token.CreatedBy != "admin" {
		t.Fatalf("created = %+v, want ci, deployer, by admin, with a ferry_ secret", created)
	}
	if strings.Contains(body, auth.Hash(secret)) {
		t.Errorf("the creation answer holds the hash: %s", body)
	}
	if status, body := ta.do(t, secret, "POST", "/api/v1/builds", `{"branch": "master"}`); status != 202 {
		t.Errorf("the new token triggers a build: %d %s, want 202", status, body)
	}
	if status, body := ta.do(t, admin, "POST", "/api/v1/tokens", `{"name": "ci", "role": "viewer"}`); status != 409 {
		t.Errorf("a second token named ci: %d %s, want 409", status, body)
	}

	status, list := ta.do(t, admin, "GET", "/api/v1/tokens", "")
	if status != 200 || !strings.Contains(list, `"name": "ci"`) || !strings.Contains(list, `"lastUsedAt"`) {
		t.Errorf("GET /api/v1/tokens = %d %s, want ci, used", status, list)
	}
	status, body = ta.do(t, admin, "DELETE", "/api/v1/tokens/ci", `{"reason": "rotated"}`)
	if status != 200 || !strings.Contains(body, `"revokedAt"`) {
		t.Errorf("DELETE /api/v1/tokens/ci = %d %s, want 200 with revokedAt", status, body)
	}
	if status, body := ta.do(t, secret, "GET", "/api/v1/builds", ""); status != 401 || !strings.Contains(body, `API token \"ci\" was revoked`) {
		t.Errorf("the revoked token reads builds: %d %s, want 401 revoked", status, body)
	}
	if status, body := ta.do(t, admin, "DELETE", "/api/v1/tokens/ci", ""); status != 409 {
		t.Errorf("revoking ci again = %d %s, want 409", status, body)
	}

	events, err := ta.store.Events(t.Context(), ledger.EventFilter{Kind: "token."})
	if err != nil {
		t.Fatal(err)
	}
	var trail []string
	for _, e := range events {
		if e.Message == "token ci revoked" || e.Message == "token ci created with role deployer" {
			trail = append(trail, e.Kind+" "+e.Actor+" "+e.Reason)
		}
	}
	if want := []string{"token.revoked admin rotated", "token.created admin pipeline"}; !slices.Equal(trail, want) {
		t.Errorf("ci's events = %q, want %q", trail, want)
	}
	// A refusal is logged (the log check below looks at something).
	if status, _ := ta.do(t, ta.secrets[ferry.RoleViewer], "POST", "/api/v1/tokens", `{}`); status != 403 {
		t.Errorf("viewer creates a token: %d, want 403", status)
	}
	if !strings.Contains(ta.logs.String(), "refused") || !strings.Contains(ta.logs.String(), "token=viewer") {
		t.Errorf("the server log lacks the refusal of viewer:\n%s", ta.logs.String())
	}
	eventsJSON, _ := json.Marshal(events)
	_, list = ta.do(t, admin, "GET", "/api/v1/tokens", "")
	for what, text := range map[string]string{"GET /api/v1/tokens": list, "events": string(eventsJSON), "the server log": ta.logs.String()} {
		for role, s := range ta.secrets {
			if strings.Contains(text, s) || strings.Contains(text, auth.Hash(s)) {
				t.Errorf("%s holds the %s token's secret or hash", what, role)
			}
		}
		if strings.Contains(text, secret) || strings.Contains(text, auth.Hash(secret)) {
			t.Errorf("%s holds ci's secret or hash", what)
		}
	}
}

// TestWithoutTokensClosed: a server wired without its token lookup
// refuses every guarded route, whatever X-Ferry-Actor claims, and still
// answers the open ones.
func TestWithoutTokensClosed(t *testing.T) {
	builds := &fakeBuilds{}
	logs := &bytes.Buffer{}
	s := &Server{App: "app", Builds: builds, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		method, path, body string
		want               int
	}{
		{"POST", "/api/v1/builds", `{"branch": "master"}`, 500},
		{"GET", "/api/v1/builds", "", 500},
		{"GET", "/api/v1/tokens", "", 500},
		{"GET", "/healthz", "", 200},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("X-Ferry-Actor", "ada")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s without Tokens = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
	if len(builds.actors) != 0 {
		t.Errorf("Trigger ran without Tokens, by %q", builds.actors)
	}
	if !strings.Contains(logs.String(), "Server.Tokens is nil") {
		t.Errorf("the log does not say why the routes refuse:\n%s", logs.String())
	}
}

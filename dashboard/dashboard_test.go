package dashboard

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/dora"
	"github.com/ferryhq/ferry/ledger/sqlite"
	"github.com/ferryhq/ferry/notify"
	"github.com/ferryhq/ferry/release"
)

// The dashboard's unit tests run it over real HTTP (httptest) on a real
// SQLite ledger with real tokens; only the controller is a fake that
// reports a fixed status and records the actions asked of it. The whole of
// ferry, in a real browser, is tested in package server (TestDashboard).

const app = "birthday-app"

var (
	commitA = strings.Repeat("a", 40)
	commitB = strings.Repeat("b", 40)
	digestA = "sha256:" + strings.Repeat("1", 64)
	digestB = "sha256:" + strings.Repeat("2", 64)
)

// fakeEnvs is the controller's status side: what a test sets.
type fakeEnvs struct {
	mu        sync.Mutex
	status    []controller.EnvStatus
	drift     []controller.Drift
	statusErr error
	changed   *notify.Broadcast
}

func (f *fakeEnvs) Status(context.Context) ([]controller.EnvStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.status), f.statusErr
}

func (f *fakeEnvs) Check(context.Context) ([]controller.Drift, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.drift), nil
}

func (f *fakeEnvs) Changed() <-chan struct{} { return f.changed.Wait() }

// call is one action asked of the controller.
type call struct{ op, env, ref, actor, reason string }

// fakeReleases records the actions and answers like the controller.
type fakeReleases struct {
	mu    sync.Mutex
	calls []call
	err   error
	diff  *release.Comparison
}

func (f *fakeReleases) record(c call) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return f.err
}

func (f *fakeReleases) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeReleases) Promote(_ context.Context, env, ref, actor, reason string) (*ferry.Deployment, error) {
	if err := f.record(call{"promote", env, ref, actor, reason}); err != nil {
		return nil, err
	}
	return &ferry.Deployment{ID: 7, Env: env, Kind: ferry.DeployPromote, Commit: commitB, Digest: digestB, Release: "RC20260102_0304", Actor: actor}, nil
}

func (f *fakeReleases) Rollback(_ context.Context, env, to, actor, reason string) (*ferry.Deployment, error) {
	if err := f.record(call{"rollback", env, to, actor, reason}); err != nil {
		return nil, err
	}
	return &ferry.Deployment{ID: 8, Env: env, Kind: ferry.DeployRollback, Commit: commitA, Digest: digestA, Release: "RC20260101_0000", Actor: actor}, nil
}

func (f *fakeReleases) Lock(_ context.Context, env, actor, reason string) (*ferry.Lock, error) {
	if err := f.record(call{"lock", env, "", actor, reason}); err != nil {
		return nil, err
	}
	return &ferry.Lock{Env: env, Actor: actor, Reason: reason}, nil
}

func (f *fakeReleases) Unlock(_ context.Context, env, actor, reason string) (*ferry.Lock, error) {
	if err := f.record(call{"unlock", env, "", actor, reason}); err != nil {
		return nil, err
	}
	return &ferry.Lock{Env: env, Actor: "ada", Reason: "audit"}, nil
}

func (f *fakeReleases) Diff(context.Context, string, string) (*release.Comparison, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.diff, nil
}

type broadcastBuilds struct{ *notify.Broadcast }

func (b broadcastBuilds) Changed() <-chan struct{} { return b.Wait() }

type fixture struct {
	t       *testing.T
	store   *sqlite.Store
	envs    *fakeEnvs
	rel     *fakeReleases
	builds  *notify.Broadcast
	tokens  *auth.Tokens
	srv     *httptest.Server
	secrets map[ferry.Role]string
	now     time.Time
}

type option func(*Config)

// newFixture serves a dashboard of dev (deployer) and prod (releaser,
// from dev) whose ledger has build 1 of commit A, deployed to dev, and a
// token per role.
func newFixture(t *testing.T, opts ...option) *fixture {
	t.Helper()
	ctx := t.Context()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	f := &fixture{
		t: t, store: store, builds: notify.New(), rel: &fakeReleases{},
		envs:    &fakeEnvs{changed: notify.New()},
		secrets: map[ferry.Role]string{},
		now:     time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	f.tokens = &auth.Tokens{Store: store, App: app, Now: func() time.Time { return f.now }}
	for _, role := range ferry.Roles() {
		_, secret, err := f.tokens.Create(ctx, "t-"+string(role), role, "test", "")
		if err != nil {
			t.Fatal(err)
		}
		f.secrets[role] = secret
	}
	b := &ferry.Build{App: app, Commit: commitA, Branch: "master", Subject: "add birthdays", Author: "Ada", State: ferry.BuildQueued, CreatedAt: f.now}
	if err := store.CreateBuild(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := store.TransitionBuild(ctx, b.ID, ferry.BuildQueued, ferry.BuildRunning, "", f.now); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"checkout", "test"} {
		if err := store.SaveStep(ctx, ferry.Step{BuildID: b.ID, Seq: i + 1, Name: name, State: ferry.StepSucceeded, Attempts: 1}); err != nil {
			t.Fatal(err)
		}
	}
	dep := &ferry.Deployment{App: app, Env: "dev", Kind: ferry.DeployDeploy, State: ferry.DeploymentSucceeded, BuildID: b.ID,
		Commit: commitA, Digest: digestA, Replicas: 2, Actor: "ferry", Reason: "build 1 succeeded", CreatedAt: f.now}
	if err := store.CreateDeployment(ctx, dep); err != nil {
		t.Fatal(err)
	}
	f.envs.status = []controller.EnvStatus{
		{Name: "dev", Commit: commitA, ShortCommit: ferry.ShortSHA(commitA), Digest: digestA, Replicas: controller.Replicas{Ready: 2, Desired: 2},
			State: "healthy", DeployedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), DeployedBy: "ferry", DeploymentID: dep.ID, URL: "http://127.0.0.1:8081",
			Pods: []ferry.Replica{
				{ID: "dev-3", Digest: digestA, Ready: true, State: ferry.ReplicaRunning, Isolation: ferry.IsolationRunc, Restarts: 2,
					LastExit:    &ferry.Exit{Reason: ferry.ExitOOM, Signal: "SIGKILL", Message: "OOM-killed at its memory limit of 64Mi"},
					MemoryBytes: 21 << 20, MemoryLimitBytes: 64 << 20, CPUSeconds: 3.25},
				{ID: "dev-4", Digest: digestA, Ready: true, State: ferry.ReplicaRunning, Isolation: ferry.IsolationRunc},
			}},
		{Name: "prod", State: "empty", URL: "http://127.0.0.1:0"},
	}
	f.rel.diff = &release.Comparison{
		From: release.Side{Env: "dev", Commit: commitA}, To: release.Side{Env: "prod"},
		Ahead: []release.Change{{Commit: commitA, Subject: "add birthdays", Author: "Ada", Time: f.now}},
	}
	cfg := Config{
		App: app, Version: "test",
		Envs:         []ferry.Environment{{Name: "dev", Role: ferry.RoleDeployer}, {Name: "prod", From: "dev", Role: ferry.RoleReleaser}},
		Environments: f.envs, Releases: f.rel, Builds: broadcastBuilds{f.builds}, Ledger: store,
		Tokens: f.tokens.Lookup, Now: func() time.Time { return f.now },
		Heartbeat: time.Hour, Settle: 20 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg)
	}
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(d)
	t.Cleanup(f.srv.Close)
	return f
}

// do sends a request as the role's session ("" for none) with the headers
// a browser on the dashboard's own page sends, plus extra.
func (f *fixture) do(role ferry.Role, method, path string, form url.Values, extra map[string]string) (*http.Response, string) {
	f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if method == "POST" {
		req.Header.Set("Origin", f.srv.URL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	for k, v := range extra {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	if role != "" {
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: f.secrets[role]})
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestActionsByRole: each role sees exactly the buttons the API would let
// it use, on each environment, and each action is allowed or refused by
// the same rule, recording the token's name and the reason.
func TestActionsByRole(t *testing.T) {
	f := newFixture(t)
	all := []string{"promote-prod", "rollback-prod", "lock-prod", "lock-dev"}
	for _, tc := range []struct {
		role    ferry.Role
		buttons []string
	}{
		{ferry.RoleViewer, nil},
		{ferry.RoleDeployer, []string{"lock-dev"}},
		{ferry.RoleReleaser, all},
		{ferry.RoleAdmin, all},
	} {
		resp, body := f.do(tc.role, "GET", "/", nil, nil)
		if resp.StatusCode != 200 {
			t.Fatalf("GET / as %s = %d", tc.role, resp.StatusCode)
		}
		var got []string
		for _, id := range all {
			if strings.Contains(body, `id="`+id+`"`) {
				got = append(got, id)
			}
		}
		if !slices.Equal(got, tc.buttons) {
			t.Errorf("GET / as %s shows buttons %q, want %q", tc.role, got, tc.buttons)
		}
		if len(tc.buttons) == 0 && (strings.Contains(body, `<form class="act"`) || strings.Contains(body, `id="actions"`) || strings.Contains(body, "formaction")) {
			t.Errorf("GET / as %s has an action form; want none at all", tc.role)
		}
	}

	reason := url.Values{"reason": {"weekly release"}}
	for _, tc := range []struct {
		role       ferry.Role
		path       string
		form       url.Values
		wantStatus int
		wantText   string
		wantCall   *call
	}{
		{ferry.RoleViewer, "/envs/dev/lock", reason, 403, `Token &#34;t-viewer&#34; has role viewer; lock of dev needs deployer.`, nil},
		{ferry.RoleDeployer, "/envs/prod/promote", reason, 403, `Token &#34;t-deployer&#34; has role deployer; promote of prod needs releaser.`, nil},
		{ferry.RoleDeployer, "/envs/dev/lock", reason, 200, "dev is locked", &call{"lock", "dev", "", "t-deployer", "weekly release"}},
		{ferry.RoleReleaser, "/envs/prod/promote", reason, 200, "Promotion of prod to RC20260102_0304 (bbbbbbbbbbbb) queued as deployment 7.", &call{"promote", "prod", "", "t-releaser", "weekly release"}},
		{ferry.RoleReleaser, "/envs/prod/rollback", url.Values{"ref": {" RC20260101_0000 "}, "reason": {"bad"}}, 200, "Rollback of prod to RC20260101_0000", &call{"rollback", "prod", "RC20260101_0000", "t-releaser", "bad"}},
		{ferry.RoleAdmin, "/envs/prod/unlock", url.Values{}, 200, "prod is unlocked (locked by ada: audit).", &call{"unlock", "prod", "", "t-admin", ""}},
		{ferry.RoleReleaser, "/envs/dev/promote", reason, 400, "dev takes no promotions or rollbacks", nil},
		{ferry.RoleReleaser, "/envs/prod/lock", url.Values{"reason": {"  "}}, 400, "a lock needs a reason", nil},
		{ferry.RoleReleaser, "/envs/prod/scale", reason, 404, "There is no action", nil},
		{ferry.RoleAdmin, "/envs/qa/lock", reason, 404, "There is no environment", nil},
		{ferry.RoleReleaser, "/envs/prod/promote", url.Values{"reason": {strings.Repeat("x", 501)}}, 400, "at most 500", nil},
		{"", "/envs/prod/promote", reason, 401, "sign in", nil},
	} {
		before := len(f.rel.Calls())
		resp, body := f.do(tc.role, "POST", tc.path, tc.form, map[string]string{"X-Ferry-Async": "1"})
		calls := f.rel.Calls()[before:]
		if resp.StatusCode != tc.wantStatus || !strings.Contains(body, tc.wantText) {
			t.Errorf("POST %s as %s = %d %s, want %d with %q", tc.path, dashRole(tc.role), resp.StatusCode, body, tc.wantStatus, tc.wantText)
		}
		switch {
		case tc.wantCall == nil && len(calls) != 0:
			t.Errorf("POST %s as %s called the controller: %+v, want no call", tc.path, dashRole(tc.role), calls)
		case tc.wantCall != nil && (len(calls) != 1 || calls[0] != *tc.wantCall):
			t.Errorf("POST %s as %s called %+v, want %+v", tc.path, dashRole(tc.role), calls, *tc.wantCall)
		}
	}

	// A refusal by the controller is shown with its message and status.
	f.rel.err = ferry.Errorf(ferry.ECONFLICT, "prod is locked by ada: audit")
	resp, body := f.do(ferry.RoleReleaser, "POST", "/envs/prod/promote", reason, map[string]string{"X-Ferry-Async": "1"})
	if resp.StatusCode != 409 || !strings.Contains(body, "Promote of prod refused: prod is locked by ada: audit") || !strings.Contains(body, `role="alert"`) {
		t.Errorf("refused promotion = %d %s, want 409 with the controller's reason as an alert", resp.StatusCode, body)
	}
	// An internal error's detail stays in the log.
	f.rel.err = errors.New("disk on fire")
	resp, body = f.do(ferry.RoleReleaser, "POST", "/envs/prod/promote", reason, map[string]string{"X-Ferry-Async": "1"})
	if resp.StatusCode != 500 || strings.Contains(body, "disk on fire") || !strings.Contains(body, "internal error") {
		t.Errorf("failed promotion = %d %s, want 500 with a generic message", resp.StatusCode, body)
	}
}

func dashRole(r ferry.Role) string {
	if r == "" {
		return "nobody"
	}
	return string(r)
}

// TestActionWithoutJavaScript: a plain form post is answered with a
// redirect to the dashboard, which shows the outcome once.
func TestActionWithoutJavaScript(t *testing.T) {
	f := newFixture(t)
	resp, _ := f.do(ferry.RoleReleaser, "POST", "/envs/prod/promote", url.Values{"reason": {"by hand"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("plain POST = %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	var flash *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == flashCookie {
			flash = c
		}
	}
	if flash == nil || !flash.HttpOnly || flash.SameSite != http.SameSiteStrictMode {
		t.Fatalf("plain POST set flash cookie %+v, want an HttpOnly SameSite=Strict one", flash)
	}
	req, _ := http.NewRequest("GET", f.srv.URL+"/", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: f.secrets[ferry.RoleReleaser]})
	req.AddCookie(flash)
	page, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(body), "Promotion of prod to RC20260102_0304") {
		t.Errorf("the page after the redirect does not show the outcome")
	}
	cleared := false
	for _, c := range page.Cookies() {
		cleared = cleared || (c.Name == flashCookie && c.MaxAge < 0)
	}
	if !cleared {
		t.Errorf("the page did not clear the flash cookie: the outcome would show again")
	}
}

// TestCrossOrigin: a POST is accepted only when the browser says it comes
// from the dashboard's own origin; any other is refused with a 403 page
// and changes nothing, sign-in and sign-out included.
func TestCrossOrigin(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct {
		name   string
		header map[string]string
		ok     bool
	}{
		{"same origin, fetch metadata", map[string]string{"Origin": ""}, true},
		{"same origin, Origin only (older browser)", map[string]string{"Sec-Fetch-Site": ""}, true},
		{"same site, other port", map[string]string{"Sec-Fetch-Site": "same-site"}, false},
		{"cross site", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, false},
		{"typed into the address bar", map[string]string{"Sec-Fetch-Site": "none"}, false},
		{"other origin, Origin only", map[string]string{"Sec-Fetch-Site": "", "Origin": "https://evil.example"}, false},
		{"other port, Origin only", map[string]string{"Sec-Fetch-Site": "", "Origin": "http://127.0.0.1:1"}, false},
		{"opaque origin", map[string]string{"Sec-Fetch-Site": "", "Origin": "null"}, false},
		{"says nothing", map[string]string{"Sec-Fetch-Site": "", "Origin": ""}, false},
	} {
		for _, path := range []string{"/envs/dev/lock", "/signout", "/signin"} {
			before := len(f.rel.Calls())
			form := url.Values{"reason": {"x"}, "token": {f.secrets[ferry.RoleAdmin]}}
			resp, body := f.do(ferry.RoleAdmin, "POST", path, form, tc.header)
			changed := len(f.rel.Calls()) != before || len(resp.Cookies()) != 0
			if tc.ok {
				if resp.StatusCode == http.StatusForbidden {
					t.Errorf("%s: POST %s = 403 %s, want it accepted", tc.name, path, body)
				}
				continue
			}
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Cross-origin request refused") || !strings.Contains(body, "nothing was changed") {
				t.Errorf("%s: POST %s = %d, want 403 Cross-origin request refused", tc.name, path, resp.StatusCode)
			}
			if changed {
				t.Errorf("%s: POST %s changed something (calls or cookies)", tc.name, path)
			}
		}
	}
}

// TestSignIn: the sign-in form checks the token; the session cookie is
// HttpOnly and SameSite=Strict; a revoked token ends the session at its
// next request; sign-out clears it.
func TestSignIn(t *testing.T) {
	f := newFixture(t)
	resp, _ := f.do("", "GET", "/", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin" {
		t.Errorf("GET / without a session = %d to %q, want 303 to /signin", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, path := range []string{"/fragments/matrix", "/events", "/builds/1/log", "/builds/1"} {
		resp, body := f.do("", "GET", path, nil, nil)
		if resp.StatusCode == 200 || strings.Contains(body, commitA[:12]) {
			t.Errorf("GET %s without a session = %d, want it refused without data", path, resp.StatusCode)
		}
	}
	for _, tc := range []struct {
		token      string
		wantStatus int
		wantText   string
	}{
		{"", 400, "Paste an API token"},
		{"ferry_nope", 401, "Unknown API token."},
	} {
		resp, body := f.do("", "POST", "/signin", url.Values{"token": {tc.token}}, nil)
		if resp.StatusCode != tc.wantStatus || !strings.Contains(body, tc.wantText) || len(resp.Cookies()) != 0 {
			t.Errorf("sign in with %q = %d (cookies %v), want %d %q and no cookie", tc.token, resp.StatusCode, resp.Cookies(), tc.wantStatus, tc.wantText)
		}
	}
	resp, _ = f.do("", "POST", "/signin", url.Values{"token": {" " + f.secrets[ferry.RoleViewer] + "\n"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("sign in = %d to %q, want 303 to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	cs := resp.Cookies()
	if len(cs) != 1 || cs[0].Name != sessionCookie || cs[0].Value != f.secrets[ferry.RoleViewer] || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode || cs[0].Path != "/" {
		t.Fatalf("sign in set cookies %+v, want one HttpOnly SameSite=Strict session cookie for / holding the token", cs)
	}
	resp, body := f.do(ferry.RoleViewer, "GET", "/", nil, nil)
	if resp.StatusCode != 200 || !strings.Contains(body, "t-viewer") {
		t.Errorf("GET / signed in = %d, want 200 naming the token", resp.StatusCode)
	}
	resp, _ = f.do(ferry.RoleViewer, "GET", "/signin", nil, nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("GET /signin signed in = %d, want a redirect to the dashboard", resp.StatusCode)
	}

	resp, _ = f.do(ferry.RoleViewer, "POST", "/signout", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || resp.Cookies()[0].MaxAge >= 0 {
		t.Errorf("sign out = %d, cookies %+v; want a redirect clearing the session cookie", resp.StatusCode, resp.Cookies())
	}

	if _, err := f.tokens.Revoke(t.Context(), "t-viewer", "test", "lost"); err != nil {
		t.Fatal(err)
	}
	resp, _ = f.do(ferry.RoleViewer, "GET", "/", nil, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/signin?why=revoked" {
		t.Errorf("GET / with a revoked token = %d to %q, want 303 to /signin?why=revoked", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = f.do("", "GET", "/signin?why=revoked", nil, nil)
	if !strings.Contains(body, "Your API token was revoked") {
		t.Errorf("the sign-in page does not say why the session ended")
	}
	_, body = f.do("", "GET", "/signin?why=%3Cscript%3E", nil, nil)
	if strings.Contains(body, "<script>") {
		t.Errorf("the sign-in page repeats its query")
	}
	resp, body = f.do("", "POST", "/signin", url.Values{"token": {f.secrets[ferry.RoleViewer]}}, nil)
	if resp.StatusCode != 401 || !strings.Contains(body, "was revoked") {
		t.Errorf("sign in with a revoked token = %d, want 401 saying it was revoked", resp.StatusCode)
	}
}

// TestPage: the page, read without JavaScript, has the matrix with drift,
// the commits waiting for prod, the pipelines, the history, the locks and
// quarantines, and the DORA figures when there are.
func TestPage(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.Leases = c.Ledger.(Leases)
		c.DORA = func(context.Context) ([]dora.Report, error) {
			return []dora.Report{{Env: "prod", From: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), To: time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC),
				Deployments: 12, DeploymentsPerDay: 0.4, LeadTimeSeconds: 5400, LeadTimeSamples: 10, ChangeFailureRate: 0.25, Failures: 4, Changes: 16,
				TimeToRestoreSeconds: 90, Restores: 3}}, nil
		}
	})
	ctx := t.Context()
	f.envs.drift = []controller.Drift{{Env: "dev", What: "registry tag latest", Want: digestA, Got: digestB, Fix: "ferry build master"}}
	if err := f.store.Lock(ctx, &ferry.Lock{App: app, Env: "prod", Reason: "audit <now>", Actor: "ada", CreatedAt: f.now}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.AddQuarantine(ctx, &ferry.Quarantine{App: app, Commit: commitB, Release: "RC20251224_1200", Reason: "corrupts carts", Actor: "bob", CreatedAt: f.now}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.store.Campaign(ctx, app, "host:/srv/ferry#1a2b", "127.0.0.1:7070", time.Minute, f.now); err != nil {
		t.Fatal(err)
	}
	_, body := f.do(ferry.RoleAdmin, "GET", "/", nil, nil)
	for _, want := range []string{
		// Who leads the ledger, in the footer.
		`led by <span class="leader" title="term 1, lease until 2026-01-02 03:05Z">host:/srv/ferry#1a2b</span> (term 1)`,
		// The matrix, with the full commit and digest in titles.
		`<tr id="env-dev" data-env="dev" data-commit="` + commitA + `" data-digest="` + digestA + `"`,
		`<code title="` + commitA + `">aaaaaaaaaaaa</code>`, `<code title="` + digestA + `">111111111111</code>`,
		`title="2 ready of 2 desired">2/2</span>`, `<span class="badge s-healthy">healthy</span>`, `2026-01-02 03:04Z`,
		`href="http://127.0.0.1:8081"`, `<span class="badge s-empty">empty</span>`,
		// Each replica: state, isolation, restarts, how it last ended, use.
		`<li data-replica="dev-3" data-state="running" data-last-exit="oom-killed"><code>dev-3</code> <span class="badge s-running">running</span> <span class="sub" title="how the replica is contained">runc</span> <span class="warn">2 restarts</span>`,
		`<div class="sub warn">last exit: OOM-killed at its memory limit of 64Mi</div>`,
		`21 of 64 MiB · 3.2 s CPU`,
		`<li data-replica="dev-4" data-state="running"><code>dev-4</code>`,
		`<strong>registry tag latest</strong>: want <code title="` + digestA + `">111111111111</code>, got <code title="` + digestB + `">222222222222</code>`,
		`fix: <code>ferry build master</code>`,
		// What waits for prod.
		`data-from="dev" data-to="prod" data-ahead="1"`, `add birthdays`,
		// Pipelines, history, locks, quarantines, DORA.
		`id="build-1"`, `<li data-step="test" class="s-succeeded"`, `build 1 succeeded`,
		`<strong>prod</strong> locked by ada`, `audit &lt;now&gt;`, `corrupts carts`, `RC20251224_1200`,
		`0.40 <span class="sub">(12)</span>`, `1h 30m`, `1m 30s`, `30d to 2026-01-31`,
		// The rate's label counts what it divides: 4 failed of 16 attempted
		// (12 succeeded), not "of 12".
		`25% <span class="sub">(4 of 16)</span>`,
		// An unlock button where a lock holds, with the scripts' hooks.
		`id="unlock-prod"`, `id="lock-dev"`, `data-fragment="matrix" data-topic="envs"`, `data-fragment="pipelines" data-topic="builds"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if strings.Contains(body, `href="http://127.0.0.1:0"`) {
		t.Errorf("the page links prod's unreachable listen address")
	}

	// A failing status shows its safe message; an internal one does not
	// show its detail.
	f.envs.statusErr = ferry.Errorf(ferry.EUNAVAILABLE, "the runtime is down")
	_, body = f.do(ferry.RoleViewer, "GET", "/fragments/matrix", nil, nil)
	if !strings.Contains(body, "the runtime is down") {
		t.Errorf("the matrix does not say why it is missing: %s", body)
	}
	f.envs.statusErr = errors.New("secret detail")
	_, body = f.do(ferry.RoleViewer, "GET", "/fragments/matrix", nil, nil)
	if strings.Contains(body, "secret detail") || !strings.Contains(body, "internal error") {
		t.Errorf("the matrix shows an internal error's detail: %s", body)
	}

	// Every fragment is served alone; an unknown one is not.
	for name := range fragments {
		resp, body := f.do(ferry.RoleViewer, "GET", "/fragments/"+name, nil, nil)
		if resp.StatusCode != 200 || strings.Contains(body, "<html") {
			t.Errorf("GET /fragments/%s = %d, want 200 with a fragment, not a page", name, resp.StatusCode)
		}
	}
	if resp, _ := f.do(ferry.RoleViewer, "GET", "/fragments/tokens", nil, nil); resp.StatusCode != 404 {
		t.Errorf("GET /fragments/tokens = %d, want 404", resp.StatusCode)
	}
	resp, _ := f.do(ferry.RoleViewer, "GET", "/", nil, nil)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy = %q, want scripts from ferry alone and no framing", csp)
	}
	for _, name := range []string{"dashboard.css", "dashboard.js"} {
		resp, body := f.do("", "GET", "/assets/"+name, nil, nil)
		if resp.StatusCode != 200 || len(body) < 1000 {
			t.Errorf("GET /assets/%s = %d, %d bytes", name, resp.StatusCode, len(body))
		}
	}
}

// event is one server-sent event.
type event struct{ id, name, data string }

// stream reads server-sent events from path as role, with header.
func (f *fixture) stream(ctx context.Context, role ferry.Role, path string, header map[string]string) <-chan event {
	f.t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", f.srv.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: f.secrets[role]})
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		f.t.Fatalf("GET %s = %d %s, want 200 text/event-stream", path, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := make(chan event, 100)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var ev event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.name != "" {
					out <- ev
				}
				ev = event{}
			case strings.HasPrefix(line, "id: "):
				ev.id = line[4:]
			case strings.HasPrefix(line, "event: "):
				ev.name = line[7:]
			case strings.HasPrefix(line, "data: "):
				ev.data = line[6:]
			}
		}
	}()
	return out
}

func next(t *testing.T, ch <-chan event, within time.Duration) (event, bool) {
	t.Helper()
	select {
	case ev, ok := <-ch:
		return ev, ok
	case <-time.After(within):
		return event{}, false
	}
}

// TestBuildLogStream: a build's log streams as events, from where a
// reconnecting client left off (Last-Event-ID), with step changes as they
// happen and an end event once the build is over.
func TestBuildLogStream(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	lines := func(texts ...string) {
		var ls []ferry.LogLine
		for _, s := range texts {
			ls = append(ls, ferry.LogLine{Step: "test", Time: f.now, Text: s})
		}
		if err := f.store.AppendLog(ctx, 1, ls); err != nil {
			t.Fatal(err)
		}
		f.builds.Notify()
	}
	lines("one", "two", "three")
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := f.stream(sctx, ferry.RoleViewer, "/builds/1/log?follow=1&after=0", map[string]string{"Last-Event-ID": "1"})
	var got []string
	take := func(n int) {
		t.Helper()
		for range n {
			ev, ok := next(t, events, 5*time.Second)
			if !ok {
				t.Fatalf("the stream ended or stalled after %q", got)
			}
			got = append(got, ev.name+" "+ev.id+" "+ev.data)
		}
	}
	take(3)
	want := []string{
		`line 2 {"step":"test","time":"2026-01-02T03:04:05Z","text":"two"}`,
		`line 3 {"step":"test","time":"2026-01-02T03:04:05Z","text":"three"}`,
		`steps  [{"name":"checkout","state":"succeeded","attempts":1},{"name":"test","state":"succeeded","attempts":1}]`,
	}
	if !slices.Equal(got, want) {
		t.Fatalf("resumed after line 1:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Live: a line, a step change, the end.
	got = nil
	lines("four <b>")
	take(1)
	if err := f.store.SaveStep(ctx, ferry.Step{BuildID: 1, Seq: 3, Name: "build", State: ferry.StepFailed, Attempts: 2, Error: "no space"}); err != nil {
		t.Fatal(err)
	}
	f.builds.Notify()
	take(1)
	if err := f.store.TransitionBuild(ctx, 1, ferry.BuildRunning, ferry.BuildFailed, "build failed: no space", f.now); err != nil {
		t.Fatal(err)
	}
	f.builds.Notify()
	take(1)
	want = []string{
		`line 4 {"step":"test","time":"2026-01-02T03:04:05Z","text":"four \u003cb\u003e"}`,
		`steps  [{"name":"checkout","state":"succeeded","attempts":1},{"name":"test","state":"succeeded","attempts":1},{"name":"build","state":"failed","attempts":2,"error":"no space"}]`,
		`end  {"state":"failed","reason":"build failed: no space"}`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("live events:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if ev, ok := next(t, events, 5*time.Second); ok {
		t.Errorf("after the end event: %+v, want the stream closed", ev)
	}
}

// TestChangeEvents: the change stream says "envs" when the controller
// broadcasts, "builds" when a build or step changed — not for log lines
// alone — and both at once to a client that reconnects.
func TestChangeEvents(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events := f.stream(sctx, ferry.RoleViewer, "/events?follow=1", nil)
	f.envs.changed.Notify()
	f.envs.changed.Notify()
	if ev, ok := next(t, events, 5*time.Second); !ok || ev.name != "envs" || ev.id != "1" {
		t.Fatalf("after two controller changes: %+v, %v; want one envs event with id 1", ev, ok)
	}
	if err := f.store.AppendLog(ctx, 1, []ferry.LogLine{{Step: "test", Time: f.now, Text: "a line"}}); err != nil {
		t.Fatal(err)
	}
	f.builds.Notify()
	if ev, ok := next(t, events, 300*time.Millisecond); ok {
		t.Errorf("after a log line: %+v, want no event (running builds stream their own lines)", ev)
	}
	if err := f.store.TransitionBuild(ctx, 1, ferry.BuildRunning, ferry.BuildSucceeded, "", f.now); err != nil {
		t.Fatal(err)
	}
	f.builds.Notify()
	if ev, ok := next(t, events, 5*time.Second); !ok || ev.name != "builds" || ev.id != "2" {
		t.Errorf("after the build ended: %+v, %v; want a builds event with id 2", ev, ok)
	}
	cancel()

	again := f.stream(ctx, ferry.RoleViewer, "/events?follow=1", map[string]string{"Last-Event-ID": "2"})
	var got []string
	for range 2 {
		ev, ok := next(t, again, 5*time.Second)
		if !ok {
			t.Fatalf("a reconnecting client got %q, then nothing", got)
		}
		got = append(got, ev.id+" "+ev.name)
	}
	if want := []string{"3 envs", "4 builds"}; !slices.Equal(got, want) {
		t.Errorf("a reconnecting client got %q, want %q", got, want)
	}
}

func TestFuncs(t *testing.T) {
	for _, tc := range []struct {
		name, got, want string
	}{
		{"shortDigest(digest)", shortDigest(digestA), "111111111111"},
		{"shortDigest(short)", shortDigest("sha256:abc"), "abc"},
		{"abbrev(digest)", abbrev(digestB), "222222222222"},
		{"abbrev(commit)", abbrev(commitA), "aaaaaaaaaaaa"},
		{"abbrev(text)", abbrev("missing (no such tag)"), "missing (no such tag)"},
		{"stamp(string)", stamp("2026-01-02T03:04:05Z"), "2026-01-02 03:04Z"},
		{"stamp(zero string)", stamp("0001-01-01T00:00:00Z"), "—"},
		{"stamp(time, CET)", stamp(time.Date(2026, 1, 2, 4, 4, 5, 0, time.FixedZone("CET", 3600))), "2026-01-02 03:04Z"},
		{"stamp(zero time)", stamp(time.Time{}), "—"},
		{"seconds(0)", seconds(0), "—"},
		{"seconds(42.5)", seconds(42.5), "42.5s"},
		{"seconds(5400)", seconds(5400), "1h 30m"},
		{"seconds(3 days)", seconds(3 * 86400), "3.0d"},
		{"percent(0.125)", percent(0.125), "12%"},
		{"reachable(port 0)", reachable("http://127.0.0.1:0"), ""},
		{"reachable(port)", reachable("http://127.0.0.1:8081"), "http://127.0.0.1:8081"},
		{"reachable(javascript)", reachable("javascript:alert(1)"), ""},
		{"took(running)", took(time.Unix(10, 0), time.Time{}), ""},
		{"took(2m5s)", took(time.Unix(10, 0), time.Unix(135, 0)), "2m 5s"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %q, want %q", tc.name, tc.got, tc.want)
		}
	}
}

func TestNew(t *testing.T) {
	f := newFixture(t)
	good := Config{Environments: f.envs, Releases: f.rel, Builds: broadcastBuilds{f.builds}, Ledger: f.store, Tokens: f.tokens.Lookup}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"no environments", func(c *Config) { c.Environments = nil }, "Environments is required"},
		{"no ledger", func(c *Config) { c.Ledger = nil }, "Ledger is required"},
		{"no token lookup", func(c *Config) { c.Tokens = nil }, "Tokens is required"},
		{"unknown upstream", func(c *Config) { c.Envs = []ferry.Environment{{Name: "prod", From: "dve"}} }, `environment prod: unknown upstream "dve"`},
	} {
		cfg := good
		tc.edit(&cfg)
		if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%s) = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	if _, err := New(good); err != nil {
		t.Errorf("New(good) = %v", err)
	}
}

// TestStreamsEndWhenRevoked: an open stream of a token revoked meanwhile
// ends at its next heartbeat, and the browser's reconnect is refused.
func TestStreamsEndWhenRevoked(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Heartbeat = 50 * time.Millisecond })
	ctx := t.Context()
	changes := f.stream(ctx, ferry.RoleViewer, "/events?follow=1", nil)
	logs := f.stream(ctx, ferry.RoleViewer, "/builds/1/log?follow=1", nil)
	if ev, ok := next(t, logs, 5*time.Second); !ok || ev.name != "steps" {
		t.Fatalf("the log stream began with %+v, %v; want the steps", ev, ok)
	}
	time.Sleep(200 * time.Millisecond) // heartbeats pass while the token holds
	for name, ch := range map[string]<-chan event{"change": changes, "log": logs} {
		for drained := false; !drained; {
			select {
			case _, ok := <-ch:
				if !ok {
					t.Fatalf("the %s stream ended while its token still held", name)
				}
			default:
				drained = true
			}
		}
	}
	if _, err := f.tokens.Revoke(ctx, "t-viewer", "test", "lost"); err != nil {
		t.Fatal(err)
	}
	for name, ch := range map[string]<-chan event{"change": changes, "log": logs} {
		select {
		case ev, ok := <-ch:
			if ok {
				t.Errorf("the %s stream sent %+v after the revocation, want it closed", name, ev)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("the %s stream of a revoked token is still open", name)
		}
	}
	if resp, _ := f.do(ferry.RoleViewer, "GET", "/events?follow=1", nil, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("reconnecting with a revoked token = %d, want 401", resp.StatusCode)
	}
}

// liveCanaries is the controller's running canaries, as a test sets them
// (fakeCanaries adds the rollout commands).
type liveCanaries map[string]controller.CanaryStatus

// TestCanaryPanel: a running canary shows in its environment's row, with
// its step, weight, each version's rate, error rate, p50 and p99 and the
// last verdict; an environment without one shows none.
func TestCanaryPanel(t *testing.T) {
	var canary, baseline analysis.Figures
	for range 40 {
		canary.Requests++
		canary.Latency.Observe(20 * time.Millisecond)
		baseline.Requests++
		baseline.Latency.Observe(10 * time.Millisecond)
	}
	canary.Errors = 2
	f := newFixture(t, func(c *Config) {
		c.Canaries = &fakeCanaries{live: liveCanaries{"prod": {
			Run:    &ferry.CanaryRun{DeploymentID: 4, Env: "prod", Step: 0, Steps: 3, Weight: 5, State: ferry.CanaryPaused, Reason: "inconclusive for 5m0s at 5%"},
			Active: true, Span: 20 * time.Second,
			Tracks:  map[string]analysis.Figures{ferry.TrackCanary: canary, ferry.TrackBaseline: baseline},
			Verdict: &analysis.Verdict{Outcome: analysis.Inconclusive, Reasons: []string{"too few requests to judge: canary 40, baseline 40"}},
		}}}
	})
	_, body := f.do(ferry.RoleViewer, "GET", "/fragments/matrix", nil, nil)
	for _, want := range []string{
		`<div class="canary" data-canary-state="paused" data-weight="5">canary step 1 of 3 at 5% <span class="badge s-paused">paused</span> <span class="sub">inconclusive for 5m0s at 5%</span>`,
		`<tr data-track="canary"><th scope="row">canary</th><td>2.0</td><td>5.00% <span class="sub">(2 of 40)</span></td><td>`,
		`<tr data-track="baseline"><th scope="row">baseline</th><td>2.0</td><td>0.00% <span class="sub">(0 of 40)</span></td>`,
		`last verdict: <strong>inconclusive</strong>; too few requests to judge: canary 40, baseline 40`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the matrix lacks %s", want)
		}
	}
	if n := strings.Count(body, `class="canary"`); n != 1 {
		t.Errorf("%d canary panels, want 1 (prod's)", n)
	}
}

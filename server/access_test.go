package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/ledger"
)

// lockedBuffer is a bytes.Buffer safe for the server's logger and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAccess: through a real server, every API call but the health check
// needs a token, and each change needs its role: dev's is deployer, prod's
// (promoted from dev) releaser. Refusals name the token, its role and the
// role needed, and change nothing; secrets reach neither the events nor
// the log.
func TestAccess(t *testing.T) {
	t.Parallel()
	repo := newRepo(t, "testdata/tiny")
	runtime := `runtime: { local: { listen: 127.0.0.1:0, readiness: /version, args: ["-listen", "{{.Addr}}"] } }`
	yaml := withTest(tinyConfig(repo.Dir, t.TempDir(), ""), "")
	yaml = strings.Replace(yaml, "runtime: { local: { listen: 127.0.0.1:0 } }", runtime, 1) + "  prod:\n    from: dev\n    " + runtime + "\n"
	logs := &lockedBuffer{}
	s := start(t, yaml, Options{Logger: slog.New(slog.NewTextHandler(io.MultiWriter(logs, tWriter{t}), nil))})
	ctx := context.Background()
	secrets := map[ferry.Role]string{
		ferry.RoleViewer:   namedToken(t, s, "eye", ferry.RoleViewer),
		ferry.RoleDeployer: namedToken(t, s, "ci", ferry.RoleDeployer),
	}
	call := func(role ferry.Role, method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if role != "" {
			req.Header.Set("Authorization", "Bearer "+secrets[role])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var eb struct{ Error string }
		if json.Unmarshal(b, &eb) == nil && eb.Error != "" {
			return resp.StatusCode, eb.Error
		}
		return resp.StatusCode, string(b)
	}
	waitDeployed(t, tokenClient(t, s, secrets[ferry.RoleViewer]), "dev", repo.Head()) // the first build

	scale := `{"replicas": 2, "reason": "load"}`
	for _, tc := range []struct {
		role         ferry.Role
		method, path string
		body         string
		status       int
		message      string // the whole message for refusals, a part otherwise
	}{
		{"", "GET", "/healthz", "", 200, "ok"},
		{"", "GET", "/api/v1/status", "", 401, `this API needs a token: send "Authorization: Bearer <token>"`},
		{ferry.RoleViewer, "GET", "/api/v1/status", "", 200, `"environments"`},
		{ferry.RoleViewer, "POST", "/api/v1/builds", `{"branch": "master"}`, 403, `token "eye" has role viewer; this needs deployer`},
		{ferry.RoleViewer, "POST", "/api/v1/envs/dev/scale", scale, 403, `token "eye" has role viewer; this needs deployer`},
		{ferry.RoleDeployer, "POST", "/api/v1/envs/prod/scale", scale, 403, `token "ci" has role deployer; this needs releaser`},
		{ferry.RoleDeployer, "POST", "/api/v1/envs/prod/promote", `{"reason": "ship it"}`, 403, `token "ci" has role deployer; this needs releaser`},
		{ferry.RoleDeployer, "GET", "/api/v1/tokens", "", 403, `token "ci" has role deployer; this needs admin`},
		{ferry.RoleDeployer, "POST", "/api/v1/envs/dev/scale", scale, 202, `"actor": "ci"`},
	} {
		status, msg := call(tc.role, tc.method, tc.path, tc.body)
		ok := status == tc.status && (status < 400 && strings.Contains(msg, tc.message) || msg == tc.message)
		if !ok {
			t.Errorf("%s %s with a %s token = %d %s, want %d %s", tc.method, tc.path, dashRole(tc.role), status, msg, tc.status, tc.message)
		}
	}
	// The refusals changed nothing: prod has no deployment, and the one
	// scale of dev is the deployer's (once its action, answered queued,
	// has run).
	waitFor(t, time.Minute, "every action decided", func() bool {
		open, err := s.Ledger().Actions(ctx, ledger.ActionFilter{States: []ferry.ActionState{ferry.ActionQueued, ferry.ActionRunning}})
		return err == nil && len(open) == 0
	})
	ds, err := s.Ledger().Deployments(ctx, ledger.DeploymentFilter{Kinds: []ferry.DeploymentKind{ferry.DeployScale}})
	if err != nil {
		t.Fatal(err)
	}
	var scales []string
	for _, d := range ds {
		scales = append(scales, d.Env+" by "+d.Actor+" ("+d.Reason+")")
	}
	if want := []string{"dev by ci (load)"}; !slices.Equal(scales, want) {
		t.Errorf("scale deployments = %q, want %q", scales, want)
	}
	if prod, err := s.Ledger().Deployments(ctx, ledger.DeploymentFilter{Env: "prod"}); err != nil || len(prod) != 0 {
		t.Errorf("prod deployments = %v, %v; want none", prod, err)
	}

	events, err := s.Ledger().Events(ctx, ledger.EventFilter{Limit: ledger.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	created := 0
	for _, e := range events {
		if e.Kind == "token.created" {
			created++
		}
	}
	if created != 2 {
		t.Errorf("%d token.created events, want 2", created)
	}
	all, _ := json.Marshal(events)
	for role, secret := range secrets {
		if strings.Contains(string(all), secret) || strings.Contains(logs.String(), secret) {
			t.Errorf("the %s token's secret is in the events or the log", role)
		}
	}
	if !strings.Contains(logs.String(), "refused") {
		t.Errorf("the log does not show the refusals")
	}
}

func dashRole(r ferry.Role) string {
	if r == "" {
		return "no"
	}
	return string(r)
}

package api

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/dora"
	"github.com/ferryhq/ferry/internal/gittest"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

// TestDoraRoute serves GET /api/v1/dora from a real reporter: a SQLite
// ledger with a release history and a git repository with its commits.
func TestDoraRoute(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	r := gittest.New(t)
	var commits []string
	for _, ago := range []time.Duration{100 * time.Hour, 30 * time.Hour} {
		commits = append(commits, r.Commit("change", now.Add(-ago)))
	}
	repo := r.Source()

	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	for i, c := range commits { // promoted 96h and 24h ago: lead 4h and 6h
		finish := now.Add(-time.Duration(96-72*i) * time.Hour)
		d := &ferry.Deployment{App: "app", Env: "prod", Kind: ferry.DeployPromote, State: ferry.DeploymentSucceeded,
			Commit: c, Digest: "sha256:" + strings.Repeat(c[:8], 8), Actor: "test", CreatedAt: finish, StartedAt: finish, FinishedAt: finish}
		if err := store.CreateDeployment(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	tokens := &auth.Tokens{Store: store, App: "app"}
	_, viewer, err := tokens.Create(t.Context(), "eye", ferry.RoleViewer, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{
		App: "app", Ledger: store, Envs: fakeEnvs{}, Deployments: store, Tokens: tokens, Logger: slog.New(slog.DiscardHandler),
		Dora: &dora.Reporter{App: "app", Envs: []ferry.Environment{{Name: "dev"}, {Name: "prod", From: "dev"}}, Ledger: store,
			Commits: dora.NewGitCommits(repo).WithContext, Now: func() time.Time { return now }},
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	get := func(secret, query string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/dora"+query, nil)
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	for _, tc := range []struct {
		query       string
		env         string
		from        time.Time
		deployments int
		lead        float64
	}{
		{"", "prod", now.Add(-30 * 24 * time.Hour), 2, 5 * 3600}, // production, 30 days
		{"?window=2d", "prod", now.Add(-48 * time.Hour), 1, 6 * 3600},
		{"?env=dev&window=36h", "dev", now.Add(-36 * time.Hour), 0, 0},
	} {
		code, body := get(viewer, tc.query)
		var got DoraBody
		if code != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
			t.Fatalf("GET /api/v1/dora%s = %d %s", tc.query, code, body)
		}
		if len(got.Reports) != 1 {
			t.Fatalf("GET /api/v1/dora%s = %s, want one report", tc.query, body)
		}
		r := got.Reports[0]
		if r.Env != tc.env || !r.From.Equal(tc.from) || !r.To.Equal(now) || r.Deployments != tc.deployments || r.LeadTimeSeconds != tc.lead {
			t.Errorf("GET /api/v1/dora%s = %+v, want %s from %s, %d deployments, lead %vs", tc.query, r, tc.env, tc.from, tc.deployments, tc.lead)
		}
	}
	for _, tc := range []struct {
		secret, query string
		code          int
		want          string
	}{
		{viewer, "?window=30", 400, `window \"30\" is not a duration like 30d, 2w, 36h or 90m`},
		{viewer, "?window=1000d", 400, "out of range"},
		{viewer, "?env=prdo", 404, `no environment \"prdo\" (have dev, prod)`},
		{"", "", 401, "this API needs a token"},
	} {
		code, body := get(tc.secret, tc.query)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("GET /api/v1/dora%s = %d %s, want %d with %q", tc.query, code, body, tc.code, tc.want)
		}
	}

	// A server without DORA figures says so.
	s.Dora = nil
	srv2 := httptest.NewServer(s.Handler())
	t.Cleanup(srv2.Close)
	req, _ := http.NewRequest(http.MethodGet, srv2.URL+"/api/v1/dora", nil)
	req.Header.Set("Authorization", "Bearer "+viewer)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(b), "computes no DORA figures") {
		t.Errorf("GET /api/v1/dora without Dora = %d %s, want 404", resp.StatusCode, b)
	}
}

package api

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

// alertEnvs is dev (from master) and prod (from release, promoted from
// dev) as the controller would report them.
type alertEnvs struct {
	fakeEnvs
	status []controller.EnvStatus
}

func (e alertEnvs) Status(context.Context) ([]controller.EnvStatus, error) { return e.status, nil }

func (alertEnvs) Environment(name string) (ferry.Environment, bool) {
	switch name {
	case "dev":
		return ferry.Environment{Name: "dev", Branch: "master"}, true
	case "prod":
		return ferry.Environment{Name: "prod", Branch: "release", From: "dev"}, true
	}
	return ferry.Environment{}, false
}

// TestStatusAlerts: plain GET /api/v1/status (no check) names what is
// wrong: master red (only master: a failed feature branch is no alarm),
// dev lagging master's newest succeeded build, and the controller's alert
// about a release head it did not deploy.
func TestStatusAlerts(t *testing.T) {
	sha := func(c byte) string { return strings.Repeat(string(c), 40) }
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		builds []ferry.Build // in creation order
		dev    controller.EnvStatus
		prod   controller.EnvStatus
		want   map[string][]ferry.Alert
	}{
		{
			name:   "all well",
			builds: []ferry.Build{{Commit: sha('a'), Branch: "master", State: ferry.BuildSucceeded}},
			dev:    controller.EnvStatus{Name: "dev", Commit: sha('a'), State: "healthy"},
			want:   map[string][]ferry.Alert{},
		},
		{
			name: "master red, a feature branch's failure is not",
			builds: []ferry.Build{
				{Commit: sha('a'), Branch: "master", State: ferry.BuildSucceeded},
				{Commit: sha('b'), Branch: "master", State: ferry.BuildFailed, Reason: "step test: exit status 1"},
				{Commit: sha('c'), Branch: "feature", State: ferry.BuildFailed},
				{Commit: sha('d'), Branch: "master", State: ferry.BuildRunning}, // the fix, not finished
			},
			dev: controller.EnvStatus{Name: "dev", Commit: sha('a'), State: "healthy"},
			want: map[string][]ferry.Alert{"dev": {{Kind: ferry.AlertMainlineRed,
				Message: "master is red: build 2 of bbbbbbbbbbbb failed (step test: exit status 1); see ferry logs build 2"}}},
		},
		{
			name: "green again",
			builds: []ferry.Build{
				{Commit: sha('b'), Branch: "master", State: ferry.BuildFailed},
				{Commit: sha('c'), Branch: "master", State: ferry.BuildSucceeded},
			},
			dev:  controller.EnvStatus{Name: "dev", Commit: sha('c'), State: "healthy"},
			want: map[string][]ferry.Alert{},
		},
		{
			name: "dev lags master: the controller's verdict",
			builds: []ferry.Build{
				{Commit: sha('a'), Branch: "master", State: ferry.BuildSucceeded},
				{Commit: sha('b'), Branch: "master", State: ferry.BuildSucceeded},
			},
			dev: controller.EnvStatus{Name: "dev", Commit: sha('a'), State: "healthy", Lag: "dev runs aaaaaaaaaaaa, not its branch master's head bbbbbbbbbbbb (build 2); fix: ferry build master"},
			want: map[string][]ferry.Alert{"dev": {{Kind: ferry.AlertLagging,
				Message: "dev runs aaaaaaaaaaaa, not its branch master's head bbbbbbbbbbbb (build 2); fix: ferry build master"}}},
		},
		{
			name: "a newer build the controller does not call a lag is none", // e.g. master reset to the older commit dev runs
			builds: []ferry.Build{
				{Commit: sha('a'), Branch: "master", State: ferry.BuildSucceeded},
				{Commit: sha('b'), Branch: "master", State: ferry.BuildSucceeded},
			},
			dev:  controller.EnvStatus{Name: "dev", Commit: sha('a'), State: "healthy"},
			want: map[string][]ferry.Alert{},
		},
		{
			name:   "a release head not deployed",
			builds: []ferry.Build{{Commit: sha('a'), Branch: "master", State: ferry.BuildSucceeded}},
			dev:    controller.EnvStatus{Name: "dev", Commit: sha('a'), State: "healthy"},
			prod: controller.EnvStatus{Name: "prod", Commit: sha('a'), State: "healthy",
				Alert: "eeeeeeeeeeee was pushed to release but is not deployed: not on master's history"},
			want: map[string][]ferry.Alert{"prod": {{Kind: ferry.AlertRelease,
				Message: "eeeeeeeeeeee was pushed to release but is not deployed: not on master's history"}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			for i, b := range tt.builds {
				b.App, b.CreatedAt = "app", now.Add(time.Duration(i)*time.Minute)
				if b.State == ferry.BuildSucceeded {
					b.Digest = fmt.Sprintf("sha256:%064x", i+1)
				}
				if err := store.CreateBuild(t.Context(), &b); err != nil {
					t.Fatal(err)
				}
			}
			prod := tt.prod
			if prod.Name == "" {
				prod = controller.EnvStatus{Name: "prod", State: "empty"}
			}
			logger := slog.New(slog.NewTextHandler(io.Discard, nil))
			tokens := &auth.Tokens{Store: store, App: "app", Logger: logger}
			_, secret, err := tokens.Create(t.Context(), "viewer", ferry.RoleViewer, "test", "")
			if err != nil {
				t.Fatal(err)
			}
			s := &Server{App: "app", Ledger: store, Builds: &fakeBuilds{}, Deployments: store, Tokens: tokens, Logger: logger,
				Envs: alertEnvs{status: []controller.EnvStatus{tt.dev, prod}}}
			srv := httptest.NewServer(s.Handler())
			t.Cleanup(srv.Close)
			req, _ := http.NewRequest("GET", srv.URL+"/api/v1/status", nil)
			req.Header.Set("Authorization", "Bearer "+secret)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body StatusBody
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET /api/v1/status = %d, %v", resp.StatusCode, err)
			}
			for _, e := range body.Environments {
				got, _ := json.Marshal(e.Alerts)
				want, _ := json.Marshal(tt.want[e.Name])
				if string(got) != string(want) {
					t.Errorf("%s alerts = %s, want %s", e.Name, got, want)
				}
			}
		})
	}
}

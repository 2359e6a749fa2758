package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/controller"
)

// statusEnvs answers Status and Check with fixed values.
type statusEnvs struct {
	fakeEnvs
	status []controller.EnvStatus
	drift  []controller.Drift
}

func (e statusEnvs) Status(context.Context) ([]controller.EnvStatus, error) { return e.status, nil }
func (e statusEnvs) Check(context.Context) ([]controller.Drift, error)      { return e.drift, nil }

// TestStatusWire: GET /api/v1/status writes the controller's status in the
// API's own shape: deployedAt an RFC 3339 time, left out while an
// environment runs nothing, and drift only with check.
func TestStatusWire(t *testing.T) {
	deployed := time.Date(2026, 5, 31, 12, 0, 1, 250_000_000, time.UTC)
	commit := "0123456789abcdef0123456789abcdef01234567"
	envs := statusEnvs{
		status: []controller.EnvStatus{
			{Name: "dev", Commit: commit, ShortCommit: ferry.ShortSHA(commit), Digest: "sha256:aa", State: "healthy",
				Replicas: controller.Replicas{Ready: 2, Desired: 2}, DeployedAt: deployed, DeployedBy: "ferry", DeploymentID: 7},
			{Name: "prod", State: "empty"},
		},
		drift: []controller.Drift{{Env: "dev", What: "git tag env/dev", Want: commit, Got: "missing", Fix: "ferry build master"}},
	}
	s := &Server{App: "app", Envs: envs, Logger: slog.New(slog.DiscardHandler)}
	for _, target := range []string{"/api/v1/status", "/api/v1/status?check=1"} {
		rec := httptest.NewRecorder()
		s.status(rec, httptest.NewRequest("GET", target, nil))
		if rec.Code != 200 {
			t.Fatalf("GET %s = %d %s, want 200", target, rec.Code, rec.Body)
		}
		var raw struct{ Environments []map[string]any }
		if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
			t.Fatal(err)
		}
		if got, want := raw.Environments[0]["deployedAt"], "2026-05-31T12:00:01.25Z"; got != want {
			t.Errorf("GET %s: dev deployedAt = %v, want %q", target, got, want)
		}
		if got, ok := raw.Environments[1]["deployedAt"]; ok {
			t.Errorf("GET %s: prod deployedAt = %v, want it left out (nothing runs)", target, got)
		}
		var body StatusBody
		dec := json.NewDecoder(bytes.NewReader(rec.Body.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&body); err != nil {
			t.Fatal(err)
		}
		want := StatusBody{Environments: []EnvStatus{
			{Name: "dev", Commit: commit, ShortCommit: ferry.ShortSHA(commit), Digest: "sha256:aa", State: "healthy",
				Replicas: Replicas{Ready: 2, Desired: 2}, DeployedAt: deployed, DeployedBy: "ferry", DeploymentID: 7},
			{Name: "prod", State: "empty"},
		}}
		if target != "/api/v1/status" {
			want.Drift, want.Checked = []Drift{{Env: "dev", What: "git tag env/dev", Want: commit, Got: "missing", Fix: "ferry build master"}}, true
		}
		gotJSON, _ := json.Marshal(body)
		wantJSON, _ := json.Marshal(want)
		if !bytes.Equal(gotJSON, wantJSON) {
			t.Errorf("GET %s = %s\nwant %s", target, gotJSON, wantJSON)
		}
	}
}

// TestStatusRuntimeErrorIsSafe: an environment whose runtime status could
// not be read says so with its error's safe message; the cause is only in
// the log.
func TestStatusRuntimeErrorIsSafe(t *testing.T) {
	cause := errors.New("dial tcp 10.1.2.3:6443: connect: connection refused")
	envs := statusEnvs{status: []controller.EnvStatus{
		{Name: "dev", State: "empty", Err: ferry.Wrap(cause, ferry.EUNAVAILABLE, "the cluster cannot be reached")},
		{Name: "prod", State: "empty", Err: errors.New("disk on fire")},
	}}
	logs := &bytes.Buffer{}
	s := &Server{App: "app", Envs: envs, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	rec := httptest.NewRecorder()
	s.status(rec, httptest.NewRequest("GET", "/api/v1/status", nil))
	var body StatusBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != 200 {
		t.Fatalf("GET /api/v1/status = %d %s (%v)", rec.Code, rec.Body, err)
	}
	if got := []string{body.Environments[0].Error, body.Environments[1].Error}; got[0] != "the cluster cannot be reached" || got[1] != "internal error" {
		t.Errorf("status errors = %q, want the safe messages", got)
	}
	for _, secret := range []string{"10.1.2.3", "disk on fire"} {
		if strings.Contains(rec.Body.String(), secret) {
			t.Errorf("the answer shows the internal %q: %s", secret, rec.Body)
		}
		if !strings.Contains(logs.String(), secret) {
			t.Errorf("the log lacks the internal %q:\n%s", secret, logs)
		}
	}
}

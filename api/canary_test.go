package api

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
	"github.com/ferryhq/ferry/controller"
)

// fakeCanaries is a canary running on prod at 25 %, paused or not; its
// commands change it as the controller's do, and refuse as they do.
type fakeCanaries struct {
	mu     sync.Mutex
	paused bool
	ended  bool
	last   string // the last command, with its actor and reason
}

func (f *fakeCanaries) Canary(_ context.Context, env string) (controller.CanaryStatus, error) {
	if env != "prod" {
		return controller.CanaryStatus{}, ferry.Errorf(ferry.ENOTFOUND, "%s has no canary strategy (strategy.canary in ferry.yaml)", env)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var h analysis.Histogram
	for range 90 {
		h.Observe(20 * time.Millisecond)
	}
	for range 10 {
		h.Observe(300 * time.Millisecond)
	}
	run := &ferry.CanaryRun{DeploymentID: 7, App: "app", Env: "prod", Step: 1, Steps: 3, Weight: 25, State: ferry.CanaryRunning,
		StepStarted: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC), UpdatedAt: time.Date(2026, 12, 3, 9, 0, 10, 0, time.UTC)}
	if f.paused {
		run.State, run.Reason = ferry.CanaryPaused, "paused by ada"
	}
	if f.ended {
		run.State, run.Weight = ferry.CanaryAborted, 0
		return controller.CanaryStatus{Run: run}, nil
	}
	return controller.CanaryStatus{Run: run, Active: true, Span: 10 * time.Second, StepFor: time.Minute,
		Tracks: map[string]analysis.Figures{
			ferry.TrackCanary:   {Requests: 100, Errors: 2, Latency: h},
			ferry.TrackBaseline: {Requests: 100, Latency: h},
			ferry.TrackStable:   {Requests: 200, Latency: h},
		},
		Verdict: &analysis.Verdict{Outcome: analysis.Pass}}, nil
}

func (f *fakeCanaries) command(env, kind, actor, reason string, apply func() error) error {
	if env != "prod" {
		return ferry.Errorf(ferry.ECONFLICT, "no canary runs on %s", env)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		return ferry.Errorf(ferry.ECONFLICT, "no canary runs on %s", env)
	}
	if err := apply(); err != nil {
		return err
	}
	f.last = kind + " " + actor + ": " + reason
	return nil
}

func (f *fakeCanaries) CanaryPause(_ context.Context, env, actor, reason string) error {
	return f.command(env, "pause", actor, reason, func() error {
		if f.paused {
			return ferry.Errorf(ferry.ECONFLICT, "the canary on %s is paused already", env)
		}
		f.paused = true
		return nil
	})
}

func (f *fakeCanaries) CanaryResume(_ context.Context, env, actor, reason string) error {
	return f.command(env, "resume", actor, reason, func() error {
		if !f.paused {
			return ferry.Errorf(ferry.ECONFLICT, "the canary on %s is not paused", env)
		}
		f.paused = false
		return nil
	})
}

func (f *fakeCanaries) CanaryAbort(_ context.Context, env, actor, reason string) error {
	return f.command(env, "abort", actor, reason, func() error { f.ended = true; return nil })
}

func (f *fakeCanaries) CanaryPromote(_ context.Context, env, actor, reason string) error {
	return f.command(env, "promote", actor, reason, func() error {
		if strings.TrimSpace(reason) == "" {
			return ferry.Errorf(ferry.EINVALID, "promoting a canary past its steps needs a reason (--reason)")
		}
		f.ended = true
		return nil
	})
}

// TestCanaryRoutes: the rollout routes' roles, bodies and answers, each
// answer valid against the document's CanaryBody.
func TestCanaryRoutes(t *testing.T) {
	ta := newTestAPI(t, devAndProd)
	schema := openAPIDoc(t).Components.Schemas["CanaryBody"].Value
	viewer, deployer, releaser := ta.secrets[ferry.RoleViewer], ta.secrets[ferry.RoleDeployer], ta.secrets[ferry.RoleReleaser]
	for _, tc := range []struct {
		secret, method, path, body string
		status                     int
		want                       string // in the body
	}{
		{"", "GET", "/api/v1/envs/prod/rollout", "", 401, ""},
		{viewer, "GET", "/api/v1/envs/prod/rollout", "", 200, `"weight": 25`},
		{viewer, "GET", "/api/v1/envs/dev/rollout", "", 404, "dev has no canary strategy"},
		{viewer, "POST", "/api/v1/envs/prod/rollout/pause", "", 403, ""},
		{deployer, "POST", "/api/v1/envs/prod/rollout/pause", "", 403, ""}, // prod needs releaser
		{releaser, "POST", "/api/v1/envs/prod/rollout/pause", `{"reason": "look", "why": 1}`, 400, `unknown field \"why\"`},
		{releaser, "POST", "/api/v1/envs/prod/rollout/pause", `{"reason": "look"}`, 200, `"state": "paused"`},
		{releaser, "POST", "/api/v1/envs/prod/rollout/pause", "", 409, "paused already"},
		{releaser, "POST", "/api/v1/envs/prod/rollout/resume", "", 200, `"state": "running"`},
		{releaser, "POST", "/api/v1/envs/prod/rollout/promote", "", 400, "needs a reason"},
		{releaser, "POST", "/api/v1/envs/prod/rollout/promote", `{"reason": "checked"}`, 200, `"active": false`},
		{releaser, "POST", "/api/v1/envs/prod/rollout/abort", "", 409, "no canary runs on prod"},
		{deployer, "POST", "/api/v1/envs/dev/rollout/abort", "", 409, "no canary runs on dev"},
	} {
		status, body := ta.do(t, tc.secret, tc.method, tc.path, tc.body)
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %q = %d %s, want %d with %q", tc.method, tc.path, tc.body, status, body, tc.status, tc.want)
			continue
		}
		if status != 200 {
			continue
		}
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		if err := schema.VisitJSON(v); err != nil {
			t.Errorf("%s %s: the answer does not match CanaryBody: %v\n%s", tc.method, tc.path, err, body)
		}
	}
	var b CanaryBody
	_, body := ta.do(t, viewer, "GET", "/api/v1/envs/prod/rollout", "")
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatal(err)
	}
	if len(b.Tracks) != 0 || b.Active {
		t.Errorf("after the promote: %+v, want the ended canary without figures", b)
	}
}

// TestCanaryBodyOf: each track's rate, error rate and percentiles, in
// stable, canary, baseline order.
func TestCanaryBodyOf(t *testing.T) {
	st, _ := (&fakeCanaries{}).Canary(context.Background(), "prod")
	b := CanaryBodyOf("prod", st)
	var tracks []string
	for _, tr := range b.Tracks {
		tracks = append(tracks, tr.Track)
	}
	if strings.Join(tracks, ",") != "stable,canary,baseline" {
		t.Fatalf("tracks = %v", tracks)
	}
	c := b.Tracks[1]
	if c.Rate != 10 || c.ErrorRate != 0.02 || c.P50 > 25 || c.P50 < 15 || c.P99 < 250 || c.P99 > 350 {
		t.Errorf("canary track = %+v, want 10 req/s, 2 %% errors, p50 ≈ 20 ms, p99 ≈ 300 ms", c)
	}
	if b.StepFor != 60 || b.Verdict == nil || b.Verdict.Outcome != "pass" || b.Verdict.Reasons == nil {
		t.Errorf("body = %+v", b)
	}
}

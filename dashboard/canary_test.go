package dashboard

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
	"github.com/ferryhq/ferry/controller"
)

// fakeCanaries is prod's canary as the controller reports it, recording
// the commands asked of it; a promotion without a reason is refused as
// the controller refuses it.
type fakeCanaries struct {
	mu    sync.Mutex
	st    controller.CanaryStatus
	calls []call
}

func (f *fakeCanaries) Canary(context.Context, string) (controller.CanaryStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st, nil
}

func (f *fakeCanaries) cmd(kind string) func(ctx context.Context, env, actor, reason string) error {
	return func(_ context.Context, env, actor, reason string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if kind == "promote" && reason == "" {
			return ferry.Errorf(ferry.EINVALID, "promoting a canary past its steps needs a reason (--reason)")
		}
		f.calls = append(f.calls, call{kind, env, "", actor, reason})
		return nil
	}
}

func (f *fakeCanaries) CanaryPause(ctx context.Context, env, actor, reason string) error {
	return f.cmd("pause")(ctx, env, actor, reason)
}

func (f *fakeCanaries) CanaryResume(ctx context.Context, env, actor, reason string) error {
	return f.cmd("resume")(ctx, env, actor, reason)
}

func (f *fakeCanaries) CanaryAbort(ctx context.Context, env, actor, reason string) error {
	return f.cmd("abort")(ctx, env, actor, reason)
}

func (f *fakeCanaries) CanaryPromote(ctx context.Context, env, actor, reason string) error {
	return f.cmd("promote")(ctx, env, actor, reason)
}

// TestCanaryPanel: prod's running canary shows its step, weight, each
// version's rate, error rate, p50 and p99 over the step, how long the
// step still lasts and the last verdict; its buttons are there for the
// roles that may change prod only, and each command is refused or passed
// on by that rule, with the token's name and the reason.
func TestCanaryPanel(t *testing.T) {
	fc := &fakeCanaries{}
	f := newFixture(t, func(c *Config) {
		c.Canaries = fc
		c.Envs[1].Canary = &ferry.Canary{Steps: []ferry.CanaryStep{{Weight: 5, For: time.Minute}, {Weight: 50, For: time.Minute}}}
	})
	var stable, canary analysis.Histogram
	for range 90 {
		stable.Observe(20 * time.Millisecond)
	}
	for range 10 {
		canary.Observe(300 * time.Millisecond)
	}
	fc.st = controller.CanaryStatus{
		Run: &ferry.CanaryRun{DeploymentID: 7, App: app, Env: "prod", Step: 1, Steps: 2, Weight: 50, State: ferry.CanaryRunning,
			StepStarted: f.now.Add(-20 * time.Second)},
		Active: true, Span: 10 * time.Second, StepFor: time.Minute,
		Tracks: map[string]analysis.Figures{
			ferry.TrackStable: {Requests: 90, Latency: stable},
			ferry.TrackCanary: {Requests: 10, Errors: 1, Latency: canary},
		},
		Verdict: &analysis.Verdict{Outcome: analysis.Inconclusive, Reasons: []string{"canary: 10 requests, fewer than 50"}},
	}
	_, body := f.do(ferry.RoleViewer, "GET", "/", nil, nil)
	for _, want := range []string{
		`id="canary-prod"`, `data-state="running"`, `data-weight="50"`, `data-verdict="inconclusive"`,
		"step 2 of 2 at <strong class=\"weight\">50%</strong>", "step running 20s, at least 40s more",
		`<tr data-track="stable" data-requests="90">`, `<td data-label="Req/s">9.0</td>`,
		`<tr data-track="canary" data-requests="10">`, `<td data-label="Error rate">10.00%</td>`, "canary: 10 requests, fewer than 50",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("GET / lacks %s:\n%s", want, body)
		}
	}
	for _, tc := range []struct {
		role    ferry.Role
		buttons bool
	}{{ferry.RoleViewer, false}, {ferry.RoleDeployer, false}, {ferry.RoleReleaser, true}, {ferry.RoleAdmin, true}} {
		_, body := f.do(tc.role, "GET", "/fragments/canaries", nil, nil)
		if got := strings.Contains(body, `id="canary-abort-prod"`); got != tc.buttons {
			t.Errorf("%s sees the canary's buttons: %v, want %v", tc.role, got, tc.buttons)
		}
	}

	reason := url.Values{"reason": {"look closer"}}
	for _, tc := range []struct {
		role       ferry.Role
		path       string
		form       url.Values
		wantStatus int
		wantText   string
		wantCall   *call
	}{
		{ferry.RoleDeployer, "/envs/prod/rollout/abort", reason, 403, "Token &#34;t-deployer&#34; has role deployer; to abort the canary on prod needs releaser.", nil},
		{ferry.RoleReleaser, "/envs/dev/rollout/pause", reason, 404, "&#34;dev&#34; has no canary releases", nil},
		{ferry.RoleReleaser, "/envs/prod/rollout/skip", reason, 404, "There is no rollout command &#34;skip&#34;", nil},
		{ferry.RoleReleaser, "/envs/prod/rollout/promote", url.Values{}, 400, "Rollout promote on prod refused: promoting a canary past its steps needs a reason", nil},
		{ferry.RoleReleaser, "/envs/prod/rollout/pause", reason, 200, "The canary on prod is paused.", &call{"pause", "prod", "", "t-releaser", "look closer"}},
		{ferry.RoleAdmin, "/envs/prod/rollout/promote", reason, 200, "The canary on prod is promoted.", &call{"promote", "prod", "", "t-admin", "look closer"}},
	} {
		fc.mu.Lock()
		before := len(fc.calls)
		fc.mu.Unlock()
		resp, body := f.do(tc.role, "POST", tc.path, tc.form, map[string]string{"X-Ferry-Async": "1"})
		if resp.StatusCode != tc.wantStatus || !strings.Contains(body, tc.wantText) {
			t.Errorf("POST %s as %s = %d %q, want %d with %q", tc.path, tc.role, resp.StatusCode, body, tc.wantStatus, tc.wantText)
		}
		fc.mu.Lock()
		calls := fc.calls[before:]
		fc.mu.Unlock()
		switch {
		case tc.wantCall == nil && len(calls) != 0:
			t.Errorf("POST %s as %s asked the controller %+v, want nothing", tc.path, tc.role, calls)
		case tc.wantCall != nil && (len(calls) != 1 || calls[0] != *tc.wantCall):
			t.Errorf("POST %s as %s asked the controller %+v, want %+v", tc.path, tc.role, calls, *tc.wantCall)
		}
	}
}

package dashboard

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/controller"
)

// fakeCanaries is the controller's canary side: the running canaries a
// test sets, and the rollout commands, which it records; a command on an
// environment without a running canary is refused, and a promotion
// without a reason, as the controller refuses them.
type fakeCanaries struct {
	mu    sync.Mutex
	live  liveCanaries
	calls []call
}

func (f *fakeCanaries) LiveCanaries() map[string]controller.CanaryStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.live
}

func (f *fakeCanaries) cmd(kind string) func(ctx context.Context, env, actor, reason string) error {
	return func(_ context.Context, env, actor, reason string) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.live[env]; !ok {
			return ferry.Errorf(ferry.ECONFLICT, "no canary runs on %s", env)
		}
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

// TestCanaryActions: while a canary runs, its environment's actions
// offer pause (resume once paused), promote and abort, to the roles that
// may change that environment only; each command is refused or passed
// on by that rule, with the token's name and the reason, and the
// controller's refusals come back as the notice.
func TestCanaryActions(t *testing.T) {
	fc := &fakeCanaries{live: liveCanaries{}}
	f := newFixture(t, func(c *Config) {
		c.Canaries = fc
		c.Envs[1].Canary = &ferry.Canary{Steps: []ferry.CanaryStep{{Weight: 5, For: time.Minute}, {Weight: 50, For: time.Minute}}}
	})
	setState := func(state ferry.CanaryState) {
		fc.mu.Lock()
		defer fc.mu.Unlock()
		fc.live = liveCanaries{}
		if state != "" {
			fc.live["prod"] = controller.CanaryStatus{Run: &ferry.CanaryRun{DeploymentID: 7, Env: "prod", Step: 1, Steps: 2, Weight: 50, State: state}, Active: true}
		}
	}
	buttons := []string{"canary-pause-prod", "canary-resume-prod", "canary-promote-prod", "canary-abort-prod"}
	for _, tc := range []struct {
		role  ferry.Role
		state ferry.CanaryState
		want  []string
	}{
		{ferry.RoleReleaser, "", nil},
		{ferry.RoleReleaser, ferry.CanaryRunning, []string{"canary-pause-prod", "canary-promote-prod", "canary-abort-prod"}},
		{ferry.RoleAdmin, ferry.CanaryPaused, []string{"canary-resume-prod", "canary-promote-prod", "canary-abort-prod"}},
		{ferry.RoleDeployer, ferry.CanaryRunning, nil},
		{ferry.RoleViewer, ferry.CanaryRunning, nil},
	} {
		setState(tc.state)
		_, body := f.do(tc.role, "GET", "/", nil, nil)
		var got []string
		for _, id := range buttons {
			if strings.Contains(body, `id="`+id+`"`) {
				got = append(got, id)
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("GET / as %s with the canary %q shows %q, want %q", tc.role, tc.state, got, tc.want)
		}
	}

	setState(ferry.CanaryRunning)
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
	setState("")
	if resp, body := f.do(ferry.RoleReleaser, "POST", "/envs/prod/rollout/abort", reason, map[string]string{"X-Ferry-Async": "1"}); resp.StatusCode != 409 ||
		!strings.Contains(body, "Rollout abort on prod refused: no canary runs on prod") {
		t.Errorf("abort with no canary running = %d %q, want 409 saying so", resp.StatusCode, body)
	}
}

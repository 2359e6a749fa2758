package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/analysis"
	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/controller"
	"github.com/ferryhq/ferry/ledger/sqlite"
)

// fakeCanaries is prod's canary at step 2 of 3, as the controller would
// report it; it records the commands it gets. dev never had one.
type fakeCanaries struct {
	mu   sync.Mutex
	cmds []string
}

func (f *fakeCanaries) Canary(_ context.Context, env string) (controller.CanaryStatus, error) {
	if env != "prod" {
		return controller.CanaryStatus{}, nil
	}
	var canary, baseline analysis.Figures
	for range 200 {
		canary.Requests++
		canary.Latency.Observe(20 * time.Millisecond)
		baseline.Requests++
		baseline.Latency.Observe(18 * time.Millisecond)
	}
	canary.Errors = 2
	return controller.CanaryStatus{
		Run: &ferry.CanaryRun{DeploymentID: 7, App: "app", Env: "prod", Step: 1, Steps: 3, Weight: 25, State: ferry.CanaryRunning,
			StepStarted: time.Now().Add(-20 * time.Second)},
		Active: true, Span: 20 * time.Second, StepFor: time.Minute,
		Tracks:  map[string]analysis.Figures{ferry.TrackCanary: canary, ferry.TrackBaseline: baseline},
		Verdict: &analysis.Verdict{Outcome: analysis.Pass},
	}, nil
}

func (f *fakeCanaries) do(kind string) func(context.Context, string, string, string) error {
	return func(_ context.Context, env, actor, reason string) error {
		if env != "prod" {
			return ferry.Errorf(ferry.ECONFLICT, "no canary runs on %s", env)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.cmds = append(f.cmds, kind+" by "+actor+": "+reason)
		return nil
	}
}

func (f *fakeCanaries) CanaryPause(ctx context.Context, env, actor, reason string) error {
	return f.do("pause")(ctx, env, actor, reason)
}
func (f *fakeCanaries) CanaryResume(ctx context.Context, env, actor, reason string) error {
	return f.do("resume")(ctx, env, actor, reason)
}
func (f *fakeCanaries) CanaryAbort(ctx context.Context, env, actor, reason string) error {
	return f.do("abort")(ctx, env, actor, reason)
}
func (f *fakeCanaries) CanaryPromote(ctx context.Context, env, actor, reason string) error {
	return f.do("promote")(ctx, env, actor, reason)
}

// TestRolloutCommand runs `ferry rollout` against the real API routes,
// the canary behind them a fake of the controller's.
func TestRolloutCommand(t *testing.T) {
	useCredentials(t)
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	tokens := &auth.Tokens{Store: store, App: "app"}
	_, admin, err := tokens.Create(t.Context(), "ops", ferry.RoleAdmin, "test", "")
	if err != nil {
		t.Fatal(err)
	}
	canaries := &fakeCanaries{}
	srv := httptest.NewServer((&api.Server{
		App: "app", Ledger: store, Envs: doraEnvs{}, Deployments: store, Tokens: tokens, Canaries: canaries, Logger: slog.New(slog.DiscardHandler),
	}).Handler())
	defer srv.Close()
	flags := []string{"--server", srv.URL, "--token", admin}

	stdout, stderr, code := run(t, append([]string{"rollout", "status", "prod", "-o", "json"}, flags...)...)
	var body api.CanaryBody
	if err := json.Unmarshal([]byte(stdout), &body); code != 0 || err != nil {
		t.Fatalf("ferry rollout status -o json: exit %d, %v: %s%s", code, err, stdout, stderr)
	}
	if !body.Active || body.Canary.Weight != 25 || len(body.Tracks) != 2 || body.Tracks[0].Track != ferry.TrackCanary || body.Tracks[0].Errors != 2 {
		t.Errorf("ferry rollout status -o json = %+v, want the running canary with its 2 tracks", body)
	}

	for _, tc := range []struct {
		name  string
		args  []string
		code  int
		out   []string // lines of stdout, or of stderr when code != 0
		cmds  int      // commands the canary got so far
		stder bool
	}{
		{"status", []string{"status", "prod"}, 0, []string{
			"canary of deployment 7 on prod: running, step 2 of 3 at 25%",
			"VERSION   REQUESTS  REQ/S  ERRORS  ERROR RATE  P50",
			"canary    200       10.0   2       1.00%",
			"baseline  200       10.0   0       0.00%",
			"verdict:  pass",
		}, 0, false},
		{"never had one", []string{"status", "dev"}, 0, []string{"dev has had no canary release"}, 0, false},
		{"pause", []string{"pause", "prod", "--reason", "checking the logs"}, 0, []string{"canary on prod: paused"}, 1, false},
		{"resume", []string{"resume", "prod"}, 0, []string{"canary on prod: resumed"}, 2, false},
		{"promote needs a reason", []string{"promote", "prod"}, 2, []string{"rollout promote: --reason is required"}, 2, true},
		{"promote", []string{"promote", "prod", "--reason", "verified by hand"}, 0, []string{"canary on prod: promoted"}, 3, false},
		{"abort without a canary", []string{"abort", "dev", "--reason", "x"}, 1, []string{"no canary runs on dev"}, 3, true},
		{"abort", []string{"abort", "prod", "--reason", "wrong build"}, 0, []string{"canary on prod: aborted"}, 4, false},
		{"no env", []string{"pause"}, 1, []string{"accepts 1 arg"}, 4, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := run(t, append(append([]string{"rollout"}, tc.args...), flags...)...)
			got := stdout
			if tc.stder {
				got = stderr
			}
			if code != tc.code {
				t.Fatalf("ferry rollout %s = exit %d (%s%s), want %d", strings.Join(tc.args, " "), code, stdout, stderr, tc.code)
			}
			for _, line := range tc.out {
				if !strings.Contains(got, line) {
					t.Errorf("ferry rollout %s printed\n%s\nwant %q", strings.Join(tc.args, " "), got, line)
				}
			}
			canaries.mu.Lock()
			defer canaries.mu.Unlock()
			if len(canaries.cmds) != tc.cmds {
				t.Errorf("after ferry rollout %s the canary got %q, want %d commands", strings.Join(tc.args, " "), canaries.cmds, tc.cmds)
			}
		})
	}
	if want := "promote by ops: verified by hand"; len(canaries.cmds) < 3 || canaries.cmds[2] != want {
		t.Errorf("commands %q, want the third %q", canaries.cmds, want)
	}
}

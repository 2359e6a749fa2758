package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/demo"
)

// TestDemoStagesConfig: the ferry.yaml of ferry demo --stages
// dev,staging,prod is valid, and chains the three: staging promoted from
// dev, prod from staging, released from master's history, prod the one
// production environment.
func TestDemoStagesConfig(t *testing.T) {
	l, err := demo.PrepareStages(context.Background(), t.TempDir(), "../examples/birthday-app", demo.DefaultPorts, []string{"dev", "staging", "prod"}, func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(l.Config)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(l.Config, b)
	if err != nil {
		t.Fatalf("the demo's three-stage ferry.yaml: %v", err)
	}
	var envs []ferry.Environment
	for _, e := range cfg.Environments {
		envs = append(envs, e.Environment)
	}
	if got := len(envs); got != 3 || envs[1].Name != "staging" || envs[1].From != "dev" || envs[2].From != "staging" || envs[2].Branch != "release" {
		t.Fatalf("environments = %+v, want dev → staging → prod", envs)
	}
	if m := ferry.Mainline(envs, "prod"); m != "master" {
		t.Errorf("prod's mainline = %q, want master", m)
	}
	if p := ferry.Production(envs); len(p) != 1 || p[0] != "prod" {
		t.Errorf("production = %v, want [prod]", p)
	}
}

// TestDemoThreeStagesWithApproval runs ferry demo --stages dev,staging,prod
// --approval end to end: dev serves master, a promotion reaches staging, a
// release of prod waits for approval, the requester's own approval is
// refused with the rule, and a second releaser's token releases it with
// ferry approve.
func TestDemoThreeStagesWithApproval(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	d := startDemoWith(t, "--stages", "dev,staging,prod", "--approval")
	ctx, c := t.Context(), d.c
	head := d.bare(t, "rev-parse", "master")
	urls := map[string]string{}
	waitFor(t, 3*time.Minute, "dev to serve master's head", func() bool {
		st, err := c.Status(ctx)
		if err != nil || len(st.Environments) != 3 {
			return false
		}
		for _, e := range st.Environments {
			urls[e.Name] = e.URL
		}
		return versionOf(t, d.devURL) == head
	})
	if urls["staging"] == "" || urls["prod"] != d.prodURL {
		t.Fatalf("environments' URLs %v, want staging's and prod's", urls)
	}

	// Staging takes a promotion without approval.
	act, err := c.Promote(ctx, "staging", "", "demo: to staging")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Decided(ctx, act.ID, 20*time.Millisecond); err != nil || got.Deployment == nil {
		t.Fatalf("promote to staging = %+v, %v; want a deployment", got, err)
	}
	waitFor(t, 2*time.Minute, "staging to serve master's head", func() bool { return versionOf(t, urls["staging"]) == head })

	// Prod's release waits for a second person.
	act, err = c.Promote(ctx, "prod", "", "demo: first release")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Decided(ctx, act.ID, 20*time.Millisecond)
	if err != nil || got.Action.DeploymentID != 0 || !strings.Contains(got.Action.Result, "pending approval") {
		t.Fatalf("promote to prod = %+v, %v; want a pending release", got, err)
	}
	pending, err := c.Requests(ctx, "prod", []ferry.RequestState{ferry.RequestPending}, 10)
	if err != nil || len(pending) != 1 || pending[0].Commit != head {
		t.Fatalf("pending releases = %+v, %v; want one of %s", pending, err, ferry.ShortSHA(head))
	}
	id := fmt.Sprint(pending[0].ID)
	_, stderr, code := run(t, "approve", id, "--server", d.apiURL)
	if code == 0 || !strings.Contains(stderr, "self-approval is refused") {
		t.Errorf("ferry approve by the requester: exit %d %q, want the rule quoted", code, stderr)
	}
	if v := versionOf(t, d.prodURL); v == head {
		t.Fatal("prod serves the release before its approval")
	}

	secret, stderr, code := run(t, "token", "create", "--name", "reviewer", "--role", "releaser", "--server", d.apiURL)
	if code != 0 {
		t.Fatalf("ferry token create: exit %d: %s", code, stderr)
	}
	approved := time.Now()
	stdout, stderr, code := run(t, "approve", id, "--reason", "reviewed", "--server", d.apiURL, "--token", strings.TrimSpace(secret))
	if code != 0 {
		acts, _ := c.Actions(ctx, "prod", nil, 10)
		for _, a := range acts {
			t.Logf("prod action %d: %s %s: %s", a.ID, a.Kind, a.State, a.Result)
		}
		if log, err := os.ReadFile(filepath.Join(d.dir, "ferry.log")); err == nil {
			for _, l := range strings.Split(string(log), "\n") {
				if strings.Contains(l, "level=ERROR") || strings.Contains(l, "level=WARN") {
					t.Log(l)
				}
			}
		}
		t.Fatalf("ferry approve by a second releaser: exit %d: %s%s", code, stdout, stderr)
	}
	waitFor(t, 2*time.Minute, "prod to serve the approved release", func() bool { return versionOf(t, d.prodURL) == head })
	t.Logf("approval to prod serving the release: %s", time.Since(approved).Round(time.Millisecond))
	ds, err := c.Deployments(ctx, "prod", 1)
	if err != nil || len(ds) != 1 || !strings.Contains(ds[0].Reason, "approved by reviewer") {
		t.Errorf("prod's deployment = %+v, %v; want one approved by reviewer", ds, err)
	}
}

package server

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/testport"
	"github.com/ferryhq/ferry/ledger"
)

// gatedApp is tiny's main.go for a commit whose replicas listen only once
// the test opens the gate: until then a rollout of it waits (and fails at
// the ready timeout).
func gatedApp(gate string) string {
	return fmt.Sprintf(`package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"
)

var commit = "unknown"

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	flag.Parse()
	for {
		if r, err := http.Get(%q); err == nil {
			r.Body.Close()
			if r.StatusCode == http.StatusOK {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	http.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "{\"commit\":%%q}\n", commit)
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
`, gate)
}

// newGateServer answers 503 until open is set, then 200.
func newGateServer(t *testing.T) (*httptest.Server, *atomic.Bool) {
	var open atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if !open.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &open
}

// servingDev makes dev's replicas serve tiny on their own ports, with a
// ready timeout for their rollouts.
func servingDev(yaml string, readyTimeout time.Duration) string {
	return strings.Replace(yaml, "runtime: { local: { listen: 127.0.0.1:0 } }",
		`runtime: { local: { listen: 127.0.0.1:0, readiness: /version, args: ["-listen", "{{.Addr}}"] } }`+
			fmt.Sprintf("\n    rollout: { readyTimeout: %s }", readyTimeout), 1)
}

// devDeployments lists dev's deployments of commit, newest first.
func devDeployments(t testing.TB, s *Server, commit string) []*ferry.Deployment {
	t.Helper()
	ds, err := s.Ledger().Deployments(context.Background(), ledger.DeploymentFilter{App: "tiny", Env: "dev", Commit: commit})
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// devRuns reports whether dev's current deployment is commit's.
func devRuns(s *Server, commit string) bool {
	cur, err := s.Ledger().Current(context.Background(), "tiny", "dev")
	return err == nil && cur.Commit == commit
}

// lagDrift returns dev's drift against master from status --check, if any.
func lagDrift(t testing.TB, c *client.Client) (string, bool) {
	t.Helper()
	st, err := c.StatusCheck(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range st.Drift {
		if d.Env == "dev" && d.What == "branch master" {
			return fmt.Sprintf("want %s, got %s, fix: %s", d.Want, d.Got, d.Fix), d.Fix == "ferry build master"
		}
	}
	return "", false
}

// TestDevConvergesAfterCrashMidRollout: ferry stopped while dev rolls out
// master's head; at the next start the interrupted deployment is closed
// and dev restored, and then dev gets the head after all, since nothing
// was wrong with it: status --check finds dev on its branch.
func TestDevConvergesAfterCrashMidRollout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gate, open := newGateServer(t)
	repo := newRepo(t, "testdata/tiny")
	a := repo.Head()
	// The registry keeps its port: the restarted server pulls from it.
	yaml := strings.Replace(servingDev(tinyConfig(repo.Dir, t.TempDir(), ""), 5*time.Minute),
		"registry: { listen: 127.0.0.1:0 }", "registry: { listen: "+testport.Addr(t)+" }", 1)
	first := start(t, yaml, Options{})
	c := newClient(t, first)
	waitDeployed(t, c, "dev", a)

	repo.Write("main.go", gatedApp(gate.URL))
	b := repo.CommitAll("B: listens once the gate opens")
	if _, err := c.Trigger(ctx, "master", ""); err != nil {
		t.Fatal(err)
	}
	if bb := waitBuild(t, first, b, 3*time.Minute); bb.State != ferry.BuildSucceeded {
		t.Fatalf("build of B = %s: %s", bb.State, bb.Reason)
	}
	var interrupted *ferry.Deployment
	waitFor(t, time.Minute, "dev's rollout of B to start", func() bool {
		ds := devDeployments(t, first, b)
		if len(ds) == 1 && ds[0].State == ferry.DeploymentRolling {
			interrupted = ds[0]
		}
		return interrupted != nil
	})
	if err := first.Close(); err != nil {
		t.Fatalf("stop ferry mid-rollout: %v", err)
	}
	open.Store(true)

	second := start(t, yaml, Options{})
	c = newClient(t, second)
	waitFor(t, 2*time.Minute, "dev to run B", func() bool {
		if ds := devDeployments(t, second, b); len(ds) > 1 && ds[0].ID != interrupted.ID && (ds[0].State == ferry.DeploymentFailed || ds[0].State == ferry.DeploymentRolledBack) {
			t.Fatalf("the retry of B ended %s: deployment %d: %s", ds[0].State, ds[0].ID, ds[0].Error)
		}
		return devRuns(second, b)
	})
	d, err := c.Deployment(ctx, interrupted.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != ferry.DeploymentFailed || !strings.Contains(d.Error, "ferry stopped during the rollout") {
		t.Errorf("interrupted deployment = %s (%q), want failed: ferry stopped during the rollout", d.State, d.Error)
	}
	cur, err := second.Ledger().Current(ctx, "tiny", "dev")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Actor != "ferry" || !strings.Contains(cur.Reason, "interrupted") {
		t.Errorf("dev's deployment of B is by %s for %q, want ferry's, naming the interrupted one", cur.Actor, cur.Reason)
	}
	waitFor(t, 30*time.Second, "status --check without drift", func() bool {
		st, err := c.StatusCheck(ctx)
		return err == nil && len(st.Drift) == 0
	})
}

// TestFailedRolloutHeldBackUntilAsked: master's head fails to roll out to
// dev; it is not retried, not even by a restart, and status --check says
// dev lags master with a fix, `ferry build master`, that deploys it.
func TestFailedRolloutHeldBackUntilAsked(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	gate, open := newGateServer(t)
	repo := newRepo(t, "testdata/tiny")
	a := repo.Head()
	yaml := strings.Replace(servingDev(tinyConfig(repo.Dir, t.TempDir(), ""), 3*time.Second),
		"registry: { listen: 127.0.0.1:0 }", "registry: { listen: "+testport.Addr(t)+" }", 1)
	first := start(t, yaml, Options{})
	c := newClient(t, first)
	waitDeployed(t, c, "dev", a)

	repo.Write("main.go", gatedApp(gate.URL))
	b := repo.CommitAll("B: never ready while the gate is shut")
	if _, err := c.Trigger(ctx, "master", ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Minute, "B's rollout to dev to be rolled back", func() bool {
		ds := devDeployments(t, first, b)
		return len(ds) == 1 && ds[0].State == ferry.DeploymentRolledBack
	})
	waitFor(t, 10*time.Second, "status --check to report dev lagging master with the fix `ferry build master`", func() bool {
		_, ok := lagDrift(t, c) // once the revert is over: a rollout in progress is all a check says
		return ok
	})
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second := start(t, yaml, Options{})
	c = newClient(t, second)
	waitFor(t, time.Minute, "dev restored to A", func() bool { return devRuns(second, a) })
	time.Sleep(2 * time.Second) // time for a retry that must not come
	if ds := devDeployments(t, second, b); len(ds) != 1 {
		t.Errorf("%d deployments of B after the restart, want the one that failed: no retry", len(ds))
	}
	var drift string
	waitFor(t, 10*time.Second, "status --check to report dev held back by the rolled-back rollout", func() bool {
		d, ok := lagDrift(t, c)
		drift = d
		return ok && strings.Contains(d, "rolled-back")
	})
	t.Logf("status --check: DRIFT dev branch master: %s", drift)

	// The operator pastes the fix.
	open.Store(true)
	res, err := c.Trigger(ctx, "master", "")
	if err != nil || res.Queued || res.Build.Commit != b {
		t.Fatalf("ferry build master = %+v, %v; want B's existing build", res, err)
	}
	waitFor(t, time.Minute, "dev to run B", func() bool { return devRuns(second, b) })
	if ds := devDeployments(t, second, b); len(ds) != 2 || ds[0].Actor == "ferry" {
		t.Errorf("deployments of B = %d, newest by %q; want the failed one and the one asked for", len(ds), ds[0].Actor)
	}
	if drift, ok := lagDrift(t, c); ok {
		t.Errorf("status --check after the fix = %q, want no lag", drift)
	}
}

// TestDevFollowsBranchReset: master reset to an older commit that was
// built; the next poll sees it and dev runs that commit again.
func TestDevFollowsBranchReset(t *testing.T) {
	t.Parallel()
	repo := newRepo(t, "testdata/tiny")
	a := repo.Head()
	yaml := strings.Replace(servingDev(tinyConfig(repo.Dir, t.TempDir(), ""), time.Minute), "poll: 0", "poll: 200ms", 1)
	s := start(t, yaml, Options{})
	c := newClient(t, s)
	waitDeployed(t, c, "dev", a)
	repo.Write("b.txt", "b")
	b := repo.CommitAll("B")
	waitDeployed(t, c, "dev", b)

	repo.Git(time.Time{}, "reset", "-q", "--hard", a)
	waitFor(t, time.Minute, "dev to run A again", func() bool { return devRuns(s, a) })
	cur, err := s.Ledger().Current(context.Background(), "tiny", "dev")
	if err != nil {
		t.Fatal(err)
	}
	if cur.Kind != ferry.DeployDeploy || cur.Actor != "ferry" || !strings.Contains(cur.Reason, "follows master") {
		t.Errorf("dev's deployment of A = %s by %s for %q, want a deploy by ferry: dev follows master", cur.Kind, cur.Actor, cur.Reason)
	}
	if n := len(builds(t, s)); n != 2 {
		t.Errorf("%d builds, want 2: A is not built again", n)
	}
}

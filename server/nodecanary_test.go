package server

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/gittest"
	"github.com/ferryhq/ferry/internal/loadtest"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/internal/testport"
	"github.com/ferryhq/ferry/node"
)

// TestCanaryThroughNode releases to prod, a local environment that ferry
// runs in its node (Options.Node, as `ferry serve` does), through a
// canary: the controller finds the node's Split, EndSplit and Figures, the
// canary really takes a share of a load on prod's balancer, passes its
// judgements on the balancer's figures read over the node's socket, and
// is promoted; no request fails, and the node then runs the new version
// on its stable replicas only.
func TestCanaryThroughNode(t *testing.T) {
	requireNode(t)
	data := t.TempDir()
	runNodeHere(t, data)
	repo, prodAddr, yaml := canaryConfig(t, data, "[ { weight: 20, for: 1s }, { weight: 40, for: 1s } ]")
	s := start(t, yaml, Options{Node: &node.StartConfig{Exe: "/bin/false", DataDir: data}})
	c := newClient(t, s)
	ctx := context.Background()
	first, second := twoReleases(t, s, c, repo)

	load := loadtest.Start(loadtest.Config{Workers: 4, URL: "http://" + prodAddr + "/version", Timeout: 5 * time.Second,
		Key: func(_ *http.Response, body []byte) string { return commitOf(body) }})
	defer load.Stop()
	a, err := c.Promote(ctx, "prod", second, "second release")
	if err != nil {
		t.Fatal(err)
	}
	d := waitEnded(t, c, deploymentOf(t, c, a))
	ended := time.Now()
	time.Sleep(200 * time.Millisecond)
	load.Stop()
	if d.State != ferry.DeploymentSucceeded {
		t.Fatalf("the canary release to prod = %s (%s), want succeeded", d.State, d.Error)
	}
	ro, err := c.Rollout(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if ro.Canary == nil || ro.Canary.DeploymentID != d.ID || ro.Canary.State != ferry.CanaryPromoted || ro.Active {
		t.Errorf("prod's canary = %+v (active %v), want deployment %d's, promoted", ro.Canary, ro.Active, d.ID)
	}
	served := load.Served(time.Time{})
	if load.Failed() != 0 || served[first] == 0 || served[second] == 0 {
		t.Errorf("the load on prod across the canary: served %v, %d failed (%v); want both versions, none failed", served, load.Failed(), load.Errors())
	}
	if after := load.Served(ended); after[first] != 0 {
		t.Errorf("after the promotion prod served %v, want %s only", after, ferry.ShortSHA(second))
	}
	t.Logf("canary through the node: %d requests, %v, %d failed", load.OK()+load.Failed(), served, load.Failed())

	// On the node: the new digest on the 2 stable replicas, nothing else.
	if pods := prodPods(t, c); len(pods) != 2 {
		t.Errorf("prod runs %d replicas after the promotion, want its 2 stable ones: %+v", len(pods), pods)
	}
	{
		for _, r := range prodPods(t, c) {
			if (r.Track != ferry.TrackStable && r.Track != "") || r.Digest != d.Digest || !r.Ready {
				t.Errorf("prod's replica %s after the promotion: track %s, %s, ready %v; want a ready stable one of %s", r.ID, r.Track, ferry.ShortDigest(r.Digest), r.Ready, ferry.ShortDigest(d.Digest))
			}
		}
	}
	if got := servedCommit(t, "http://"+prodAddr); got != second {
		t.Errorf("prod serves %s, want %s", ferry.ShortSHA(got), ferry.ShortSHA(second))
	}
}

// requireNode skips in -short, and fails (or skips, unless
// FERRY_TEST_REQUIRE names them) without root and runc.
func requireNode(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the tiny app and runs it in runc containers on a node")
	}
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "root", "the node contains replicas under runc as root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		testenv.Unavailable(t, "runc", "contained replicas need runc: %v", err)
	}
}

// runNodeHere runs the node of data in this process until the test's end,
// after the servers' Close (cleanups run last first): a server with
// Options.Node finds it answering and starts none.
func runNodeHere(t *testing.T, data string) {
	t.Helper()
	runNodeWith(t, node.Config{DataDir: data, Logger: testLogger(t).With("part", "node"), Version: "test"})
	nc := node.NewClient(node.ClientConfig{DataDir: data})
	defer nc.Close()
	waitFor(t, 30*time.Second, "the node to answer", func() bool { _, err := nc.Health(context.Background()); return err == nil })
}

// runNodeWith runs a node of cfg in this process until the test's end;
// done yields its Run's result.
func runNodeWith(t *testing.T, cfg node.Config) (done <-chan error) {
	t.Helper()
	n, err := node.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	out, ran := make(chan error, 1), make(chan error, 1)
	go func() {
		err := n.Run(ctx)
		ran <- err
		out <- err
	}()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("node Run: %v", err)
		}
	})
	return out
}

// canaryConfig is the tiny app in dev and in prod (2 replicas on
// prodAddr, releasing through a canary of these steps with a baseline,
// judged every 200 ms), both local environments, on data; the registry
// on a fixed address, so that a second server on the same data finds the
// images where the ledger says.
func canaryConfig(t *testing.T, data, steps string) (repo *gittest.Repo, prodAddr, yaml string) {
	repo = newRepo(t, "testdata/tiny")
	prodAddr = testport.Addr(t)
	local := `runtime: { local: { listen: 127.0.0.1:0, readiness: /version, args: ["-listen", "{{.Addr}}"] } }`
	yaml = strings.Replace(tinyConfig(repo.Dir, data, ""), "runtime: { local: { listen: 127.0.0.1:0 } }", local, 1)
	yaml = strings.Replace(yaml, "registry: { listen: 127.0.0.1:0 }", "registry: { listen: "+testport.Addr(t)+" }", 1)
	yaml += `  prod:
    from: dev
    strategy:
      canary:
        steps: ` + steps + `
        baseline: true
        analysis: { interval: 200ms, minRequests: 20, inconclusive: 2m }
    ` + strings.Replace(local, "listen: 127.0.0.1:0", "replicas: 2, listen: "+prodAddr, 1) + "\n"
	return repo, prodAddr, yaml
}

// twoReleases builds the repository's head and releases it to dev and
// prod, then commits a second release, builds it and deploys it to dev,
// ready for prod.
func twoReleases(t *testing.T, s *Server, c *client.Client, repo *gittest.Repo) (first, second string) {
	t.Helper()
	ctx := context.Background()
	first = repo.Head()
	if b := waitBuild(t, s, first, 5*time.Minute); b.State != ferry.BuildSucceeded {
		t.Fatalf("build of %s = %s (%s)", ferry.ShortSHA(first), b.State, b.Reason)
	}
	waitDeployed(t, c, "dev", first)
	a, err := c.Promote(ctx, "prod", first, "first release")
	if err != nil {
		t.Fatal(err)
	}
	waitFinished(t, c, deploymentOf(t, c, a))
	repo.Write("RELEASE", "second\n")
	second = repo.CommitAll("second release")
	if _, err := c.Trigger(ctx, "master", ""); err != nil {
		t.Fatal(err)
	}
	if b := waitBuild(t, s, second, 5*time.Minute); b.State != ferry.BuildSucceeded {
		t.Fatalf("build of %s = %s (%s)", ferry.ShortSHA(second), b.State, b.Reason)
	}
	waitDeployed(t, c, "dev", second)
	return first, second
}

// prodPods are prod's replicas as ferry's status shows them.
func prodPods(t *testing.T, c *client.Client) []ferry.Replica {
	t.Helper()
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range st.Environments {
		if e.Name == "prod" {
			return e.Pods
		}
	}
	t.Fatal("no prod in ferry's status")
	return nil
}

// nodeCanary is prod's canary at 20 % (one step of an hour) on a local
// environment behind a node in this process, promoted from first to
// second under a load keyed by the commit that answered.
type nodeCanary struct {
	s             *Server
	c             *client.Client
	data, yaml    string
	first, second string
	load          *loadtest.Load
	id            int64 // the canary's deployment
}

func startNodeCanary(t *testing.T) *nodeCanary {
	t.Helper()
	requireNode(t)
	data := t.TempDir()
	runNodeHere(t, data)
	repo, prodAddr, yaml := canaryConfig(t, data, "[ { weight: 20, for: 1h } ]")
	s := start(t, yaml, Options{Node: &node.StartConfig{Exe: "/bin/false", DataDir: data}})
	c := newClient(t, s)
	ctx := context.Background()
	first, second := twoReleases(t, s, c, repo)

	load := loadtest.Start(loadtest.Config{Workers: 4, URL: "http://" + prodAddr + "/version", Timeout: 5 * time.Second,
		Key: func(_ *http.Response, body []byte) string { return commitOf(body) }})
	t.Cleanup(load.Stop)
	a, err := c.Promote(ctx, "prod", second, "second release")
	if err != nil {
		t.Fatal(err)
	}
	id := deploymentOf(t, c, a)
	waitFor(t, time.Minute, "prod's canary to run at 20 %", func() bool {
		ro, err := c.Rollout(ctx, "prod")
		return err == nil && ro.Active && ro.Canary != nil && ro.Canary.Weight == 20 && len(ro.Tracks) > 0
	})
	return &nodeCanary{s: s, c: c, data: data, yaml: yaml, first: first, second: second, load: load, id: id}
}

// TestCanaryThroughNodeServeRestart: ferry serve stops mid-canary on a
// local environment behind the node. The node keeps the split serving
// while ferry is gone; the next ferry aborts the canary cleanly through
// the node (EndSplit): the stable version serves every request again, the
// canary and baseline replicas are gone, the canary is recorded aborted
// and the deployment did not succeed. No request fails throughout.
func TestCanaryThroughNodeServeRestart(t *testing.T) {
	nc := startNodeCanary(t)
	s, data, first, second, load, id, ctx := nc.s, nc.data, nc.first, nc.second, nc.load, nc.id, context.Background()
	s.Close()
	stopped := time.Now()
	time.Sleep(500 * time.Millisecond) // ferry is gone; the node serves the split on
	if n := load.Served(stopped)[second]; n == 0 {
		t.Errorf("with ferry stopped the canary served nothing: %v", load.Served(stopped))
	}

	s2 := start(t, nc.yaml, Options{Node: &node.StartConfig{Exe: "/bin/false", DataDir: data}})
	c2 := newClient(t, s2)
	d := waitEnded(t, c2, id)
	if d.State == ferry.DeploymentSucceeded {
		t.Errorf("the interrupted canary's deployment = %s, want it not succeeded", d.State)
	}
	ro, err := c2.Rollout(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if ro.Canary == nil || ro.Canary.DeploymentID != id || ro.Canary.State != ferry.CanaryAborted || ro.Active {
		t.Errorf("prod's canary after ferry's restart = %+v (active %v), want deployment %d's, aborted", ro.Canary, ro.Active, id)
	}
	var pods []ferry.Replica
	waitFor(t, time.Minute, "prod to run its 2 stable replicas only", func() bool {
		pods = prodPods(t, c2)
		return len(pods) == 2
	})
	for _, r := range pods {
		if (r.Track != ferry.TrackStable && r.Track != "") || !r.Ready {
			t.Errorf("prod's replica %s after ferry's restart: track %s, ready %v; want a ready stable one", r.ID, r.Track, r.Ready)
		}
	}
	recovered := time.Now()
	time.Sleep(300 * time.Millisecond)
	load.Stop()
	if after := load.Served(recovered); after[second] != 0 || after[first] == 0 {
		t.Errorf("after the canary was aborted prod served %v, want %s only", after, ferry.ShortSHA(first))
	}
	if load.Failed() != 0 {
		t.Errorf("%d of %d requests on prod failed across ferry's restart mid-canary: %v", load.Failed(), load.OK()+load.Failed(), load.Errors())
	}
	t.Logf("restart mid-canary through the node: %d requests, %v, %d failed; deployment %s: %s", load.OK()+load.Failed(), load.Served(time.Time{}), load.Failed(), d.State, d.Error)
}

// TestCanaryThroughNodeHandover: a new node binary takes over mid-canary.
// It brings back prod's stable replicas only (the split is not handed
// over), with no request failed, and the controller, finding no canary
// track in the figures, aborts the canary it can no longer judge instead
// of promoting it.
func TestCanaryThroughNodeHandover(t *testing.T) {
	nc := startNodeCanary(t)
	c, data, first, second, load, id, ctx := nc.c, nc.data, nc.first, nc.second, nc.load, nc.id, context.Background()
	runNodeWith(t, node.Config{DataDir: data, Takeover: true, Logger: testLogger(t).With("part", "new node"), Version: "test-next"})
	d := waitEnded(t, c, id)
	if d.State != ferry.DeploymentFailed || !strings.Contains(d.Error, "no longer runs the split") {
		t.Errorf("the canary's deployment after the node's handover = %s (%s), want failed: the split is gone", d.State, d.Error)
	}
	ro, err := c.Rollout(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	if ro.Canary == nil || ro.Canary.DeploymentID != id || ro.Canary.State != ferry.CanaryAborted || ro.Active {
		t.Errorf("prod's canary after the handover = %+v (active %v), want deployment %d's, aborted", ro.Canary, ro.Active, id)
	}
	pods := prodPods(t, c)
	for _, r := range pods {
		if (r.Track != ferry.TrackStable && r.Track != "") || !r.Ready {
			t.Errorf("prod's replica %s after the handover: track %s, ready %v; want a ready stable one", r.ID, r.Track, r.Ready)
		}
	}
	if len(pods) != 2 {
		t.Errorf("prod runs %d replicas after the handover, want its 2 stable ones: %+v", len(pods), pods)
	}
	ended := time.Now()
	time.Sleep(300 * time.Millisecond)
	load.Stop()
	if after := load.Served(ended); after[second] != 0 || after[first] == 0 {
		t.Errorf("after the abort prod served %v, want %s only", after, ferry.ShortSHA(first))
	}
	if load.Failed() != 0 {
		t.Errorf("%d of %d requests on prod failed across the node's handover mid-canary: %v", load.Failed(), load.OK()+load.Failed(), load.Errors())
	}
	t.Logf("handover mid-canary: %d requests, %v, %d failed; deployment %s: %s", load.OK()+load.Failed(), load.Served(time.Time{}), load.Failed(), d.State, d.Error)
}

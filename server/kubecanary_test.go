package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/promtest"
	"github.com/ferryhq/ferry/internal/testport"
	"github.com/ferryhq/ferry/runtime/kube"
)

// trackLoad sends requests to exporters while it is on, one worker per
// exporter, until the test ends.
type trackLoad struct {
	on   atomic.Bool
	stop chan struct{}
	wg   sync.WaitGroup
}

func newTrackLoad(t *testing.T, exporters ...*promtest.Exporter) *trackLoad {
	l := &trackLoad{stop: make(chan struct{})}
	for _, e := range exporters {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				if !l.on.Load() {
					continue
				}
				if resp, err := http.Get(e.URL + "/"); err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	t.Cleanup(func() { close(l.stop); l.wg.Wait() })
	return l
}

// TestKubernetesCanary releases to prod on a real control plane through
// canaries judged on a real Prometheus server, which scrapes exporters
// standing in for the canary's and the baseline's pods (kwok's pods run
// nothing), labelled with the version label of the digest each track's
// Deployment runs: a canary failing 10 % of its requests is aborted (its
// Deployments removed, prod's Deployment back at its count on the old
// digest, the deployment failed with the figures); a healthy one is
// promoted (prod's Deployment rolled to its digest, the canary removed);
// one without traffic pauses inconclusive and is never promoted, and goes
// on when resumed, through a pause by hand; a rollback during a canary
// aborts it at once; and ferry restarted mid-canary aborts it cleanly.
func TestKubernetesCanary(t *testing.T) {
	k := newCluster(t)
	devNS, prodNS := k.Namespace("ferry-canary-dev"), k.Namespace("ferry-canary-prod")
	k.deployment(devNS, "tiny", 1)
	k.deployment(prodNS, "tiny", 4)

	steady := func(i int) time.Duration { return time.Duration(i%4) * time.Millisecond }
	canaryPods := promtest.NewExporter(t, "tiny", ferry.TrackCanary, "none", 0, steady)
	baselinePods := promtest.NewExporter(t, "tiny", ferry.TrackBaseline, "none", 0, steady)
	prom := promtest.Start(t, []string{canaryPods.Target(), baselinePods.Target()})
	load := newTrackLoad(t, canaryPods, baselinePods)
	q := promtest.Queries(prom)

	repo := newRepo(t, "testdata/tiny")
	onKube := func(ns string) string {
		return fmt.Sprintf("runtime: { kubernetes: { namespace: %s, deployment: tiny, container: app, kubeconfig: %s } }", ns, k.Kubeconfig)
	}
	prod := "  prod:\n    branch: release\n    from: dev\n    tags: [live]\n    " + onKube(prodNS) + `
    strategy:
      canary:
        steps: [ { weight: 25, for: 3s }, { weight: 50, for: 3s } ]
        analysis:
          interval: 1s
          minRequests: 20
          inconclusive: 8s
          prometheus:
            url: ` + q.URL + `
            requests: '` + q.Requests + `'
            errors: '` + q.Errors + `'
            latency: '` + q.Latency + `'
`
	yaml := strings.Replace(tinyConfig(repo.Dir, t.TempDir(), ""), "runtime: { local: { listen: 127.0.0.1:0 } }", onKube(devNS)+"\n"+prod, 1)
	// The restarted server must find the same registry: fix its port.
	yaml = strings.Replace(yaml, "registry: { listen: 127.0.0.1:0 }", "registry: { listen: "+testport.Addr(t)+" }", 1)
	s := start(t, yaml, Options{KubePoll: 100 * time.Millisecond})
	c := newClient(t, s)
	ctx := context.Background()
	repository := s.ImageRepository()

	// built pushes a commit to master and waits until dev runs it.
	built := func(subject string) (commit, digest string) {
		t.Helper()
		repo.Write("release.txt", subject+"\n")
		commit = repo.CommitAll(subject)
		if _, err := c.Trigger(ctx, "master", ""); err != nil {
			t.Fatal(err)
		}
		b := waitBuild(t, s, commit, 5*time.Minute)
		if b.State != ferry.BuildSucceeded {
			t.Fatalf("build of %s = %s", ferry.ShortSHA(commit), b.State)
		}
		waitDeployed(t, c, "dev", commit)
		return commit, b.Digest
	}
	promote := func(commit string) int64 {
		t.Helper()
		a, err := c.Promote(ctx, "prod", commit, "e2e: canary")
		if err != nil {
			t.Fatalf("promote %s: %v", ferry.ShortSHA(commit), err)
		}
		return deploymentOf(t, c, a)
	}
	// prodRuns checks prod's Deployment: digest at its 4 replicas, ready,
	// with no canary or baseline Deployment left beside it.
	prodRuns := func(digest string) {
		t.Helper()
		image := repository + "@" + digest
		waitFor(t, time.Minute, "prod at 4 ready pods of "+ferry.ShortDigest(digest)+" and no split", func() bool {
			got, _ := k.image(prodNS, "tiny")
			d, err := k.Client.AppsV1().Deployments(prodNS).Get(ctx, "tiny", metav1.GetOptions{})
			if err != nil || got != image || *d.Spec.Replicas != 4 {
				return false
			}
			for _, track := range []string{ferry.TrackCanary, ferry.TrackBaseline} {
				if _, err := k.Client.AppsV1().Deployments(prodNS).Get(ctx, "tiny-"+track, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
					return false
				}
			}
			pods, err := k.ReadyPods(ctx, prodNS, "app=tiny")
			if err != nil {
				t.Fatal(err)
			}
			on := 0
			for _, p := range pods {
				if p.Spec.Containers[0].Image == image {
					on++
				}
			}
			return on == 4 && len(pods) == 4
		})
	}
	rollout := func(c *client.Client) *api.CanaryBody {
		t.Helper()
		r, err := c.Rollout(ctx, "prod")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	waitCanary := func(c *client.Client, what string, cond func(r *api.CanaryBody) bool) *api.CanaryBody {
		t.Helper()
		var r *api.CanaryBody
		waitFor(t, 2*time.Minute, "prod's canary "+what, func() bool {
			r = rollout(c)
			return r.Canary != nil && cond(r)
		})
		return r
	}
	// splitRuns waits until the canary's split runs on the cluster, at
	// its first weight: both Deployments there, on their digests.
	splitRuns := func(canary, stable string) {
		t.Helper()
		waitFor(t, time.Minute, "the canary's and the baseline's Deployments", func() bool {
			for track, digest := range map[string]string{ferry.TrackCanary: canary, ferry.TrackBaseline: stable} {
				d, err := k.Client.AppsV1().Deployments(prodNS).Get(ctx, "tiny-"+track, metav1.GetOptions{})
				if err != nil || d.Spec.Template.Labels[kube.LabelVersion] != kube.Version(digest) || d.Status.AvailableReplicas < 1 {
					return false
				}
			}
			return true
		})
	}

	// The first release has nothing to be compared with: no canary.
	a, digestA := built("release A")
	if d := waitFinished(t, c, promote(a)); d.Commit != a {
		t.Fatalf("first release = %s, want A", ferry.ShortSHA(d.Commit))
	}
	prodRuns(digestA)

	t.Run("abort", func(t *testing.T) {
		b, digestB := built("release B: fails 10 %")
		canaryPods.Set(kube.Version(digestB), 10, steady)
		baselinePods.Set(kube.Version(digestA), 0, steady)
		load.on.Store(true)
		defer load.on.Store(false)
		d := waitEnded(t, c, promote(b))
		if d.State != ferry.DeploymentFailed || !strings.Contains(d.Error, "canary failed at 25%") || !strings.Contains(d.Error, "errors") {
			t.Errorf("deployment of B = %s (%q), want failed at 25%% with the figures", d.State, d.Error)
		}
		prodRuns(digestA)
		r := rollout(c)
		if r.Active || r.Canary.DeploymentID != d.ID || r.Canary.State != ferry.CanaryAborted || r.Canary.Weight != 0 {
			t.Errorf("rollout after the abort = %+v, want B's canary aborted at weight 0", r.Canary)
		}
		t.Logf("aborted: %s", d.Error)
	})

	var digestC string
	t.Run("promote", func(t *testing.T) {
		var cm string
		cm, digestC = built("release C: healthy")
		canaryPods.Set(kube.Version(digestC), 0, steady)
		load.on.Store(true)
		defer load.on.Store(false)
		d := waitEnded(t, c, promote(cm))
		if d.State != ferry.DeploymentSucceeded {
			t.Fatalf("deployment of C = %s (%s), want succeeded through the canary", d.State, d.Error)
		}
		prodRuns(digestC)
		if r := rollout(c); r.Canary.DeploymentID != d.ID || r.Canary.State != ferry.CanaryPromoted || r.Canary.Step != 1 {
			t.Errorf("rollout after the promotion = %+v, want C's canary promoted after its 2 steps", r.Canary)
		}
	})

	t.Run("inconclusive, pause and resume", func(t *testing.T) {
		dm, digestD := built("release D: no traffic at first")
		canaryPods.Set(kube.Version(digestD), 0, steady)
		baselinePods.Set(kube.Version(digestC), 0, steady)
		id := promote(dm)
		// No request reaches either track: Prometheus has no values
		// (flagger#361), which is inconclusive, never a pass.
		r := waitCanary(c, "paused for too little traffic", func(r *api.CanaryBody) bool {
			return r.Canary.DeploymentID == id && r.Canary.State == ferry.CanaryPaused
		})
		if !strings.Contains(r.Canary.Reason, "inconclusive") || r.Canary.Step != 0 {
			t.Errorf("paused canary = %+v, want paused inconclusive at its first step", r.Canary)
		}
		time.Sleep(4 * time.Second) // longer than the step: still paused, not promoted
		if r := rollout(c); r.Canary.State != ferry.CanaryPaused || r.Canary.Step != 0 {
			t.Errorf("paused canary 4 s later = %+v, want it paused at its first step", r.Canary)
		}
		if got, _ := k.image(prodNS, "tiny"); got != repository+"@"+digestC {
			t.Errorf("prod's Deployment runs %s while D's canary is paused, want C", got)
		}
		splitRuns(digestD, digestC)

		load.on.Store(true)
		defer load.on.Store(false)
		if _, err := c.RolloutCommand(ctx, "prod", "resume", "e2e: traffic is back"); err != nil {
			t.Fatalf("resume: %v", err)
		}
		if _, err := c.RolloutCommand(ctx, "prod", "pause", "e2e: hold on"); err != nil {
			t.Fatalf("pause: %v", err)
		}
		time.Sleep(5 * time.Second) // passing judgements, but paused: the step does not end
		if r := rollout(c); r.Canary.State != ferry.CanaryPaused || r.Canary.Step != 0 || !strings.Contains(r.Canary.Reason, "e2e: hold on") {
			t.Errorf("canary paused by hand 5 s later = %+v, want it paused at its first step", r.Canary)
		}
		if _, err := c.RolloutCommand(ctx, "prod", "resume", "e2e: go on"); err != nil {
			t.Fatalf("resume: %v", err)
		}
		if d := waitEnded(t, c, id); d.State != ferry.DeploymentSucceeded {
			t.Fatalf("deployment of D = %s (%s), want succeeded once resumed", d.State, d.Error)
		}
		prodRuns(digestD)
		digestC = digestD // what prod runs now
	})

	t.Run("rollback during a canary", func(t *testing.T) {
		before, err := c.Deployments(ctx, "prod", 20)
		if err != nil {
			t.Fatal(err)
		}
		em, digestE := built("release E: rolled back mid-canary")
		canaryPods.Set(kube.Version(digestE), 0, steady)
		baselinePods.Set(kube.Version(digestC), 0, steady)
		// No traffic: the canary waits at its first step as long as the
		// test needs.
		id := promote(em)
		waitCanary(c, "running E", func(r *api.CanaryBody) bool { return r.Active && r.Canary.DeploymentID == id })
		splitRuns(digestE, digestC)
		started := time.Now()
		a, err := c.Rollback(ctx, "prod", "", "e2e: roll back")
		if err != nil {
			t.Fatal(err)
		}
		rb := waitFinished(t, c, deploymentOf(t, c, a))
		t.Logf("rollback finished %s after it was asked", time.Since(started).Round(time.Millisecond))
		if d := waitEnded(t, c, id); d.State == ferry.DeploymentSucceeded {
			t.Errorf("E's deployment = %s, want it ended without success by the rollback", d.State)
		}
		if r := rollout(c); r.Canary.DeploymentID != id || r.Canary.State != ferry.CanaryAborted || !strings.Contains(r.Canary.Reason, "rollback") {
			t.Errorf("E's canary after the rollback = %+v, want aborted by the rollback", r.Canary)
		}
		var prev *ferry.Deployment // the release before D, what the rollback restores
		for _, d := range before {
			if d.State == ferry.DeploymentSucceeded && d.Digest != digestC {
				prev = d
				break
			}
		}
		if prev == nil || rb.Digest != prev.Digest {
			t.Fatalf("rollback to %s, want the release before D (%v)", ferry.ShortDigest(rb.Digest), prev)
		}
		prodRuns(rb.Digest)
		digestC = rb.Digest
	})

	t.Run("restart mid-canary", func(t *testing.T) {
		fm, digestF := built("release F: ferry restarts mid-canary")
		canaryPods.Set(kube.Version(digestF), 0, steady)
		baselinePods.Set(kube.Version(digestC), 0, steady)
		id := promote(fm)
		waitCanary(c, "running F", func(r *api.CanaryBody) bool { return r.Active && r.Canary.DeploymentID == id })
		splitRuns(digestF, digestC)
		if err := s.Close(); err != nil {
			t.Fatalf("stop ferry mid-canary: %v", err)
		}
		second := start(t, yaml, Options{KubePoll: 100 * time.Millisecond})
		c2 := newClient(t, second)
		r := waitCanary(c2, "aborted by the restart", func(r *api.CanaryBody) bool {
			return r.Canary.DeploymentID == id && r.Canary.State == ferry.CanaryAborted
		})
		if r.Active || !strings.Contains(r.Canary.Reason, "ferry restarted mid-canary") {
			t.Errorf("F's canary after the restart = %+v, want aborted: ferry restarted mid-canary", r.Canary)
		}
		if d := waitEnded(t, c2, id); d.State == ferry.DeploymentSucceeded {
			t.Errorf("F's deployment after the restart = %s, want it closed without success", d.State)
		}
		prodRuns(digestC)
	})
}

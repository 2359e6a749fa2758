package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/loadtest"
	"github.com/ferryhq/ferry/internal/testport"
)

// BenchmarkPromoteRollback measures a controlled release and its undo on
// the local runtime: the tiny app, dev on 2 replicas and prod (from dev,
// branch release, default release tags) on 4. Two builds, A and B, ran in
// dev; A is released once. Each iteration promotes B through the API and
// times it until prod's target reports all 4 serving replicas on B's
// digest and none on another (promote-s/op), then rolls back and times the
// same for A (rollback-s/op); the API calls alone (gates, git, registry
// tag, queueing) are promote-call-s/op and rollback-call-s/op. Each end
// state is cross-checked through prod's balancer. 8 closed-loop keep-alive clients send GETs to prod
// throughout (load-req/s, failed-requests). The registry requests made
// during the promote calls are counted through the publisher's transport:
// the blob uploads (promote-blob-uploads, want 0: a release re-tags the
// existing digest) and all requests (promote-registry-req/op); the blob
// uploads of whole cycles, rollouts and tag moves included, are
// cycle-blob-uploads.
//
//	go test -run '^$' -bench PromoteRollback -benchtime 10x ./server/
func BenchmarkPromoteRollback(b *testing.B) {
	repo := newRepo(b, "testdata/tiny")
	devAddr, prodAddr := testport.Addr(b), testport.Addr(b)
	onLocal := func(replicas int, addr string) string {
		return fmt.Sprintf("runtime: { local: { replicas: %d, listen: %s, readiness: /version, args: [\"-listen\", \"{{.Addr}}\"] } }\n"+
			"    verify: [ { http: GET /version, expect: 200 } ]", replicas, addr)
	}
	yaml := strings.Replace(tinyConfig(repo.Dir, b.TempDir(), ""), "runtime: { local: { listen: 127.0.0.1:0 } }",
		onLocal(2, devAddr)+"\n  prod:\n    branch: release\n    from: dev\n    tags: [live]\n    "+onLocal(4, prodAddr), 1)
	count := newCounter()
	s := start(b, yaml, Options{Transport: count})
	c := newClient(b, s)
	ctx := context.Background()
	devURL, prodURL := "http://"+devAddr, "http://"+prodAddr

	// Builds A and B, each committed, triggered and serving in dev.
	type build struct{ commit, digest string }
	var ab [2]build
	for i := range ab {
		repo.Write("release.txt", fmt.Sprintf("release %d\n", i))
		commit := repo.CommitAll(fmt.Sprintf("release %d", i))
		if _, err := c.Trigger(ctx, "master", ""); err != nil {
			b.Fatal(err)
		}
		waitServing(b, devURL, commit, 5*time.Minute)
		bd := waitBuild(b, s, commit, time.Minute)
		if bd.State != ferry.BuildSucceeded || bd.Digest == "" {
			b.Fatalf("build of %s: %s, digest %q", ferry.ShortSHA(commit), bd.State, bd.Digest)
		}
		waitDeployed(b, c, "dev", commit)
		ab[i] = build{commit, bd.Digest}
	}
	if ab[0].digest == ab[1].digest {
		b.Fatalf("builds A and B have the same digest %s", ab[0].digest)
	}
	// Prod's first release is A, so a rollback always has somewhere to go.
	d, err := c.Promote(ctx, "prod", ab[0].commit, "first release")
	if err != nil {
		b.Fatal(err)
	}
	waitReplicas(b, c, "prod", ab[0].digest, 4)
	waitFinished(b, c, deploymentOf(b, c, d))

	// The load: 8 clients, each on its own keep-alive connection.
	load := loadtest.Start(loadtest.Config{Workers: 8, URL: prodURL + "/version"})
	loadStart := time.Now()

	var promote, rollback, promoteCall, rollbackCall time.Duration
	var promoteUploads, promoteRequests, cycleUploads int64
	var releases []string
	b.ResetTimer()
	for range b.N {
		cycleStart := count.uploads.Load()
		uploads, requests := count.uploads.Load(), count.total.Load()
		t0 := time.Now()
		d, err := c.Promote(ctx, "prod", ab[1].commit, "bench: promote B")
		if err != nil {
			b.Fatalf("promote %s: %v", ferry.ShortSHA(ab[1].commit), err)
		}
		promoteCall += time.Since(t0)
		promoteUploads += count.uploads.Load() - uploads
		promoteRequests += count.total.Load() - requests
		waitReplicas(b, c, "prod", ab[1].digest, 4)
		promote += time.Since(t0)
		wantAnswers(b, prodURL, ab[1].commit, 16)
		if got := waitFinished(b, c, deploymentOf(b, c, d)); got.Kind != ferry.DeployPromote || !strings.HasPrefix(got.Release, "RC") {
			b.Fatalf("promotion = %s %q, want a promote with an RC… release", got.Kind, got.Release)
		} else {
			releases = append(releases, got.Release)
		}

		t0 = time.Now()
		d, err = c.Rollback(ctx, "prod", "", "bench: roll back to A")
		if err != nil {
			b.Fatalf("rollback: %v", err)
		}
		rollbackCall += time.Since(t0)
		waitReplicas(b, c, "prod", ab[0].digest, 4)
		rollback += time.Since(t0)
		wantAnswers(b, prodURL, ab[0].commit, 16)
		if got := waitFinished(b, c, deploymentOf(b, c, d)); got.Kind != ferry.DeployRollback || got.Commit != ab[0].commit {
			b.Fatalf("rollback = %s of %s, want a rollback to %s", got.Kind, ferry.ShortSHA(got.Commit), ferry.ShortSHA(ab[0].commit))
		}
		cycleUploads += count.uploads.Load() - cycleStart
	}
	b.StopTimer()
	load.Stop()
	elapsed := time.Since(loadStart)
	n := float64(b.N)
	b.ReportMetric(promote.Seconds()/n, "promote-s/op")
	b.ReportMetric(rollback.Seconds()/n, "rollback-s/op")
	b.ReportMetric(promoteCall.Seconds()/n, "promote-call-s/op")
	b.ReportMetric(rollbackCall.Seconds()/n, "rollback-call-s/op")
	b.ReportMetric(float64(load.OK()+load.Failed())/elapsed.Seconds(), "load-req/s")
	b.ReportMetric(float64(load.Failed()), "failed-requests")
	b.ReportMetric(float64(promoteUploads), "promote-blob-uploads")
	b.ReportMetric(float64(promoteRequests)/n, "promote-registry-req/op")
	b.ReportMetric(float64(cycleUploads), "cycle-blob-uploads")
	b.Logf("%d cycles: releases %s; %d requests ok, %d failed", b.N, strings.Join(releases, " "), load.OK(), load.Failed())
	if errs := load.Errors(); len(errs) > 0 {
		b.Logf("first failed request: %s", errs[0])
	}
}

// waitReplicas polls env's status until n replicas are ready on digest and
// none on another: every request the balancer hands out reaches digest.
func waitReplicas(b testing.TB, c *client.Client, env, digest string, n int) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	var last string
	for time.Now().Before(deadline) {
		st, err := c.Status(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range st.Environments {
			if e.Name != env {
				continue
			}
			on, other := 0, 0
			for _, p := range e.Pods {
				switch {
				case !p.Ready:
				case p.Digest == digest:
					on++
				default:
					other++
				}
			}
			if on == n && other == 0 {
				return
			}
			last = fmt.Sprintf("%d ready on it, %d ready on others, of %d pods", on, other, len(e.Pods))
		}
		time.Sleep(2 * time.Millisecond)
	}
	b.Fatalf("%s did not reach %d replicas on %s: %s", env, n, digest, last)
}

// wantAnswers asks url's /version n times through the balancer and fails
// unless every answer names commit.
func wantAnswers(b testing.TB, url, commit string, n int) {
	b.Helper()
	for i := range n {
		resp, err := http.Get(url + "/version")
		if err != nil {
			b.Fatalf("answer %d: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), commit) {
			b.Fatalf("answer %d from %s = %q, want commit %s on every replica", i, url, body, ferry.ShortSHA(commit))
		}
	}
}

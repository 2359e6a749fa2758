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
	"github.com/ferryhq/ferry/builder"
	"github.com/ferryhq/ferry/internal/loadtest"
	"github.com/ferryhq/ferry/internal/testport"
)

// BenchmarkPushToDev measures the loop a developer waits on: a new commit
// on master until dev's load balancer answers with it, for the tiny app on
// 2 replicas. It reports that latency minus the test and build steps (what
// ferry itself adds: fetch, queue, push, tag, rollout, verification), and
// runs a closed-loop load generator against dev the whole time, reporting
// its request rate and every failed request across the rollouts.
//
//	go test -run '^$' -bench PushToDev -benchtime 10x ./server/
func BenchmarkPushToDev(b *testing.B) {
	repo := newRepo(b, "testdata/tiny")
	devAddr := testport.Addr(b)
	yaml := tinyConfig(repo.Dir, b.TempDir(), "") // dev on port 0 is replaced below
	yaml = strings.Replace(yaml, "runtime: { local: { listen: 127.0.0.1:0 } }",
		fmt.Sprintf("runtime: { local: { replicas: 2, listen: %s, readiness: /version, args: [\"-listen\", \"{{.Addr}}\"] } }\n    verify: [ { http: GET /version, expect: 200 } ]", devAddr), 1)
	s := start(b, yaml, Options{})
	c := newClient(b, s)
	ctx := context.Background()
	devURL := "http://" + devAddr
	first := repo.Head()
	if _, err := c.Trigger(ctx, "master", ""); err != nil {
		b.Fatal(err)
	}
	waitServing(b, devURL, first, 5*time.Minute)

	load := loadtest.Start(loadtest.Config{Workers: 8, URL: devURL + "/version"})
	loadStart := time.Now()

	var total, testBuild time.Duration
	b.ResetTimer()
	for i := range b.N {
		repo.Write("change.txt", fmt.Sprintf("change %d\n", i))
		commit := repo.CommitAll(fmt.Sprintf("change %d", i))
		start := time.Now()
		if _, err := c.Trigger(ctx, "master", ""); err != nil {
			b.Fatal(err)
		}
		waitServing(b, devURL, commit, 5*time.Minute)
		total += time.Since(start)
		build := waitBuild(b, s, commit, time.Minute)
		for _, st := range build.Steps {
			if st.Name == builder.StepTest || st.Name == builder.StepBuild {
				testBuild += st.FinishedAt.Sub(st.StartedAt)
			}
		}
		if build.State != ferry.BuildSucceeded {
			b.Fatalf("build %s", build.State)
		}
	}
	b.StopTimer()
	load.Stop()
	elapsed := time.Since(loadStart)
	n := float64(b.N)
	b.ReportMetric(total.Seconds()/n, "push-to-serving-s/op")
	b.ReportMetric(testBuild.Seconds()/n, "test+build-s/op")
	b.ReportMetric((total-testBuild).Seconds()/n, "ferry-s/op")
	b.ReportMetric(float64(load.OK()+load.Failed())/elapsed.Seconds(), "load-req/s")
	b.ReportMetric(float64(load.Failed()), "failed-requests")
	if errs := load.Errors(); len(errs) > 0 {
		b.Logf("first failed request: %s", errs[0])
	}
}

// waitServing waits until dev's /version names commit.
func waitServing(b *testing.B, url, commit string, timeout time.Duration) {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/version")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), commit) {
				return
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("dev did not serve %s within %s", commit, timeout)
}

package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// BenchmarkRelease measures promotion and rollback on the local runtime:
// the tiny app on 4 prod replicas; each iteration promotes the build prod
// does not run (a new RC tag on an existing digest) and waits until every
// replica answers with its commit, then rolls back and waits the same way.
// A closed-loop load generator sends GETs to prod throughout; the failed
// requests and the blobs the promotions uploaded are reported.
//
//	go test -run '^$' -bench Release -benchtime 10x ./server/
func BenchmarkRelease(b *testing.B) {
	repo := newGitRepo(b, "testdata/tiny")
	devAddr, prodAddr := freeAddr(b), freeAddr(b)
	local := func(n int, addr string) string {
		return fmt.Sprintf("runtime: { local: { replicas: %d, listen: %s, readiness: /version, args: [\"-listen\", \"{{.Addr}}\"] } }", n, addr)
	}
	yaml := strings.Replace(tinyConfig(repo.dir, b.TempDir(), ""), "    runtime: { local: { listen: 127.0.0.1:0 } }\n",
		"    "+local(2, devAddr)+"\n  prod:\n    branch: release\n    from: dev\n    tags: [live]\n    "+local(4, prodAddr)+"\n", 1)
	count := newCounter()
	s := start(b, yaml, Options{Transport: count})
	c := newClient(b, s)
	ctx := context.Background()
	devURL, prodURL := "http://"+devAddr, "http://"+prodAddr

	// Two builds that ran in dev: A and B.
	var commits []string
	for i := range 2 {
		repo.write("release.txt", fmt.Sprintf("release %d\n", i))
		commit := repo.commit(fmt.Sprintf("release %d", i))
		if _, err := c.Trigger(ctx, "master", ""); err != nil {
			b.Fatal(err)
		}
		waitServing(b, devURL, commit, 5*time.Minute)
		waitHealthy(b, c, "dev", commit)
		commits = append(commits, commit)
	}
	if _, err := c.Promote(ctx, "prod", commits[0], "first release"); err != nil {
		b.Fatal(err)
	}
	waitAll(b, prodURL, commits[0], 4)
	waitHealthy(b, c, "prod", commits[0])

	var ok, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := hc.Get(prodURL + "/version")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						ok.Add(1)
						continue
					}
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
			}
		}()
	}
	loadStart := time.Now()
	var promote, rollback time.Duration
	var uploads int64
	b.ResetTimer()
	for range b.N {
		before := count.uploads.Load()
		start := time.Now()
		if _, err := c.Promote(ctx, "prod", commits[1], "bench"); err != nil {
			b.Fatal(err)
		}
		uploads += count.uploads.Load() - before
		waitAll(b, prodURL, commits[1], 4)
		promote += time.Since(start)
		waitHealthy(b, c, "prod", commits[1])

		start = time.Now()
		if _, err := c.Rollback(ctx, "prod", "", "bench"); err != nil {
			b.Fatal(err)
		}
		waitAll(b, prodURL, commits[0], 4)
		rollback += time.Since(start)
		waitHealthy(b, c, "prod", commits[0])
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	n := float64(b.N)
	b.ReportMetric(promote.Seconds()/n, "promote-s/op")
	b.ReportMetric(rollback.Seconds()/n, "rollback-s/op")
	b.ReportMetric(float64(ok.Load()+failed.Load())/time.Since(loadStart).Seconds(), "load-req/s")
	b.ReportMetric(float64(failed.Load()), "failed-requests")
	b.ReportMetric(float64(uploads), "promote-blob-uploads")
	if e := firstErr.Load(); e != nil {
		b.Logf("first failed request: %s", e)
	}
}

// waitAll waits until n answers in a row from url's /version name commit:
// with round robin over n replicas, every replica runs it.
func waitAll(b *testing.B, url, commit string, n int) {
	b.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(2 * time.Minute)
	inARow := 0
	for time.Now().Before(deadline) {
		resp, err := hc.Get(url + "/version")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(body), commit) {
				if inARow++; inARow >= 2*n {
					return
				}
				continue
			}
		}
		inARow = 0
		time.Sleep(2 * time.Millisecond)
	}
	b.Fatalf("%s did not serve %s on every replica", url, ferry.ShortSHA(commit))
}

// waitHealthy waits until env's deployment of commit has finished.
func waitHealthy(b *testing.B, c interface {
	Deployments(ctx context.Context, env string, limit int) ([]*ferry.Deployment, error)
}, env, commit string) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		ds, err := c.Deployments(context.Background(), env, 1)
		if err == nil && len(ds) == 1 && ds[0].Commit == commit && ds[0].State.Final() {
			if ds[0].State != ferry.DeploymentSucceeded {
				b.Fatalf("deployment %d to %s: %s (%s)", ds[0].ID, env, ds[0].State, ds[0].Error)
			}
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	b.Fatalf("%s's deployment of %s did not finish", env, ferry.ShortSHA(commit))
}

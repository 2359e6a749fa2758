package server

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/gittest"
	"github.com/ferryhq/ferry/internal/loadtest"
)

// BenchmarkCanary releases birthday-app to prod through the default canary
// (strategy.canary with no field given: 5 %, 25 %, 50 % steps, a baseline,
// judged every 5 s) under a synthetic load, for each rate: a release that
// fails 5 % of its requests, one that answers 200 ms slower, then a
// healthy one. Each is a real commit of birthday-app (a middleware put in
// front of its routes, below), built and tested by ferry, deployed to dev,
// then promoted. The load is closed-loop GETs of /version on prod's
// balancer, paced to the rate. It reports, per release:
//
//   - abort-s: the first request the new version answered → the
//     deployment failed (the bad ones); promote-s: the promote call → the
//     deployment succeeded (the healthy one);
//
//   - new-share-%: requests the new version answered (or failed) of all
//     requests sent while the release ran; failed-%: requests failed;
//
//   - req/s: the load's real rate.
//
//     go test -run '^$' -bench Canary -benchtime 1x -timeout 60m ./server/
func BenchmarkCanary(b *testing.B) {
	for _, rate := range []struct {
		name    string
		workers int
		pause   time.Duration
	}{
		{"20rps", 2, 100 * time.Millisecond},
		{"500rps", 10, 20 * time.Millisecond},
	} {
		b.Run(rate.name, func(b *testing.B) {
			bc := newCanaryBench(b)
			for i, r := range []struct {
				name, fault string
				healthy     bool
			}{
				{"5xx", `if benchCount.Add(1)%20 == 0 { http.Error(w, "bench fault", http.StatusInternalServerError); return }`, false},
				{"200ms", `time.Sleep(200 * time.Millisecond)`, false},
				{"healthy", ``, true},
			} {
				b.Run(r.name, func(b *testing.B) {
					for n := range b.N {
						bc.release(b, fmt.Sprintf("%s-%d-%d", r.name, i, n), r.fault, r.healthy, rate.workers, rate.pause)
					}
				})
			}
		})
	}
}

// canaryBench is a ferry with birthday-app in dev and in prod, prod
// releasing through the default canary.
type canaryBench struct {
	s        *Server
	repo     *gittest.Repo
	prodURL  string
	released string // what prod runs
}

func newCanaryBench(b *testing.B) *canaryBench {
	repo := newRepo(b, "../examples/birthday-app")
	prodAddr := freeAddr(b)
	yaml := fmt.Sprintf(`app: birthday-app
dataDir: %s
server: { listen: 127.0.0.1:0 }
registry: { listen: 127.0.0.1:0 }
source: { repo: %s, poll: 0 }
build:
  test: go test ./birthday/...
  go: { main: ./cmd/birthday-app, ldflags: "-X %s.Commit={{.Commit}}" }
environments:
  dev:
    branch: master
    runtime: { local: { listen: 127.0.0.1:0, readiness: /statusz } }
  prod:
    from: dev
    strategy: { canary: {} }
    runtime: { local: { replicas: 2, listen: %s, readiness: /statusz } }
`, b.TempDir(), repo.Dir, buildinfoPkg, prodAddr)
	s := start(b, yaml, Options{})
	c := newClient(b, s)
	first := repo.Head()
	if bd := waitBuild(b, s, first, 10*time.Minute); bd.State != ferry.BuildSucceeded {
		b.Fatalf("build of the initial import: %s (%s)", bd.State, bd.Reason)
	}
	waitDeployed(b, c, "dev", first)
	a, err := c.Promote(context.Background(), "prod", first, "first release")
	if err != nil {
		b.Fatal(err)
	}
	waitFinished(b, c, deploymentOf(b, c, a))
	// The middleware a release puts in front of the routes: it names the
	// version in a header and, for a bad release, fails or delays.
	handler, err := os.ReadFile(filepath.Join(repo.Dir, "server", "server.go"))
	if err != nil {
		b.Fatal(err)
	}
	const routes = "s.handler = s.requestID(s.observe(s.routes()))"
	if !strings.Contains(string(handler), routes) {
		b.Fatalf("birthday-app's server.go no longer has %q: the benchmark's release cannot hook in", routes)
	}
	repo.Write("server/server.go", strings.Replace(string(handler), routes, "s.handler = s.requestID(s.observe(benchRelease(s.routes())))", 1))
	return &canaryBench{s: s, repo: repo, prodURL: "http://" + prodAddr, released: first}
}

// release commits birthday-app as version (failing with fault, Go code
// run before each request is served), waits until dev runs it, and
// promotes it to prod under the load, until the deployment ends.
func (bc *canaryBench) release(b *testing.B, version, fault string, healthy bool, workers int, pause time.Duration) {
	b.StopTimer()
	ctx := context.Background()
	c := newClient(b, bc.s)
	bc.repo.Write("server/benchrelease.go", fmt.Sprintf(`package server

import (
	"net/http"
	"sync/atomic"
	"time"
)

var (
	benchCount atomic.Int64
	_          = time.Second
)

// benchRelease is ferry's canary benchmark's release %[1]s.
func benchRelease(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/statusz" {
			h.ServeHTTP(w, r)
			return
		}
		w.Header().Set("X-Bench-Version", %[1]q)
		%[2]s
		h.ServeHTTP(w, r)
	})
}
`, version, fault))
	commit := bc.repo.CommitAll("release " + version)
	if _, err := c.Trigger(ctx, "master", ""); err != nil {
		b.Fatal(err)
	}
	if bd := waitBuild(b, bc.s, commit, 10*time.Minute); bd.State != ferry.BuildSucceeded {
		b.Fatalf("build of %s: %s (%s)", version, bd.State, bd.Reason)
	}
	waitDeployed(b, c, "dev", commit)

	load := loadtest.Start(loadtest.Config{
		Workers: workers, Pause: pause, URL: bc.prodURL + "/version",
		Key: func(res *http.Response, _ []byte) string { return res.Header.Get("X-Bench-Version") },
	})
	time.Sleep(time.Second) // the load runs before the release starts
	b.StartTimer()
	began := time.Now()
	a, err := c.Promote(ctx, "prod", commit, "release "+version)
	if err != nil {
		b.Fatal(err)
	}
	d := waitEnded(b, c, deploymentOf(b, c, a))
	b.StopTimer()
	load.Stop()
	ran := time.Since(began)
	served := load.Served(began)
	total := load.OK() + load.Failed()
	bad := int64(served[version]) + load.Failed()
	b.ReportMetric(float64(total)/(ran.Seconds()+1), "req/s")
	b.ReportMetric(100*float64(bad)/float64(total), "new-share-%")
	b.ReportMetric(100*float64(load.Failed())/float64(total), "failed-%")
	switch {
	case healthy && d.State != ferry.DeploymentSucceeded:
		b.Errorf("healthy release %s = %s (%s), want succeeded", version, d.State, d.Error)
	case healthy:
		b.ReportMetric(d.FinishedAt.Sub(began).Seconds(), "promote-s")
		bc.released = commit
	case d.State != ferry.DeploymentFailed:
		b.Errorf("bad release %s = %s, want failed (aborted)", version, d.State)
	default:
		first, ok := load.FirstServed(version)
		if !ok {
			b.Errorf("bad release %s: no request answered by it", version)
		}
		b.ReportMetric(d.FinishedAt.Sub(first).Seconds(), "abort-s")
		b.Logf("%s aborted: %s", version, d.Error)
	}
	first, _ := load.FirstServed(version)
	b.Logf("%s: %s; %d requests in %s (%.1f/s), %d answered by the new version (first %s after the promote call), %d failed; deployment %s after %s",
		version, d.State, total, ran.Round(time.Millisecond), float64(total)/ran.Seconds(), served[version], first.Sub(began).Round(time.Millisecond),
		load.Failed(), d.State, d.FinishedAt.Sub(began).Round(time.Millisecond))
}

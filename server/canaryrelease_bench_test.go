package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/gittest"
	"github.com/ferryhq/ferry/internal/loadtest"
	"github.com/ferryhq/ferry/internal/testport"
)

// The canary benchmarks release birthday-app to prod through a canary
// under a synthetic load. The good version and the baseline are
// birthday-app as it is; a bad release is birthday-app behind a fault
// wrapper that the release's own commit puts in front of its routes
// (server/benchfault.go, below), so the product app has no fault knob.
// The load is closed-loop GETs of /version on prod's balancer, keyed by
// the commit that answered.
//
//	go test -run '^$' -bench CanaryRelease -benchtime 1x -timeout 60m ./server/
//	go test -run '^$' -bench CanaryAA -benchtime 1x -timeout 60m ./server/

// birthdayFault is the wrapper of a bad release: fault runs before each
// request but the readiness probe's.
const birthdayFault = `package server

import (
	"net/http"
	"sync/atomic"
	"time"
)

var (
	benchServed atomic.Int64
	_           = time.Second
)

// benchFault is ferry's canary benchmark's release %s.
func benchFault(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/statusz" {
			%s
		}
		h.ServeHTTP(w, r)
	})
}
`

// birthdayRoutes is the line of birthday-app's server.go the wrapper goes
// into.
const birthdayRoutes = "s.handler = s.requestID(s.observe(s.routes()))"

// loadRate is a synthetic load: workers each pausing between requests.
type loadRate struct {
	name    string
	workers int
	pause   time.Duration
}

var canaryRates = []loadRate{
	{"20rps", 2, 100 * time.Millisecond},
	{"500rps", 10, 20 * time.Millisecond},
}

// birthdayCanary is a ferry with birthday-app in dev and in prod, prod
// releasing through strategy.
type birthdayCanary struct {
	s       *Server
	c       *client.Client
	repo    *gittest.Repo
	prodURL string
	server  string // birthday-app's server.go as imported
}

func newBirthdayCanary(b *testing.B, strategy string) *birthdayCanary {
	repo := newRepo(b, "../examples/birthday-app")
	prodAddr := testport.Addr(b)
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
    strategy: %s
    runtime: { local: { replicas: 2, listen: %s, readiness: /statusz } }
`, b.TempDir(), repo.Dir, buildinfoPkg, strategy, prodAddr)
	s := start(b, yaml, Options{})
	bc := &birthdayCanary{s: s, c: newClient(b, s), repo: repo, prodURL: "http://" + prodAddr + "/version"}
	src, err := os.ReadFile(filepath.Join(repo.Dir, "server", "server.go"))
	if err != nil {
		b.Fatal(err)
	}
	if !strings.Contains(string(src), birthdayRoutes) {
		b.Fatalf("birthday-app's server.go no longer has %q: a bad release cannot wrap its routes", birthdayRoutes)
	}
	bc.server = string(src)
	first := repo.Head()
	if bd := waitBuild(b, s, first, 10*time.Minute); bd.State != ferry.BuildSucceeded {
		b.Fatalf("build of birthday-app: %s (%s)", bd.State, bd.Reason)
	}
	waitDeployed(b, bc.c, "dev", first)
	a, err := bc.c.Promote(context.Background(), "prod", first, "first release")
	if err != nil {
		b.Fatal(err)
	}
	waitFinished(b, bc.c, deploymentOf(b, bc.c, a)) // straight: nothing ran to compare with
	return bc
}

// commit commits a release of birthday-app, behind the wrapper running
// fault when fault is not empty (birthday-app as imported when it is),
// named by a file readme so that each release is its own commit, and
// waits until dev runs it.
func (bc *birthdayCanary) commit(b *testing.B, name, fault string) string {
	b.Helper()
	// A healthy release keeps the wrapper's file, unused: birthday-app's
	// routes as imported serve every request.
	bc.repo.Write("server/benchfault.go", fmt.Sprintf(birthdayFault, name, fault))
	if fault == "" {
		bc.repo.Write("server/server.go", bc.server)
	} else {
		bc.repo.Write("server/server.go", strings.Replace(bc.server, birthdayRoutes, "s.handler = s.requestID(s.observe(benchFault(s.routes())))", 1))
	}
	bc.repo.Write("BENCH_RELEASE", name+"\n")
	commit := bc.repo.CommitAll("release " + name)
	if _, err := bc.c.Trigger(context.Background(), "master", ""); err != nil {
		b.Fatal(err)
	}
	if bd := waitBuild(b, bc.s, commit, 10*time.Minute); bd.State != ferry.BuildSucceeded {
		b.Fatalf("build of %s: %s (%s)", name, bd.State, bd.Reason)
	}
	waitDeployed(b, bc.c, "dev", commit)
	return commit
}

// load starts rate's load on prod's /version.
func (bc *birthdayCanary) load(rate loadRate) *loadtest.Load {
	return loadtest.Start(loadtest.Config{
		Workers: rate.workers, Pause: rate.pause, URL: bc.prodURL,
		Key: func(_ *http.Response, body []byte) string {
			var v struct{ Commit string }
			_ = json.Unmarshal(body, &v)
			return v.Commit
		},
	})
}

// release is one release under load, measured.
type release struct {
	d              *ferry.Deployment
	began, ended   time.Time
	total, bad     int64 // requests sent; answered or failed by the new version
	failed         int64
	first          time.Time // the new version's first answer
	answeredByNew  bool
	requestsPerSec float64
}

// promote releases commit to prod under rate's load (running a second
// before) and waits until the deployment ends.
func (bc *birthdayCanary) promote(b *testing.B, commit string, rate loadRate) release {
	b.Helper()
	load := bc.load(rate)
	time.Sleep(time.Second)
	began := time.Now()
	a, err := bc.c.PromoteDowngrade(context.Background(), "prod", commit, "benchmark release", true)
	if err != nil {
		b.Fatal(err)
	}
	d := waitEndedWithin(b, bc.c, deploymentOf(b, bc.c, a), 15*time.Minute)
	load.Stop()
	ended := time.Now()
	served := load.Served(began)
	r := release{d: d, began: began, ended: ended, failed: load.Failed()}
	for _, n := range served {
		r.total += int64(n)
	}
	r.total += r.failed
	r.bad = int64(served[commit]) + r.failed
	r.first, r.answeredByNew = load.FirstServed(commit)
	r.requestsPerSec = float64(r.total) / ended.Sub(began).Seconds()
	if errs := load.Errors(); len(errs) > 0 {
		b.Logf("first failures: %v", errs)
	}
	return r
}

// BenchmarkCanaryRelease releases birthday-app through the default canary
// (strategy.canary: {}: 5 %, 25 %, 50 %, a baseline, judged every 5 s),
// at 20 and at 500 req/s: one release failing 5 % of requests, one
// 200 ms slower (both must abort), then a healthy one (must reach 100 %).
// Figures per release: abort-s (the bad version's first answer → the
// deployment failed), promote-s (the promote call → succeeded), new-%
// (requests answered or failed by the new version, of all sent during
// the release), failed-% (requests failed), req/s (the load's real rate).
func BenchmarkCanaryRelease(b *testing.B) {
	for _, rate := range canaryRates {
		b.Run(rate.name, func(b *testing.B) {
			bc := newBirthdayCanary(b, "{ canary: {} }")
			for _, r := range []struct{ name, fault string }{
				{"5xx", `if benchServed.Add(1)%20 == 0 { http.Error(w, "benchmark fault", http.StatusInternalServerError); return }`},
				{"200ms", `time.Sleep(200 * time.Millisecond)`},
				{"healthy", ``},
			} {
				b.Run(r.name, func(b *testing.B) {
					for i := range b.N { // not b.Loop: the builds between releases are not timed
						b.StopTimer()
						commit := bc.commit(b, fmt.Sprintf("%s-%s-%d", rate.name, r.name, i), r.fault)
						b.StartTimer()
						rel := bc.promote(b, commit, rate)
						b.StopTimer()
						reportRelease(b, r.name, r.fault == "", rel)
					}
				})
			}
		})
	}
}

func reportRelease(b *testing.B, name string, healthy bool, r release) {
	b.Helper()
	b.ReportMetric(r.requestsPerSec, "req/s")
	b.ReportMetric(100*float64(r.bad)/float64(max(r.total, 1)), "new-%")
	b.ReportMetric(100*float64(r.failed)/float64(max(r.total, 1)), "failed-%")
	switch {
	case healthy && r.d.State != ferry.DeploymentSucceeded:
		b.Errorf("healthy release %s = %s (%s), want succeeded", name, r.d.State, r.d.Error)
	case healthy:
		b.ReportMetric(r.d.FinishedAt.Sub(r.began).Seconds(), "promote-s")
	case r.d.State != ferry.DeploymentFailed:
		b.Errorf("bad release %s = %s, want failed (aborted)", name, r.d.State)
	case !r.answeredByNew:
		b.Errorf("bad release %s answered no request before its abort", name)
	default:
		b.ReportMetric(r.d.FinishedAt.Sub(r.first).Seconds(), "abort-s")
	}
	b.Logf("%s: %s in %s; %d requests, %d by the new version, %d failed; %s", name, r.d.State,
		r.ended.Sub(r.began).Round(time.Millisecond), r.total, r.bad-r.failed, r.failed, r.d.Error)
}

// aaRuns is how many A/A canaries BenchmarkCanaryAA runs.
const aaRuns = 50

// BenchmarkCanaryAA runs aaRuns A/A canaries at 200 req/s with
// shortened steps (one of 50 % for 3 s, judged every second): the canary
// and the baseline are the same code, two commits of birthday-app that
// differ only in a file the build ignores (their digests differ only by
// the commit linked in, since ferry runs no canary for the digest it
// runs), released in turn. Any abort is a false one: false-aborts must
// be 0. Then one release with no traffic at all, which must pause as
// inconclusive (inconclusive: 10s) and never be promoted: pause-s is the
// promote call → paused.
func BenchmarkCanaryAA(b *testing.B) {
	bc := newBirthdayCanary(b, "{ canary: { steps: [ { weight: 50, for: 3s } ], analysis: { interval: 1s, inconclusive: 10s } } }")
	ctx := context.Background()
	x := bc.commit(b, "aa-x", "")
	y := bc.commit(b, "aa-y", "")
	rate := loadRate{"200rps", 4, 20 * time.Millisecond}
	for range b.N {
		aborts, took := 0, time.Duration(0)
		for i := range aaRuns {
			commit := x
			if i%2 == 1 {
				commit = y
			}
			rel := bc.promote(b, commit, rate)
			took += rel.ended.Sub(rel.began)
			if rel.d.State != ferry.DeploymentSucceeded {
				aborts++
				b.Logf("A/A run %d: %s: %s", i+1, rel.d.State, rel.d.Error)
			}
		}
		b.ReportMetric(float64(aborts), "false-aborts")
		b.ReportMetric(aaRuns, "runs")
		b.ReportMetric(took.Seconds()/aaRuns, "s/run")

		quiet := bc.commit(b, "quiet", "")
		began := time.Now()
		a, err := bc.c.Promote(ctx, "prod", quiet, "release without traffic")
		if err != nil {
			b.Fatal(err)
		}
		id := deploymentOf(b, bc.c, a)
		var run *ferry.CanaryRun
		waitFor(b, 2*time.Minute, "the quiet canary to pause", func() bool {
			body, err := bc.c.Rollout(ctx, "prod")
			if err == nil && body.Canary != nil && body.Canary.State == ferry.CanaryPaused {
				run = body.Canary
				return true
			}
			return false
		})
		b.ReportMetric(time.Since(began).Seconds(), "pause-s")
		time.Sleep(10 * time.Second)
		d, err := bc.c.Deployment(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		if d.State.Final() {
			b.Errorf("the quiet canary's deployment = %s 10 s after its pause, want it waiting", d.State)
		}
		b.Logf("quiet canary paused at step %d: %s", run.Step+1, run.Reason)
		if _, err := bc.c.RolloutCommand(ctx, "prod", "abort", "no traffic"); err != nil {
			b.Fatal(err)
		}
		if d := waitEnded(b, bc.c, id); d.State != ferry.DeploymentFailed {
			b.Errorf("aborted quiet canary = %s", d.State)
		}
	}
}

// waitEndedWithin waits until deployment id is in a final state: a canary
// with the default steps runs longer than waitEnded waits.
func waitEndedWithin(b testing.TB, c *client.Client, id int64, timeout time.Duration) *ferry.Deployment {
	b.Helper()
	var d *ferry.Deployment
	waitFor(b, timeout, fmt.Sprintf("deployment %d to end", id), func() bool {
		var err error
		d, err = c.Deployment(context.Background(), id)
		return err == nil && d.State.Final()
	})
	return d
}

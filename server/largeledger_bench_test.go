package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/ledger"
)

// Sizes of the large ledger (issue 18): a year of history.
const (
	largeDeployments = 100_000
	largeEvents      = 100_000
)

// BenchmarkLargeLedger fills a real server's ledger, on each engine, with
// a year of history — 100k deployments (nine in ten in dev, the rest
// releases in prod) and 100k events — and times what users read: every
// API list, status, the dashboard and /metrics. The commits are not in
// git, so DORA's lead times fail and are not measured here (each change
// in the window costs a git log: see docs/benchmarks.md). Each read is
// reported as its median over the iterations (ms-median); heap-MB is the
// live heap after the reads.
//
//	go test -run '^$' -bench LargeLedger -benchtime 20x ./server/
func BenchmarkLargeLedger(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			extra := ""
			if engine == "postgres" {
				extra = "ledger: " + pgtest.NewDatabase(b)
			}
			repo := newRepo(b, "testdata/tiny")
			end := time.Now().UTC().Add(-time.Hour)
			// Commit ids that git does not have: DORA's lead times (one git
			// log per change) are not part of this benchmark.
			commits := make([]string, largeDeployments)
			for i := range commits {
				commits[i] = fmt.Sprintf("%040x", i+1)
			}
			yaml := tinyConfig(repo.Dir, b.TempDir(), extra) + "  prod:\n    from: dev\n    runtime: { local: { listen: 127.0.0.1:0 } }\n"
			s := start(b, yaml, Options{})
			start := time.Now()
			fillLedger(b, s.Ledger(), s.cfg.App, commits, end)
			b.Logf("%s: filled %d deployments and %d events in %s", engine, largeDeployments, largeEvents, time.Since(start).Round(time.Millisecond))
			secret := tokenFor(b, s, ferry.RoleViewer)
			for _, path := range []string{
				"/api/v1/builds", "/api/v1/events", "/api/v1/events?env=prod", "/api/v1/events?kind=deployment.failed",
				"/api/v1/deployments", "/api/v1/deployments?env=prod", "/api/v1/deployments?state=failed",
				"/api/v1/status", "/api/v1/envs/prod/releases",
				"/metrics", "/", "/fragments/matrix", "/fragments/history", "/fragments/dora", "/fragments/pipelines",
			} {
				b.Run(path, func(b *testing.B) {
					var took []time.Duration
					for b.Loop() {
						t0 := time.Now()
						getOK(b, s.URL()+path, secret)
						took = append(took, time.Since(t0))
					}
					slices.Sort(took)
					b.ReportMetric(float64(took[len(took)/2])/float64(time.Millisecond), "ms-median")
				})
			}
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			b.Logf("%s: live heap after the reads %.1f MB", engine, float64(m.HeapInuse)/(1<<20))
		})
	}
}

// getOK reads url with the token (as a session cookie for the dashboard's
// pages) and fails unless it answers 200.
func getOK(b *testing.B, url, secret string) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	req.AddCookie(&http.Cookie{Name: "ferry_session", Value: secret})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s = %d %.300s", url, resp.StatusCode, body)
	}
}

// fillLedger writes a year of history into l: deployments every ~5
// minutes (dev nine times in ten, otherwise a prod release), one in 25
// failed and rolled back, and as many events, by four writers.
func fillLedger(b *testing.B, l ledger.Store, app string, commits []string, end time.Time) {
	ctx := context.Background()
	const writers = 4
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < largeDeployments; i += writers {
				if err := l.CreateDeployment(ctx, largeDeployment(app, i, commits[i], historyTime(end, i))); err != nil {
					errs <- fmt.Errorf("deployment %d: %w", i, err)
					return
				}
			}
			for i := w; i < largeEvents; i += writers {
				if err := l.AddEvent(ctx, largeEvent(app, i, commits[i%len(commits)], historyTime(end, i))); err != nil {
					errs <- fmt.Errorf("event %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
}

// historyTime is when the i-th deployment of the year finished.
func historyTime(end time.Time, i int) time.Time {
	return end.Add(-time.Duration(largeDeployments-i) * (365 * 24 * time.Hour / largeDeployments))
}

func largeDeployment(app string, i int, commit string, at time.Time) *ferry.Deployment {
	d := &ferry.Deployment{
		App: app, Env: "dev", Kind: ferry.DeployDeploy, State: ferry.DeploymentSucceeded,
		Commit: commit, Digest: fmt.Sprintf("sha256:%064x", i+1), Replicas: 2,
		Actor: "ferry", Reason: "build", CreatedAt: at, StartedAt: at, FinishedAt: at.Add(2 * time.Second),
	}
	if i%10 == 9 {
		d.Env, d.Kind, d.Actor = "prod", ferry.DeployPromote, "ada"
		d.Release = fmt.Sprintf("RC%s_%d", at.Format("20060102_1504"), i)
	}
	if i%25 == 24 {
		d.State, d.Error = ferry.DeploymentRolledBack, "verify: GET /statusz = 500"
	}
	return d
}

func largeEvent(app string, i int, commit string, at time.Time) *ferry.Event {
	kinds := []string{"build.succeeded", "deployment.started", "deployment.succeeded", "deployment.failed"}
	env := "dev"
	if i%10 == 9 {
		env = "prod"
	}
	return &ferry.Event{App: app, Env: env, Kind: kinds[i%len(kinds)], Actor: "ferry", Commit: commit,
		Message: "event " + fmt.Sprint(i), Time: at}
}

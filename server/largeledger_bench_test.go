package server

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/pgtest"
	"github.com/ferryhq/ferry/internal/testport"
	"github.com/ferryhq/ferry/ledger"
)

// Sizes of the large ledger (issue 18): a year of history.
const (
	largeDeployments = 100_000
	largeEvents      = 100_000
	largeBuilds      = 100_000
)

// largeReads are what BenchmarkLargeLedger times: every API list with each
// of its filters, status, releases, DORA, /metrics and the dashboard.
var largeReads = []string{
	"/api/v1/builds", "/api/v1/builds?branch=master", "/api/v1/builds?state=failed",
	"/api/v1/events", "/api/v1/events?env=prod", "/api/v1/events?env=dev", "/api/v1/events?kind=deployment.failed",
	"/api/v1/events?kind=build.", "/api/v1/events?kind=lock.", "/api/v1/events?env=prod&kind=deployment.",
	"/api/v1/events?build=50001",
	"/api/v1/deployments", "/api/v1/deployments?env=prod", "/api/v1/deployments?env=dev",
	"/api/v1/status", "/api/v1/envs/prod/releases",
	"/api/v1/dora", "/api/v1/dora?env=prod&window=7d",
	"/metrics", "/", "/fragments/matrix", "/fragments/history", "/fragments/dora", "/fragments/pipelines",
}

// BenchmarkLargeLedger fills a real server's ledger, on each engine, with
// a year of history — 100k commits in git (one every ~5 minutes, made with
// git fast-import), a build of each, 100k deployments of them (nine in ten
// in dev, the rest releases in prod, one in 25 rolled back) and 100k
// events — and times what users read (largeReads) through the real HTTP
// server with a viewer token. Each read is reported as its median over the
// iterations (ms-median) and its first call (ms-first: DORA's first report
// reads git once for each change of its window, and keeps the answers in
// the ledger). After the reads it logs the process's RSS (VmRSS; the
// process holds the server, its ledger connections and the benchmark) and
// the live heap, after a GC that returns freed memory to the system.
//
//	go test -run '^$' -bench 'LargeLedger/sqlite' -benchtime 20x ./server/
//	go test -run '^$' -bench 'LargeLedger/postgres' -benchtime 20x ./server/
func BenchmarkLargeLedger(b *testing.B) {
	for _, engine := range []string{"sqlite", "postgres"} {
		b.Run(engine, func(b *testing.B) {
			extra := ""
			if engine == "postgres" {
				extra = "ledger: " + pgtest.NewDatabase(b)
			}
			repo := newRepo(b, "testdata/tiny")
			end := time.Now().UTC().Add(-time.Hour)
			t0 := time.Now()
			commits := importHistory(b, repo.Dir, largeDeployments, end)
			b.Logf("%s: %d commits imported in %s", engine, len(commits), time.Since(t0).Round(time.Millisecond))
			data := b.TempDir()
			stopNode(b, data) // the binary's ferry serve starts one (readBinary)
			yaml := tinyConfig(repo.Dir, data, extra) + "  prod:\n    from: dev\n    runtime: { local: { listen: 127.0.0.1:0 } }\n"
			s := start(b, yaml, Options{})
			// The head, the last commit, is the server's own build: once it
			// is recorded, the builds of the others are history, not arrivals.
			waitForBuild(b, s, commits[len(commits)-1])
			t0 = time.Now()
			fillLedger(b, s.Ledger(), s.cfg.App, commits, end)
			b.Logf("%s: filled %d builds, %d deployments and %d events in %s", engine, largeBuilds-1, largeDeployments, largeEvents, time.Since(t0).Round(time.Millisecond))
			// The reads are of a ledger at rest: the server's own rollout of
			// the head (which the fill slows down) has ended.
			waitSettled(b, s)
			secret := tokenFor(b, s, ferry.RoleViewer)
			timeReads(b, s.URL(), secret)
			runtime.GC()
			debug.FreeOSMemory()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			b.Logf("%s: after the reads RSS %s (this process: server and benchmark), live heap %.1f MB", engine, status(b, "self", "VmRSS"), float64(m.HeapInuse)/(1<<20))
			if bins := os.Getenv("FERRY_BENCH_BINARY"); bins != "" {
				// The same ledger and data directory, served by the real
				// binary: its RSS is ferry's alone. Several binaries
				// (comma-separated: builds, or scripts that start one with
				// other settings) are served in turn, on the same ledger.
				s.Close()
				for i, bin := range strings.Split(bins, ",") {
					name := "binary"
					if i > 0 || strings.Contains(bins, ",") {
						name += "-" + filepath.Base(bin)
					}
					b.Run(name, func(b *testing.B) { readBinary(b, bin, yaml, secret) })
				}
			}
		})
	}
}

// timeReads times every read of largeReads against the server at base.
func timeReads(b *testing.B, base, secret string) {
	for _, path := range largeReads {
		b.Run(path, func(b *testing.B) {
			var took []time.Duration
			for b.Loop() {
				t0 := time.Now()
				getOK(b, base+path, secret)
				took = append(took, time.Since(t0))
			}
			b.ReportMetric(ms(took[0]), "ms-first")
			slices.Sort(took)
			b.ReportMetric(ms(took[len(took)/2]), "ms-median")
		})
	}
}

// readBinary starts `bin serve` on yaml (on a fixed free port), times the
// reads against it and logs its RSS after them, and its peak, and again
// after a quiet second (the Go runtime returns freed memory gradually).
func readBinary(b *testing.B, bin, yaml, secret string) {
	addr := testport.Addr(b)
	yaml = strings.Replace(yaml, "server: { listen: 127.0.0.1:0 }", "server: { listen: "+addr+" }", 1)
	dir := b.TempDir()
	config := filepath.Join(dir, "ferry.yaml")
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		b.Fatal(err)
	}
	logs, err := os.Create(filepath.Join(dir, "ferry.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command(bin, "serve", "-c", config, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	base := "http://" + addr
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logs.Name())
			b.Fatalf("%s serve did not answer /healthz in a minute:\n%s", bin, log)
		}
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	b.Logf("ferry serve started: RSS %s", status(b, pid, "VmRSS"))
	timeReads(b, base, secret)
	b.Logf("ferry serve after the reads: RSS %s (anonymous %s, file %s), peak RSS %s", status(b, pid, "VmRSS"),
		status(b, pid, "RssAnon"), status(b, pid, "RssFile"), status(b, pid, "VmHWM"))
	time.Sleep(time.Second)
	b.Logf("ferry serve a second later: RSS %s (anonymous %s, file %s)", status(b, pid, "VmRSS"),
		status(b, pid, "RssAnon"), status(b, pid, "RssFile"))
	if keep := os.Getenv("FERRY_BENCH_BINARY_LOG"); keep != "" {
		if log, err := os.ReadFile(logs.Name()); err == nil {
			os.WriteFile(keep, log, 0o644)
		}
	}
}

// waitForBuild waits until s has recorded a build of commit.
func waitForBuild(b *testing.B, s *Server, commit string) {
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		_, err := s.Ledger().BuildByCommit(context.Background(), s.cfg.App, commit)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("no build of the head %s after a minute: %v", ferry.ShortSHA(commit), err)
		}
	}
}

// waitSettled waits until no deployment of s is pending or under way.
func waitSettled(b *testing.B, s *Server) {
	open := ledger.DeploymentFilter{App: s.cfg.App, Limit: 1,
		States: []ferry.DeploymentState{ferry.DeploymentPending, ferry.DeploymentRolling, ferry.DeploymentVerifying}}
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		ds, err := s.Ledger().Deployments(context.Background(), open)
		if err != nil {
			b.Fatal(err)
		}
		if len(ds) == 0 {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("deployment %d still %s after 3 minutes", ds[0].ID, ds[0].State)
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// status is a field of /proc/<pid>/status (pid "self": this process).
func status(b *testing.B, pid, field string) string {
	text, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	for line := range strings.Lines(string(text)) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// importHistory adds n empty commits to dir's master, one every ~5 minutes
// of the year before end (commit i 30 minutes before deployment i
// finishes: historyTime), with git fast-import, and returns their ids,
// oldest first.
func importHistory(b *testing.B, dir string, n int, end time.Time) []string {
	var in bytes.Buffer
	fmt.Fprintf(&in, "reset refs/heads/master\nfrom refs/heads/master^0\n\n")
	for i := range n {
		msg := fmt.Sprintf("change %d\n", i)
		fmt.Fprintf(&in, "commit refs/heads/master\nmark :%d\ncommitter Ada <ada@example.com> %d +0000\ndata %d\n%s\n",
			i+1, historyTime(end, i).Add(-30*time.Minute).Unix(), len(msg), msg)
	}
	marks := filepath.Join(b.TempDir(), "marks")
	cmd := exec.Command("git", "fast-import", "--quiet", "--export-marks="+marks)
	cmd.Dir, cmd.Stdin = dir, &in
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("git fast-import: %v\n%s", err, out)
	}
	text, err := os.ReadFile(marks)
	if err != nil {
		b.Fatal(err)
	}
	commits := make([]string, n)
	for line := range strings.Lines(string(text)) {
		mark, sha, _ := strings.Cut(strings.TrimSpace(line), " ")
		i, err := strconv.Atoi(strings.TrimPrefix(mark, ":"))
		if err != nil || i < 1 || i > n {
			b.Fatalf("git fast-import mark %q", line)
		}
		commits[i-1] = sha
	}
	return commits
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

// fillLedger writes a year of history into l: a build of every commit but
// the last (the server builds that one), deployments every ~5 minutes (dev
// nine times in ten, otherwise a prod release), one in 25 failed and
// rolled back, and as many events, by four writers.
func fillLedger(b *testing.B, l ledger.Store, app string, commits []string, end time.Time) {
	ctx := context.Background()
	const writers = 4
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < largeBuilds-1; i += writers {
				if err := l.CreateBuild(ctx, largeBuild(app, i, commits[i], historyTime(end, i))); err != nil {
					errs <- fmt.Errorf("build %d: %w", i, err)
					return
				}
			}
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

func largeBuild(app string, i int, commit string, at time.Time) *ferry.Build {
	b := &ferry.Build{App: app, Commit: commit, Branch: "master", Subject: fmt.Sprintf("change %d", i), Author: "Ada",
		Trigger: "poll", State: ferry.BuildSucceeded, Image: "127.0.0.1:5000/tiny", Digest: fmt.Sprintf("sha256:%064x", i+1),
		CreatedAt: at.Add(-25 * time.Minute), StartedAt: at.Add(-25 * time.Minute), FinishedAt: at.Add(-5 * time.Minute)}
	if i%50 == 49 {
		b.State, b.Reason, b.Digest = ferry.BuildFailed, "test: exit status 1", ""
	}
	return b
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
	e := &ferry.Event{App: app, Env: env, Kind: kinds[i%len(kinds)], Actor: "ferry", Commit: commit,
		Message: "event " + fmt.Sprint(i), Time: at}
	switch {
	case i%1000 == 999: // a rare kind: a filter on it reads a few rows, not the history
		e.Kind, e.Actor = "lock.created", "ada"
	case e.Kind == "build.succeeded":
		e.BuildID = int64(i + 1)
	}
	return e
}

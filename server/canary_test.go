package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/gittest"
	"github.com/ferryhq/ferry/internal/loadtest"
	"github.com/ferryhq/ferry/internal/testport"
)

// canaryMain is the app of the canary tests: testdata/tiny with a
// route, /hit, that answers its commit after fault (fault.go, which each
// release commits) had its say. Readiness (/version) never goes through
// fault, so a bad release starts and is judged on its requests alone.
const canaryMain = `package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
)

var commit = "unknown"

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve on")
	flag.Parse()
	http.HandleFunc("/version", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "{\"commit\":%q}\n", commit)
	})
	http.HandleFunc("/hit", func(w http.ResponseWriter, _ *http.Request) {
		if fault(w) {
			return
		}
		fmt.Fprint(w, commit)
	})
	log.Fatal(http.ListenAndServe(*listen, nil))
}
`

// The faults a release of the canary tests builds in, selected by the
// commit (fault.go), not by a knob of the running app.
const (
	faultNone = ``
	// fault5xx fails every 20th request: 5 %.
	fault5xx = `if failed.Add(1)%20 == 0 { http.Error(w, "canary test fault", http.StatusInternalServerError); return true }`
	// faultSlow adds 200 ms to every request.
	faultSlow = `time.Sleep(200 * time.Millisecond)`
)

// writeFault writes fault.go for release name with the Go statements
// fault (which may return true once it answered the request itself).
func writeFault(repo *gittest.Repo, name, fault string) {
	repo.Write("fault.go", fmt.Sprintf(`package main

import (
	"net/http"
	"sync/atomic"
	"time"
)

var (
	failed atomic.Int64
	_      = time.Second
)

// fault is release %s's fault, run before /hit answers.
func fault(w http.ResponseWriter) bool {
	%s
	return false
}
`, name, fault))
}

// canaryEnv is a real ferry whose prod releases through a short canary
// (two steps, judged every second) on the local runtime: two stable
// replicas behind prod's balancer at a fixed address.
type canaryEnv struct {
	t        *testing.T
	yaml     string
	s        *Server
	c        *client.Client
	repo     *gittest.Repo
	prodURL  string
	released string // the commit prod runs, as the test expects it
}

func newCanaryEnv(t *testing.T) *canaryEnv {
	repo := newRepo(t, "testdata/tiny")
	repo.Write("main.go", canaryMain)
	writeFault(repo, "first", faultNone)
	first := repo.CommitAll("the canary tests' app")
	prodAddr := testport.Addr(t)
	local := func(replicas int, addr string) string {
		return fmt.Sprintf(`runtime: { local: { replicas: %d, listen: %s, readiness: /version, args: ["-listen", "{{.Addr}}"] } }`, replicas, addr)
	}
	yaml := strings.Replace(tinyConfig(repo.Dir, t.TempDir(), ""), "runtime: { local: { listen: 127.0.0.1:0 } }", local(1, "127.0.0.1:0")+`
  prod:
    branch: release
    from: dev
    tags: [live]
    strategy:
      canary:
        steps: [ { weight: 20, for: 4s }, { weight: 50, for: 4s } ]
        analysis: { interval: 1s, minRequests: 50, inconclusive: 4s }
    `+local(2, prodAddr), 1)
	// Fixed addresses: the restart test starts a second server on them.
	yaml = strings.Replace(yaml, "server: { listen: 127.0.0.1:0 }", "server: { listen: "+testport.Addr(t)+" }", 1)
	yaml = strings.Replace(yaml, "registry: { listen: 127.0.0.1:0 }", "registry: { listen: "+testport.Addr(t)+" }", 1)
	e := &canaryEnv{t: t, yaml: yaml, repo: repo, prodURL: "http://" + prodAddr + "/hit"}
	e.s = start(t, yaml, Options{})
	e.c = newClient(t, e.s)
	if _, err := e.c.Trigger(context.Background(), "master", ""); err != nil {
		t.Fatal(err)
	}
	waitDeployed(t, e.c, "dev", first)
	// The first release goes straight to prod: nothing runs there to
	// compare a canary with.
	a, err := e.c.Promote(context.Background(), "prod", first, "first release")
	if err != nil {
		t.Fatal(err)
	}
	waitFinished(t, e.c, deploymentOf(t, e.c, a))
	e.released = first
	e.truthful("first release")
	return e
}

// commit commits release name with fault, and waits until dev runs it.
func (e *canaryEnv) commit(name, fault string) string {
	e.t.Helper()
	writeFault(e.repo, name, fault)
	commit := e.repo.CommitAll("release " + name)
	if _, err := e.c.Trigger(context.Background(), "master", ""); err != nil {
		e.t.Fatal(err)
	}
	waitDeployed(e.t, e.c, "dev", commit)
	return commit
}

// load starts closed-loop GETs of prod's /hit (about 150 req/s), keyed by
// the commit that answered.
func (e *canaryEnv) load() *loadtest.Load {
	return loadtest.Start(loadtest.Config{
		Workers: 2, Pause: 10 * time.Millisecond, URL: e.prodURL,
		Key: func(_ *http.Response, body []byte) string { return string(body) },
	})
}

// promote releases commit to prod and returns its deployment's id.
func (e *canaryEnv) promote(commit, reason string) int64 {
	e.t.Helper()
	a, err := e.c.Promote(context.Background(), "prod", commit, reason)
	if err != nil {
		e.t.Fatal(err)
	}
	return deploymentOf(e.t, e.c, a)
}

// canaryOf is deployment id's canary as the ledger keeps it.
func (e *canaryEnv) canaryOf(id int64) *ferry.CanaryRun {
	e.t.Helper()
	run, err := e.s.Ledger().Canary(context.Background(), id)
	if err != nil {
		e.t.Fatalf("canary of deployment %d: %v", id, err)
	}
	return run
}

// waitRollout waits until prod's rollout, as the API shows it, holds ok.
func (e *canaryEnv) waitRollout(what string, ok func(*ferry.CanaryRun) bool) *ferry.CanaryRun {
	e.t.Helper()
	var last *ferry.CanaryRun
	waitFor(e.t, deployTimeout, what, func() bool {
		b, err := e.c.Rollout(context.Background(), "prod")
		if err != nil || b.Canary == nil {
			return false
		}
		last = b.Canary
		return b.Active && ok(b.Canary)
	})
	return last
}

// waitJudged waits until prod's canary was judged at weight at least once:
// its split runs and the ledger holds its record.
func (e *canaryEnv) waitJudged(weight int) {
	e.t.Helper()
	waitFor(e.t, deployTimeout, fmt.Sprintf("a judgement of the canary at %d%%", weight), func() bool {
		b, err := e.c.Rollout(context.Background(), "prod")
		return err == nil && b.Active && b.Canary != nil && b.Canary.Weight == weight && b.Verdict != nil
	})
}

// truthful checks that everything says prod runs e.released: status
// --check finds no drift (the live tag and the replicas), the release
// branch and env/prod name it, and prod's balancer answers with it only.
func (e *canaryEnv) truthful(step string) {
	e.t.Helper()
	ctx := context.Background()
	var drift []string
	waitFor(e.t, 30*time.Second, step+": status --check without drift", func() bool {
		st, err := e.c.StatusCheck(ctx)
		if err != nil {
			return false
		}
		drift = drift[:0]
		for _, d := range st.Drift {
			drift = append(drift, fmt.Sprintf("%s %s: got %s, want %s", d.Env, d.What, d.Got, d.Want))
		}
		return len(drift) == 0
	})
	if got := e.repo.Git(time.Time{}, "rev-parse", "release"); got != e.released {
		e.t.Errorf("%s: release = %.12s, want %.12s", step, got, e.released)
	}
	if got := e.repo.Git(time.Time{}, "rev-parse", "env/prod^{commit}"); got != e.released {
		e.t.Errorf("%s: env/prod = %.12s, want %.12s", step, got, e.released)
	}
	l := loadtest.Start(loadtest.Config{Workers: 2, Max: 100, URL: e.prodURL,
		Key: func(_ *http.Response, body []byte) string { return string(body) }})
	waitFor(e.t, 30*time.Second, step+": 100 requests to prod", func() bool { return l.OK()+l.Failed() >= 100 })
	l.Stop()
	if served := l.Served(time.Time{}); l.Failed() != 0 || served[e.released] != int(l.OK()) {
		e.t.Errorf("%s: prod answered %v, %d failed (%v), want only %.12s", step, served, l.Failed(), l.Errors(), e.released)
	}
}

// TestCanaryOnLocalRuntime takes releases of a real app through prod's
// canary on the local runtime, through a real ferry server, under real
// load through prod's balancer: one failing 5 % of its requests and one
// 200 ms slower (both aborted, prod untouched), a healthy one (promoted
// to every replica), one paused and resumed by a person, one with no
// traffic (inconclusive: paused, never promoted), a rollback during a
// canary (no analysis), and ferry restarted mid-canary (aborted, the
// ledger and the refs truthful).
func TestCanaryOnLocalRuntime(t *testing.T) {
	e := newCanaryEnv(t)
	ctx := context.Background()

	for _, bad := range []struct{ name, fault, why string }{
		{"5xx", fault5xx, "error rate"},
		{"slow", faultSlow, "latency"},
	} {
		t.Run("abort-"+bad.name, func(t *testing.T) {
			e.t = t
			commit := e.commit(bad.name, bad.fault)
			load := e.load()
			id := e.promote(commit, "bad release "+bad.name)
			d := waitEnded(t, e.c, id)
			load.Stop()
			if d.State != ferry.DeploymentFailed || !strings.Contains(d.Error, "canary failed") {
				t.Fatalf("bad release %s = %s (%s), want failed by the canary's judgement", bad.name, d.State, d.Error)
			}
			if run := e.canaryOf(id); run.State != ferry.CanaryAborted || run.Weight != 0 {
				t.Errorf("its canary = %s at %d%%, want aborted at 0%%", run.State, run.Weight)
			}
			served := load.Served(time.Time{})
			if served[commit] == 0 {
				t.Errorf("the bad release answered no request before its abort: %v", served)
			}
			total := load.OK() + load.Failed()
			t.Logf("%s: %s; %d requests, %d answered by it, %d failed", bad.name, d.Error, total, served[commit], load.Failed())
			e.truthful("after the abort of " + bad.name)
		})
	}

	t.Run("promote", func(t *testing.T) {
		e.t = t
		commit := e.commit("healthy", faultNone)
		load := e.load()
		id := e.promote(commit, "healthy release")
		d := waitFinished(t, e.c, id)
		load.Stop()
		if run := e.canaryOf(id); run.State != ferry.CanaryPromoted || run.Step != 1 {
			t.Errorf("its canary = %s at step %d, want promoted after step 2", run.State, run.Step+1)
		}
		if load.Failed() != 0 {
			t.Errorf("%d requests failed during a healthy canary: %v", load.Failed(), load.Errors())
		}
		if took := d.FinishedAt.Sub(d.StartedAt); took < 8*time.Second {
			t.Errorf("promoted after %s, before its two 4 s steps ran", took)
		}
		e.released = commit
		e.truthful("after the promotion")
	})

	t.Run("pause-resume", func(t *testing.T) {
		e.t = t
		commit := e.commit("paused", faultNone)
		load := e.load()
		defer load.Stop()
		id := e.promote(commit, "release paused by a person")
		e.waitJudged(20)
		if _, err := e.c.RolloutCommand(ctx, "prod", "pause", "look closer"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Second) // longer than both steps
		d, err := e.c.Deployment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if run := e.canaryOf(id); d.State.Final() || run.State != ferry.CanaryPaused || run.Step != 0 {
			t.Fatalf("10 s after the pause: deployment %s (%s), canary %s at step %d (%s), want running, paused at step 1", d.State, d.Error, run.State, run.Step+1, run.Reason)
		}
		if _, err := e.c.RolloutCommand(ctx, "prod", "resume", "fine"); err != nil {
			t.Fatal(err)
		}
		waitFinished(t, e.c, id)
		load.Stop()
		if run := e.canaryOf(id); run.State != ferry.CanaryPromoted {
			t.Errorf("resumed canary = %s, want promoted", run.State)
		}
		if load.Failed() != 0 {
			t.Errorf("%d requests failed: %v", load.Failed(), load.Errors())
		}
		e.released = commit
		e.truthful("after the resumed canary")
	})

	t.Run("inconclusive", func(t *testing.T) {
		e.t = t
		commit := e.commit("quiet", faultNone)
		id := e.promote(commit, "release without traffic")
		run := e.waitRollout("the quiet canary to pause", func(r *ferry.CanaryRun) bool { return r.State == ferry.CanaryPaused })
		if !strings.Contains(run.Reason, "inconclusive") || run.Step != 0 {
			t.Errorf("paused at step %d for %q, want step 1, inconclusive", run.Step+1, run.Reason)
		}
		time.Sleep(10 * time.Second) // longer than both steps: it must not go on
		d, err := e.c.Deployment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if run := e.canaryOf(id); d.State.Final() || run.State != ferry.CanaryPaused {
			t.Fatalf("10 s later: deployment %s, canary %s, want it still paused", d.State, run.State)
		}
		if _, err := e.c.RolloutCommand(ctx, "prod", "abort", "no traffic to judge it"); err != nil {
			t.Fatal(err)
		}
		if d := waitEnded(t, e.c, id); d.State != ferry.DeploymentFailed {
			t.Errorf("aborted quiet canary's deployment = %s, want failed", d.State)
		}
		if run := e.canaryOf(id); run.State != ferry.CanaryAborted {
			t.Errorf("aborted quiet canary = %s", run.State)
		}
		e.truthful("after the quiet canary's abort")
	})

	t.Run("rollback-during-canary", func(t *testing.T) {
		e.t = t
		commit := e.commit("rolled-back", faultNone)
		load := e.load()
		defer load.Stop()
		id := e.promote(commit, "release rolled back mid-canary")
		e.waitJudged(20)
		began := time.Now()
		a, err := e.c.Rollback(ctx, "prod", "", "bad feeling")
		if err != nil {
			t.Fatal(err)
		}
		rb := waitFinished(t, e.c, deploymentOf(t, e.c, a))
		took := time.Since(began)
		load.Stop()
		// Two steps of 4 s: a rollback that waited for the analysis takes
		// longer than 8 s.
		if took > 8*time.Second {
			t.Errorf("rollback during a canary took %s, as if it waited for the analysis", took)
		}
		if d := waitEnded(t, e.c, id); d.State == ferry.DeploymentSucceeded {
			t.Errorf("the canary's deployment succeeded despite the rollback")
		}
		if run := e.canaryOf(id); run.State != ferry.CanaryAborted || !strings.Contains(run.Reason, "rollback") {
			t.Errorf("canary after the rollback = %s (%q), want aborted by the rollback", run.State, run.Reason)
		}
		if load.Failed() != 0 {
			t.Errorf("%d requests failed: %v", load.Failed(), load.Errors())
		}
		t.Logf("rollback during the canary: %s to %.12s", took.Round(time.Millisecond), rb.Commit)
		e.released = rb.Commit
		e.truthful("after the rollback")
	})

	t.Run("restart-mid-canary", func(t *testing.T) {
		e.t = t
		commit := e.commit("interrupted", faultNone)
		load := e.load()
		id := e.promote(commit, "release interrupted by a restart")
		e.waitJudged(20)
		load.Stop()
		if err := e.s.Close(); err != nil {
			t.Fatalf("close ferry mid-canary: %v", err)
		}
		e.s = start(t, e.yaml, Options{})
		e.c = newClient(t, e.s)
		d := waitEnded(t, e.c, id)
		if d.State == ferry.DeploymentSucceeded {
			t.Errorf("the interrupted canary's deployment succeeded")
		}
		if run := e.canaryOf(id); run.State != ferry.CanaryAborted || run.Weight != 0 || !strings.Contains(run.Reason, "restarted") {
			t.Errorf("interrupted canary = %s at %d%% (%q), want aborted at 0%% by the restart", run.State, run.Weight, run.Reason)
		}
		t.Logf("after the restart: deployment %s (%s)", d.State, d.Error)
		e.truthful("after the restart mid-canary")
	})
}

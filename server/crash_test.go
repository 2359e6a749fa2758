package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/config"
	"github.com/ferryhq/ferry/internal/gittest"
	"github.com/ferryhq/ferry/internal/testport"
	"github.com/ferryhq/ferry/ledger/ledgerdb"
	"github.com/ferryhq/ferry/node"
)

// ferryProc is the real ferry binary serving a configuration, killed with
// SIGKILL (no shutdown of any kind) and started again on the same data.
type ferryProc struct {
	t        testing.TB
	bin, cfg string
	log      *os.File
	cmd      *exec.Cmd
	exited   chan struct{}
}

// binaryFerry is the real ferry binary serving the tiny app on the local
// runtime (behind the node ferry serve starts), with an admin's client.
type binaryFerry struct {
	*ferryProc
	c    *client.Client
	repo *gittest.Repo
	data string
}

// onLocal is an environment's runtime in tinyConfig: replicas on the
// local runtime at addr, ready on /version; verified after each rollout
// with verify.
func onLocal(replicas int, addr string, verify bool) string {
	s := fmt.Sprintf("runtime: { local: { replicas: %d, listen: %s, readiness: /version, args: [\"-listen\", \"{{.Addr}}\"] } }", replicas, addr)
	if verify {
		s += "\n    verify: [ { http: GET /version, expect: 200 } ]"
	}
	return s
}

// startBinaryFerry starts bin serving the tiny app with dev's runtime
// line replaced by envs (more environments may follow it), polling git
// every poll when given. On failure the test's log gets the end of
// ferry's and the node's logs; the node is stopped at the end.
func startBinaryFerry(t testing.TB, bin, envs, poll string) *binaryFerry {
	t.Helper()
	repo := newRepo(t, "testdata/tiny")
	data := t.TempDir()
	apiAddr, regAddr := testport.Addr(t), testport.Addr(t)
	yaml := strings.Replace(tinyConfig(repo.Dir, data, ""), "runtime: { local: { listen: 127.0.0.1:0 } }", envs, 1)
	yaml = strings.Replace(yaml, "server: { listen: 127.0.0.1:0 }", "server: { listen: "+apiAddr+" }", 1)
	yaml = strings.Replace(yaml, "registry: { listen: 127.0.0.1:0 }", "registry: { listen: "+regAddr+" }", 1)
	if poll != "" {
		yaml = strings.Replace(yaml, "poll: 0", "poll: "+poll, 1)
	}
	cfgPath := filepath.Join(t.TempDir(), "ferry.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(cfgPath, []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	l, err := ledgerdb.Open(ctx, cfg.Ledger.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := (&auth.Tokens{Store: l, App: cfg.App}).Create(ctx, "ada", ferry.RoleAdmin, "test", "")
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "ferry.log"))
	if err != nil {
		t.Fatal(err)
	}
	stopNode(t, data) // after ferry's kill below: ferry serve starts a node
	p := &ferryProc{t: t, bin: bin, cfg: cfgPath, log: logf}
	p.start()
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			for _, f := range []string{logf.Name(), node.LogPath(data)} {
				if b, err := os.ReadFile(f); err == nil {
					t.Logf("%s (last 6000 bytes):\n%s", f, b[max(0, len(b)-6000):])
				}
			}
		}
	})
	c, err := client.New("http://" + apiAddr)
	if err != nil {
		t.Fatal(err)
	}
	c.Token = secret
	return &binaryFerry{ferryProc: p, c: c, repo: repo, data: data}
}

// buildFerry builds ferryd, the binary with the server parts, for a test
// that runs ferry serve and its node as processes; version, when set, is
// what it reports.
func buildFerry(t testing.TB, version string) string {
	t.Helper()
	bin, err := goBuildFerryd(t.TempDir(), version)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// goBuildFerryd builds cmd/ferryd into dir.
func goBuildFerryd(dir, version string) (string, error) {
	bin := filepath.Join(dir, "ferryd")
	args := []string{"build", "-o", bin}
	if version != "" {
		args = append(args, "-ldflags", "-X github.com/ferryhq/ferry/cli.version="+version)
	}
	if out, err := exec.Command("go", append(args, "github.com/ferryhq/ferry/cmd/ferryd")...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/ferryd: %v\n%s", err, out)
	}
	return bin, nil
}

func (p *ferryProc) start() {
	p.t.Helper()
	p.cmd = exec.Command(p.bin, "serve", "-c", p.cfg)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.exited = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.exited)
}

func (p *ferryProc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		p.t.Fatal(err)
	}
	<-p.exited
}

// TestKillDuringPromoteAndRollback kills the real ferry binary with
// SIGKILL at several delays into a promote and into a rollback, starts it
// again, and wants the outcome truthful: every deployment closed, the
// release branch, env/prod, live (status --check: no drift) and what prod
// serves all on the ledger's current deployment, every RC git tag a
// release that succeeded, and every promote or rollback the operator's,
// with her reason — never redone as "git push".
func TestKillDuringPromoteAndRollback(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ferry binary")
	}
	devAddr, prodAddr := testport.Addr(t), testport.Addr(t)
	f := startBinaryFerry(t, buildFerry(t, ""), onLocal(1, devAddr, true)+"\n  prod:\n    branch: release\n    from: dev\n    tags: [live]\n    "+onLocal(2, prodAddr, true), "200ms")
	p, c, repo, ctx := f.ferryProc, f.c, f.repo, context.Background()
	up := func() {
		t.Helper()
		waitFor(t, time.Minute, "ferry to answer", func() bool { _, err := c.Status(ctx); return err == nil })
	}
	up()

	// A (the repository's first commit) and B, each built and run in dev.
	a := repo.Head()
	waitDeployed(t, c, "dev", a)
	repo.Write("release.txt", "b\n")
	b := repo.CommitAll("b")
	waitDeployed(t, c, "dev", b)
	d, err := c.Promote(ctx, "prod", a, "crash test: first release")
	if err != nil {
		t.Fatal(err)
	}
	if got := waitFinished(t, c, deploymentOf(t, c, d)); got.State != ferry.DeploymentSucceeded {
		t.Fatalf("first release = %s (%s)", got.State, got.Error)
	}

	truthful := func(step string) string {
		t.Helper()
		var cur *ferry.Deployment
		waitFor(t, time.Minute, step+": every prod deployment closed", func() bool {
			ds, err := c.Deployments(ctx, "prod", 100)
			if err != nil {
				return false
			}
			cur = nil
			for _, d := range ds {
				if !d.State.Final() {
					return false
				}
				if cur == nil && d.State == ferry.DeploymentSucceeded {
					cur = d
				}
			}
			return cur != nil
		})
		waitFor(t, time.Minute, step+": prod serving "+ferry.ShortSHA(cur.Commit), func() bool {
			resp, err := http.Get("http://" + prodAddr + "/version")
			if err != nil {
				return false
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return strings.Contains(string(body), cur.Commit)
		})
		// Every action asked of prod is closed, the interrupted one too.
		waitFor(t, time.Minute, step+": every prod action closed", func() bool {
			open, err := c.Actions(ctx, "prod", []ferry.ActionState{ferry.ActionQueued, ferry.ActionRunning}, 10)
			return err == nil && len(open) == 0
		})
		var drift []string
		waitFor(t, 30*time.Second, step+": status --check without drift", func() bool {
			st, err := c.StatusCheck(ctx)
			if err != nil {
				return false
			}
			drift = drift[:0]
			for _, d := range st.Drift {
				drift = append(drift, fmt.Sprintf("%s %s: got %s, want %s", d.Env, d.What, d.Got, d.Want))
			}
			return len(drift) == 0
		})
		if got := repo.Git(time.Time{}, "rev-parse", "release"); got != cur.Commit {
			t.Errorf("%s: release = %.12s, want %.12s, what the ledger says prod runs", step, got, cur.Commit)
		}
		if got := repo.Git(time.Time{}, "rev-parse", "env/prod^{commit}"); got != cur.Commit {
			t.Errorf("%s: env/prod = %.12s, want %.12s", step, got, cur.Commit)
		}
		ds, err := c.Deployments(ctx, "prod", 100)
		if err != nil {
			t.Fatal(err)
		}
		succeeded := map[string]bool{}
		for _, d := range ds {
			if d.State == ferry.DeploymentSucceeded {
				succeeded[d.Release] = true
			}
			if (d.Kind == ferry.DeployPromote || d.Kind == ferry.DeployRollback) && (d.Actor != "ada" || !strings.HasPrefix(d.Reason, "crash test")) {
				t.Errorf("%s: deployment %d (%s) by %q for %q, want ada's with her reason", step, d.ID, d.Kind, d.Actor, d.Reason)
			}
		}
		for _, tag := range strings.Fields(repo.Git(time.Time{}, "tag", "-l", "RC*")) {
			if !succeeded[tag] {
				t.Errorf("%s: git tag %s names no release that succeeded in prod", step, tag)
			}
		}
		return cur.Commit
	}
	if got := truthful("first release"); got != a {
		t.Fatalf("prod runs %.12s after the first release, want %.12s", got, a)
	}

	// kill sends act, kills ferry after delay, starts it again and checks.
	kill := func(what string, delay time.Duration, act func() error) string {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- act() }()
		time.Sleep(delay)
		p.kill()
		err := <-done
		p.start()
		up()
		step := fmt.Sprintf("%s killed after %s", what, delay)
		runs := truthful(step)
		t.Logf("%s: call returned %v; prod runs %.7s", step, err, runs)
		return runs
	}
	for i, delay := range []time.Duration{30 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond, 900 * time.Millisecond} {
		reason := fmt.Sprintf("crash test %d", i)
		runs := kill("promote", delay, func() error {
			_, err := c.Promote(ctx, "prod", b, reason+": promote b")
			return err
		})
		if runs != b { // the promote died before it succeeded: do it again, unkilled
			d, err := c.Promote(ctx, "prod", b, reason+": promote b again")
			if err != nil {
				t.Fatalf("promote b after the crash: %v", err)
			}
			if got := waitFinished(t, c, deploymentOf(t, c, d)); got.State != ferry.DeploymentSucceeded {
				t.Fatalf("promote b after the crash = %s (%s)", got.State, got.Error)
			}
		}
		runs = kill("rollback", delay, func() error {
			_, err := c.Rollback(ctx, "prod", "", reason+": roll back")
			return err
		})
		if runs != a {
			d, err := c.Rollback(ctx, "prod", "", reason+": roll back again")
			if err != nil {
				t.Fatalf("rollback after the crash: %v", err)
			}
			if got := waitFinished(t, c, deploymentOf(t, c, d)); got.State != ferry.DeploymentSucceeded || got.Commit != a {
				t.Fatalf("rollback after the crash = %s to %.7s (%s), want a", got.State, got.Commit, got.Error)
			}
		}
		truthful(reason + " settled")
	}
	es, err := c.Events(ctx, "", 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.Actor == "git push" {
			t.Errorf("event %s %q by git push: a crash was redone as a push", e.Kind, e.Message)
		}
	}
}

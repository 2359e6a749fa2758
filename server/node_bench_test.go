package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/loadtest"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/internal/testport"
	"github.com/ferryhq/ferry/node"
)

// BenchmarkNode gives issue 14's figures of the node with the real ferry
// binary, as root with runc containers: dev (2 replicas) and prod (4) on
// the local runtime, which `ferry serve` hands to the node it starts.
// Under a closed-loop load on prod's balancer it counts the requests that
// fail across kill -9 of ferry serve and a restart, a graceful restart,
// an upgrade of the ferry binary (another build on the same data) and an
// upgrade of the node (`ferry node --takeover` of another build); then
// kill -9 of the node: how long until prod answers again and until its 4
// replicas are ready, what failed meanwhile, and whether the ledger's
// deployments changed. It reads the idle RSS of ferry serve and of the
// node before the faults, and times b.N promotions and rollbacks of prod
// (4 replicas) through the node until every replica runs the new digest.
//
// It runs processes that must be killed from outside, which is why it
// drives the built binary rather than a Server in the test process.
//
//	go test -run '^$' -bench '^BenchmarkNode$' -benchtime 5x ./server/
func BenchmarkNode(b *testing.B) {
	if os.Geteuid() != 0 {
		testenv.Unavailable(b, "root", "the node contains replicas under runc as root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		testenv.Unavailable(b, "runc", "contained replicas need runc: %v", err)
	}
	bin := buildFerry(b, "")
	bin2 := buildFerry(b, "next")
	devAddr, prodAddr := testport.Addr(b), testport.Addr(b)
	f := startBinaryFerry(b, bin, onLocal(2, devAddr, true)+"\n  prod:\n    branch: release\n    from: dev\n    tags: [live]\n    "+onLocal(4, prodAddr, true), "200ms")
	p, c, repo, data, ctx := f.ferryProc, f.c, f.repo, f.data, context.Background()
	prodURL := "http://" + prodAddr
	ready := func(env string) int {
		st, err := c.Status(ctx)
		if err != nil {
			return -1
		}
		n := 0
		for _, e := range st.Environments {
			if e.Name != env {
				continue
			}
			for _, r := range e.Pods {
				if r.Ready {
					n++
				}
			}
		}
		return n
	}
	settle := func(what string) {
		b.Helper()
		waitFor(b, time.Minute, what+": ferry to answer", func() bool { _, err := c.Status(ctx); return err == nil })
		waitFor(b, time.Minute, what+": prod's 4 replicas ready", func() bool { return ready("prod") == 4 })
		time.Sleep(2 * time.Second) // the controller's start has applied the ledger's spec
	}
	digestIn := func(env string) string {
		b.Helper()
		ds, err := c.Deployments(ctx, env, 1)
		if err != nil || len(ds) == 0 {
			b.Fatalf("%s's deployments: %v", env, err)
		}
		return ds[0].Digest
	}

	// A and B run green in dev; prod's first release is A.
	a := repo.Head()
	waitFor(b, time.Minute, "first start: ferry to answer", func() bool { _, err := c.Status(ctx); return err == nil })
	waitDeployed(b, c, "dev", a)
	digestA := digestIn("dev")
	repo.Write("release.txt", "b\n")
	bc := repo.CommitAll("b")
	waitDeployed(b, c, "dev", bc)
	digestB := digestIn("dev")
	d, err := c.Promote(ctx, "prod", a, "bench: first release")
	if err != nil {
		b.Fatal(err)
	}
	waitReplicas(b, c, "prod", digestA, 4)
	waitFinished(b, c, deploymentOf(b, c, d))

	deployments := func() string {
		b.Helper()
		var s strings.Builder
		for _, env := range []string{"dev", "prod"} {
			ds, err := c.Deployments(ctx, env, 100)
			if err != nil {
				b.Fatal(err)
			}
			for _, d := range ds {
				fmt.Fprintf(&s, "%s %d %s %s %s|", env, d.ID, d.Commit, d.State, d.Digest)
			}
		}
		return s.String()
	}
	ledgerBefore := deployments()
	idleFrom := time.Now()
	nodePid := func() int {
		b.Helper()
		pid, err := node.LockHolder(data)
		if err != nil {
			b.Fatal(err)
		}
		return pid
	}

	// Idle RSS: two environments running, no request, no rollout; 10 s
	// after the last work, then settled: past the Go runtime's forced GC
	// (every 2 minutes), which collects what the builds left on the heap,
	// and the next trim of the executable's pages (cli: every 10 s).
	for _, idle := range []struct {
		name  string
		after time.Duration
	}{{"idle", 10 * time.Second}, {"settled", 150 * time.Second}} {
		time.Sleep(idle.after - time.Since(idleFrom))
		var rssMB, pssMB float64
		for _, proc := range []struct {
			name string
			pid  int
		}{{"serve", p.cmd.Process.Pid}, {"node", nodePid()}} {
			kb, err := procSizes(proc.pid, "status")
			if err != nil {
				b.Fatal(err)
			}
			pss, err := procSizes(proc.pid, "smaps_rollup")
			if err != nil {
				b.Fatal(err)
			}
			rssMB, pssMB = rssMB+float64(kb["VmRSS"])/1024, pssMB+float64(pss["Pss"])/1024
			b.ReportMetric(float64(pss["Pss"])/1024, idle.name+"-"+proc.name+"-pss-MB")
			b.ReportMetric(float64(kb["VmRSS"])/1024, idle.name+"-"+proc.name+"-rss-MB")
			b.ReportMetric(float64(kb["RssAnon"])/1024, idle.name+"-"+proc.name+"-anon-MB")
			b.ReportMetric(float64(kb["RssFile"])/1024, idle.name+"-"+proc.name+"-file-MB")
			b.Logf("%s RSS of ferry %s (pid %d): %s", idle.name, proc.name, proc.pid, rss(b, proc.pid))
		}
		b.ReportMetric(rssMB, idle.name+"-together-rss-MB")
		b.Logf("%s, %s after the last work: together RSS %.1f MB, PSS %.1f MB", idle.name, idle.after, rssMB, pssMB)
	}

	// phase holds the load on prod across fault and reports what failed.
	phase := func(metric string, fault func()) {
		b.Helper()
		start := time.Now()
		load := loadtest.Start(loadtest.Config{Workers: 8, URL: prodURL + "/version", Timeout: 5 * time.Second})
		time.Sleep(time.Second)
		fault()
		time.Sleep(time.Second)
		load.Stop()
		took := time.Since(start)
		total := load.OK() + load.Failed()
		b.ReportMetric(float64(load.Failed()), metric+"-failed")
		b.ReportMetric(float64(total)/took.Seconds(), metric+"-req/s")
		b.Logf("%s: %d requests in %v (%.0f/s), %d failed", metric, total, took.Round(time.Millisecond), float64(total)/took.Seconds(), load.Failed())
		if errs := load.Errors(); len(errs) > 0 {
			b.Logf("%s: first failed request: %s", metric, errs[0])
		}
	}
	phase("kill9-serve", func() {
		p.kill()
		time.Sleep(time.Second) // prod is without ferry for a while
		p.start()
		settle("after kill -9")
	})
	phase("restart-serve", func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.exited
		p.start()
		settle("after a restart")
	})
	phase("upgrade-serve", func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.exited
		p.bin = bin2
		p.start()
		settle("after an upgrade")
	})
	phase("upgrade-node", func() {
		old := nodePid()
		upgradeNode(b, bin2, data, old)
		settle("after the node's upgrade")
	})

	// kill -9 of the node: ferry sees its watch end and starts another,
	// which restores prod from its saved state. A prober on fresh
	// connections times when prod answers again.
	phase("kill9-node", func() {
		killed := nodePid()
		if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		probe := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		waitFor(b, time.Minute, "prod to answer again", func() bool {
			resp, err := probe.Get(prodURL + "/version")
			if err != nil {
				return false
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		answered := time.Since(start)
		waitFor(b, time.Minute, "prod's 4 replicas ready again", func() bool { return ready("prod") == 4 })
		allReady := time.Since(start)
		b.ReportMetric(answered.Seconds(), "kill9-node-answers-s")
		b.ReportMetric(allReady.Seconds(), "kill9-node-4ready-s")
		b.Logf("kill -9 of the node: prod answered again after %v, 4 replicas ready after %v", answered.Round(time.Millisecond), allReady.Round(time.Millisecond))
		if nodePid() == killed {
			b.Errorf("node %d still holds the lock after its kill", killed)
		}
	})
	changed := 0.0
	if got := deployments(); got != ledgerBefore {
		changed = 1
		b.Logf("the ledger's deployments changed across the faults:\n got %s\nwant %s", got, ledgerBefore)
	}
	b.ReportMetric(changed, "ledger-changed")

	// Promote B and roll back to A through the node, b.N times, under
	// load: each timed until prod's 4 replicas all run the new digest.
	load := loadtest.Start(loadtest.Config{Workers: 8, URL: prodURL + "/version", Timeout: 5 * time.Second})
	loadStart := time.Now()
	var promote, rollback time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		d, err := c.Promote(ctx, "prod", bc, "bench: promote B")
		if err != nil {
			b.Fatalf("promote: %v", err)
		}
		waitReplicas(b, c, "prod", digestB, 4)
		promote += time.Since(t0)
		wantAnswers(b, prodURL, bc, 16)
		waitFinished(b, c, deploymentOf(b, c, d))

		t0 = time.Now()
		d, err = c.Rollback(ctx, "prod", "", "bench: roll back to A")
		if err != nil {
			b.Fatalf("rollback: %v", err)
		}
		waitReplicas(b, c, "prod", digestA, 4)
		rollback += time.Since(t0)
		wantAnswers(b, prodURL, a, 16)
		waitFinished(b, c, deploymentOf(b, c, d))
	}
	b.StopTimer()
	load.Stop()
	n := float64(b.N)
	b.ReportMetric(promote.Seconds()/n, "promote-s/op")
	b.ReportMetric(rollback.Seconds()/n, "rollback-s/op")
	b.ReportMetric(float64(load.Failed()), "cycles-failed")
	b.ReportMetric(float64(load.OK()+load.Failed())/time.Since(loadStart).Seconds(), "cycles-req/s")
	if errs := load.Errors(); len(errs) > 0 {
		b.Logf("promote/rollback: first failed request: %s", errs[0])
	}
}

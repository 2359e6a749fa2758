package server

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/auth"
	"github.com/ferryhq/ferry/client"
	"github.com/ferryhq/ferry/internal/testport"
	"github.com/ferryhq/ferry/ledger"
	"github.com/ferryhq/ferry/ledger/ledgerdb"
)

var (
	faultCount = flag.Int("faults", 14, "how many faults TestFaults injects (two of each kind by default)")
	// faultTTL is the servers' lease TTL in TestFaults: short by default,
	// so that a dead leader's lease runs out quickly.
	faultTTL = flag.Duration("fault-ttl", 3*time.Second, "the lease TTL of TestFaults' servers")
)

// TestFaults runs three real `ferry serve` processes on a redundant setup
// (PostgreSQL, reached by each through a TCP proxy of its own; an external
// registry; dev and prod on the real control plane) and injects faults in
// turn: kill -9 of the leader mid-build, mid-rollout and mid-promote,
// SIGSTOP of the leader past its TTL and SIGCONT, pg_terminate_backend of
// the leader's connections, a stall of the leader's connection to the
// database past its TTL, and all three started at once. After each, once
// things settle: one leader, one build per commit, every environment's
// Deployment on what the ledger says, status --check clean, and a leader
// that lost the lead has stopped. Counts are logged; `-faults N` runs
// more.
func TestFaults(t *testing.T) {
	r := newRedundant(t)
	f := newFleet(t, r, 3)
	defer f.stopAll()
	f.startAll()
	f.settle("start")

	faults := []struct {
		name   string
		inject func()
	}{
		{"kill -9 mid-build", f.killMidBuild},
		{"kill -9 mid-rollout", f.killMidRollout},
		{"kill -9 mid-promote", f.killMidPromote},
		{"SIGSTOP past the TTL", f.pause},
		{"pg_terminate_backend", f.terminateBackends},
		{"stalled database connection", f.stall},
		{"simultaneous start", f.simultaneousStart},
	}
	injected := map[string]int{}
	for i := range *faultCount {
		fault := faults[i%len(faults)]
		t.Logf("fault %d: %s", i+1, fault.name)
		fault.inject()
		injected[fault.name]++
		f.settle(fault.name)
	}
	t.Logf("faults injected: %v; kills that caught their phase: %v", injected, f.caught)
	t.Logf("takeovers: %d after the leader's death, pause or stall (TTL %s): median %s, slowest %s",
		len(f.takeovers), *faultTTL, median(f.takeovers), slowest(f.takeovers))
	t.Logf("stale writes refused by the fence (log lines): %d", f.fenceRefusals())
	t.Logf("checks after faults: %d; duplicate builds: %d; environments off the ledger: %d; deposed leaders still running: %d",
		f.checks, f.duplicates, f.offLedger, f.deposedRunning)
	if f.duplicates+f.offLedger+f.deposedRunning > 0 {
		t.Errorf("conflicting outcomes: %d duplicate builds, %d environments off the ledger, %d deposed leaders still running", f.duplicates, f.offLedger, f.deposedRunning)
	}
}

func slowest(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		m = max(m, d)
	}
	return m
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}

// fleet is TestFaults' servers.
type fleet struct {
	t      *testing.T
	r      *redundant
	bin    string
	raw    ledger.Store // the test's own connection, not through a proxy
	secret string
	procs  []*proc

	takeovers []time.Duration
	// caught counts the kills that hit the phase they aimed at (a build
	// running, a rollout or promotion under way); the others hit just
	// before or after it.
	caught                                        map[string]int
	checks, duplicates, offLedger, deposedRunning int
}

// proc is one `ferry serve` process.
type proc struct {
	name, dir, addr, cfg, log string
	proxy                     *stallProxy
	cmd                       *exec.Cmd
	done                      chan struct{}
	paused                    bool
}

func newFleet(t *testing.T, r *redundant, n int) *fleet {
	t.Helper()
	f := &fleet{t: t, r: r, bin: ferryBinary(t), caught: map[string]int{}}
	ctx := context.Background()
	raw, err := ledgerdb.Open(ctx, r.pg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	f.raw = raw
	pgURL, err := url.Parse(r.pg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		p := &proc{name: fmt.Sprintf("ferry-%d", i+1), dir: t.TempDir(), addr: testport.Addr(t)}
		p.proxy = newStallProxy(t, pgURL.Host)
		u := *pgURL
		u.Host = p.proxy.addr
		q := u.Query()
		q.Set("application_name", p.name)
		u.RawQuery = q.Encode()
		yaml := strings.Replace(r.yaml(p.dir), "ledger: "+r.pg, "ledger: "+u.String(), 1)
		yaml = strings.Replace(yaml, "server: { listen: 127.0.0.1:0 }", "server: { listen: "+p.addr+" }", 1)
		p.cfg = filepath.Join(p.dir, "ferry.yaml")
		p.log = filepath.Join(t.TempDir(), p.name+".log")
		if err := os.WriteFile(p.cfg, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		f.procs = append(f.procs, p)
	}
	return f
}

// ferryBinary builds cmd/ferryd once per test binary, into a directory
// TestMain removes (removeFerryBinary).
func ferryBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "ferry-bin-"); built.err != nil {
			return
		}
		built.bin, built.err = goBuildFerryd(built.dir, "")
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

func removeFerryBinary() {
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
}

func (f *fleet) start(p *proc) {
	f.t.Helper()
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		f.t.Fatal(err)
	}
	cmd := exec.Command(f.bin, "serve", "-c", p.cfg, "--lease-ttl", faultTTL.String())
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	p.cmd, p.done, p.paused = cmd, make(chan struct{}), false
	go func() {
		cmd.Wait()
		logf.Close()
		close(p.done)
	}()
}

func (f *fleet) startAll() {
	for _, p := range f.procs {
		f.start(p)
	}
	if f.secret == "" {
		tokens := &auth.Tokens{Store: f.raw, App: "tiny"}
		_, secret, err := tokens.Create(context.Background(), "faults", ferry.RoleAdmin, "test", "")
		if err != nil {
			f.t.Fatal(err)
		}
		f.secret = secret
	}
}

func (p *proc) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return p.cmd != nil
	}
}

func (f *fleet) kill(p *proc) {
	if p.running() {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Kill()
		<-p.done
	}
}

func (f *fleet) stopAll() {
	for _, p := range f.procs {
		p.proxy.resume()
		f.kill(p)
	}
	if f.t.Failed() {
		for _, p := range f.procs {
			b, _ := os.ReadFile(p.log)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			f.t.Logf("last lines of %s:\n%s", p.name, strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	}
}

// leader is the process the lease names, or nil.
func (f *fleet) leader() (*proc, *ledger.Lease) {
	l, err := f.raw.Leader(context.Background(), "tiny")
	if err != nil {
		return nil, nil
	}
	for _, p := range f.procs {
		if strings.Contains(l.Holder, ":"+p.dir+"#") && l.ExpiresAt.After(time.Now()) {
			return p, l
		}
	}
	return nil, l
}

// waitLeader waits for a live leader other than old (nil: any) and
// returns it.
func (f *fleet) waitLeader(old *proc) *proc {
	f.t.Helper()
	var p *proc
	waitFor(f.t, 60*time.Second, "a new leader", func() bool {
		p, _ = f.leader()
		return p != nil && p != old && p.running()
	})
	return p
}

// client is a client of a live, unpaused server, the leader if asked.
func (f *fleet) client(leader bool) *client.Client {
	f.t.Helper()
	var p *proc
	if leader {
		p, _ = f.leader()
	}
	if p == nil || !p.running() || p.paused {
		for _, q := range f.procs {
			if q.running() && !q.paused {
				p = q
				break
			}
		}
	}
	if p == nil {
		f.t.Fatal("no server runs")
	}
	c, err := client.New("http://" + p.addr)
	if err != nil {
		f.t.Fatal(err)
	}
	c.Token = f.secret
	return c
}

// retry calls fn on a live server's client until it succeeds (30 s).
func (f *fleet) retry(what string, fn func(*client.Client) error) {
	f.t.Helper()
	var err error
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if err = fn(f.client(true)); err == nil {
			return
		}
	}
	f.t.Fatalf("%s: %v", what, err)
}

// commit makes and triggers a new commit of master; it returns it.
func (f *fleet) commit() string {
	f.t.Helper()
	f.r.repo.Write("release.txt", fmt.Sprintf("%d\n", time.Now().UnixNano()))
	commit := f.r.repo.CommitAll("fault test change")
	f.retry("trigger", func(c *client.Client) error {
		_, err := c.Trigger(context.Background(), "master", "")
		return err
	})
	return commit
}

// until waits for cond (up to d) and says whether it held.
func until(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return false
}

// killLeader kills the leader with SIGKILL, waits for the next one and
// starts the killed process again.
func (f *fleet) killLeader() {
	f.t.Helper()
	old, _ := f.leader()
	if old == nil {
		f.t.Fatal("no leader to kill")
	}
	f.kill(old)
	died := time.Now()
	f.waitLeader(old)
	f.takeovers = append(f.takeovers, time.Since(died))
	f.start(old)
}

func (f *fleet) killMidBuild() {
	commit := f.commit()
	if until(60*time.Second, func() bool {
		b, err := f.raw.BuildByCommit(context.Background(), "tiny", commit)
		return err == nil && b.State == ferry.BuildRunning
	}) {
		f.caught["mid-build"]++
	}
	f.killLeader()
}

func (f *fleet) killMidRollout() {
	commit := f.commit()
	if until(2*time.Minute, func() bool {
		ds, err := f.raw.Deployments(context.Background(), ledger.DeploymentFilter{App: "tiny", Env: "dev", Limit: 1})
		return err == nil && len(ds) == 1 && ds[0].Commit == commit && !ds[0].State.Final()
	}) {
		f.caught["mid-rollout"]++
	}
	f.killLeader()
}

func (f *fleet) killMidPromote() {
	ctx := context.Background()
	dev, err := f.raw.Current(ctx, "tiny", "dev")
	if err != nil {
		f.t.Fatalf("dev runs nothing to promote: %v", err)
	}
	if prod, err := f.raw.Current(ctx, "tiny", "prod"); err == nil && prod.Digest == dev.Digest {
		f.killLeader() // nothing new to promote: a kill while idle
		return
	}
	f.retry("promote", func(c *client.Client) error {
		_, err := c.Promote(ctx, "prod", dev.Commit, "fault test")
		return err
	})
	if until(30*time.Second, func() bool {
		ds, err := f.raw.Deployments(ctx, ledger.DeploymentFilter{App: "tiny", Env: "prod", Limit: 1})
		return err == nil && len(ds) == 1 && ds[0].Commit == dev.Commit && !ds[0].State.Final()
	}) {
		f.caught["mid-promote"]++
	}
	f.killLeader()
}

// deposed waits for a leader that lost the lead to stop on its own, counts
// it if it does not, and starts it again.
func (f *fleet) deposed(p *proc) {
	select {
	case <-p.done:
	case <-time.After(3 * *faultTTL):
		f.deposedRunning++
		f.t.Errorf("%s still runs %s after losing the lead", p.name, 3**faultTTL)
		f.kill(p)
	}
	f.start(p)
}

func (f *fleet) pause() {
	old, _ := f.leader()
	old.cmd.Process.Signal(syscall.SIGSTOP)
	old.paused = true
	paused := time.Now()
	f.commit() // work goes on while the leader is paused
	f.waitLeader(old)
	f.takeovers = append(f.takeovers, time.Since(paused))
	old.cmd.Process.Signal(syscall.SIGCONT)
	old.paused = false
	f.deposed(old)
}

func (f *fleet) terminateBackends() {
	old, _ := f.leader()
	conn, err := pgx.Connect(context.Background(), f.r.pg)
	if err != nil {
		f.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	err = conn.QueryRow(context.Background(),
		`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, old.name).Scan(&n)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Logf("terminated %d connections of %s", n, old.name)
	f.commit()
	if !until(2**faultTTL, old.running) {
		f.start(old) // it lost the lead and stopped
	}
}

func (f *fleet) stall() {
	old, _ := f.leader()
	old.proxy.stallNow()
	stalled := time.Now()
	f.waitLeader(old)
	f.takeovers = append(f.takeovers, time.Since(stalled))
	f.commit()
	old.proxy.resume()
	f.deposed(old)
}

func (f *fleet) simultaneousStart() {
	for _, p := range f.procs {
		f.kill(p)
	}
	// cmd.Start returns once each process runs: the three campaign
	// within milliseconds of each other.
	for _, p := range f.procs {
		f.start(p)
	}
	f.waitLeader(nil)
}

// settle waits until a leader works and nothing is under way, then checks
// what must hold after every fault.
func (f *fleet) settle(after string) {
	f.t.Helper()
	ctx := context.Background()
	f.waitLeader(nil)
	if !until(3*time.Minute, func() bool {
		ds, err := f.raw.Deployments(ctx, ledger.DeploymentFilter{App: "tiny", Limit: 20})
		if err != nil {
			return false
		}
		for _, d := range ds {
			if !d.State.Final() {
				return false
			}
		}
		bs, err := f.raw.Builds(ctx, ledger.BuildFilter{App: "tiny", Limit: 20})
		if err != nil {
			return false
		}
		for _, b := range bs {
			if !b.State.Final() {
				return false
			}
		}
		return true
	}) {
		f.t.Fatalf("after %s: builds or deployments still under way after 3 minutes", after)
	}
	f.checks++

	// One build per commit.
	bs, err := f.raw.Builds(ctx, ledger.BuildFilter{App: "tiny", Limit: ledger.MaxLimit})
	if err != nil {
		f.t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, b := range bs {
		if seen[b.Commit] {
			f.duplicates++
			f.t.Errorf("after %s: a second build of %s", after, ferry.ShortSHA(b.Commit))
		}
		seen[b.Commit] = true
	}

	// Every environment on what the ledger says, and nothing to fix.
	var drift []string
	clean := until(time.Minute, func() bool {
		drift = nil
		for env, ns := range map[string]string{"dev": f.r.devNS, "prod": f.r.prodNS} {
			cur, err := f.raw.Current(ctx, "tiny", env)
			if err != nil {
				continue // never deployed
			}
			if image, _ := f.r.k.image(ns, "tiny"); !strings.HasSuffix(image, "@"+cur.Digest) {
				drift = append(drift, fmt.Sprintf("%s runs %s, the ledger says %s", env, image, cur.Digest))
			}
		}
		st, err := f.client(true).StatusCheck(ctx)
		if err != nil {
			drift = append(drift, "status --check: "+err.Error())
		} else {
			for _, d := range st.Drift {
				drift = append(drift, fmt.Sprintf("%s: %s (want %s, got %s)", d.Env, d.What, d.Want, d.Got))
			}
		}
		return len(drift) == 0
	})
	if !clean {
		f.offLedger++
		f.t.Errorf("after %s: %s", after, strings.Join(drift, "; "))
	}
}

// fenceRefusals counts the writes the fence refused, from the servers'
// logs.
func (f *fleet) fenceRefusals() int {
	n := 0
	for _, p := range f.procs {
		file, err := os.Open(p.log)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(file)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "ferry fence") {
				n++
			}
		}
		file.Close()
	}
	return n
}

// stallProxy forwards TCP to a backend; stallNow makes it hold every byte
// until resume, as a network that stops delivering would.
type stallProxy struct {
	addr    string
	stalled atomic.Bool
	mu      sync.Mutex
	wake    chan struct{}
}

func newStallProxy(t *testing.T, backend string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	p := &stallProxy{addr: ln.Addr().String(), wake: make(chan struct{})}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, err := net.Dial("tcp", backend)
				if err != nil {
					return
				}
				defer b.Close()
				done := make(chan struct{}, 2)
				go func() { p.copy(b, c); done <- struct{}{} }()
				go func() { p.copy(c, b); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return p
}

func (p *stallProxy) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for p.stalled.Load() {
			p.mu.Lock()
			wake := p.wake
			p.mu.Unlock()
			if p.stalled.Load() {
				<-wake
			}
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *stallProxy) stallNow() { p.stalled.Store(true) }

func (p *stallProxy) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled.Swap(false) {
		close(p.wake)
		p.wake = make(chan struct{})
	}
}

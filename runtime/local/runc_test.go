package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
)

// containerPid is the host pid of the process a contained replica runs.
func containerPid(t testing.TB, tg *Runtime, id string) int {
	t.Helper()
	st, err := tg.rc.state(id)
	if err != nil || st.Pid == 0 {
		t.Fatalf("state of container %s: %+v, %v", id, st, err)
	}
	return st.Pid
}

// replicaGet GETs path from one replica directly, not through the
// balancer, within timeout.
func replicaGet(t testing.TB, address, path string, timeout time.Duration) (int, string, error) {
	t.Helper()
	c := http.Client{Timeout: timeout}
	resp, err := c.Get("http://" + address + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), nil
}

// procStatus reads the fields of /proc/pid/status.
func procStatus(t testing.TB, pid int) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for line := range strings.Lines(string(raw)) {
		k, v, _ := strings.Cut(line, ":")
		out[k] = strings.TrimSpace(v)
	}
	return out
}

// TestDevCannotReachProd runs dev and prod from one data directory, as
// ferry does, and has dev's replica try to reach into prod's and into
// ferry's files: every attempt is refused and prod keeps serving.
func TestDevCannotReachProd(t *testing.T) {
	requireRunc(t)
	im := appImages(t)
	dataDir := t.TempDir()
	dev := newTarget(t, im, func(c *Config) { c.DataDir = dataDir })
	prod := newTarget(t, im, func(c *Config) { c.Env, c.DataDir = "prod", dataDir })
	apply(t, dev, spec(im.v1, 1))
	ps := spec(im.v1, 1)
	ps.Env = "prod"
	ps.Vars = []ferry.Var{{Name: "PROD_SECRET", Value: "hunter2"}}
	apply(t, prod, ps)
	prodPid := containerPid(t, prod, "prod-1")
	devPid := containerPid(t, dev, "dev-1")
	registry := filepath.Join(dataDir, "registry")
	if err := os.MkdirAll(registry, 0o755); err != nil {
		t.Fatal(err)
	}
	prodSecret := filepath.Join(prod.dataDir, "secret")
	if err := os.WriteFile(prodSecret, []byte("prod's"), 0o644); err != nil {
		t.Fatal(err)
	}

	// What runc was asked for, as the kernel sees it.
	st := procStatus(t, prodPid)
	want := map[string]string{
		"Seccomp": "2", "NoNewPrivs": "1", "CapEff": "0000000000000000", "CapPrm": "0000000000000000",
		"CapBnd": "0000000000000000",
		"Uid":    fmt.Sprintf("%d\t%d\t%d\t%d", prod.rc.uid, prod.rc.uid, prod.rc.uid, prod.rc.uid),
	}
	for k, v := range want {
		if st[k] != v {
			t.Errorf("prod's /proc/%d/status %s = %q, want %q", prodPid, k, st[k], v)
		}
	}
	for _, ns := range []string{"pid", "mnt", "ipc", "uts"} {
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		for _, pid := range []int{devPid, prodPid} {
			if got, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns)); got == host || got == "" {
				t.Errorf("replica %d's %s namespace = %q, want its own (host's %q)", pid, ns, got, host)
			}
		}
	}
	devNs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", devPid))
	prodNs, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", prodPid))
	if devNs == prodNs {
		t.Errorf("dev and prod share the PID namespace %s", devNs)
	}

	for _, tc := range []struct {
		name, path string
		wantCode   int
	}{
		{"read prod's environ", fmt.Sprintf("/read?path=/proc/%d/environ", prodPid), 403},
		{"read prod's memory", fmt.Sprintf("/mem?pid=%d", prodPid), 403},
		{"ptrace prod", fmt.Sprintf("/ptrace?pid=%d", prodPid), 403},
		{"signal prod", fmt.Sprintf("/kill?pid=%d&sig=%d", prodPid, syscall.SIGTERM), 403},
		{"read prod's data", "/read?path=" + prodSecret, 403},
		{"read ferry's data directory", "/read?path=" + filepath.Join(dataDir, "runc", "ids.json"), 403},
		{"write the registry's storage", "/write?name=blob&dir=" + registry, 500},
		{"ptrace its own pid 1", "/ptrace?pid=1", 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := get(t, dev, tc.path)
			if code != tc.wantCode {
				t.Errorf("dev GET %s = %d %q, want %d", tc.path, code, body, tc.wantCode)
			}
			if strings.Contains(body, "hunter2") || strings.Contains(body, "prod's") {
				t.Errorf("dev GET %s leaked prod's secret: %q", tc.path, body)
			}
			t.Logf("GET %s = %d %q", tc.path, code, body)
		})
	}
	if _, err := os.Stat(filepath.Join(registry, "blob")); err == nil {
		t.Errorf("dev wrote into the registry's storage")
	}
	// Prod was not signalled: the same process still serves.
	if code, body := get(t, prod, "/version"); code != 200 || body != "v1" {
		t.Errorf("prod GET /version = %d %q after the attacks", code, body)
	}
	if got := containerPid(t, prod, "prod-1"); got != prodPid {
		t.Errorf("prod's replica is pid %d, was %d: it was restarted", got, prodPid)
	}
	// Its own environment still reaches prod's secret: the test reads
	// what it should.
	if raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", prodPid)); err != nil || !strings.Contains(string(raw), "PROD_SECRET=hunter2") {
		t.Errorf("prod's environ as root: %v, want PROD_SECRET there", err)
	}
}

// TestOOMKilledAtTheLimit has a dev replica allocate memory without bound:
// the kernel kills it at its limit, the runtime restarts it with backoff
// and says OOM-killed, and dev's other replica and prod keep serving.
func TestOOMKilledAtTheLimit(t *testing.T) {
	requireRunc(t)
	im := appImages(t)
	dataDir := t.TempDir()
	const limit = 64 << 20
	events := &syncBuffer{}
	dev := newTarget(t, im, func(c *Config) { c.DataDir, c.Resources.Memory = dataDir, limit }, logTo(t, events))
	prod := newTarget(t, im, func(c *Config) { c.Env, c.DataDir = "prod", dataDir })
	apply(t, dev, spec(im.v1, 2))
	ps := spec(im.v1, 2)
	ps.Env = "prod"
	apply(t, prod, ps)

	st := status(t, dev)
	victim, other := st.Replicas[0], st.Replicas[1]
	if victim.MemoryLimitBytes != limit || victim.MemoryBytes <= 0 || victim.MemoryBytes >= limit || victim.Isolation != ferry.IsolationRunc {
		t.Errorf("dev's replica before = %+v, want its memory use below the %d limit, under runc", victim, limit)
	}
	l := startLoad(prod, 2)
	start := time.Now()
	_, _, err := replicaGet(t, victim.Addr, "/alloc", 30*time.Second)
	if err == nil {
		t.Fatalf("GET /alloc answered: the replica was not killed")
	}
	t.Logf("GET /alloc: %v after %v", err, time.Since(start).Round(time.Millisecond))
	// Meanwhile dev's other replica answers.
	if code, body, err := replicaGet(t, other.Addr, "/version", 5*time.Second); err != nil || code != 200 {
		t.Errorf("dev's other replica: %d %q %v", code, body, err)
	}
	var got ferry.Replica
	waitFor(t, 20*time.Second, "the victim to be restarted and ready", func() bool {
		for _, r := range status(t, dev).Replicas {
			if r.ID == victim.ID {
				got = r
				return r.Ready && r.Restarts == 1
			}
		}
		return false
	})
	if got.LastExit == nil || got.LastExit.Reason != ferry.ExitOOM || got.LastExit.Signal != "SIGKILL" || !strings.Contains(got.LastExit.Message, "64Mi") {
		t.Errorf("victim's last exit = %+v, want OOM-killed at its 64Mi limit", got.LastExit)
	}
	if !strings.Contains(events.String(), "restarting in 100ms") {
		t.Errorf("the runtime's log has no restart backoff for the victim:\n%s", events)
	}
	lines, _ := tailLog(dev.logName(victim.ID), 20, 5, -1)
	if slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, "ferry: ") }) {
		t.Errorf("victim's log %q has the runtime's own lines, want only the app's", lines)
	}
	l.stop(t)
	if code, body := get(t, dev, "/version"); code != 200 || body != "v1" {
		t.Errorf("dev GET /version = %d %q after the OOM kill", code, body)
	}
}

// TestForkBombHeldByPidsLimit has a replica start copies of itself until
// it cannot: the pids limit stops it, and the other environment serves.
func TestForkBombHeldByPidsLimit(t *testing.T) {
	requireRunc(t)
	im := appImages(t)
	dataDir := t.TempDir()
	const limit = 64
	dev := newTarget(t, im, func(c *Config) { c.DataDir, c.Resources.Pids = dataDir, limit })
	prod := newTarget(t, im, func(c *Config) { c.Env, c.DataDir = "prod", dataDir })
	apply(t, dev, spec(im.v1, 1))
	ps := spec(im.v1, 1)
	ps.Env = "prod"
	apply(t, prod, ps)
	l := startLoad(prod, 2)

	victim := status(t, dev).Replicas[0]
	code, body, err := replicaGet(t, victim.Addr, "/forkbomb", 60*time.Second)
	t.Logf("GET /forkbomb = %d %q %v", code, body, err)
	// Either the bomb saw fork fail, or the Go runtime of the bomb itself
	// could not make a thread and died: both are the limit holding.
	if err == nil && (code != 200 || !strings.Contains(body, "resource temporarily unavailable")) {
		t.Errorf("GET /forkbomb = %d %q, want fork refused", code, body)
	}
	var n int
	if err == nil {
		fmt.Sscanf(body, "started %d", &n)
		if n >= limit {
			t.Errorf("the bomb started %d processes, want fewer than the limit of %d", n, limit)
		}
	}
	if peak, ok := readInt(cgroupFile("pids", dev.rc.cgroupPath(victim.ID), "pids.peak")); ok && peak > limit {
		t.Errorf("pids.peak = %d, want at most %d", peak, limit)
	}
	l.stop(t)
	waitFor(t, 20*time.Second, "dev to serve again", func() bool {
		st := status(t, dev)
		return st.Ready == 1
	})
}

// TestStubbornKilledAfterGrace runs a replica that ignores SIGTERM: it is
// killed (runc kill) when the grace period ends, and its container is
// gone.
func TestStubbornKilledAfterGrace(t *testing.T) {
	requireRunc(t)
	im := appImages(t)
	events := &syncBuffer{}
	tg := newTarget(t, im, logTo(t, events))
	s := spec(im.stubborn, 1)
	s.Rollout.Grace = time.Second
	apply(t, tg, s)
	pid := containerPid(t, tg, "dev-1")
	start := time.Now()
	apply(t, tg, spec(im.v1, 1))
	took := time.Since(start)
	if took < time.Second || took > 6*time.Second {
		t.Errorf("the rollout took %v, want the 1s grace period and a bit", took)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("the stubborn replica's pid %d still exists (kill 0: %v)", pid, err)
	}
	// Its container is deleted behind the rollout.
	waitFor(t, 5*time.Second, "runc to forget dev-1", func() bool {
		_, err := tg.rc.state("dev-1")
		return err != nil
	})
	if !strings.Contains(events.String(), "after SIGTERM: SIGKILL") {
		t.Errorf("the runtime's log does not note dev-1's SIGKILL:\n%s", events)
	}
}

// TestLeftContainersRemoved kills a ferry stand-in whose replicas ignore
// the SIGTERM runc forwards when ferry dies: they outlive it, and the next
// New of their environment removes them.
func TestLeftContainersRemoved(t *testing.T) {
	requireRunc(t)
	im := appImages(t)
	dataDir := t.TempDir()
	ps := runStandIn(t, orphanArgs{
		Repo:   strings.TrimPrefix(registrySrv.URL, "http://") + "/app",
		Digest: im.stubborn, DataDir: dataDir,
	})
	time.Sleep(500 * time.Millisecond)
	for _, pid := range ps {
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("runc %d died with the stand-in (%v): nothing was left to remove", pid, err)
		}
	}
	tg := newTarget(t, im, func(c *Config) { c.DataDir = dataDir })
	waitFor(t, 5*time.Second, "the left containers to be gone", func() bool {
		for _, pid := range ps {
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				return false
			}
		}
		return true
	})
	for _, id := range []string{"dev-1", "dev-2"} {
		if _, err := tg.rc.state(id); err == nil {
			t.Errorf("runc still knows %s", id)
		}
		if _, err := os.Stat(cgroupFile("pids", tg.rc.cgroupPath(id), "")); err == nil {
			t.Errorf("the cgroup of %s is still there", id)
		}
	}
}

// TestLimitsApplied reads the limits back from the kernel: the cgroup of a
// replica holds what Resources say, defaults filled in.
func TestLimitsApplied(t *testing.T) {
	requireRunc(t)
	im := appImages(t)
	for _, tc := range []struct {
		res              ferry.Resources
		mem, quota, pids int64
	}{
		{ferry.Resources{}, ferry.DefaultMemory, ferry.DefaultMilliCPU * 100, ferry.DefaultPids},
		{ferry.Resources{Memory: 96 << 20, MilliCPU: 250, Pids: 32}, 96 << 20, 25000, 32},
	} {
		t.Run(tc.res.WithDefaults().String(), func(t *testing.T) {
			tg := newTarget(t, im, func(c *Config) { c.Resources = tc.res })
			apply(t, tg, spec(im.v1, 1))
			cg := tg.rc.cgroupPath("dev-1")
			for _, f := range []struct {
				controller, file string
				want             int64
			}{
				{"memory", "memory.limit_in_bytes", tc.mem},
				{"cpu", "cpu.cfs_quota_us", tc.quota},
				{"cpu", "cpu.cfs_period_us", 100000},
				{"pids", "pids.max", tc.pids},
			} {
				if got, ok := readInt(cgroupFile(f.controller, cg, f.file)); !ok || got != f.want {
					t.Errorf("%s = %d (%v), want %d", f.file, got, ok, f.want)
				}
			}
			if swapAccounting() {
				if got, _ := readInt(cgroupFile("memory", cg, "memory.memsw.limit_in_bytes")); got != tc.mem {
					t.Errorf("memory.memsw.limit_in_bytes = %d, want %d", got, tc.mem)
				}
			}
			if r := status(t, tg).Replicas[0]; r.MemoryLimitBytes != tc.mem || r.CPUSeconds <= 0 {
				t.Errorf("status = %+v, want limit %d and some CPU used", r, tc.mem)
			}
		})
	}
}

// hostAttackEnv makes the test binary run hostAttackMain: a process on the
// host, as one environment's uid, that tries to reach a replica of another
// (the evidence: as uid 65532, any process reached every replica).
const hostAttackEnv = "LOCAL_TEST_HOST_ATTACK"

// hostAttackMain tries each attack on the pid in hostAttackEnv and prints
// one line per attack: its name, then "ok" or the error.
func hostAttackMain() {
	var pid int
	fmt.Sscan(os.Getenv(hostAttackEnv), &pid)
	try := func(name string, err error) {
		if err == nil {
			fmt.Println(name, "ok")
			return
		}
		fmt.Println(name, err)
	}
	_, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	try("environ", err)
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err == nil {
		f.Close()
	}
	try("mem", err)
	try("signal", syscall.Kill(pid, 0))
	runtime.LockOSThread()
	err = syscall.PtraceAttach(pid)
	if err == nil {
		syscall.PtraceDetach(pid)
	}
	try("ptrace", err)
}

// TestHostProcessAsDevCannotReachProd runs the attacks from the host, as
// dev's uid: prod's replica runs as another uid, so each is refused.
func TestHostProcessAsDevCannotReachProd(t *testing.T) {
	requireRunc(t)
	im := appImages(t)
	dataDir := t.TempDir()
	dev := newTarget(t, im, func(c *Config) { c.DataDir = dataDir })
	prod := newTarget(t, im, func(c *Config) { c.Env, c.DataDir = "prod", dataDir })
	ps := spec(im.v1, 1)
	ps.Env = "prod"
	apply(t, prod, ps)
	prodPid := containerPid(t, prod, "prod-1")

	// The test binary where dev's uid may run it.
	binDir, err := os.MkdirTemp("", "ferry-attack-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(binDir) })
	bin := filepath.Join(binDir, "attack")
	raw, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, raw, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(binDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin)
	cmd.Env = []string{hostAttackEnv + "=" + strconv.Itoa(prodPid)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(dev.rc.uid), Gid: uint32(dev.rc.uid)}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("attacker: %v\n%s", err, out)
	}
	got := map[string]string{}
	for line := range strings.Lines(string(out)) {
		name, result, _ := strings.Cut(strings.TrimSpace(line), " ")
		got[name] = result
	}
	for _, tc := range []struct{ attack, want string }{
		{"environ", "permission denied"},
		{"mem", "permission denied"},
		{"signal", "operation not permitted"},
		{"ptrace", "operation not permitted"},
	} {
		if !strings.Contains(got[tc.attack], tc.want) {
			t.Errorf("as dev's uid %d on the host, %s of prod's pid %d: %q, want %q", dev.rc.uid, tc.attack, prodPid, got[tc.attack], tc.want)
		}
	}
	t.Logf("as uid %d: %v", dev.rc.uid, got)
}

package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ferryhq/ferry"
	"github.com/ferryhq/ferry/internal/loadtest"
	"github.com/ferryhq/ferry/internal/testenv"
	"github.com/ferryhq/ferry/internal/testport"
	"github.com/ferryhq/ferry/node"
)

// stopNode stops the node of dataDir that `ferry serve` started (SIGTERM:
// it stops its replicas), once ferry itself is gone, so that no test
// leaves one running. Register it before ferry's own cleanup.
func stopNode(t testing.TB, dataDir string) {
	t.Cleanup(func() {
		pid, err := node.LockHolder(dataDir)
		if err != nil || !alive(pid) {
			return
		}
		syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(time.Minute)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("node %d still runs a minute after SIGTERM: SIGKILL", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// TestNodeOutlivesFerry runs the real ferry binary with dev on the local
// runtime, which `ferry serve` hands to the node it starts, and holds a
// load of thousands of requests a second on dev while it: kills ferry
// with SIGKILL and starts it again; restarts it gracefully; replaces it
// with another ferry binary; upgrades the node (a new binary takes the
// listening socket over); and finally kills the node with SIGKILL, after
// which ferry starts a node again that brings dev back by itself. Not one
// request may fail across the first four, no replica may restart across
// the first three, and the ledger's deployments stay as they were.
func TestNodeOutlivesFerry(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the ferry binary and its node")
	}
	if os.Geteuid() != 0 {
		testenv.Unavailable(t, "root", "the node contains replicas under runc as root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		testenv.Unavailable(t, "runc", "contained replicas need runc: %v", err)
	}
	bin := buildFerry(t, "")
	bin2 := buildFerry(t, "next")
	devAddr := testport.Addr(t)
	f := startBinaryFerry(t, bin, onLocal(2, devAddr, false), "")
	p, c, repo, data, ctx := f.ferryProc, f.c, f.repo, f.data, context.Background()
	head := repo.Head()
	up := func(what string) {
		t.Helper()
		waitFor(t, time.Minute, what+": ferry to answer", func() bool { _, err := c.Status(ctx); return err == nil })
	}
	up("first start")
	waitDeployed(t, c, "dev", head)
	pods := func() []ferry.Replica {
		t.Helper()
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range st.Environments {
			if e.Name == "dev" {
				return e.Pods
			}
		}
		t.Fatal("no dev in status")
		return nil
	}
	// replicas names each replica with the time its process started: a
	// restart of any would show.
	replicas := func() []string {
		var out []string
		for _, r := range pods() {
			if r.Ready {
				out = append(out, r.ID+"@"+r.Started.Format(time.RFC3339Nano))
			}
		}
		slices.Sort(out)
		return out
	}
	deployments := func() string {
		t.Helper()
		ds, err := c.Deployments(ctx, "dev", 100)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for _, d := range ds {
			fmt.Fprintf(&b, "%d %s %s %s|", d.ID, d.Commit, d.State, d.Digest)
		}
		return b.String()
	}
	settle := func(what string) {
		t.Helper()
		up(what)
		waitFor(t, time.Minute, what+": dev's 2 replicas ready", func() bool { return len(replicas()) == 2 })
		time.Sleep(2 * time.Second) // the controller's start has applied the ledger's spec
	}
	before := replicas()
	if len(before) != 2 {
		t.Fatalf("dev runs %v, want 2 ready replicas", before)
	}
	ledgerBefore := deployments()
	nodePid := func() int {
		t.Helper()
		pid, err := node.LockHolder(data)
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	firstNode := nodePid()
	time.Sleep(5 * time.Second) // idle: no request, no rollout
	t.Logf("idle RSS: ferry serve %s, ferry node %s", rss(t, p.cmd.Process.Pid), rss(t, firstNode))

	// phase holds the load across fault and wants nothing to fail.
	phase := func(name string, fault func()) {
		t.Helper()
		start := time.Now()
		load := loadtest.Start(loadtest.Config{Workers: 8, URL: "http://" + devAddr + "/version", Timeout: 5 * time.Second})
		time.Sleep(time.Second)
		fault()
		time.Sleep(time.Second)
		load.Stop()
		took := time.Since(start)
		t.Logf("%s: %d requests in %v (%.0f/s), %d failed", name, load.OK()+load.Failed(), took.Round(time.Millisecond),
			float64(load.OK()+load.Failed())/took.Seconds(), load.Failed())
		if load.Failed() != 0 {
			t.Errorf("%s: %d of %d requests failed: %v", name, load.Failed(), load.OK()+load.Failed(), load.Errors())
		}
	}

	phase("kill -9 of ferry serve", func() {
		p.kill()
		time.Sleep(time.Second) // prod is without ferry for a while
		p.start()
		settle("after kill -9")
	})
	if got := replicas(); !slices.Equal(got, before) {
		t.Errorf("after kill -9 of ferry, dev runs %v, want the very replicas %v", got, before)
	}
	phase("graceful restart of ferry serve", func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.exited
		p.start()
		settle("after a restart")
	})
	if got := replicas(); !slices.Equal(got, before) {
		t.Errorf("after a restart of ferry, dev runs %v, want the very replicas %v", got, before)
	}
	phase("upgrade of the ferry binary", func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.exited
		p.bin = bin2
		p.start()
		settle("after an upgrade")
	})
	if got := replicas(); !slices.Equal(got, before) {
		t.Errorf("after an upgrade of ferry, dev runs %v, want the very replicas %v", got, before)
	}
	if nodePid() != firstNode {
		t.Errorf("node %d replaced by %d across ferry's restarts, want the same", firstNode, nodePid())
	}

	phase("upgrade of the node (handover)", func() {
		upgradeNode(t, bin2, data, firstNode)
	})
	afterHandover := replicas()
	if len(afterHandover) != 2 || slices.ContainsFunc(afterHandover, func(r string) bool { return slices.Contains(before, r) }) {
		t.Errorf("after the node's upgrade dev runs %v, want 2 new replicas (not %v)", afterHandover, before)
	}

	// kill -9 of the node: ferry starts another, which restores dev from
	// its saved state; how long dev is down is what we measure.
	killed := nodePid()
	if err := syscall.Kill(killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var firstOK time.Duration
	waitFor(t, time.Minute, "dev to answer again", func() bool {
		resp, err := http.Get("http://" + devAddr + "/version")
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false
		}
		firstOK = time.Since(start)
		return true
	})
	waitFor(t, time.Minute, "dev's 2 replicas ready again", func() bool {
		st, err := c.Status(ctx)
		if err != nil {
			return false
		}
		return len(st.Environments) > 0 && len(replicas()) == 2
	})
	allReady := time.Since(start)
	t.Logf("kill -9 of the node: dev answered again after %v, both replicas ready after %v (ferry watches its node and starts another at once)",
		firstOK.Round(time.Millisecond), allReady.Round(time.Millisecond))
	if nodePid() == killed {
		t.Errorf("node %d still holds the lock after its kill", killed)
	}
	time.Sleep(2 * time.Second)
	if got := deployments(); got != ledgerBefore {
		t.Errorf("dev's deployments changed across the faults:\n got %s\nwant %s", got, ledgerBefore)
	}
	if b, err := os.ReadFile(node.LogPath(data)); err != nil || !strings.Contains(string(b), "environment restored") {
		t.Errorf("node log says no environment restored (%v)", err)
	}
}

// rss is a process's resident set as /proc says it: VmRSS, and its
// anonymous and file-backed parts; and its proportional set (PSS), where
// each page shared with other processes (ferry serve and its node map
// the same binary) counts by its share.
func rss(t testing.TB, pid int) string {
	t.Helper()
	kb, err := procSizes(pid, "status")
	if err != nil {
		return err.Error()
	}
	s := fmt.Sprintf("%.1f MB (anonymous %.1f, file %.1f)", float64(kb["VmRSS"])/1024, float64(kb["RssAnon"])/1024, float64(kb["RssFile"])/1024)
	if p, err := procSizes(pid, "smaps_rollup"); err == nil {
		s += fmt.Sprintf("; PSS %.1f MB (anonymous %.1f, file %.1f)", float64(p["Pss"])/1024, float64(p["Pss_Anon"])/1024, float64(p["Pss_File"])/1024)
	}
	return s
}

// procSizes reads the sizes of /proc/PID/FILE (status: VmRSS, RssAnon,
// RssFile, …; smaps_rollup: Pss, Pss_Anon, Pss_File, …), in kB by name.
func procSizes(pid int, file string) (map[string]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return nil, err
	}
	kb := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		var k string
		var v int
		if n, _ := fmt.Sscanf(line, "%s %d kB", &k, &v); n == 2 {
			kb[strings.TrimSuffix(k, ":")] = v
		}
	}
	return kb, nil
}

// upgradeNode starts bin as a node taking over from the node old of data
// (its output appended to the node's log) and waits until old has exited
// and the new node holds the lock.
func upgradeNode(t testing.TB, bin, data string, old int) {
	t.Helper()
	nl, err := os.OpenFile(node.LogPath(data), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	cmd := exec.Command(bin, "node", "--takeover", "--data-dir", data)
	cmd.Stdout, cmd.Stderr = nl, nl
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	waitFor(t, time.Minute, "the old node to exit", func() bool { return !alive(old) })
	waitFor(t, 10*time.Second, "the new node to hold the lock", func() bool {
		pid, err := node.LockHolder(data)
		return err == nil && pid == cmd.Process.Pid
	})
}
